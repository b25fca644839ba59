"""Backup sites: the folder or bucket a site stands for, and the residency checks before writes."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from carveout.backup.models import BackupError
from carveout.cells import CellSpec, Policy
from carveout.cells.policy import S3SiteSpec
from carveout.core import Forbidden, PolicyError


@dataclass(frozen=True)
class Site:
    name: str
    folder: Path
    configured: bool  # `path` set in the policy (a mount of the remote site), not the default
    s3: S3SiteSpec | None = None  # the site is this bucket; `folder` is then unused

    @property
    def location(self) -> str:
        if self.s3 is None:
            return str(self.folder)
        prefix = f"/{self.s3.prefix}" if self.s3.prefix else ""
        return f"s3://{self.s3.bucket}{prefix} at {self.s3.endpoint}"

    def cell_folder(self, cell: str) -> Path:
        return self.folder / cell


def default_folder(data_dir: Path, site: str) -> Path:
    return data_dir / "sites" / site


def site_of(data_dir: Path, policy: Policy, name: str) -> Site:
    if name not in policy.sites:
        raise PolicyError(f"site {name!r} is not declared under [sites] in the residency policy")
    bucket = policy.site_s3.get(name)
    if bucket is not None:
        return Site(name, default_folder(data_dir, name), configured=True, s3=bucket)
    declared = policy.site_paths.get(name)
    if declared is None:
        return Site(name, default_folder(data_dir, name), configured=False)
    folder = Path(declared)
    return Site(name, folder if folder.is_absolute() else data_dir / folder, configured=True)


def backup_site(data_dir: Path, policy: Policy, cell: str, requested: str | None = None) -> Site:
    """The one site the policy allows for the cell's backups; any other is refused."""
    spec: CellSpec = policy.cell(cell)
    if spec.backup_site is None:
        raise PolicyError(
            f"cell {cell!r} names no backup_site in the residency policy: refusing to back it "
            'up anywhere (add `backup_site = "<site>"` to [cells.' + cell + "])"
        )
    if requested is not None and requested != spec.backup_site:
        raise Forbidden(
            f"the residency policy allows backups of cell {cell!r} only at site "
            f"{spec.backup_site!r}; site {requested!r} is refused"
        )
    site = site_of(data_dir, policy, spec.backup_site)
    primary = site_of(data_dir, policy, spec.primary_site)
    if site.s3 is not None or primary.s3 is not None:
        same = site.s3 is not None and primary.s3 is not None and site.s3.key() == primary.s3.key()
        if same:
            raise PolicyError(
                f"sites {site.name!r} and {primary.name!r} point at the same bucket "
                f"{site.location}: a backup there would not leave the primary site"
            )
        return site
    if site.folder.resolve() == primary.folder.resolve():
        raise PolicyError(
            f"sites {site.name!r} and {primary.name!r} point at the same folder {site.folder}: "
            "a backup there would not leave the primary site"
        )
    return site


def check_writable(site: Site) -> None:
    """Refuse a site that is missing, not a folder or read-only, before a byte is written.

    A configured site folder is never created: it is where the remote site is mounted, and
    creating it would put the backup on the primary site's own disk if the mount is missing."""
    folder = site.folder
    if not site.configured and not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
    if not folder.exists():
        raise BackupError(
            f"backup site {site.name!r} is missing: {folder} does not exist (is it mounted?)"
        )
    if not folder.is_dir():
        raise BackupError(f"backup site {site.name!r} is not a folder: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BackupError(f"backup site {site.name!r} is not writable: {folder}")


def describe_os_error(site: Site, exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"backup site {site.name!r} is full ({os.strerror(exc.errno)}) at {site.folder}"
    if exc.errno == errno.EROFS:
        return f"backup site {site.name!r} is read-only at {site.folder}"
    return f"backup site {site.name!r} failed at {site.folder}: {exc}"
