"""Where the chunks run: a local Dask cluster (CPU workers, or one worker per GPU) or a
running scheduler. (SLURM worker jobs are :mod:`pipeline.slurm`.)

* :func:`local_cluster` picks :func:`cpu_local_cluster` (one single-threaded worker process
  per core) or :func:`gpu_local_cluster` (one worker per visible GPU, each pinned by
  ``CUDA_VISIBLE_DEVICES``) for the backend the sweep resolved;
* :func:`connect_scheduler` connects to ``--scheduler ADDRESS`` with a bounded first contact;
* :func:`owned_cluster` closes a local cluster fast when a sweep leaves early (Ctrl-C): its
  worker processes ignore SIGINT (:func:`dask_setup`, preloaded) and are stopped, killed if
  busy, within half a second.

Why not dask-cuda's ``LocalCUDACluster`` for the GPUs: it does the same pinning, but brings a
dependency (and RMM/UCX options) for what is a dozen lines here; our tasks need nothing else
from it. Each GPU worker is a separate process (a :class:`distributed.Nanny`) whose
environment sets ``CUDA_VISIBLE_DEVICES`` to one device before CUDA initialises, so in the
worker that GPU is device 0 and a task's CuPy calls cannot touch another worker's GPU; one
thread per worker (a task already fills the device); workers advertise the resource
``GPU=1``. On SLURM, one worker per job with ``--gres=gpu:1`` is already pinned by SLURM.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from pipeline.errors import SchedulerError, UsageError

__all__ = [
    "WORKER_MALLOC_ENV",
    "WORKER_PRELOAD",
    "dask_setup",
    "connect_scheduler",
    "cpu_local_cluster",
    "dashboard_available",
    "gpu_local_cluster",
    "gpu_worker_specs",
    "local_cluster",
    "owned_cluster",
    "stop_workers_now",
    "visible_devices",
]


WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
"""glibc settings for compute workers. Dask sets MALLOC_TRIM_THRESHOLD_=64 KiB, which also
freezes the mmap threshold at 128 KiB: every large temporary is then a fresh mmap that faults
its pages in (measured: ~40 % of a trainability sweep's time in the kernel, 89 M page
faults). With these, temporaries are reused from the heap (sys time 2.0 s → 0.14 s on one
tile benchmark); freed memory above 1 GiB still goes back to the OS."""


WORKER_PRELOAD = "pipeline.run.clients"
"""Preloaded by the worker processes of the local clusters: its :func:`dask_setup` runs in
each worker when it starts."""


def dask_setup(worker: Any) -> None:
    """Worker preload: a worker *process* ignores SIGINT. Ctrl-C in a terminal reaches every
    process of the foreground group; the driver alone handles it (cancels, closes the
    cluster, which ends its workers), instead of each worker printing a traceback."""
    import multiprocessing
    import signal
    import threading

    if multiprocessing.parent_process() is not None and (
        threading.current_thread() is threading.main_thread()
    ):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_preloads() -> list[str]:
    """The user's configured worker preloads, then ours."""
    import dask

    return [*(dask.config.get("distributed.worker.preload") or []), WORKER_PRELOAD]


