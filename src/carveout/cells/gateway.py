"""The gateway: routes each request to the cell serving the caller's jurisdiction."""

from __future__ import annotations

import threading

from carveout.cells.registry import Cell, Deployment


class Gateway:
    """Jurisdiction -> cell routing. Work that must see every cell (is a handle taken anywhere?
    which cell holds this login?) asks each cell through its own store, never one cell for
    another's data."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        # Handles and emails are unique across cells; signups are serialised so two cells
        # cannot both accept the same handle in the embedded mode.
        self.signup_lock = threading.Lock()

    def route(self, jurisdiction: str) -> Cell:
        return self.deployment.cell_for(jurisdiction)

    def cells(self) -> list[Cell]:
        return self.deployment.cells()
