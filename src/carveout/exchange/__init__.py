"""The content exchange: read-only, re-moderated guest copies of another cell's public videos."""

from carveout.exchange.background import sync_all
from carveout.exchange.guests import (
    GUEST_LINKS,
    GUEST_PARTS,
    Guest,
    foreign_guest_rows,
    guest,
    guest_part,
    guest_part_sql,
    guest_row_filter,
    guests,
    handle_of,
)
from carveout.exchange.log import read as read_log
from carveout.exchange.models import (
    ExchangeRefused,
    LogEntry,
    OriginVideo,
    SyncReport,
)
from carveout.exchange.origin import offered, pseudonym
from carveout.exchange.permit import check_allowed, partners
from carveout.exchange.receive import CopyFailed
from carveout.exchange.sync import referenced, sync

__all__ = [
    "GUEST_LINKS",
    "GUEST_PARTS",
    "CopyFailed",
    "ExchangeRefused",
    "Guest",
    "LogEntry",
    "OriginVideo",
    "SyncReport",
    "check_allowed",
    "foreign_guest_rows",
    "guest",
    "guest_part",
    "guest_part_sql",
    "guest_row_filter",
    "guests",
    "handle_of",
    "offered",
    "partners",
    "pseudonym",
    "read_log",
    "referenced",
    "sync",
    "sync_all",
]
