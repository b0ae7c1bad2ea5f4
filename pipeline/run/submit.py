"""The submission window: a bounded number of tasks in flight, refilled as results arrive.

Submitting every chunk of a 10^6-chunk sweep at once costs memory in the driver and the
scheduler in proportion to the sweep, and the collection loop pays per completion for the
size of the pending set. Here the driver keeps at most :meth:`WindowPolicy.bound` tasks in
flight — a few per worker thread — and submits the next ones as results come back (each
finished task puts itself on a queue through a done-callback, so a completion costs O(1)).
The bound follows the cluster: it is recomputed every second from the threads of the
connected workers, and for an adaptive SLURM cluster from the threads it may grow to, so that
Dask's adaptive scaling (which asks for workers in proportion to the queued work) sees enough
work to scale up.

Tiny chunks are fused: :func:`chunks_per_task` puts several consecutive chunks in one task
when the plan's cost per chunk is small next to Dask's per-task overhead.
"""

from __future__ import annotations

import contextlib
import math
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FETCH_TIMEOUT",
    "TASK_FLOPS",
    "TASKS_PER_THREAD",
    "WindowPolicy",
    "WindowStats",
    "chunks_per_task",
    "run_window",
    "total_threads",
]

FETCH_TIMEOUT = 10.0
"""Seconds the driver waits for the results of finished tasks before it puts them back in
flight and runs its periodic checks (see :func:`run_window`)."""

TASKS_PER_THREAD = 4
"""Tasks in flight per worker thread: one running, the next ones waiting on the worker or in
the scheduler's queue, so a thread never idles while a result travels back."""

MIN_WINDOW = 8
"""The bound before any worker has joined (a SLURM cluster still starting)."""

ADAPT_TARGET_S = 5.0
"""Dask's ``distributed.adaptive.target-duration``: adaptive scaling asks for one thread per
this many seconds of queued work, so the window of an adaptive cluster holds that much work
for each thread it may grow to."""

TASK_FLOPS = 5e7
"""Fuse chunks into tasks of at least this many FLOPs (~10-50 ms of NumPy work on one core),
so Dask's per-task cost (about a millisecond) stays a few per cent of the work."""

MAX_CHUNKS_PER_TASK = 64


