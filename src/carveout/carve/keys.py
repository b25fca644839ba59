"""Keys travel with their users: the lookup key at prepare, J's user keys and tombstones at
copy and again inside the cutover fence, and J's keys leave the source at purge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from carveout.cells import Cell
from carveout.cells.registry import key_dir
from carveout.core import InvalidInput
from carveout.storage.keystore import LOOKUP_FILE, KeyRecord, Tombstone, write_secret


def adopt_lookup_key(data_dir: Path, source: str, target: str) -> None:
    """The target hashes handles and emails as the source did, so the users it receives can
    still log in and clash checks still work. Only before the target's vault first opens."""
    adopt_lookup_bytes(data_dir, target, (key_dir(data_dir, source) / LOOKUP_FILE).read_bytes())


def adopt_lookup_bytes(data_dir: Path, target: str, lookup_key: bytes) -> None:
    mine = key_dir(data_dir, target) / LOOKUP_FILE
    if mine.exists():
        return
    mine.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_secret(mine, lookup_key)


@dataclass(frozen=True)
class KeyHandover:
    """What a transfer bundle carries of the source's key store."""

    lookup_key: bytes
    records: list[KeyRecord]
    tombstones: list[Tombstone]


def export_keys(data_dir: Path, source: Cell, codes: tuple[str, ...]) -> bytes:
    body = {
        "lookup_key": (key_dir(data_dir, source.name) / LOOKUP_FILE).read_bytes().hex(),
        "keys": [
            [r.user_id, r.domicile, r.key.hex(), r.created_at]
            for r in source.vault.keys.records(codes)
        ],
        "tombstones": [
            [t.user_id, t.domicile, t.erased_at, t.request_id]
            for t in source.vault.keys.tombstones(codes)
        ],
    }
    return json.dumps(body).encode()


def parse_keys(data: bytes, codes: tuple[str, ...]) -> KeyHandover:
    body = json.loads(data)
    records = [KeyRecord(u, d, bytes.fromhex(k), int(c)) for u, d, k, c in body["keys"]]
    dead = [Tombstone(u, d, int(e), r) for u, d, e, r in body["tombstones"]]
    foreign = sorted({r.domicile for r in records} - set(codes))
    if foreign:
        raise InvalidInput(f"the bundle's key chunk holds keys of {foreign}, outside {codes}")
    return KeyHandover(bytes.fromhex(body["lookup_key"]), records, dead)


def hand_over(source: Cell, target: Cell, codes: tuple[str, ...]) -> int:
    """Give the target the keys of J's users (idempotent) and J's tombstones: a user erased
    at the source during the carve has no key at the target either. Returns keys added."""
    # Only keys the target lacks are opened and re-wrapped: inside the cutover's fence that is
    # the users who signed up since the copy, not every user of J again.
    have = target.vault.keys.user_ids(codes)
    return target.vault.keys.accept(
        source.vault.keys.records(codes, skip=have), source.vault.keys.tombstones(codes)
    )


def foreign_keys(target: Cell, codes: tuple[str, ...]) -> list[str]:
    """Jurisdictions outside J that own keys in the target's key store (must be none)."""
    return sorted(target.vault.keys.domiciles() - set(codes))
