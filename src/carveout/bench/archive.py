"""The raw tools the backup and bundle benches compare with: `tar | zstd -3` and its reverse."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from carveout.bench.api import BenchError


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"the baseline needs the `{name}` command (apt-get install {name})")
    return found


def tar_zstd(source: Path, out: Path) -> None:
    """`tar -cf - <source> | zstd -3 -o out`: two processes, as an operator's script runs them."""
    with subprocess.Popen(  # noqa: S603 - fixed argv
        [tool("tar"), "-cf", "-", "-C", str(source.parent), source.name], stdout=subprocess.PIPE
    ) as tar:
        subprocess.run(  # noqa: S603 - fixed argv
            [tool("zstd"), "-3", "-q", "-f", "-o", str(out)], stdin=tar.stdout, check=True
        )
    if tar.returncode != 0:
        raise BenchError(f"tar of {source} failed")


def untar_zstd(archive: Path, target: Path) -> None:
    """`zstd -d -c archive | tar -x -C target`."""
    with subprocess.Popen(  # noqa: S603 - fixed argv
        [tool("zstd"), "-d", "-q", "-c", str(archive)], stdout=subprocess.PIPE
    ) as unzstd:
        subprocess.run(  # noqa: S603 - fixed argv
            [tool("tar"), "-xf", "-", "-C", str(target)], stdin=unzstd.stdout, check=True
        )
    if unzstd.returncode != 0:
        raise BenchError(f"zstd -d of {archive} failed")
