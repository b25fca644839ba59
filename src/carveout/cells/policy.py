"""The residency policy: which cell serves which jurisdictions, where it is stored and backed up."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carveout.core import InvalidInput, PolicyError, parse_jurisdiction

ANY = "*"  # a cell listing "*" serves every jurisdiction no other cell names

DEFAULT_POLICY = """\
# carveout residency policy: every jurisdiction maps to exactly one cell.
version = 1

[sites.us]
description = "United States (primary storage)"

[sites.sg]
description = "Singapore (backup site)"

[cells.global]
jurisdictions = ["*"]   # every jurisdiction no other cell names
primary_site = "us"
backup_site = "sg"
content_exchange = true
storage = "sqlite"      # or a postgresql:// URL
"""


def one_cell_policy(storage: str = "sqlite", *, content_exchange: bool = True) -> str:
    """The default policy (one `global` cell for every jurisdiction) on the given storage:
    what benchmarks, demos and tests start from; tests of a cell that exchanges no content
    turn the exchange off."""
    policy = DEFAULT_POLICY.replace('storage = "sqlite"', f'storage = "{storage}"', 1)
    if not content_exchange:
        policy = policy.replace("content_exchange = true", "content_exchange = false", 1)
    return policy


@dataclass(frozen=True)
class CellSpec:
    name: str
    jurisdictions: tuple[str, ...]  # explicit codes; empty with serves_rest
    serves_rest: bool
    primary_site: str
    backup_site: str | None
    content_exchange: bool
    storage: str


# Keys an `s3 = { ... }` site table may hold. Credentials are deliberately not among them: the
# policy is copied around (carves rewrite it, it is kept beside the key store), secrets are not.
S3_FIELDS = ("endpoint", "bucket", "region", "prefix", "credentials_file", "profile", "timeout_s")
SECRET_HINTS = ("secret", "access_key", "password", "token")


@dataclass(frozen=True)
class S3SiteSpec:
    """An S3-compatible bucket standing for a site; credentials come from the environment
    (CARVEOUT_S3_<SITE>_ACCESS_KEY_ID / _SECRET_ACCESS_KEY, else boto3's usual chain) or from
    the AWS-style credentials file named here."""

    endpoint: str  # e.g. https://s3.ap-southeast-1.amazonaws.com or http://10.0.0.5:7480
    bucket: str
    region: str = "us-east-1"
    prefix: str = ""  # object keys start with this (no trailing '/'); "" for the bucket root
    credentials_file: str | None = None
    profile: str = "default"
    timeout_s: float = 60.0  # connect and read timeout of each request

    def key(self) -> tuple[str, str, str]:
        """Where the objects go: two sites with the same key are the same storage."""
        return (self.endpoint.rstrip("/").lower(), self.bucket, self.prefix)

    def to_toml(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"endpoint": self.endpoint, "bucket": self.bucket}
        raw |= {"region": self.region, "prefix": self.prefix, "timeout_s": self.timeout_s}
        if self.credentials_file is not None:
            raw |= {"credentials_file": self.credentials_file, "profile": self.profile}
        return raw


def _s3_site(source: str, name: str, raw: Any) -> S3SiteSpec:
    where = f"{source}: sites.{name}.s3"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a table: {{ endpoint = ..., bucket = ... }}")
    for key in raw:
        if any(hint in key.lower() for hint in SECRET_HINTS):
            env = f"CARVEOUT_S3_{name.upper().replace('-', '_')}"
            raise PolicyError(
                f"{where}.{key}: credentials do not belong in the residency policy; set "
                f"{env}_ACCESS_KEY_ID and {env}_SECRET_ACCESS_KEY, or name an AWS-style "
                "credentials_file"
            )
        if key not in S3_FIELDS:
            raise PolicyError(f"{where}.{key} is not a known setting ({', '.join(S3_FIELDS)})")
    for key in ("endpoint", "bucket", "region", "prefix", "credentials_file", "profile"):
        if key in raw and not isinstance(raw[key], str):
            raise PolicyError(f"{where}.{key} must be a string")
    endpoint, bucket = raw.get("endpoint"), raw.get("bucket")
    if not endpoint or not str(endpoint).startswith(("http://", "https://")):
        raise PolicyError(f"{where}.endpoint must be an http:// or https:// URL")
    if not bucket:
        raise PolicyError(f"{where}.bucket is required")
    timeout = raw.get("timeout_s", 60.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise PolicyError(f"{where}.timeout_s must be a positive number of seconds")
    return S3SiteSpec(
        endpoint=str(endpoint),
        bucket=str(bucket),
        region=str(raw.get("region", "us-east-1")),
        prefix=str(raw.get("prefix", "")).strip("/"),
        credentials_file=raw.get("credentials_file"),
        profile=str(raw.get("profile", "default")),
        timeout_s=float(timeout),
    )


@dataclass(frozen=True)
class Policy:
    cells: tuple[CellSpec, ...]
    sites: dict[str, str] = field(default_factory=dict)  # name -> description
    # name -> folder of the site (absolute or relative to the data dir); unset: the default
    site_paths: dict[str, str] = field(default_factory=dict)
    # name -> the S3-compatible bucket standing for the site (instead of a folder)
    site_s3: dict[str, S3SiteSpec] = field(default_factory=dict)

    def cell(self, name: str) -> CellSpec:
        for spec in self.cells:
            if spec.name == name:
                return spec
        raise PolicyError(f"no cell named {name!r} in the residency policy")

    def cell_for(self, jurisdiction: str) -> CellSpec:
        code = parse_jurisdiction(jurisdiction)
        for spec in self.cells:
            if code in spec.jurisdictions:
                return spec
        for spec in self.cells:
            if spec.serves_rest:
                return spec
        raise InvalidInput(f"no cell of this deployment serves jurisdiction {code}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.cells)


def _cell(name: str, raw: Any, sites: dict[str, str]) -> CellSpec:
    if not isinstance(raw, dict):
        raise PolicyError(f"cells.{name} must be a table")
    if not name.replace("-", "").replace("_", "").isalnum() or not name.islower():
        raise PolicyError(f"cell name {name!r}: use lower-case letters, digits, '-' and '_'")
    codes = raw.get("jurisdictions")
    if not isinstance(codes, list) or not codes:
        raise PolicyError(f"cells.{name}.jurisdictions must be a non-empty list")
    serves_rest = ANY in codes
    try:
        explicit = tuple(sorted(parse_jurisdiction(str(c)) for c in codes if c != ANY))
    except Exception as exc:
        raise PolicyError(f"cells.{name}: {exc}") from exc
    primary = raw.get("primary_site")
    backup = raw.get("backup_site")
    for key, site in (("primary_site", primary), ("backup_site", backup)):
        if site is not None and site not in sites:
            raise PolicyError(f"cells.{name}.{key} = {site!r} is not declared under [sites]")
    if not isinstance(primary, str):
        raise PolicyError(f"cells.{name}.primary_site is required")
    if backup is not None and backup == primary:
        raise PolicyError(f"cells.{name}: backup_site must differ from primary_site")
    storage = raw.get("storage", "sqlite")
    if not isinstance(storage, str) or not (
        storage == "sqlite" or storage.startswith(("postgresql://", "postgres://"))
    ):
        raise PolicyError(f"cells.{name}.storage must be 'sqlite' or a postgresql:// URL")
    return CellSpec(
        name=name,
        jurisdictions=explicit,
        serves_rest=serves_rest,
        primary_site=primary,
        backup_site=backup if isinstance(backup, str) else None,
        content_exchange=bool(raw.get("content_exchange", False)),
        storage=storage,
    )


def parse_policy(text: str, source: str = "policy") -> Policy:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
    if raw.get("version") != 1:
        raise PolicyError(f"{source}: expected `version = 1`")
    sites_raw = raw.get("sites", {})
    if not isinstance(sites_raw, dict):
        raise PolicyError(f"{source}: [sites] must be a table")
    sites = {
        k: str(v.get("description", k)) if isinstance(v, dict) else k for k, v in sites_raw.items()
    }
    site_paths: dict[str, str] = {}
    for name, site in sites_raw.items():
        if isinstance(site, dict) and "path" in site:
            if not isinstance(site["path"], str) or not site["path"]:
                raise PolicyError(f"{source}: sites.{name}.path must be a non-empty string")
            site_paths[name] = site["path"]
    site_s3: dict[str, S3SiteSpec] = {}
    for name, site in sites_raw.items():
        if isinstance(site, dict) and "s3" in site:
            if "path" in site:
                raise PolicyError(f"{source}: sites.{name} has both a path and an s3 bucket")
            site_s3[name] = _s3_site(source, name, site["s3"])
    cells_raw = raw.get("cells")
    if not isinstance(cells_raw, dict) or not cells_raw:
        raise PolicyError(f"{source}: no [cells.*] defined")
    cells = tuple(_cell(name, spec, sites) for name, spec in cells_raw.items())
    owner: dict[str, str] = {}
    for spec in cells:
        for code in spec.jurisdictions:
            if code in owner:
                raise PolicyError(
                    f"{source}: jurisdiction {code} is mapped to two cells: "
                    f"{owner[code]!r} and {spec.name!r}"
                )
            owner[code] = spec.name
    rest = [s.name for s in cells if s.serves_rest]
    if len(rest) > 1:
        raise PolicyError(f"{source}: only one cell may serve '*', found {rest}")
    return Policy(cells=cells, sites=sites, site_paths=site_paths, site_s3=site_s3)


def load_policy(path: Path) -> Policy:
    if not path.is_file():
        raise PolicyError(f"residency policy not found: {path} (run `carveout init`)")
    return parse_policy(path.read_text(encoding="utf-8"), str(path))
