"""Cells and residency: the policy file, the deployment of cells, and the gateway's routing."""

from carveout.cells.gateway import Gateway
from carveout.cells.policy import (
    DEFAULT_POLICY,
    CellSpec,
    Policy,
    load_policy,
    parse_policy,
)
from carveout.cells.registry import POLICY_FILE, Cell, Deployment, init_data_dir, open_cell

__all__ = [
    "DEFAULT_POLICY",
    "POLICY_FILE",
    "Cell",
    "CellSpec",
    "Deployment",
    "Gateway",
    "Policy",
    "init_data_dir",
    "load_policy",
    "open_cell",
    "parse_policy",
]
