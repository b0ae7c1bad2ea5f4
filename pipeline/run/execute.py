"""Stage 3 of the pipeline: run a sweep through Dask, mapping ``compute_chunk`` over the
chunks not yet done.

A task is :func:`~pipeline.run.tasks.run_chunks` (compute a few consecutive chunks, write
each, mark each done); the driver (:func:`run_sweep`) creates or checks the store, takes its
lease (:mod:`pipeline.store.lease`), and hands the store to a strategy: :class:`Sweep` (the
chunks not yet done) or :class:`~pipeline.run.refine.RefinedSweep` (a spec with
``refine:``). Where the chunks run is the :class:`~pipeline.run.context.RunContext`'s (local,
a scheduler, SLURM worker jobs); :class:`Sweep` keeps a bounded window of tasks in flight
(:mod:`.submit`, :mod:`.driving`), folds the finished chunks' markers into the store's done
index now and then (:mod:`pipeline.store.markers`), shows progress and reports what failed.
Finished chunks are kept whatever happens to the rest, so re-running resumes.

Interrupts (Ctrl-C, or SIGTERM where the command line turns it into one): no further task is
submitted, the tasks in flight are cancelled, the cluster is closed (a local one's worker
processes are ended without waiting for their chunks: a chunk not yet marked done is simply
computed again next time), and ``KeyboardInterrupt`` propagates within a few seconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import StoreError
from pipeline.experiments import get_experiment
from pipeline.run.context import RunContext
from pipeline.run.driving import Meter, TaskLoop, task_error
from pipeline.run.refine import RefinedSweep
from pipeline.run.report import RunReport, SweepFailed
from pipeline.run.submit import chunks_per_task, total_threads
from pipeline.run.tasks import run_chunk, run_chunks, same
from pipeline.spec.sweep import SweepSpec
from pipeline.store.grid import ChunkGrid, ChunkKey, key_to_str
from pipeline.store.handle import Store
from pipeline.store.markers import consolidate
from pipeline.store.sweep import create_or_open_store, resolve_store_path

__all__ = ["RunReport", "Sweep", "SweepFailed", "run_chunk", "run_chunks", "run_sweep"]

CONSOLIDATE_MIN = 1000
"""During a run, fold per-chunk markers into the done index once at least this many are
waiting (a folder of fewer files lists in milliseconds) ..."""

CONSOLIDATE_EVERY_S = 30.0
"""... and at most this often; at the end of a run every waiting marker is folded."""


def store_path(spec: SweepSpec, store: str | Path | None) -> str:
    """The output path: ``store``, else the spec's; absolute (``~`` expanded)."""
    path = store if store is not None else spec.store
    if path is None or not str(path):
        raise StoreError("store: no output path (set 'store' in the spec or pass --store)")
    return resolve_store_path(path)


def run_sweep(
    spec: SweepSpec,
    store: str | Path | None = None,
    context: RunContext | None = None,
    **options: Any,
) -> RunReport:
    """Run (or resume) a sweep and return a :class:`RunReport`.

    ``store``: output path (default: the spec's ``store``), made absolute (``~`` expanded)
    before anything else sees it. ``context``: where and how the chunks run
    (:class:`~pipeline.run.context.RunContext`); or give its settings as keywords
    (:meth:`~pipeline.run.context.RunContext.from_options`):

    * ``scheduler`` (a running Dask scheduler's address), ``client`` (an existing
      ``distributed.Client``, with ``watch``, its SLURM job keeper), ``slurm``
      (:class:`pipeline.slurm.cluster.SlurmOptions`: worker jobs, asked first whether SLURM
      accepts them, cancelled at the end, replaced when SLURM ends them midway), else a
      local cluster of ``n_workers`` single-threaded worker processes (default one per
      core);
    * ``backend`` (``auto``, ``numpy``, ``numba``, ``cupy``: a local run resolves it here,
      and ``cupy`` starts one worker per visible GPU; remote workers resolve it each),
      ``retries`` (extra attempts per chunk), ``threads`` (tile threads inside one task;
      results do not depend on it), ``progress``, ``log``, ``chunks_per_task`` (default:
      from the plan's FLOPs per chunk, :func:`pipeline.run.submit.chunks_per_task`).

    Finished chunks stay marked done whatever else fails; failed chunks are listed in the
    report (and a re-run retries them). A second driver on the same store is refused
    (:class:`~pipeline.errors.StoreInUseError`); a store deleted or replaced while this run
    writes it stops the run (:class:`~pipeline.errors.StoreChangedError`).
    """
    if context is not None and options:
        raise TypeError("run_sweep: give a context or its options, not both")
    ctx = context if context is not None else RunContext.from_options(**options)
    path = store_path(spec, store)
    strategy = RefinedSweep(spec) if spec.refine is not None else Sweep(spec)
    with ctx.opened(spec):
        created = create_or_open_store(spec, path, provenance=ctx.provenance)
        with Store(path).lease("sweep run", ctx.say):
            return strategy.run(ctx, Store(path).opened(), created)


