"""Foreign creators' handles in a receiving cell, sealed so that withdrawing them is final.

The handle is the one personal field a guest copy carries. It is sealed under a key per foreign
creator, kept in a key store of its own beside the cell's user keys (`keys/<cell>/exchange/`:
not the cell's user keys, which a carve's leak scan requires to be the cell's own users'). When a
creator's last guest copy is withdrawn (their video deleted, or the creator erased at the
origin), the key is destroyed: every copy of the handle — the database's free pages and WAL,
backups — becomes unreadable, as for the cell's own users' erased fields."""

from __future__ import annotations

import threading
from pathlib import Path

from carveout.cells import Cell
from carveout.storage import Vault
from carveout.storage.keystore import UserKeyStore

TABLE, COLUMN = "guest_videos", "creator_handle"
_stores: dict[Path, UserKeyStore] = {}
_lock = threading.Lock()


def key_store(cell: Cell) -> UserKeyStore:
    folder = cell.vault.folder / "exchange"
    with _lock:
        if folder not in _stores or not _stores[folder].path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            _stores[folder] = UserKeyStore(folder)
        return _stores[folder]


def seal(cell: Cell, creator_id: str, domicile: str, handle: str) -> str:
    keys = key_store(cell)
    key = keys.keys([creator_id]).get(creator_id) or keys.create(creator_id, domicile)
    return Vault.seal_value(key, TABLE, COLUMN, creator_id, handle)


def open_handle(cell: Cell, creator_id: str, sealed: str) -> str | None:
    """The handle, or None once its key is destroyed."""
    key = key_store(cell).keys([creator_id]).get(creator_id)
    if key is None:
        return None
    return Vault.open_value(key, TABLE, COLUMN, creator_id, sealed)


def open_many(cell: Cell, sealed: list[tuple[str, str]]) -> list[str | None]:
    """`open_handle` for many (creator id, sealed handle) pairs with one key-store read."""
    keys = key_store(cell).keys({creator for creator, _ in sealed})
    return [
        Vault.open_value(keys[c], TABLE, COLUMN, c, v) if c in keys else None for c, v in sealed
    ]


def forget(cell: Cell, creator_id: str, domicile: str, run_id: str) -> bool:
    """Destroy the creator's handle key (a tombstone records when and by which sync run)."""
    return key_store(cell).destroy(creator_id, domicile, run_id)
