"""Free text a person typed (captions, report notes, stated purposes): what it may not contain."""

from __future__ import annotations

import re

from carveout.core.errors import InvalidInput

# Control characters other than tab and newline have no place in typed text; bidi overrides
# are refused too, since they can make a text read differently from what is stored.
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def check_text(text: str, field: str) -> str:
    bad = _BAD_CHARS.search(text)
    if bad:
        raise InvalidInput(f"{field} contains control character U+{ord(bad.group()):04X}")
    return text
