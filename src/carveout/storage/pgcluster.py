"""A private, throwaway PostgreSQL server (tests, benchmarks): initdb in a temp dir, pg_ctl."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

SERVER_USER = "postgres"  # the system user Debian's `postgresql` package creates

# Fast and disposable: nothing here must survive a crash. Logical replication is on because
# the live carve streams a cell's changes through it.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    # A carve's subscription copies tables in parallel, one slot, walsender and worker each:
    # four at once rather than PostgreSQL's default two (docs/carve.md, "The subscription",
    # server settings).
    "max_sync_workers_per_subscription": "4",
    "max_logical_replication_workers": "8",
    "max_worker_processes": "16",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "200",
    "log_min_messages": "warning",
}


# What the settings above give up, stated next to any number measured on such a cluster.
DURABILITY = "fsync=off, synchronous_commit=off (throwaway cluster)"


class PgClusterError(RuntimeError):
    """PostgreSQL cannot be started here; the message says why and what to install."""


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin, else the directory of `pg_ctl` on PATH."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.parent.name))

    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()]
    if candidates:
        return max(candidates, key=version)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and shutil.which("initdb"):
        return Path(pg_ctl).resolve().parent
    raise PgClusterError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
        "/usr/lib/postgresql/*/bin or on PATH: install Debian's `postgresql` package "
        "(apt-get install postgresql); `./dev test` does so when run as root"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One server in its own temp dir, reachable as postgres@127.0.0.1:<port> with trust auth."""

    def __init__(self, bindir: Path | None = None, **settings: str) -> None:
        self.bindir = bindir or find_bindir()
        self.settings = {**SETTINGS, **settings}
        # initdb and postgres refuse to run as root: as root, run them as the postgres user.
        self.run_as = SERVER_USER if os.geteuid() == 0 else None
        if self.run_as is not None:
            try:
                pwd.getpwnam(self.run_as)
            except KeyError:
                raise PgClusterError(
                    f"running as root, PostgreSQL must run as the {self.run_as!r} system user, "
                    "which does not exist: install Debian's `postgresql` package"
                ) from None
        self.root: Path | None = None
        self.port = 0
        self._running = False

    # --- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start_new(cls, bindir: Path | None = None) -> PgCluster:
        cluster = cls(bindir)
        cluster.start()
        return cluster

    def start(self, attempts: int = 5) -> None:
        self._make_root()
        assert self.root is not None
        try:
            self._initdb()
            for attempt in range(attempts):
                self.port = free_port()
                try:
                    self._pg_ctl("-w", "-t", "60", "-l", str(self.logfile), "start")
                except PgClusterError:
                    # Another process (e.g. an xdist worker) may have taken the port first.
                    if attempt == attempts - 1:
                        raise
                    continue
                self._running = True
                break
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.root is None:
            return
        if self._running:
            self._running = False
            # Already gone or not: the directory is removed regardless.
            with contextlib.suppress(PgClusterError):
                self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> PgCluster:
        if self.root is None:
            self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- databases -------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @staticmethod
    def unique_name(prefix: str = "t") -> str:
        return f"{prefix}_{uuid.uuid4().hex[:16]}"

    def fresh_url(self, prefix: str = "t") -> str:
        """The URL of a database that does not exist yet (a PostgresStore creates it)."""
        return self.url(self.unique_name(prefix))

    def create_database(self, prefix: str = "t") -> str:
        """Create a new empty database; return its URL."""
        name = self.unique_name(prefix)
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def version(self) -> str:
        with self.admin() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    # --- internals -------------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    def _make_root(self) -> None:
        # Under /tmp (world-traversable), not $TMPDIR: the postgres user must reach the dir.
        self.root = Path(tempfile.mkdtemp(prefix="carveout-pg-", dir="/tmp"))
        (self.root / "sock").mkdir()
        self.root.chmod(0o755)
        if self.run_as is not None:
            for path in (self.root, self.root / "sock"):
                shutil.chown(path, user=self.run_as, group=None)

    def _initdb(self) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        assert self.root is not None
        settings = {**self.settings, "unix_socket_directories": f"'{self.root / 'sock'}'"}
        # Appending as root keeps the file's owner (the postgres user).
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# carveout throwaway cluster\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _pg_ctl(self, *args: str) -> None:
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir)]
        if "start" in args:
            argv += ["-o", f"-p {self.port}"]
        self._run([*argv, *args], f"pg_ctl {args[-1]}")

    def _run(self, argv: list[str], what: str) -> None:
        if self.run_as is not None:
            if shutil.which("runuser") is None:
                raise PgClusterError(
                    "running as root needs `runuser` (util-linux) to start PostgreSQL"
                )
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        proc = subprocess.run(  # noqa: S603 - fixed argv of PostgreSQL's own tools
            argv,
            cwd=self.root,  # the server user may not be able to read the caller's cwd
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            log = ""
            if self.root is not None and self.logfile.is_file():
                log = "\n--- server log ---\n" + self.logfile.read_text(errors="replace")[-4000:]
            raise PgClusterError(
                f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                f"{proc.stdout}{proc.stderr}{log}"
            )
