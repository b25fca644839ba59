"""User data management: access exports, erasure with receipts, tombstones after restores."""

from carveout.privacy.erasure import (
    STEPS,
    claim_erasure,
    erase,
    resume_erasures,
    run_erasure,
    start_erasure,
)
from carveout.privacy.exports import (
    build_archive,
    collect,
    export_dir,
    export_status,
    run_export,
    start_export,
    subject_tables,
)
from carveout.privacy.models import ErasureGone, Receipt, ReceiptLine
from carveout.privacy.staff import erase_verified, erasure_receipt
from carveout.privacy.tombstones import reapply_tombstones

__all__ = [
    "STEPS",
    "ErasureGone",
    "Receipt",
    "ReceiptLine",
    "build_archive",
    "claim_erasure",
    "collect",
    "erase",
    "erase_verified",
    "erasure_receipt",
    "export_dir",
    "export_status",
    "reapply_tombstones",
    "resume_erasures",
    "run_erasure",
    "run_export",
    "start_erasure",
    "start_export",
    "subject_tables",
]
