"""Stage 3 of the pipeline: run a sweep through Dask, mapping ``compute_chunk`` over the
chunks not yet done.

A task is :func:`run_chunks` (compute a few consecutive chunks, write each, mark each done);
the driver (:func:`run_sweep`) creates or checks the store, takes its lease
(:mod:`.lease`), starts or connects to a cluster (local or a scheduler address through
:mod:`.clients`, SLURM worker jobs through :mod:`pipeline.slurm`), keeps a bounded window of
tasks in flight (:mod:`.submit`), folds the finished chunks' markers into the store's done
index now and then (:mod:`.markers`), shows progress and reports what failed. Finished chunks
are kept whatever happens to the rest, so re-running resumes.

Interrupts (Ctrl-C, or SIGTERM where the command line turns it into one): no further task is
submitted, the tasks in flight are cancelled, the cluster is closed (a local one's worker
processes are ended without waiting for their chunks: a chunk not yet marked done is simply
computed again next time), and ``KeyboardInterrupt`` propagates within a few seconds.
"""

from __future__ import annotations

import functools
import sys
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import StoreChangedError, StoreError, UsageError
from pipeline.experiments import get_experiment
from pipeline.gpu.backend import BACKENDS, backend_info, resolve_backend
from pipeline.run.clients import (
    connect_scheduler,
    dashboard_available,
    local_cluster,
    owned_cluster,
)
from pipeline.run.progress import Heartbeat
from pipeline.run.submit import (
    WindowPolicy,
    WindowStats,
    chunks_per_task,
    run_window,
    total_threads,
)
from pipeline.spec.sweep import SweepSpec
from pipeline.store.grid import ChunkKey, chunk_coords, chunk_counts, flat_to_key, key_to_str
from pipeline.store.identity import check_identity
from pipeline.store.lease import store_lease
from pipeline.store.markers import consolidate, read_done
from pipeline.store.sweep import create_or_open_store, ensure_token, resolve_store_path
from pipeline.store.writer import write_chunk

if TYPE_CHECKING:
    from pipeline.slurm.cluster import SlurmOptions

__all__ = ["RunReport", "SweepFailed", "run_chunk", "run_chunks", "run_sweep"]

CONSOLIDATE_MIN = 1000
"""During a run, fold per-chunk markers into the done index once at least this many are
waiting (a folder of fewer files lists in milliseconds) ..."""

CONSOLIDATE_EVERY_S = 30.0
"""... and at most this often; at the end of a run every waiting marker is folded."""


class SweepFailed(RuntimeError):
    """Some chunks failed after their retries; finished chunks are kept in the store."""


