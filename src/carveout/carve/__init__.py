"""The carve: move jurisdictions out of a live cell into a new, independent one.

STEP 1 plan, 2 prepare, 3 capture, 4 copy, 5 catch-up, 6 cutover, 7 verify, 8 retrain, 9 purge."""

from carveout.carve.capture import is_moved_error
from carveout.carve.models import PHASES, POINT_OF_NO_RETURN, CarveFailed, CarveSpec, Phase
from carveout.carve.phases import CarveOutcome, QuietReporter, Reporter
from carveout.carve.plan import CarvePlan, make_plan, render_plan
from carveout.carve.runner import (
    CarveFinished,
    abort,
    in_progress,
    load_spec,
    open_target,
    phases_done,
    run,
    start,
    status,
)

__all__ = [
    "PHASES",
    "POINT_OF_NO_RETURN",
    "CarveFailed",
    "CarveFinished",
    "CarveOutcome",
    "CarvePlan",
    "CarveSpec",
    "Phase",
    "QuietReporter",
    "Reporter",
    "abort",
    "in_progress",
    "is_moved_error",
    "load_spec",
    "make_plan",
    "open_target",
    "phases_done",
    "render_plan",
    "run",
    "start",
    "status",
]
