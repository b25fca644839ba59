"""JSON parsed in many short steps, so that a model loading in a background thread never holds
the interpreter's lock for long.

`json.loads` is one C call: it keeps the GIL until the whole document is parsed. At 200k
synthetic videos the ranker's JSON (13 MB) took 0.5-1.5 s, during which no feed request of the
process ran (measured: one stall of that length in the feed bench's model swap); at 1M it is
several seconds. Here the outer objects and arrays are walked key by key and only their
members go through `raw_decode` (microseconds each), so the interpreter switches threads
between steps as it does in any Python loop. The result equals `json.loads`'s."""

from __future__ import annotations

import json
import re
from typing import Any

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_BLANK = " \t\n\r"


def _skip(text: str, i: int) -> int:
    if i < len(text) and text[i] in _BLANK:
        return _SPACE.match(text, i).end()  # type: ignore[union-attr]  # always matches
    return i


def _char(text: str, i: int) -> str:
    if i >= len(text):
        raise ValueError(f"unexpected end of JSON at {i}")
    return text[i]


def _value(text: str, i: int, depth: int) -> tuple[Any, int]:
    first = _char(text, i)
    if depth > 0 and first == "{":
        return _object(text, i, depth - 1)
    if depth > 0 and first == "[":
        return _array(text, i, depth - 1)
    return _DECODER.raw_decode(text, i)


def _object(text: str, i: int, depth: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    i = _skip(text, i + 1)
    if _char(text, i) == "}":
        return out, i + 1
    while True:
        if _char(text, i) != '"':
            raise ValueError(f"expected a string key at {i}")
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if _char(text, i) != ":":
            raise ValueError(f"expected ':' at {i}")
        out[key], i = _value(text, _skip(text, i + 1), depth)
        i = _skip(text, i)
        sep = _char(text, i)
        if sep == "}":
            return out, i + 1
        if sep != ",":
            raise ValueError(f"expected ',' or '}}' at {i}")
        i = _skip(text, i + 1)


def _array(text: str, i: int, depth: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    i = _skip(text, i + 1)
    if _char(text, i) == "]":
        return out, i + 1
    while True:
        item, i = _value(text, i, depth)
        out.append(item)
        i = _skip(text, i)
        sep = _char(text, i)
        if sep == "]":
            return out, i + 1
        if sep != ",":
            raise ValueError(f"expected ',' or ']' at {i}")
        i = _skip(text, i + 1)


def loads(text: str, depth: int = 2) -> Any:
    """`json.loads(text)`, walking objects and arrays down to `depth` levels step by step
    (deeper values, each small, are parsed in one call). Invalid JSON raises ValueError."""
    value, end = _value(text, _skip(text, 0), depth)
    if _skip(text, end) != len(text):
        raise ValueError(f"extra data after the JSON document at {end}")
    return value
