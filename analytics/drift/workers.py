"""Independent pieces of numeric work on worker threads, each running torch and BLAS on one thread.

Scoring traffic (blocks of turns) and the drift report (one permutation test per window and
category) are made of independent pieces. Torch's own parallelism splits every operation
across its threads and meets at a barrier after it, dozens of times per piece; on a CPU shared
with other work a barrier waits for whichever thread was descheduled, which made two threads
slower than one under load. ``torch.get_num_threads()`` workers on whole pieces, each with a
single-threaded torch, keep every core busy and never wait for each other; numpy's BLAS is
held to one thread as well (threadpoolctl), for the same reason and so that two workers do
not each start a BLAS thread per core. Torch and numpy release the GIL inside their
operations, so plain threads suffice (no processes, no copies of the inputs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from threadpoolctl import threadpool_limits

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_on_workers(work: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    """``[work(item) for item in items]``, on ``torch.get_num_threads()`` worker threads whose
    torch and BLAS operations each use one thread (see the module docstring); in order, and a
    worker's error is raised here. The thread limits are process-wide while the workers run
    (torch's count is per thread, but threads that start torch meanwhile inherit it; BLAS's
    is global), and are put back afterwards."""
    threads = torch.get_num_threads()
    if len(items) <= 1 or threads <= 1:  # nothing to share out: torch's own threads
        return [work(item) for item in items]

    def one_thread() -> None:
        torch.set_num_threads(1)

    try:
        with threadpool_limits(limits=1, user_api="blas"), \
                ThreadPoolExecutor(min(threads, len(items)), initializer=one_thread) as pool:
            return list(pool.map(work, items))
    finally:
        torch.set_num_threads(threads)
