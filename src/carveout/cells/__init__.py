"""Cells and residency: the policy file, the deployment of cells, and the gateway's routing."""

from carveout.cells.fence import FENCE_FILE, Fence, FenceBoard
from carveout.cells.gateway import Gateway, WritesPaused
from carveout.cells.policy import (
    DEFAULT_POLICY,
    CellSpec,
    Policy,
    load_policy,
    parse_policy,
)
from carveout.cells.policy_edit import render_policy, with_new_cell, write_policy_atomically
from carveout.cells.registry import POLICY_FILE, Cell, Deployment, init_data_dir, open_cell

__all__ = [
    "DEFAULT_POLICY",
    "FENCE_FILE",
    "POLICY_FILE",
    "Cell",
    "CellSpec",
    "Deployment",
    "Fence",
    "FenceBoard",
    "Gateway",
    "Policy",
    "WritesPaused",
    "init_data_dir",
    "load_policy",
    "open_cell",
    "parse_policy",
    "render_policy",
    "with_new_cell",
    "write_policy_atomically",
]