class Sweep:
    """The sweep strategy: every chunk of ``spec`` not yet done, fused into tasks of a few
    chunks, through the bounded window."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.grid = ChunkGrid.of(spec)

    def run(self, ctx: RunContext, store: Store, created: bool) -> RunReport:
        """Run the missing chunks into ``store`` (made, leased, opened) under ``ctx``."""
        say = ctx.say
        state = store.done(self.grid)
        for note in state.notes:
            say(f"note: {note}")
        if state.strays:
            shown = ", ".join(state.strays[:5]) + (" ..." if len(state.strays) > 5 else "")
            say(f"note: ignored {len(state.strays)} file(s) in the markers folder: {shown}")
        todo = state.missing()
        report = RunReport(
            store=store.path, total=state.total, already_done=state.n_done, counts=state.counts
        )
        say(
            f"store {store.path}: {'created' if created else 'resuming'}; "
            f"{report.already_done}/{report.total} chunks already done, {len(todo)} to compute"
        )
        keeper = _Markers(store, self.grid, leftovers=state.marker_flats, say=say)
        if len(todo) == 0:
            keeper.fold(final=True)
            return report
        t0 = time.perf_counter()
        client, watch = ctx.client()
        fuse = ctx.chunks_per_task
        if fuse is None:
            flops = get_experiment(self.spec.experiment).chunk_cost(self.spec, self.spec.chunks)
            threads = max(ctx.expected_threads, total_threads(client))
            fuse = chunks_per_task(flops["flops"], len(todo), threads)
        report.chunks_per_task = fuse
        stats = self._collect(TaskLoop(ctx, store, client, watch), todo, fuse, report, keeper)
        report.window = stats.bound
        if note := stats.requeued_note():
            say(note)
        report.seconds = time.perf_counter() - t0
        report.finish(say, "computed", prefix="chunk ")
        return report

    def _collect(
        self, loop: TaskLoop, todo: np.ndarray, fuse: int, report: RunReport, markers: _Markers
    ) -> Any:
        """Run ``todo`` in tasks of ``fuse`` chunks through the window and fill ``report``."""
        ctx, store, grid = loop.ctx, loop.store, self.grid
        run_id = uuid.uuid4().hex[:12]
        # The spec travels once, as a task that every chunk task depends on (recomputed if
        # the worker holding it is lost): inside each task it would be pickled once per
        # task, and the scheduler's copies grow with the sweep (~450 MB at 10^5 chunks of a
        # 10^4-value axis).
        spec_ref = loop.client.submit(same, self.spec, key=f"spec-{run_id}", pure=False)

        def submit(flats: tuple[int, ...]) -> Any:
            first = grid.name(flats[0])
            return loop.client.submit(
                run_chunks, flats, spec=spec_ref, store=store.path, token=store.token,
                how=ctx.task_settings,
                # unique per run: a key reused on one client would return the old (other
                # store's) result unrun
                key=f"chunk-{first}-{len(flats)}-{run_id}", pure=False,
            )  # fmt: skip

        def on_done(flats: tuple[int, ...], fut: Any, result: Any) -> tuple[float | None, int]:
            if result is None:  # not finished (a finished task's result is gathered)
                text = task_error(fut)
                for flat in flats:
                    report.failed[grid.name(flat)] = text
                return None, len(flats)
            outcomes, seconds = result
            for flat, record, err in outcomes:
                if err is None:
                    report.add_computed(flat)
                    markers.add(flat, record)
                else:
                    report.failed[grid.name(flat)] = err
            return seconds, len(flats)

        meter = Meter("chunks", "chunk", len(todo), report.total, report.already_done, "progress")
        stats = loop.run(_groups(todo, fuse), submit, on_done, meter, ctx.window_policy(),
                         markers.fold)  # fmt: skip
        markers.fold(final=True)
        return stats


class _Markers:
    """The driver's side of the done markers: records returned by the tasks, folded into
    the store's index every :data:`CONSOLIDATE_EVERY_S` once :data:`CONSOLIDATE_MIN` wait
    (per-chunk files left by earlier runs included)."""

    def __init__(
        self,
        store: Store,
        grid: ChunkGrid,
        leftovers: Any,
        say: Callable[[str], None] = lambda m: None,
    ):
        self.store, self.grid, self.say = store, grid, say
        self.records: dict[int, dict[str, Any]] = {}
        self.leftovers = [int(f) for f in leftovers]
        self.last = time.monotonic()

    def add(self, flat: int, record: dict[str, Any]) -> None:
        """A task's marker record of the chunk at ``flat``, to fold."""
        self.records[flat] = record

    def fold(self, final: bool = False) -> None:
        """Fold the waiting markers into the index when due (``final``: all, now)."""
        waiting = len(self.records) + len(self.leftovers)
        due = time.monotonic() - self.last >= CONSOLIDATE_EVERY_S
        if not waiting or (not final and (waiting < CONSOLIDATE_MIN or not due)):
            return
        # an earlier run's leftovers are read back from their files: a bounded batch per fold
        batch = self.leftovers if final else self.leftovers[:20000]
        self.leftovers = [] if final else self.leftovers[20000:]
        consolidate(
            self.store.path,
            self.grid.counts,
            self.store.token,
            self.records,
            (self.grid.key(f) for f in batch),
            on_damaged=self._damaged,
        )
        self.records = {}
        self.last = time.monotonic()

    def _damaged(self, key: ChunkKey, why: str) -> None:
        self.say(
            f"note: chunk {key_to_str(key)}: {why}; it counts as done but was not folded into "
            f"the index: `sweep verify {self.store.path} --repair` un-marks it, the next run "
            "recomputes it"
        )


def _groups(todo: np.ndarray, size: int) -> Iterator[tuple[int, ...]]:
    """Consecutive runs of ``size`` chunk positions (the last may be shorter)."""
    for i in range(0, len(todo), size):
        yield tuple(int(f) for f in todo[i : i + size])
