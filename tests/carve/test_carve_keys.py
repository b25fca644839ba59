"""The cutover's key hand-over opens only the keys the target lacks, and ends the same."""

from __future__ import annotations

from pathlib import Path

from carveout.storage.keystore import UserKeyStore


def test_only_missing_keys_are_handed_over_and_the_result_is_the_same(tmp_path: Path) -> None:
    source = UserKeyStore(tmp_path / "source")
    made = source.create_many([(f"u{i}", "CA" if i % 2 else "GB") for i in range(10)])
    target = UserKeyStore(tmp_path / "target")
    # The copy handed over the first CA users; two more signed up before the fence.
    first = [r for r in source.records(["CA"]) if r.user_id in ("u1", "u3", "u5")]
    assert target.accept(first, []) == 3
    have = target.user_ids(["CA"])
    assert have == {"u1", "u3", "u5"}
    missing = source.records(["CA"], skip=have)
    assert [r.user_id for r in missing] == ["u7", "u9"]
    assert target.accept(missing, []) == 2
    # Every CA key, as the source holds it (re-wrapped under the target's own KEK); no GB key.
    cas = [f"u{i}" for i in range(1, 10, 2)]
    assert target.keys(cas) == {u: made[u] for u in cas}
    assert target.user_ids(["GB"]) == set()
    assert source.records(["CA"], skip=target.user_ids(["CA"])) == []
