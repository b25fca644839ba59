"""Public datasets imported into a deployment: KuaiRec users, videos and watch events."""

from carveout.datasets.jurisdiction_mix import (
    JURISDICTION_WEIGHTS,
    assign_jurisdictions,
    quotas,
)
from carveout.datasets.kuairec import LoadReport, Progress, kuairec_videos, load_kuairec
from carveout.datasets.kuairec_files import REQUIRED_FILES as KUAIREC_FILES
from carveout.datasets.sources import DatasetFile, Publisher, missing

__all__ = [
    "JURISDICTION_WEIGHTS",
    "KUAIREC_FILES",
    "DatasetFile",
    "LoadReport",
    "Progress",
    "Publisher",
    "assign_jurisdictions",
    "kuairec_videos",
    "load_kuairec",
    "missing",
    "quotas",
]
