"""Hash lists in ThreatExchange's text formats: one PDQ hash per line, optionally with fields."""

from __future__ import annotations

import re
from dataclasses import dataclass

from carveout.core import InvalidInput
from carveout.moderation.pdq import HEX_CHARS, parse_hex

MAX_NOTE = 200
MAX_LINES = 2_000_000
_SPLIT = re.compile(r"[,\t ]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A first line like `hash,quality,path` or `FilePath,Hash` is a header, not a bad hash.
_HEADER_WORDS = frozenset({"hash", "pdq", "pdq_hash", "signal", "filepath", "quality"})


@dataclass(frozen=True)
class ListedHash:
    pdq: str
    note: str


def parse_hash_list(text: str, *, source: str = "") -> list[ListedHash]:
    """Parse `hash`, `hash,quality`, `hash,path`, `hash,quality,path` or `path,hash` lines
    (ThreatExchange's PDQ exports and test lists). Blank lines and `#` comments are skipped.
    Any malformed line refuses the whole list, naming up to five bad lines, so an import is
    all or nothing."""
    entries: list[ListedHash] = []
    bad: list[str] = []
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise InvalidInput(f"a hash list holds at most {MAX_LINES:,} lines")
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if _CONTROL.search(line):
            bad.append(f"line {number}: control character")
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        if number == 1 and {f.lower() for f in fields} & _HEADER_WORDS:
            continue
        hexes = [f for f in fields if len(f) == HEX_CHARS]
        if len(hexes) != 1:
            bad.append(f"line {number}: expected one {HEX_CHARS}-digit PDQ hash")
            continue
        try:
            pdq = parse_hex(hexes[0])
        except InvalidInput as exc:
            bad.append(f"line {number}: {exc}")
            continue
        rest = " ".join(f for f in fields if f is not hexes[0] and not f.isdigit())
        note = " ".join(p for p in (source, rest) if p)[:MAX_NOTE]
        entries.append(ListedHash(pdq, note))
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InvalidInput("malformed hash list: " + "; ".join(bad[:5]) + more)
    if not entries:
        raise InvalidInput("the hash list holds no hashes")
    return entries
