"""The model version a cell serves, and newer ones loaded and swapped in off the request path.

A request never waits for a load once a version serves: a newer one is loaded, checked and
indexed on a background thread and swapped in under the cell's lock when it is ready. Only a
process that has served nothing yet loads on the request (it has nothing older to serve)."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from carveout.cells import Cell
from carveout.cells.policy import Policy
from carveout.core.heap import collections_paused, settle
from carveout.recommend import artefact
from carveout.recommend.artefact import ArtefactRefused, Manifest
from carveout.recommend.candidates import CandidateModel
from carveout.recommend.catalogue import Catalogue
from carveout.recommend.loading import Prepared, prepare
from carveout.recommend.pool import ServingIndex
from carveout.recommend.ranker import Ranker, UserState

log = logging.getLogger(__name__)


@dataclass
class UserEntry:
    """What the served version holds of one user: dropped when another version is swapped in,
    since the residuals in the state depend on that version's prior (rebuilt from the log)."""

    state: UserState
    last_event_id: str = ""
    watched_rows: list[int] = field(default_factory=list)  # in the served model


@dataclass
class ServedVersions:
    cell: Cell
    policy: Policy | None = None
    ranker: Ranker | None = None
    model: CandidateModel | None = None
    manifest: Manifest | None = None
    refused: dict[str, str] = field(default_factory=dict)  # version -> why
    users: dict[str, UserEntry] = field(default_factory=dict)
    catalogue: Catalogue | None = None
    serving: ServingIndex | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    # Called in the loader thread once a version is loaded and its index built, just before
    # the swap (tests hold a load there to see requests served meanwhile; the bench times it).
    before_swap: Callable[[Manifest], None] | None = None
    _loader: threading.Thread | None = None
    _arrived: list[str] | None = None  # catalogue additions while a loader builds its index
    _tried: bool = False  # a first load was attempted in this process

    def refresh_model(self) -> None:
        """Start loading a newer version in the background, if there is one (under the lock).

        Requests go on with what is served (a model, or the fallback) until the loader swaps
        the new version in. Only a process that has not tried to load any version yet loads on
        the request (it has nothing older to serve): its first request waits for the load."""
        if not self._tried:
            self._tried = True
            self.load_now()
        elif self._newer():
            self._start_loader()

    def _newer(self) -> list[Path]:
        """Versions newer than the served one and not refused, newest first."""
        served = self.manifest.version if self.manifest is not None else ""
        return [
            p
            for p in artefact.versions(self.cell)
            if p.name > served and p.name not in self.refused
        ]

    def load_now(self) -> None:
        """Load the newest acceptable version in this thread, under the lock the caller holds:
        the request path's way before loading moved off it (the feed bench measures it as the
        old behaviour), and a process's first load."""
        for path in self._newer():
            try:
                ready = prepare(path, self.cell.spec, self.policy, None)
            except ArtefactRefused as exc:
                self._refuse(path, exc)
                continue
            self._swap(ready)
            settle()
            return

    def _refuse(self, path: Path, exc: ArtefactRefused) -> None:
        self.refused[path.name] = str(exc)
        log.error("recommend: %s; serving continues on the previous model", exc)

    def _start_loader(self) -> None:
        if self._loader is not None and self._loader.is_alive():
            return  # it picks up anything newer when it finishes
        self._arrived = []
        self._loader = threading.Thread(
            target=self._load_in_background, name=f"model-load-{self.cell.name}", daemon=True
        )
        self._loader.start()

    def _load_in_background(self) -> None:
        with self.lock:
            newer, catalogue = self._newer(), self.catalogue
        for path in newer:
            try:
                with collections_paused():
                    ready = prepare(path, self.cell.spec, self.policy, catalogue)
                    # Out of every later collection, and without one now (heap.collections_paused).
                    gc.freeze()
            except ArtefactRefused as exc:
                with self.lock:
                    self._refuse(path, exc)
                continue
            except Exception:
                # Not a refusal the checks named (out of memory, a bug): logged and not retried
                # on every request; the previous version keeps serving.
                log.exception("recommend: loading model %s failed", path.name)
                with self.lock:
                    self.refused[path.name] = "failed to load"
                continue
            if self.before_swap is not None:
                self.before_swap(ready.manifest)
            with self.lock:
                if self.manifest is not None and self.manifest.version >= path.name:
                    break  # something as new was served meanwhile
                old = self._swap(ready)
            del old  # the old version is freed here, outside the lock
            break
        with self.lock:
            self._arrived = None
            again = bool(self._newer())
            self._loader = None
        if again:  # a version saved while this one loaded
            with self.lock:
                self._start_loader()

    def _swap(self, ready: Prepared) -> tuple[object, ...]:
        """Serve `ready` from now on (caller holds the lock); returns the old version's parts so
        that the caller can drop them after releasing the lock."""
        old = (self.ranker, self.model, self.serving, self.users)
        serving = ready.serving
        if serving is not None:
            if serving.catalogue is self.catalogue:
                serving.add(self._arrived or [])  # uploads read while the index was built
            else:
                serving = None  # the catalogue was replaced meanwhile: built on next use
        if self.manifest is not None:
            self.users = {}  # residuals depend on the prior: rebuilt from the log
        self.ranker, self.manifest, self.model = ready.ranker, ready.manifest, ready.model
        self.serving = serving
        return old

    def wait_for_loader(self, timeout: float | None = None) -> bool:
        """Wait until no background load runs (tests, the bench): False on timeout."""
        with self.lock:
            loader = self._loader
        if loader is not None:
            loader.join(timeout)
            return not loader.is_alive()
        return True
