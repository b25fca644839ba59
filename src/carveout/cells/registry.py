"""A deployment: the cells of one data directory, opened in one process (the embedded mode)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from carveout.cells.policy import DEFAULT_POLICY, CellSpec, Policy, load_policy, parse_policy
from carveout.storage import LocalBlobStore, PostgresStore, SqliteStore, Store, Vault
from carveout.storage.sealing import seal_legacy_rows

POLICY_FILE = "policy.toml"
# Longest `cell` waits for a cell another thread is opening ahead (it then opens it itself).
PREPARE_WAIT_S = 30.0
# Connections `prepare` opens (and warms) ahead: PostgresStore's pool keeps this many.
PREPARED_CONNECTIONS = 8


@dataclass
class Cell:
    spec: CellSpec
    store: Store
    blobs: LocalBlobStore
    root: Path
    vault: Vault  # per-user data keys and the lookup key, kept apart from the data

    @property
    def name(self) -> str:
        return self.spec.name


def cell_root(data_dir: Path, name: str) -> Path:
    return data_dir / "cells" / name


def key_dir(data_dir: Path, name: str) -> Path:
    # Not under cells/<cell>/: a data backup must never carry the keys that decrypt it.
    return data_dir / "keys" / name


def open_cell(data_dir: Path, spec: CellSpec) -> Cell:
    root = cell_root(data_dir, spec.name)
    store: Store
    if spec.storage == "sqlite":
        store = SqliteStore(root / "cell.db")
    else:
        store = PostgresStore(spec.storage)
    store.migrate()
    vault = Vault(key_dir(data_dir, spec.name))
    seal_legacy_rows(store, vault)
    return Cell(
        spec=spec, store=store, blobs=LocalBlobStore(root / "blobs"), root=root, vault=vault
    )


class Deployment:
    """Every cell the policy names, each with its own store and blob folder."""

    def __init__(self, data_dir: Path, policy: Policy) -> None:
        self.data_dir = data_dir
        self.policy = policy
        self._cells: dict[str, Cell] = {}
        self._prepared: dict[str, Cell] = {}  # opened ahead of the policy naming them
        self._preparing: dict[str, threading.Event] = {}  # set once that cell is prepared
        self._lock = threading.RLock()
        self._policy_stamp = self._stamp()

    def _stamp(self) -> int:
        try:
            return (self.data_dir / POLICY_FILE).stat().st_mtime_ns
        except FileNotFoundError:
            return -1

    def refresh_policy(self) -> bool:
        """Pick up a policy rewritten by another process (a carve's cutover). One stat() when
        nothing changed; cells already open stay open."""
        stamp = self._stamp()
        if stamp == self._policy_stamp:
            return False
        with self._lock:
            if stamp != self._policy_stamp:
                self.policy = load_policy(self.data_dir / POLICY_FILE)
                self._policy_stamp = stamp
        return True

    @classmethod
    def open(cls, data_dir: Path) -> Deployment:
        return cls(data_dir, load_policy(data_dir / POLICY_FILE))

    def cell(self, name: str) -> Cell:
        while True:
            with self._lock:
                if name in self._cells:
                    return self._cells[name]
                preparing = self._preparing.get(name)
                if preparing is None:
                    spec = self.policy.cell(name)
                    ready = self._prepared.pop(name, None)
                    if ready is not None and ready.spec != spec:
                        ready.store.dispose()
                        ready = None
                    self._cells[name] = ready or open_cell(self.data_dir, spec)
                    return self._cells[name]
            # Being opened ahead (a carve's target, its held writes just released): wait for
            # that instead of opening it a second time while holding the lock every request
            # takes, which stalled every cell's requests for the length of an open.
            preparing.wait(PREPARE_WAIT_S)
            with self._lock:
                if self._preparing.get(name) is preparing:  # the opener is stuck: open here
                    del self._preparing[name]

    def prepare(
        self,
        spec: CellSpec,
        connections: int = PREPARED_CONNECTIONS,
        warm: Callable[[Cell, sa.Connection], object] | None = None,
    ) -> Cell:
        """Open a cell the policy does not name yet (a carve's target while its cutover's fence
        is up), outside the lock every request takes, then a few connections in its pool; once
        the policy names it, `cell` hands out this one (if the spec is still the same), and
        waits for it if asked while it is still being opened. `warm` runs on each of those
        connections inside a transaction that is rolled back (see api.warmup)."""
        with self._lock:
            found = self._cells.get(spec.name) or self._prepared.get(spec.name)
            if found is not None:
                return found
            preparing = self._preparing.get(spec.name)
            if preparing is None:
                preparing = self._preparing[spec.name] = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            preparing.wait(PREPARE_WAIT_S)
            with self._lock:
                found = self._cells.get(spec.name) or self._prepared.get(spec.name)
            if found is None:
                raise RuntimeError(f"cell {spec.name} could not be prepared")
            return found
        try:
            cell = open_cell(self.data_dir, spec)
            with self._lock:  # handed out from here on, while its pool fills
                found = self._cells.get(spec.name) or self._prepared.get(spec.name)
                if found is None:
                    self._prepared[spec.name] = cell
        finally:
            with self._lock:
                if self._preparing.get(spec.name) is preparing:
                    del self._preparing[spec.name]
            preparing.set()
        if found is not None:
            cell.store.dispose()
            return found
        with contextlib.ExitStack() as held:  # opened at once, so the pool keeps them all
            for _ in range(connections):
                conn = held.enter_context(cell.store.connect())
                if warm is not None:
                    trans = conn.begin()
                    try:
                        warm(cell, conn)
                    finally:
                        trans.rollback()
        return cell

    def discard_prepared(self, name: str) -> None:
        """Close a cell opened ahead that will not be served (its carve was aborted)."""
        with self._lock:
            cell = self._prepared.pop(name, None)
        if cell is not None:
            cell.store.dispose()

    def cell_for(self, jurisdiction: str) -> Cell:
        return self.cell(self.policy.cell_for(jurisdiction).name)

    def cells(self) -> list[Cell]:
        return [self.cell(name) for name in self.policy.names]

    def close(self) -> None:
        with self._lock:
            for cell in [*self._cells.values(), *self._prepared.values()]:
                cell.store.dispose()
            self._cells.clear()
            self._prepared.clear()


def init_data_dir(data_dir: Path, policy_text: str | None = None) -> Deployment:
    """Create the data directory with a policy (the default one unless given) and every cell."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / POLICY_FILE
    if policy_text is not None:
        parse_policy(policy_text, str(path))  # refuse a bad policy before writing it
        path.write_text(policy_text, encoding="utf-8")
    elif not path.exists():
        path.write_text(DEFAULT_POLICY, encoding="utf-8")
    deployment = Deployment.open(data_dir)
    deployment.cells()
    return deployment
