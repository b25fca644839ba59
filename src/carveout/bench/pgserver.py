"""A private, throwaway PostgreSQL server for a bench: initdb in a temp dir, pg_ctl start/stop."""

from __future__ import annotations

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

SERVER_USER = "postgres"  # the system user Debian's `postgresql` package creates

# Disposable, like the test cluster: nothing must survive a crash, so durability is off. That
# flatters PostgreSQL's write path a little; the bench reports it next to its numbers.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "max_connections": "100",
    "log_min_messages": "warning",
}
DURABILITY = "fsync=off, synchronous_commit=off (throwaway cluster)"


class PgServerUnavailable(RuntimeError):
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
    raise PgServerUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
        "/usr/lib/postgresql/*/bin or on PATH: install Debian's `postgresql` package"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One server in its own temp dir, reachable as postgres@127.0.0.1:<port> with trust auth."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        # initdb and postgres refuse to run as root: as root, run them as the postgres user.
        self.run_as = SERVER_USER if os.geteuid() == 0 else None
        if self.run_as is not None:
            try:
                pwd.getpwnam(self.run_as)
            except KeyError:
                raise PgServerUnavailable(
                    f"running as root, PostgreSQL must run as the {self.run_as!r} system user, "
                    "which does not exist: install Debian's `postgresql` package"
                ) from None
            if shutil.which("runuser") is None:
                raise PgServerUnavailable("running as root needs `runuser` (util-linux)")
        self.root: Path | None = None
        self.port = 0
        self._running = False

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 5) -> None:
        # Under /tmp (world-traversable), not $TMPDIR: the postgres user must reach the dir.
        self.root = Path(tempfile.mkdtemp(prefix="carveout-bench-pg-", dir="/tmp"))
        try:
            (self.root / "sock").mkdir()
            self.root.chmod(0o755)
            if self.run_as is not None:
                for path in (self.root, self.root / "sock"):
                    shutil.chown(path, user=self.run_as, group=None)
            self._initdb()
            for attempt in range(attempts):
                self.port = free_port()
                try:
                    self._pg_ctl("-w", "-t", "60", "-l", str(self.root / "server.log"), "start")
                except PgServerUnavailable:
                    # Someone else may have taken the free port between probe and bind.
                    if attempt == attempts - 1:
                        raise
                    continue
                self._running = True
                break
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.root is None:
            return
        if self._running:
            self._running = False
            with contextlib.suppress(PgServerUnavailable):
                self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def fresh_url(self, prefix: str = "bench") -> str:
        """The URL of a database that does not exist yet (a PostgresStore creates it)."""
        return self.url(f"{prefix}_{uuid.uuid4().hex[:12]}")

    def version(self) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    @property
    def _datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _initdb(self) -> None:
        assert self.root is not None
        initdb = [str(self.bindir / "initdb"), "-D", str(self._datadir), "-A", "trust"]
        self._run(
            [*initdb, "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
            "initdb",
        )
        settings = {**SETTINGS, "unix_socket_directories": f"'{self.root / 'sock'}'"}
        # Appending as root keeps the file's owner (the postgres user).
        with (self._datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# carveout bench cluster\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _pg_ctl(self, *args: str) -> None:
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self._datadir)]
        if "start" in args:
            argv += ["-o", f"-p {self.port}"]
        self._run([*argv, *args], f"pg_ctl {args[-1]}")

    def _run(self, argv: list[str], what: str) -> None:
        if self.run_as is not None:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        # cwd: the server user may not be able to read the caller's working directory.
        proc = subprocess.run(argv, cwd=self.root, capture_output=True, text=True, check=False)  # noqa: S603
        if proc.returncode != 0:
            log = ""
            logfile = self.root / "server.log" if self.root is not None else None
            if logfile is not None and logfile.is_file():
                log = "\n--- server log ---\n" + logfile.read_text(errors="replace")[-4000:]
            raise PgServerUnavailable(
                f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                f"{proc.stdout}{proc.stderr}{log}"
            )
