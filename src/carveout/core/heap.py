"""The interpreter's heap around a big load: a model version, a catalogue or a transfer
bundle's rows are hundreds of thousands to millions of objects, which the cyclic garbage
collector would otherwise walk again and again (while requests wait for the interpreter's
lock, or while a bundle's import waits for its parsing)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def settle() -> None:
    """After loading a model version or a catalogue: a big cell's are millions of objects, and
    every full collection of the cyclic garbage collector would walk them all again, on
    whichever request triggers it (1M synthetic videos: 2.0M tracked objects, 370 ms a full
    collection on an idle machine; 0 ms once frozen). Frozen, they are left out of collections;
    reference counting still frees a replaced version."""
    gc.collect()
    gc.freeze()


_PAUSED = 0
_PAUSED_LOCK = threading.Lock()


@contextmanager
def collections_paused() -> Iterator[None]:
    """No automatic garbage collection meanwhile, for any thread (nested uses count).

    A load allocates millions of objects (1M synthetic videos: 2.0M tracked), so the collector
    would run full collections over the growing version again and again, each one holding the
    interpreter's lock for up to hundreds of milliseconds while requests wait; and the
    gc.collect() of settle would walk the whole version once more (370 ms at 1M). Instead the
    loaded version is frozen as it is. The price: cyclic garbage that any thread makes during
    the load is frozen with it and never freed (reference counting still frees the rest).
    Without a settle afterwards, the next automatic collection frees it."""
    global _PAUSED
    with _PAUSED_LOCK:
        _PAUSED += 1
        gc.disable()
    try:
        yield
    finally:
        with _PAUSED_LOCK:
            _PAUSED -= 1
            if _PAUSED == 0:
                gc.enable()
