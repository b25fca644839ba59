"""A carve that runs out of disk on the target fails with a clear message, loses nothing, and
resumes once there is space.

A real full filesystem without privileges on the host: a small tmpfs mounted over the target
cell's folder inside a private user and mount namespace, seen only by the carve started there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from carving import MOVING
from test_carve_run import moving_digest

from carveout import carve
from carveout.cells import POLICY_FILE, Deployment
from carveout.storage import fingerprint

SCRIPT = """
import json, sys
from pathlib import Path
from carveout import carve
from carveout.cells import Deployment
deployment = Deployment.open(Path(sys.argv[1]))
try:
    (spec,) = carve.in_progress(deployment)
    carve.run(deployment, spec)
    error = ""
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
finally:
    deployment.close()
print(json.dumps({"error": error}))
"""


def _namespaces_or_skip() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user+mount namespaces here: {probe.stderr.decode().strip()}")


@pytest.mark.slow
def test_a_full_target_disk_fails_clearly_and_the_carve_resumes(
    loaded: Deployment, tmp_path: Path
) -> None:
    _namespaces_or_skip()
    source = loaded.cell("global")
    before = fingerprint(source.store, source.blobs)
    expected = moving_digest(source.store, MOVING)
    policy = (loaded.data_dir / POLICY_FILE).read_text()
    carve.start(loaded, "US,CA,AU,NZ", "na-anz")  # the plan is saved; nothing is copied yet
    target_root = loaded.data_dir / "cells" / "na-anz"
    target_root.mkdir(parents=True)  # the mount point
    loaded.close()
    script = tmp_path / "carve_in_mount.py"
    script.write_text(textwrap.dedent(SCRIPT))
    # 4 MB: the users and a few tables fit, the rest of J's 37 MB (rows and blobs) does not.
    shell = 'mount -t tmpfs -o size=4m tmpfs "$2" && exec "$0" "$3" "$1"'
    argv = ["unshare", "-rm", "sh", "-c", shell, sys.executable, str(loaded.data_dir)]
    proc = subprocess.run(
        [*argv, str(target_root), str(script)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    error = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith("CarveFailed: ") and "no space left" in error, error
    assert "carveout carve resume --to na-anz" in error
    # Nothing switched: the source serves J as before, with every row it had.
    assert (loaded.data_dir / POLICY_FILE).read_text() == policy
    assert fingerprint(source.store, source.blobs).diff(before) == []
    # With space again (the tmpfs and what the carve wrote there are gone), resume finishes.
    (spec,) = carve.in_progress(loaded)
    outcome = carve.run(loaded, spec)
    assert outcome.verify is not None and outcome.verify.ok
    assert outcome.leaks is not None and outcome.leaks.leaks == 0
    assert moving_digest(loaded.cell("na-anz").store, MOVING) == expected
