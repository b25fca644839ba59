"""What the feed bench notes to explain an open loop's stall: it must see a real one."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

from carveout.bench.stall_notes import NoteFile, client_collections, read_notes, watch_lag


def test_notes_are_read_back_by_kind_within_the_window(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    notes = NoteFile(str(path))
    began = time.time()
    notes.write("gc", 12.5, 2)
    notes.write("slow", 80.0, "/v1/feed")
    read = read_notes(path, began, seconds=5)
    assert [(ms, d) for _at, ms, d in read["gc"]] == [(12.5, "2")]
    assert [(ms, d) for _at, ms, d in read["slow"]] == [(80.0, "/v1/feed")]
    assert read["lag"] == []
    assert all(0 <= at < 5 for _at_kind in read.values() for at, _ms, _d in _at_kind)
    # Notes from before the window, or long after it, are not the window's.
    assert read_notes(path, began + 60, seconds=5) == {"gc": [], "lag": [], "slow": []}
    assert read_notes(tmp_path / "missing.jsonl", began, 5) == {"gc": [], "lag": [], "slow": []}


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    notes = NoteFile(None)
    notes.write("gc", 10.0, 0)
    assert not notes.enabled and list(tmp_path.iterdir()) == []


def test_the_watcher_notes_the_interpreter_held_by_one_c_call(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    began = time.time()
    threading.Thread(target=watch_lag, args=(NoteFile(str(path)),), daemon=True).start()
    time.sleep(0.05)
    held = time.perf_counter()
    sum(range(30_000_000))  # one call: the lock is not released until it returns
    held_ms = (time.perf_counter() - held) * 1000
    time.sleep(0.05)
    lags = [ms for _at, ms, _d in read_notes(path, began, 10)["lag"]]
    assert held_ms >= 100, "the machine ran the sum too fast to test this"
    assert lags and max(lags) >= 0.5 * held_ms, (lags, held_ms)


def test_client_collections_are_noted_only_while_the_block_runs() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    with client_collections() as noted:
        garbage = [Node() for _ in range(400_000)]
        del garbage
        gc.collect()
        inside = len(noted)
    garbage = [Node() for _ in range(400_000)]
    del garbage
    gc.collect()
    assert any(gen == 2 for _at, _ms, gen in noted), "a full collection of 400,000 cycles: < 5 ms"
    assert all(ms >= 5.0 for _at, ms, _gen in noted)
    assert len(noted) == inside, "a collection after the block was noted"