def cpu_local_cluster(n_workers: int | None) -> Any:
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes (default: one
    per usable core), started with :data:`WORKER_MALLOC_ENV`."""
    import dask
    from dask.system import CPU_COUNT  # honours CPU affinity and cgroup limits
    from distributed import LocalCluster

    n = n_workers or CPU_COUNT
    # glibc reads these when a process starts: they must be in the environment the nanny
    # spawns the worker with (an `env=` is applied inside the already running worker)
    spawn_env = {
        f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC_ENV.items()
    }
    with dask.config.set(spawn_env):
        return _started(
            lambda: LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=50,
                preload=_worker_preloads(),
            )
        )


def _started(make: Callable[[], Any]) -> Any:
    """``make()`` (a local cluster), never interrupted half-way: a SIGINT or SIGTERM during
    the start is held back until the cluster is whole, which is then stopped at once before
    the signal's own handler runs (``KeyboardInterrupt``). A half-started cluster prints
    tracebacks: its nannies' ``failed to start``, worker processes cancelled in their
    registration, and Dask's exit hook closing a cluster still in ``Status.init``.

    Two mechanisms, because a signal reaches a process through any thread that does not
    block it while Python runs the handlers in the main thread alone: the handlers are
    swapped for ones that only record the signal (main thread only), and SIGINT is blocked
    in the threads the start creates, so the worker processes they spawn inherit it blocked
    until their preload ignores it (:func:`dask_setup`): Ctrl-C reaches the whole process
    group, and a worker still importing would die with a ``KeyboardInterrupt`` traceback.
    The multiprocessing resource tracker is started first: its start unblocks SIGINT in the
    calling thread (CPython's ``ensure_running`` unblocks instead of restoring the mask)."""
    import signal
    import threading
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    held: list[int] = []
    old_handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            if callable(signal.getsignal(s)):  # left alone when ignored or the default
                old_handlers[s] = signal.signal(s, lambda signum, frame: held.append(signum))
    cluster = None
    try:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            cluster = make()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a blocked one is held now
    except BaseException:
        _restore(old_handlers)
        if cluster is not None:
            _stop_quietly(cluster)
        raise
    _restore(old_handlers)
    if held:
        _stop_quietly(cluster)
        old_handlers[held[0]](held[0], None)  # the CLI's handler, or Python's: raises
        raise KeyboardInterrupt
    return cluster


def _restore(handlers: dict[int, Any]) -> None:
    import signal

    for s, h in handlers.items():
        signal.signal(s, h)


def _stop_quietly(cluster: Any) -> None:
    """Stop a local cluster that is being left (its workers within :data:`STOP_TIMEOUT_S`),
    ignoring errors."""
    stop_workers_now(cluster)
    with contextlib.suppress(Exception):
        cluster.close()


def dashboard_available() -> bool:
    """Whether the Dask dashboard can be served (bokeh is installed)."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def connect_scheduler(address: str, timeout: float = 10.0) -> Any:
    """A ``distributed.Client`` on the scheduler at ``address``; a :class:`SchedulerError`
    naming ``scheduler`` when the address is malformed, nothing answers within ``timeout``
    s, or what answers is not a Dask scheduler (an HTTP server, a port speaking another
    protocol: Dask's own connect would wait on those for minutes, or read their bytes as a
    message length and try to allocate exabytes)."""
    import asyncio

    from distributed import Client
    from distributed.comm import connect

    async def probe() -> Any:
        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            comm.abort()

    try:
        # the whole first contact (connect, handshake, one request) is bounded; the client
        # afterwards keeps Dask's own timeouts
        reply = asyncio.run(asyncio.wait_for(probe(), timeout))
    except TimeoutError as e:
        raise SchedulerError(
            f"scheduler: no Dask scheduler answered at {address!r} within {timeout:g} s; "
            "give the address that `dask scheduler` printed, e.g. tcp://HOST:8786",
            option="scheduler",
        ) from e
    except (Exception, MemoryError) as e:  # any failure of the first contact is the address's
        raise SchedulerError(
            f"scheduler: no Dask scheduler at {address!r} ({_first_line(e)}); give the "
            "address that `dask scheduler` printed, e.g. tcp://HOST:8786",
            option="scheduler",
        ) from e
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise SchedulerError(
            f"scheduler: {address!r} answered, but not as a Dask scheduler "
            f"(identity reply {str(reply)[:60]!r}); give the address that `dask scheduler` printed",
            option="scheduler",
        )
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as e:
        raise SchedulerError(f"scheduler: {address!r}: {_first_line(e)}", option="scheduler") from e


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def visible_devices() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (indices or UUIDs).

    ``CUDA_VISIBLE_DEVICES`` when set (an empty value means none); otherwise the devices
    ``nvidia-smi -L`` lists (queried without initialising CUDA in this process); ``[]`` when
    neither gives any.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def gpu_worker_specs(
    devices: list[str], *, env: dict[str, str] | None = None, memory_limit: str | int = "auto"
) -> dict[str, dict[str, Any]]:
    """SpecCluster worker specs: one single-threaded Nanny per device, pinned to it."""
    from distributed import Nanny

    return {
        f"gpu-{i}": {
            "cls": Nanny,
            "options": {
                "nthreads": 1,
                "env": {**(env or {}), "CUDA_VISIBLE_DEVICES": dev},
                "resources": {"GPU": 1},
                "memory_limit": memory_limit,
                "preload": _worker_preloads(),
            },
        }
        for i, dev in enumerate(devices)
    }


def gpu_local_cluster(
    devices: list[str] | None = None,
    *,
    env: dict[str, str] | None = None,
    dashboard_address: str = ":0",
    memory_limit: str | int = "auto",
) -> Any:
    """A local Dask cluster with one worker process per GPU (``devices``: default
    :func:`visible_devices`). ``env`` adds environment variables to every worker (e.g.
    ``CUPY_CACHE_DIR``, ``CUPY_TF32``). Use as a context manager, like ``LocalCluster``.

    Raises ``ValueError`` when there is no device to run on.
    """
    from distributed import Scheduler, SpecCluster

    devs = visible_devices() if devices is None else list(devices)
    if not devs:
        raise UsageError(
            "gpu_local_cluster: no visible GPU (CUDA_VISIBLE_DEVICES is empty and "
            "nvidia-smi lists none); use the numpy backend"
        )
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": dashboard_address}}
    return _started(
        lambda: SpecCluster(
            scheduler=scheduler,
            workers=gpu_worker_specs(devs, env=env, memory_limit=memory_limit),
            silence_logs=50,
            name="sweep-gpu",
        )
    )


def local_cluster(n_workers: int | None, backend: str) -> Any:
    """The local cluster of a sweep whose backend resolved to ``backend``: one worker per
    visible GPU for ``cupy`` (unless ``n_workers`` is given), else :func:`cpu_local_cluster`.
    Use as a context manager (:func:`owned_cluster`)."""
    if backend == "cupy" and n_workers is None:
        return gpu_local_cluster()
    return cpu_local_cluster(n_workers)


STOP_TIMEOUT_S = 0.5
"""How long a worker process of a local cluster may take to stop when the sweep is leaving
early (an interrupt, an error) before it is killed: its chunk in progress is not marked done
and is computed again next time, so nothing is lost by not waiting for it."""


@contextlib.contextmanager
def owned_cluster(cluster: Any) -> Iterator[Any]:
    """Use a local cluster made here; when the block is left by an exception (Ctrl-C
    included), stop its worker processes within :data:`STOP_TIMEOUT_S` instead of waiting
    for their running chunks, then close it."""
    with cluster:
        try:
            yield cluster
        except BaseException:
            stop_workers_now(cluster)
            raise


def stop_workers_now(cluster: Any) -> None:
    """Close the worker processes (nannies) of a local ``cluster`` with a short timeout,
    killing those still busy after :data:`STOP_TIMEOUT_S`; errors are ignored (the cluster
    is being left)."""
    import asyncio

    async def close_all() -> None:
        nannies = [w for w in list(cluster.workers.values()) if hasattr(w, "kill")]
        await asyncio.gather(
            *(n.close(timeout=STOP_TIMEOUT_S, reason="sweep-stopping") for n in nannies),
            return_exceptions=True,
        )

    with contextlib.suppress(Exception):
        cluster.sync(close_all)
