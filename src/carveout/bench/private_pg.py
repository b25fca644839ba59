"""A benchmark's `postgresql` row on a private cluster (storage.PgCluster): started for the row,
stopped and its directory removed after it, or the row skipped, with the reason, on a machine
where PostgreSQL cannot start."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from carveout.storage.pgcluster import DURABILITY, PgCluster, PgClusterError

# What a report states next to numbers measured on such a cluster.
NOTES = f"private local cluster, {DURABILITY}"


@dataclass(frozen=True)
class PrivateCluster:
    """The row's cluster and what its report says of it; `server` None: the row is skipped."""

    server: PgCluster | None
    version: str = ""
    notes: str = ""
    skipped: str = ""  # "skipped: <the first line of why>"


@contextlib.contextmanager
def private_cluster(make: Callable[[], PgCluster]) -> Iterator[PrivateCluster]:
    """The cluster `make` builds, started, and stopped on leaving. The caller passes its own
    constructor (PgCluster, or one with other settings) so a test can stand in for it there."""
    try:
        server = make()
        server.start()
    except PgClusterError as exc:
        yield PrivateCluster(None, skipped=f"skipped: {str(exc).splitlines()[0]}")
        return
    try:
        yield PrivateCluster(server, server.version(), NOTES)
    finally:
        server.stop()
