"""A private, throwaway S3 server (tests, benchmarks): a one-host Ceph with its RADOS Gateway.

Production points backup sites at a real S3 endpoint; this exists so that the S3 code is tested
and measured against a real S3 implementation, not a fake. Ceph is the S3 server Debian ships
(`apt-get install radosgw ceph-mon ceph-osd ceph-common`, about 270 MB): one monitor, one OSD
keeping objects in memory (memstore, so no disk image to format), one radosgw answering S3 on a
loopback port, all in a temp dir and stopped by pid, like `storage.PgCluster` for PostgreSQL.
Starting it takes 12-16 s here, most of it radosgw creating its pools; stopping it, under 1 s.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from carveout.storage.pgcluster import free_port

BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")
PACKAGES = "radosgw ceph-mon ceph-osd ceph-common"

# Disposable by design: no authentication between the daemons (they only listen on 127.0.0.1;
# S3 requests are still signed and checked by radosgw), one copy of every object, no manager
# daemon (it only adds dashboards and autoscaling), 8 placement groups per pool so radosgw's
# half-dozen pools fit one OSD's limit. The OSD does not place itself in the CRUSH map on
# start (see start()).
CONF = """\
[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd crush update on start = false
osd class update on start = false
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
mon data = {root}/mon/$name
osd data = {root}/osd/$name
osd objectstore = memstore
memstore device bytes = {memory_bytes}
keyring = {root}/keyring

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
"""


class CephS3Error(RuntimeError):
    """The S3 server cannot be started here; the message says why and what to install."""


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


class CephS3:
    """One Ceph cluster in its own temp dir, with an S3 user; `endpoint`, `access_key` and
    `secret_key` are what a client needs. Use as a context manager or call start()/stop()."""

    def __init__(self, memory_bytes: int = 1 << 30, region: str = "default") -> None:
        missing = missing_binaries()
        if missing:
            raise CephS3Error(
                f"Ceph binaries missing ({', '.join(missing)}): install Debian's packages "
                f"(apt-get install {PACKAGES}); `./dev test` does so when run as root"
            )
        self.memory_bytes = memory_bytes
        self.region = region  # radosgw accepts any region name in signatures; clients need one
        self.root = Path(tempfile.mkdtemp(prefix="carveout-ceph-"))
        self.mon_port = free_port()
        self.rgw_port = free_port()
        self.conf = self.root / "ceph.conf"
        self.access_key = "CO" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.startup_seconds = 0.0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rgw_port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CephS3:
        started = time.perf_counter()
        atexit.register(self.stop)  # never leave daemons behind a crashed test run
        try:
            for sub in ("run", "log", "mon/mon.a", "osd/osd.0", "rgw"):
                (self.root / sub).mkdir(parents=True)
            self.conf.write_text(
                CONF.format(
                    fsid=uuid.uuid4(),
                    mon_port=self.mon_port,
                    rgw_port=self.rgw_port,
                    root=self.root,
                    memory_bytes=self.memory_bytes,
                )
            )
            (self.root / "keyring").touch()  # auth is off, but the tools insist on the file
            monmap = self.root / "monmap"
            self._run(
                "monmaptool", "--create", "--addv", "a", f"[v1:127.0.0.1:{self.mon_port}]",
                "--fsid", self._fsid(), str(monmap),
            )  # fmt: skip
            conf = str(self.conf)
            self._run("ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", str(monmap))
            self._daemon("mon", "ceph-mon", "-i", "a")
            # A monitor that has not finished forming its quorum of one answers commands with
            # "EPERM: problem getting command descriptions" (seen once in CI under load): wait
            # for a quorum before the first command that changes anything.
            self._wait("the monitor to form a quorum", self._mon_in_quorum, 60)
            osd_id = self._ceph("osd", "create").strip()  # the monitor hands out id 0
            self._run("ceph-osd", "-c", str(self.conf), "-i", osd_id, "--mkfs")
            # Placed in the CRUSH map here, not by the OSD on start: its own placement command
            # can leave before it knows the cluster's fsid, the monitor drops it, and the OSD
            # exits with status 1 (seen 1 start in 4 here).
            self._ceph("osd", "crush", "add", f"osd.{osd_id}", "1.0", "root=default", "host=local")
            self._daemon("osd", "ceph-osd", "-i", osd_id)
            self._wait("the OSD to come up", self._osd_up, 60)
            self._daemon("rgw", "radosgw", "-n", "client.rgw")
            self._wait("radosgw to answer HTTP", self._rgw_answers, 120)
            # A distinct client name: the gateway already holds client.rgw's admin socket.
            self._run(
                "radosgw-admin", "-c", str(self.conf), "-n", "client.admin", "user", "create",
                "--uid=carveout", "--display-name=carveout tests",
                f"--access-key={self.access_key}", f"--secret-key={self.secret_key}",
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - started
        return self

    def stop(self) -> None:
        """Stop the daemons we started (by pid: gateway first, monitor last), drop the dir."""
        for name in ("rgw", "osd", "mon"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            # The gateway takes 5 s to wind down on SIGTERM and keeps nothing of its own (an
            # S3 write is acknowledged once the OSD has it): it is killed outright.
            proc.send_signal(signal.SIGKILL if name == "rgw" else signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> CephS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def disk_bytes(self) -> int:
        """Bytes under the temp dir (monitor store, logs; objects themselves are in memory)."""
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def suspend(self) -> None:
        """Freeze the gateway (SIGSTOP): the endpoint accepts connections but never answers,
        like a site whose network went away mid-write."""
        os.kill(self.processes["rgw"].pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.processes["rgw"].pid, signal.SIGCONT)

    # -- helpers ---------------------------------------------------------------------------

    def _fsid(self) -> str:
        for line in self.conf.read_text().splitlines():
            if line.startswith("fsid = "):
                return line.removeprefix("fsid = ")
        raise CephS3Error("no fsid in ceph.conf")  # pragma: no cover - written just above

    def _run(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - fixed argv of Ceph's own tools
            args, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise CephS3Error(
                f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )
        return done.stdout

    def _ceph(self, *args: str) -> str:
        return self._run("ceph", "-c", str(self.conf), "--connect-timeout", "20", *args)

    def _daemon(self, name: str, binary: str, *args: str) -> None:
        # In the foreground (-f) as our own child, so stop() ends exactly these pids.
        log = (self.root / "log" / f"{name}.out").open("wb")
        with log:
            self.processes[name] = subprocess.Popen(  # noqa: S603 - Ceph's own daemons
                [binary, "-f", "-c", str(self.conf), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _log_tail(self, name: str) -> str:
        """The daemon's output and the last lines of its own log: why it stopped."""
        log = {"mon": "mon.a", "osd": "osd.0", "rgw": "client.rgw"}[name]
        text = ""
        for path in (self.root / "log" / f"{name}.out", self.root / "log" / f"{log}.log"):
            if path.is_file():
                lines = path.read_text(errors="replace").splitlines()
                text += f"\n[{path.name}] " + "\n".join(lines[-15:])
        return text[-3000:]

    def _mon_in_quorum(self) -> bool:
        status = json.loads(self._ceph("quorum_status", "--format", "json"))
        return "a" in status.get("quorum_names", [])

    def _osd_up(self) -> bool:
        stat = json.loads(self._ceph("osd", "stat", "--format", "json"))
        return int(stat.get("num_up_osds", 0)) >= 1

    def _rgw_answers(self) -> bool:
        try:
            # http://127.0.0.1:<port>, built above: never a caller's URL.
            with urllib.request.urlopen(self.endpoint, timeout=2) as response:  # noqa: S310
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def _wait(self, what: str, ready: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise CephS3Error(
                        f"ceph {name} exited ({proc.returncode}) while waiting for {what}: "
                        f"{self._log_tail(name)}"
                    )
            with contextlib.suppress(CephS3Error):
                if ready():
                    return
            time.sleep(0.3)
        raise CephS3Error(f"timed out after {seconds:.0f} s waiting for {what} (logs: {self.root})")