def chunks_per_task(chunk_flops: float, n_todo: int, threads: int) -> int:
    """How many consecutive chunks one task computes, from the plan's FLOPs per chunk.

    1 for chunks of :data:`TASK_FLOPS` or more; otherwise enough chunks to reach it, at most
    :data:`MAX_CHUNKS_PER_TASK`, and few enough that every thread still gets
    :data:`TASKS_PER_THREAD` tasks of the ``n_todo`` chunks.
    """
    if chunk_flops >= TASK_FLOPS or n_todo <= 0:
        return 1
    k = min(MAX_CHUNKS_PER_TASK, math.ceil(TASK_FLOPS / max(chunk_flops, 1.0)))
    return max(1, min(k, n_todo // (TASKS_PER_THREAD * max(threads, 1))))


@dataclass(frozen=True)
class WindowPolicy:
    """How many tasks may be in flight.

    ``expected_threads``: the threads the cluster is meant to reach (local: its workers; a
    fixed SLURM cluster: jobs × threads per job; adaptive: its maximum), used before the
    workers join and as a floor afterwards. ``adaptive``: also hold
    :data:`ADAPT_TARGET_S` seconds of queued work per expected thread (from the measured
    task duration), so Dask's adaptive scaling asks for all the workers it may.
    """

    expected_threads: int = 0
    adaptive: bool = False
    per_thread: int = TASKS_PER_THREAD

    def bound(self, threads: int, mean_task_s: float | None = None) -> int:
        """The window for ``threads`` connected worker threads and the mean task duration
        seen so far (``None``: none finished yet)."""
        t = max(threads, self.expected_threads)
        n = max(MIN_WINDOW, self.per_thread * t)
        if self.adaptive and mean_task_s:
            # capped: with fused tiny tasks this stays a few dozen per thread
            n = max(n, min(16 * n, math.ceil(ADAPT_TARGET_S * t / max(mean_task_s, 1e-3))))
        return n


def total_threads(client: Any) -> int:
    """Worker threads connected to ``client``'s scheduler (0 when none, or unreachable)."""
    try:
        return int(sum(client.nthreads().values()))
    except (OSError, TimeoutError):
        return 0


@dataclass
class WindowStats:
    """What the window did: the largest bound used, the most tasks in flight at once, the
    tasks submitted, the mean task duration (s) the tasks reported, and how many times a
    task went back in flight unsettled (its result lost with its worker, or not fetched within
    ``fetch_timeout`` seconds; see :func:`run_window`)."""

    bound: int = 0
    peak: int = 0
    submitted: int = 0
    mean_task_s: float | None = None
    requeued: int = 0
    fetch_timeout: float = FETCH_TIMEOUT

    def requeued_note(self) -> str | None:
        """The driver's log line when a task went back in flight, else None."""
        if not self.requeued:
            return None
        return (
            f"{self.requeued} time(s) a finished task went back in flight: its result was lost "
            f"with its worker, or not fetched within {self.fetch_timeout:g} s"
        )


def run_window(
    client: Any,
    groups: Iterator[Any],
    submit: Callable[[Any], Any],
    on_done: Callable[[Any, Any, Any], float | None],
    policy: WindowPolicy,
    tick: Callable[[], None] = lambda: None,
    tick_every: float = 1.0,
    fetch_timeout: float = FETCH_TIMEOUT,
) -> WindowStats:
    """Submit one task per item of ``groups`` (``submit(item)`` returns a Dask future), never
    more than the policy's bound in flight, and hand each finished one to
    ``on_done(item, future, result)`` (``result``: the task's return value, None unless it
    finished; ``on_done`` returns the task's duration in seconds, or None).

    The results of the tasks that finished meanwhile are fetched in one ``gather``: a fetch
    per task would cost a round trip to a worker each, one after the other.

    A task whose result was lost before it was fetched (its worker left: a SLURM job ended
    right after the task finished) is not waited for here: the fetch gives up after
    ``fetch_timeout`` seconds and the task goes back in flight, where the scheduler recomputes
    it once a worker is there, and ``tick()`` (the job keeper, which replaces the worker) keeps
    running meanwhile. A task seen lost or pending again goes back in flight the same way.

    ``tick()`` runs about every ``tick_every`` seconds (the SLURM job keeper, the lease and
    identity checks, consolidation); it and ``on_done`` may raise to stop. On any exception
    (``KeyboardInterrupt`` included) the tasks in flight are cancelled and it propagates; no
    further task is submitted.
    """
    finished: queue.SimpleQueue = queue.SimpleQueue()
    in_flight: dict[str, tuple[Any, Any]] = {}
    stats = WindowStats(fetch_timeout=fetch_timeout)
    bound = policy.bound(total_threads(client))
    stats.bound = bound
    n_timed, total_s = 0, 0.0
    exhausted = False
    last_tick = time.monotonic()
    try:
        while True:
            while not exhausted and len(in_flight) < bound:
                item = next(groups, None)
                if item is None:
                    exhausted = True
                    break
                fut = submit(item)
                in_flight[fut.key] = (fut, item)
                fut.add_done_callback(finished.put)
                stats.submitted += 1
            stats.peak = max(stats.peak, len(in_flight))
            if not in_flight:
                break
            wait = max(0.0, tick_every - (time.monotonic() - last_tick))
            batch = []
            try:
                batch.append(finished.get(timeout=wait))
                while True:
                    batch.append(finished.get_nowait())
            except queue.Empty:
                pass
            entries = [e for e in (in_flight.pop(f.key, None) for f in batch) if e is not None]
            # one look at each status: a lost task may finish again while the others' results
            # are fetched, and must not then be handed over without its result
            status = {f.key: f.status for f, _ in entries}
            ok = [f for f, _ in entries if status[f.key] == "finished"]
            results = _fetch(client, ok, fetch_timeout)
            unfetched = {f.key for f in ok} if results is None else set()
            results = results or {}
            for fut, item in entries:
                if fut.key not in results and (
                    status[fut.key] in _RECOMPUTING or fut.key in unfetched
                ):
                    # not settled (see above): back in flight until it finishes again
                    in_flight[fut.key] = (fut, item)
                    fut.add_done_callback(finished.put)
                    stats.requeued += 1
                    continue
                seconds = on_done(item, fut, results.get(fut.key))
                if seconds is not None:
                    n_timed, total_s = n_timed + 1, total_s + seconds
            if time.monotonic() - last_tick >= tick_every:
                last_tick = time.monotonic()
                tick()
                stats.mean_task_s = total_s / n_timed if n_timed else None
                bound = policy.bound(total_threads(client), stats.mean_task_s)
                stats.bound = max(stats.bound, bound)
    except BaseException:
        if in_flight:  # best effort: the original error is what the caller must see
            with contextlib.suppress(Exception):
                client.cancel([f for f, _ in in_flight.values()])
        raise
    stats.mean_task_s = total_s / n_timed if n_timed else None
    return stats


_RECOMPUTING = frozenset({"pending", "lost"})
"""Statuses of a future whose result is gone and which the scheduler computes again."""


def _fetch(client: Any, futures: list[Any], timeout: float) -> dict[str, Any] | None:
    """The results of the finished ``futures`` by key, fetched in one round trip; None when
    that takes over ``timeout`` seconds (a result lost with its worker is recomputed first,
    which needs a worker: the caller must not block on it)."""
    if not futures:
        return {}
    from distributed import TimeoutError as DaskTimeout

    try:
        # Client.gather with a time limit: Future.result(timeout) does the same for one future
        values = client.sync(client._gather, futures, callback_timeout=timeout)
    except (DaskTimeout, TimeoutError):
        return None
    return dict(zip((f.key for f in futures), values, strict=True))
