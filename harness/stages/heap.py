"""The cyclic garbage collector's settings for the life of a large run."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def long_lived_heap() -> Iterator[Callable[[], None]]:
    """Keep Python's cyclic garbage collector from re-walking what a large run keeps alive.

    A run of 100,000 items holds millions of objects for minutes (suite items, records, the engines'
    and libraries' own state: importing torch alone makes half a million), and CPython (3.11, 3.12)
    walks every one of them at each full collection, which comes each time the survivors grew by a
    quarter: a fifth of the harness's time at that scale. Inside this block young collections run less
    often (every 10,000 new objects, not 700), and what is alive at its start, and at each stage
    boundary (the function it gives), is moved out of the collector's sight (gc.freeze) after one last
    collection, so an engine's cyclic garbage (a closed model) is freed before the next stage loads
    another. What becomes garbage later is still freed by reference counting. On the way out everything
    goes back (gc.unfreeze) and the threshold is restored. A process that froze objects itself (before a
    fork, say) is left as it is."""
    if gc.get_freeze_count():
        yield lambda: None
        return

    def settle() -> None:
        gc.collect()
        gc.freeze()

    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 10_000), *threshold[1:])
    try:
        gc.freeze()
        yield settle
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