@dataclass
class RunReport:
    """What one ``run_sweep`` call did.

    ``computed``: keys computed and written by this call (plan order); ``already_done``:
    chunks skipped because they were marked done in the store; ``failed``: key string →
    error text; ``window``: the most tasks the driver allowed in flight, ``chunks_per_task``:
    chunks fused into one task.
    """

    store: str
    total: int
    already_done: int
    counts: tuple[int, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    window: int = 0
    chunks_per_task: int = 1
    _computed: array = field(default_factory=lambda: array("q"), repr=False)

    @property
    def computed(self) -> list[ChunkKey]:
        """Keys computed by this call, in plan order."""
        return [flat_to_key(f, self.counts) for f in sorted(self._computed)]

    @property
    def n_computed(self) -> int:
        """How many chunks this call computed."""
        return len(self._computed)

    @property
    def complete(self) -> bool:
        """True when every chunk of the sweep is done."""
        return self.already_done + len(self._computed) == self.total


@functools.cache
def _resolved(backend: str) -> tuple[str, dict[str, Any]]:
    """The backend this worker process resolves ``backend`` to, and its provenance (asked
    once per process: a GPU does not come or go while a worker lives)."""
    name = resolve_backend(backend)
    return name, backend_info(name)


def run_chunk(
    spec: SweepSpec, store: str, key: ChunkKey, backend: str = "numpy", threads: int = 1
) -> ChunkKey:
    """Compute chunk ``key`` of ``spec`` and write it (then its done marker) into ``store``.

    Runs anywhere (it is a plain function); ``backend`` (``auto`` included) is resolved
    here, and the backend and device are kept in the chunk's done marker
    (:func:`pipeline.store.sweep.chunk_info`). Returns the key.
    """
    name, info = _resolved(backend)
    exp = get_experiment(spec.experiment)
    arrays = exp.compute_chunk(spec, chunk_coords(spec, key), backend=name, threads=threads)
    write_chunk(spec, store, key, arrays, info=info)
    return key


def run_chunks(
    flats: tuple[int, ...],
    *,
    spec: SweepSpec,
    store: str,
    token: str | None,
    backend: str,
    threads: int,
    attempts: int,
) -> tuple[list[tuple[int, dict[str, Any] | None, str | None]], float]:
    """A task: compute and write the chunks at plan positions ``flats`` into ``store``,
    whose identity ``token`` the driver read.

    Each chunk gets up to ``attempts`` tries; one that still fails is reported, the others
    are kept. Returns ``([(flat, marker record or None, error text or None), ...], seconds)``.
    A store that changed identity (:class:`~pipeline.errors.StoreChangedError`) stops the
    task: the driver then stops the run.
    """
    t0 = time.perf_counter()
    name, info = _resolved(backend)
    exp = get_experiment(spec.experiment)
    counts = chunk_counts(spec)
    out: list[tuple[int, dict[str, Any] | None, str | None]] = []
    for flat in flats:
        key = flat_to_key(flat, counts)
        err = None
        for _ in range(attempts):
            try:
                arrays = exp.compute_chunk(
                    spec, chunk_coords(spec, key), backend=name, threads=threads
                )
                record = write_chunk(spec, store, key, arrays, info=info, token=token)
            except StoreChangedError:
                raise
            except Exception as e:
                err = f"{type(e).__name__}: {e}"
                continue
            out.append((flat, record, None))
            break
        else:
            out.append((flat, None, err))
    return out, time.perf_counter() - t0


def run_sweep(
    spec: SweepSpec,
    store: str | Path | None = None,
    *,
    scheduler: str | None = None,
    client: Any = None,
    n_workers: int | None = None,
    retries: int = 2,
    backend: str = "auto",
    threads: int = 1,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    slurm: SlurmOptions | None = None,
    chunks_per_task: int | None = None,
    watch: Callable[[], None] | None = None,
) -> RunReport:
    """Run (or resume) a sweep and return a :class:`RunReport`.

    Parameters
    ----------
    store : output path (default: the spec's ``store``); made absolute (``~`` expanded)
        before anything else sees it.
    scheduler : address of a running Dask scheduler; default a LocalCluster with one
        single-threaded worker process per core (``n_workers`` to change).
    client : an existing ``distributed.Client`` (e.g. on a SLURMCluster); overrides both.
    slurm : run on SLURM worker jobs (:class:`pipeline.slurm.cluster.SlurmOptions`): SLURM is
        asked first whether it accepts the profile's jobs (before the store is touched), the
        jobs are cancelled when the sweep ends, and jobs that SLURM ends midway are replaced.
    retries : extra attempts per chunk before it is reported as failed.
    backend : ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cupy"``. A local run resolves it
        here (and ``cupy`` starts one worker per visible GPU); on a scheduler, a client or
        SLURM each worker resolves ``auto``/``numba``/``cupy`` itself.
    threads : tile threads inside one task (results do not depend on it).
    chunks_per_task : chunks computed by one task (default: decided from the plan's FLOPs
        per chunk, :func:`pipeline.run.submit.chunks_per_task`; 1 = no fusion).
    watch : with ``client``: called about once a second while chunks run, and may raise to
        stop (the job keeper of SLURM jobs the caller started, e.g. one cluster for every
        frame of a zoom: :func:`pipeline.slurm.cluster.slurm_client`).

    Finished chunks stay marked done whatever else fails; failed chunks are listed in the
    report (and a re-run retries them). A second driver on the same store is refused
    (:class:`~pipeline.errors.StoreInUseError`); a store deleted or replaced while this run
    writes it stops the run (:class:`~pipeline.errors.StoreChangedError`).
    """
    say = log or (lambda msg: print(msg, file=sys.stderr))
    path = store if store is not None else spec.store
    if path is None or not str(path):
        raise StoreError("store: no output path (set 'store' in the spec or pass --store)")
    if chunks_per_task is not None and chunks_per_task < 1:
        raise UsageError(f"chunks_per_task: value {chunks_per_task} must be >= 1")
    path = resolve_store_path(path)
    if slurm is not None and client is None:
        from pipeline.slurm.cluster import check_submittable

        check_submittable(slurm.profile)
    remote = client is not None or scheduler is not None or slurm is not None
    if remote and backend in ("auto", "numba", "cupy"):
        # the workers, not this driver (often a login node without a GPU), decide
        if backend not in BACKENDS:
            resolve_backend(backend)  # raises the usual error for an unknown name
        backend_name = backend
        provenance = {"backend": f"{backend} (resolved on each worker)"}
    else:
        backend_name = resolve_backend(backend)
        provenance = backend_info(backend_name)
    with ExitStack() as stack:
        if client is None and slurm is None and scheduler:
            # connect before the store is touched: a wrong address changes nothing on disk
            client = stack.enter_context(connect_scheduler(scheduler))
            say(f"scheduler {scheduler}, dashboard: {client.dashboard_link}")
        created = create_or_open_store(spec, path, provenance=provenance)
        with store_lease(path, "sweep run", say):
            if spec.refine is not None:
                from pipeline.run.refine import run_refined

                return run_refined(
                    spec, path, created, client, n_workers, retries, backend_name, threads,
                    progress, say, slurm,
                )  # fmt: skip
            return _run(
                spec, path, created, client, n_workers, retries, backend_name, threads,
                progress, say, slurm, chunks_per_task, watch,
            )  # fmt: skip


def _expected_threads(slurm: SlurmOptions | None, n_workers: int | None, backend: str) -> int:
    """The worker threads the cluster is meant to have, before they join."""
    if slurm is not None:
        cores = int(slurm.profile.options.get("cores", 1) or 1)
        jobs = slurm.adapt[1] if slurm.adapt is not None else slurm.n_jobs
        return jobs * cores
    if n_workers:
        return n_workers
    from dask.system import CPU_COUNT

    return CPU_COUNT if backend != "cupy" else 1


def _run(
    spec: SweepSpec,
    path: str,
    created: bool,
    client: Any,
    n_workers: int | None,
    retries: int,
    backend_name: str,
    threads: int,
    progress: bool,
    say: Callable[[str], None],
    slurm: SlurmOptions | None,
    fuse: int | None,
    watch: Callable[[], None] | None,
) -> RunReport:
    token = ensure_token(path)
    counts = chunk_counts(spec)
    state = read_done(path, counts, token)
    for note in state.notes:
        say(f"note: {note}")
    if state.strays:
        shown = ", ".join(state.strays[:5]) + (" ..." if len(state.strays) > 5 else "")
        say(f"note: ignored {len(state.strays)} file(s) in the markers folder: {shown}")
    todo = state.missing()
    report = RunReport(store=path, total=state.total, already_done=state.n_done, counts=counts)
    say(
        f"store {path}: {'created' if created else 'resuming'}; "
        f"{report.already_done}/{report.total} chunks already done, {len(todo)} to compute"
    )
    keeper = _Markers(path, counts, token, leftovers=state.marker_flats, say=say)
    if len(todo) == 0:
        keeper.fold(final=True)
        return report

    own_cluster = client is None
    expected = _expected_threads(slurm, n_workers, backend_name) if own_cluster else 0
    t0 = time.perf_counter()
    with ExitStack() as stack:
        client, watch = open_client(stack, client, slurm, n_workers, backend_name, say)
        if fuse is None:
            flops = get_experiment(spec.experiment).chunk_cost(spec, spec.chunks)["flops"]
            fuse = chunks_per_task(flops, len(todo), max(expected, total_threads(client)))
        report.chunks_per_task = fuse
        policy = WindowPolicy(
            expected_threads=expected, adaptive=slurm is not None and slurm.adapt is not None
        )
        stats = _collect(
            client, spec, path, token, todo, fuse, report, backend_name, threads, retries,
            progress, policy, watch, keeper,
        )  # fmt: skip
        report.window = stats.bound
        if note := stats.requeued_note():
            say(note)
    report.seconds = time.perf_counter() - t0
    say(
        f"{report.n_computed} chunks computed in {report.seconds:.1f} s, "
        f"{len(report.failed)} failed; {report.already_done + report.n_computed}/"
        f"{report.total} done"
    )
    for k, err in list(report.failed.items())[:50]:
        say(f"  chunk {k} failed: {err}")
    if len(report.failed) > 50:
        say(f"  ... and {len(report.failed) - 50} more failed chunks")
    return report


def open_client(
    stack: ExitStack,
    client: Any,
    slurm: SlurmOptions | None,
    n_workers: int | None,
    backend_name: str,
    say: Callable[[str], None],
) -> tuple[Any, Callable[[], None] | None]:
    """``client`` if given, else a client on SLURM worker jobs or on a local cluster, closed
    with ``stack``; and the SLURM job keeper to call about once a second (or None)."""
    if client is not None:
        return client, None
    if slurm is not None:
        from pipeline.slurm.cluster import slurm_client

        return stack.enter_context(slurm_client(slurm, say))
    from distributed import Client

    cluster = stack.enter_context(owned_cluster(local_cluster(n_workers, backend_name)))
    client = stack.enter_context(Client(cluster))
    if dashboard_available():
        say(f"dashboard: {client.dashboard_link}")
    else:
        say("dashboard: install the 'dashboard' extra (bokeh) to get one")
    return client, None


class _Markers:
    """The driver's side of the done markers: records returned by the tasks, folded into
    the store's index every :data:`CONSOLIDATE_EVERY_S` once :data:`CONSOLIDATE_MIN` wait
    (per-chunk files left by earlier runs included)."""

    def __init__(
        self,
        store: str,
        counts: tuple[int, ...],
        token: str | None,
        leftovers: Any,
        say: Callable[[str], None] = lambda m: None,
    ):
        self.store, self.counts, self.token, self.say = store, counts, token, say
        self.records: dict[int, dict[str, Any]] = {}
        self.leftovers = [int(f) for f in leftovers]
        self.last = time.monotonic()

    def add(self, flat: int, record: dict[str, Any]) -> None:
        self.records[flat] = record

    def fold(self, final: bool = False) -> None:
        waiting = len(self.records) + len(self.leftovers)
        due = time.monotonic() - self.last >= CONSOLIDATE_EVERY_S
        if not waiting or (not final and (waiting < CONSOLIDATE_MIN or not due)):
            return
        # an earlier run's leftovers are read back from their files: a bounded batch per fold
        batch = self.leftovers if final else self.leftovers[:20000]
        self.leftovers = [] if final else self.leftovers[20000:]
        consolidate(
            self.store,
            self.counts,
            self.token,
            self.records,
            (flat_to_key(f, self.counts) for f in batch),
            on_damaged=self._damaged,
        )
        self.records = {}
        self.last = time.monotonic()

    def _damaged(self, key: ChunkKey, why: str) -> None:
        self.say(
            f"note: chunk {key_to_str(key)}: {why}; it counts as done but was not folded into "
            f"the index: `sweep verify {self.store} --repair` un-marks it, the next run "
            "recomputes it"
        )


def _same(spec: SweepSpec) -> SweepSpec:
    """The task that holds the spec on the workers."""
    return spec


def _groups(todo: np.ndarray, size: int) -> Iterator[tuple[int, ...]]:
    """Consecutive runs of ``size`` chunk positions (the last may be shorter)."""
    for i in range(0, len(todo), size):
        yield tuple(int(f) for f in todo[i : i + size])


def _collect(
    client: Any,
    spec: SweepSpec,
    path: str,
    token: str | None,
    todo: np.ndarray,
    fuse: int,
    report: RunReport,
    backend: str,
    threads: int,
    retries: int,
    progress: bool,
    policy: WindowPolicy,
    watch: Callable[[], None] | None,
    markers: _Markers,
) -> WindowStats:
    """Run ``todo`` in tasks of ``fuse`` chunks through the window and fill ``report``.

    ``watch`` (the SLURM job keeper) runs about once a second and may raise to give up, as
    may the identity check of the store (deleted or replaced under the run): the tasks in
    flight are then cancelled and the error propagates; finished chunks stay done.
    """
    from tqdm.auto import tqdm

    run_id = uuid.uuid4().hex[:12]
    counts = report.counts
    bar = tqdm(total=len(todo), desc="chunks", unit="chunk", disable=not progress, file=sys.stderr)
    # without a bar (batch logs): a heartbeat line every few minutes
    beat = None if progress else Heartbeat(markers.say, report.total, report.already_done)

    # The spec travels once, as a task that every chunk task depends on (recomputed if the
    # worker holding it is lost): inside each task it would be pickled once per task, and the
    # scheduler's copies grow with the sweep (~450 MB at 10^5 chunks of a 10^4-value axis).
    spec_ref = client.submit(_same, spec, key=f"spec-{run_id}", pure=False)

    def submit(flats: tuple[int, ...]) -> Any:
        first = key_to_str(flat_to_key(flats[0], counts))
        return client.submit(
            run_chunks,
            flats,
            spec=spec_ref,
            store=path,
            token=token,
            backend=backend,
            threads=threads,
            attempts=retries + 1,
            # unique per run: a key reused on one client would return the old (other
            # store's) result unrun
            key=f"chunk-{first}-{len(flats)}-{run_id}",
            pure=False,
        )

    def on_done(flats: tuple[int, ...], fut: Any, result: Any) -> float | None:
        seconds = None
        if result is not None:  # finished, and its result gathered (run_chunks returns a pair)
            outcomes, seconds = result
            for flat, record, err in outcomes:
                if err is None:
                    report._computed.append(flat)
                    markers.add(flat, record)
                else:
                    report.failed[key_to_str(flat_to_key(flat, counts))] = err
        else:
            exc = fut.exception() if fut.status == "error" else None
            if isinstance(exc, StoreChangedError):
                raise exc
            text = f"{type(exc).__name__}: {exc}" if exc is not None else f"task {fut.status}"
            for flat in flats:
                report.failed[key_to_str(flat_to_key(flat, counts))] = text
        bar.update(len(flats))
        if beat is not None:
            beat.update(len(flats))
        return seconds

    def tick() -> None:
        check_identity(path, token, path, "the run stops")
        if watch is not None:
            watch()
        markers.fold()
        if beat is not None:
            beat.tick()

    try:
        stats = run_window(client, _groups(todo, fuse), submit, on_done, policy, tick)
        # the workers checked the store before each chunk; a store deleted or replaced after
        # the last check must not be reported as complete (nor get this run's index)
        check_identity(path, token, path, "the run stops")
        markers.fold(final=True)
    finally:
        bar.close()
    return stats
