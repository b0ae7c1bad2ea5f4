"""Stage 3 of the pipeline: run a sweep through Dask, mapping ``compute_chunk`` over the
chunks not yet done.

A task is :func:`run_chunk` (compute one chunk, write it, mark it done); the driver
(:func:`run_sweep`) creates or checks the store, starts or connects to a cluster (local or a
scheduler address through :mod:`.clients`, SLURM worker jobs through :mod:`pipeline.slurm`),
submits the missing chunks, shows progress and reports what failed. Finished chunks are kept
whatever happens to the rest, so re-running resumes.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.engine.clients import connect_scheduler, dashboard_available, local_cluster
from pipeline.engine.plan import ChunkKey, chunk_coords, iter_chunk_keys, key_to_str
from pipeline.engine.store import create_or_open_store, done_keys, write_chunk
from pipeline.errors import StoreError
from pipeline.experiments import get_experiment
from pipeline.gpu.backend import BACKENDS, backend_info, resolve_backend
from pipeline.spec.sweep import SweepSpec

if TYPE_CHECKING:
    from pipeline.slurm.cluster import SlurmOptions

__all__ = ["RunReport", "run_chunk", "run_sweep", "SweepFailed"]


class SweepFailed(RuntimeError):
    """Some chunks failed after their retries; finished chunks are kept in the store."""


@dataclass
class RunReport:
    """What one ``run_sweep`` call did.

    ``computed``: keys computed and written by this call; ``already_done``: chunks skipped
    because their marker was in the store; ``failed``: key string → error text.
    """

    store: str
    total: int
    already_done: int
    computed: list[ChunkKey] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """True when every chunk of the sweep is done."""
        return self.already_done + len(self.computed) == self.total


def run_chunk(
    spec: SweepSpec, store: str, key: ChunkKey, backend: str = "numpy", threads: int = 1
) -> ChunkKey:
    """Compute chunk ``key`` of ``spec`` and write it (then its done marker) into ``store``.

    Runs on a Dask worker (or anywhere: it is a plain function); ``backend`` (``auto``
    included) is resolved there, and the backend and device are kept in the chunk's done
    marker (:func:`pipeline.engine.store.chunk_info`). Returns the key.
    """
    exp = get_experiment(spec.experiment)
    resolved = resolve_backend(backend)  # here, on the worker that computes
    arrays = exp.compute_chunk(spec, chunk_coords(spec, key), backend=resolved, threads=threads)
    write_chunk(spec, store, key, arrays, info=backend_info(resolved))
    return key


def _chunk_task(
    key: ChunkKey, *, spec: SweepSpec, store: str, backend: str, threads: int
) -> ChunkKey:
    """``client.map`` maps over the first argument: the chunk key."""
    return run_chunk(spec, store, key, backend=backend, threads=threads)


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
    watch: Callable[[], None] | None = None,
) -> RunReport:
    """Run (or resume) a sweep and return a :class:`RunReport`.

    Parameters
    ----------
    store : output path (default: the spec's ``store``).
    scheduler : address of a running Dask scheduler; default a LocalCluster with one
        single-threaded worker process per core (``n_workers`` to change).
    client : an existing ``distributed.Client`` (e.g. on a SLURMCluster); overrides both.
    slurm : run on SLURM worker jobs (:class:`pipeline.slurm.cluster.SlurmOptions`): SLURM is
        asked first whether it accepts the profile's jobs (before the store is touched), the
        jobs are cancelled when the sweep ends, and jobs that SLURM ends midway are replaced.
    retries : extra attempts per chunk before it is reported as failed.
    backend : ``"auto"``, ``"numpy"`` or ``"cupy"``. A local run resolves it here (and
        ``cupy`` starts one worker per visible GPU); on a scheduler, a client or SLURM each
        worker resolves ``auto``/``cupy`` itself.
    threads : tile threads inside one task (results do not depend on it).
    watch : with ``client``: called about once a second while chunks run, and may raise to
        stop (the job keeper of SLURM jobs the caller started, e.g. one cluster for every
        frame of a zoom: :func:`pipeline.slurm.cluster.slurm_client`).

    Finished chunks stay marked done whatever else fails; failed chunks are listed in the
    report (and a re-run retries them).
    """
    say = log or (lambda msg: print(msg, file=sys.stderr))
    path = store if store is not None else spec.store
    if path is None:
        raise StoreError("store: no output path (set 'store' in the spec or pass --store)")
    path = str(path)
    if slurm is not None and client is None:
        from pipeline.slurm.cluster import check_submittable

        check_submittable(slurm.profile)
    remote = client is not None or scheduler is not None or slurm is not None
    if remote and backend in ("auto", "cupy"):
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
        return _run(
            spec, path, client, n_workers, retries, backend_name, provenance, threads,
            progress, say, slurm, watch,
        )  # fmt: skip


def _run(
    spec: SweepSpec,
    path: str,
    client: Any,
    n_workers: int | None,
    retries: int,
    backend_name: str,
    provenance: dict[str, Any],
    threads: int,
    progress: bool,
    say: Callable[[str], None],
    slurm: SlurmOptions | None,
    watch: Callable[[], None] | None = None,
) -> RunReport:
    created = create_or_open_store(spec, path, provenance=provenance)
    all_keys = list(iter_chunk_keys(spec))
    done = done_keys(path)
    todo = [k for k in all_keys if k not in done]
    report = RunReport(store=path, total=len(all_keys), already_done=len(all_keys) - len(todo))
    say(
        f"store {path}: {'created' if created else 'resuming'}; "
        f"{report.already_done}/{report.total} chunks already done, {len(todo)} to compute"
    )
    if not todo:
        return report

    t0 = time.perf_counter()
    with ExitStack() as stack:
        if client is None and slurm is not None:
            from pipeline.slurm.cluster import slurm_client

            client, watch = stack.enter_context(slurm_client(slurm, say))
        elif client is None:
            from distributed import Client

            cluster = stack.enter_context(local_cluster(n_workers, backend_name))
            client = stack.enter_context(Client(cluster))
            if dashboard_available():
                say(f"dashboard: {client.dashboard_link}")
            else:
                say("dashboard: install the 'dashboard' extra (bokeh) to get one")
        report = _submit_and_wait(
            client, spec, path, todo, report, backend_name, threads, retries, progress, watch
        )
    report.seconds = time.perf_counter() - t0
    say(
        f"{len(report.computed)} chunks computed in {report.seconds:.1f} s, "
        f"{len(report.failed)} failed; {report.already_done + len(report.computed)}/"
        f"{report.total} done"
    )
    for k, err in report.failed.items():
        say(f"  chunk {k} failed: {err}")
    return report


def _submit_and_wait(
    client: Any,
    spec: SweepSpec,
    path: str,
    todo: list[ChunkKey],
    report: RunReport,
    backend: str,
    threads: int,
    retries: int,
    progress: bool,
    watch: Callable[[], None] | None = None,
) -> RunReport:
    """Submit ``todo`` and collect results; ``watch()`` runs about once a second meanwhile.

    ``watch`` (the SLURM job keeper) may raise to give up: the pending chunks are then
    cancelled and the error propagates; finished chunks stay done.
    """
    from distributed import wait
    from tqdm.auto import tqdm

    run_id = uuid.uuid4().hex[:12]
    futures = client.map(
        _chunk_task,
        todo,
        spec=spec,
        store=path,
        backend=backend,
        threads=threads,
        key=[f"chunk-{key_to_str(k)}-{run_id}" for k in todo],  # unique per run: a key
        # reused on one client would return the old (other store's) result unrun
        retries=retries,
        pure=False,
    )
    fut_key = {f.key: k for f, k in zip(futures, todo, strict=True)}
    bar = tqdm(total=len(todo), desc="chunks", unit="chunk", disable=not progress, file=sys.stderr)
    pending = set(futures)
    try:
        while pending:
            try:
                finished, pending = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                finished = set()
            for fut in sorted(finished, key=lambda f: fut_key[f.key]):
                k = fut_key[fut.key]
                if fut.status == "finished":
                    report.computed.append(k)
                else:
                    exc = fut.exception()
                    report.failed[key_to_str(k)] = f"{type(exc).__name__}: {exc}"
                bar.update(1)
            if watch is not None and pending:
                watch()
    except BaseException:
        client.cancel(list(pending))
        raise
    finally:
        bar.close()
    return report
