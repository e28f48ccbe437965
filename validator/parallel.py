"""One fork-based parallel map for the CPU-bound stages: validating and rendering specs.

Specs are independent, and parsing YAML, checking rules and rendering templates hold the
GIL, so large sets go to one forked process per core (up to 4). The function is inherited by
the workers, never pickled, so it may hold anything (policies, compiled templates); only the
items and the results travel. Items go out in small chunks, so that a run of slow specs
(one engine's) does not leave one worker busy while the other waits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

CHUNKS_PER_WORKER = 8
_FUNCTION: Callable[[Any], Any] | None = None  # what forked workers run


def fork_map(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    parallel_from: int,
    alongside: Callable[[], object] | None = None,
) -> list[Result]:
    """[function(item) for item in items], in order; across processes from `parallel_from`
    items on (below that, starting a second process costs more than it saves). `alongside`
    is run in this process meanwhile, once the workers are started (it waits for them
    otherwise): work that is mostly system calls, such as listing a directory tree."""
    global _FUNCTION
    workers = min(os.cpu_count() or 1, 4)
    if len(items) < parallel_from or workers < 2 or not hasattr(os, "fork"):
        if alongside is not None:
            alongside()
        return [function(item) for item in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = max(1, -(-len(items) // (workers * CHUNKS_PER_WORKER)))
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    _FUNCTION = function
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = pool.map(_run_chunk, chunks)  # every chunk submitted, workers forked
            if alongside is not None:
                alongside()
            return [result for chunk in results for result in chunk]
    finally:
        _FUNCTION = None


def _run_chunk(items: Sequence[Any]) -> list[Any]:
    assert _FUNCTION is not None
    return [_FUNCTION(item) for item in items]
