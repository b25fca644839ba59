"""The cell's moderation rules file: read on every screening, so an edit applies at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from carveout.core import PolicyError
from carveout.moderation import RULES_FILE, load_rules


def test_an_edited_rules_file_applies_at_once_and_a_broken_one_is_refused_each_time(
    tmp_path: Path,
) -> None:
    default = load_rules(tmp_path)
    assert default.match_share == 0.2 and default.for_label("spam")
    path = tmp_path / RULES_FILE
    path.write_text("match_share = 0.5\n")
    assert load_rules(tmp_path).match_share == 0.5 and load_rules(tmp_path).rules == ()
    path.write_text("match_share = 0.3\n")
    assert load_rules(tmp_path).match_share == 0.3
    path.write_text("match_share = 3\n")
    for _ in range(2):  # a failure is not remembered as an answer
        with pytest.raises(PolicyError, match="match_share"):
            load_rules(tmp_path)
    path.unlink()
    assert load_rules(tmp_path) == default
