"""What a worker has, against what one task needs: the memory check before a sweep starts.

``sweep plan`` knows the peak memory of one task (:attr:`pipeline.run.plan.Plan.
peak_task_bytes`, the NumPy backend's working set). A task that needs more than its worker
has is killed by Dask's nanny (at 95 % of the worker's limit) and retried until the chunk is
reported failed, so every chunk of the store fails after minutes. The check says so before
anything is created; ``--no-memory-check`` skips it (the estimate is an upper bound of the
arrays the task allocates, not of what the OS charges).

Where the limit comes from:

* a local cluster: Dask's own split, the machine's memory (or its cgroup limit) divided by
  the number of workers;
* SLURM: the profile's ``memory`` divided by its ``processes``;
* a running scheduler: the smallest ``memory_limit`` of the workers connected now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.errors import ResourceError
from pipeline.run.plan import make_plan
from pipeline.spec.sweep import SweepSpec

if TYPE_CHECKING:
    pass

__all__ = [
    "TERMINATE_FRACTION",
    "check_task_memory",
    "client_worker_memory",
    "local_worker_memory",
    "slurm_worker_memory",
]

TERMINATE_FRACTION = 0.95
"""Dask's nanny restarts a worker whose memory passes this fraction of its limit
(``distributed.worker.memory.terminate``)."""


def local_worker_memory(n_workers: int | None) -> float:
    """Bytes per worker of a local cluster of ``n_workers`` (default one per core), as
    ``LocalCluster`` splits the machine's memory (its cgroup limit included)."""
    from dask.system import CPU_COUNT
    from distributed.system import MEMORY_LIMIT

    return MEMORY_LIMIT / (n_workers or CPU_COUNT)


def slurm_worker_memory(options: dict[str, Any]) -> float | None:
    """Bytes per worker of a dask-jobqueue profile (``memory`` / ``processes``), or None
    when the profile gives no memory."""
    from dask.utils import parse_bytes

    memory = options.get("memory")
    if not memory:
        return None
    try:
        total = parse_bytes(str(memory))
    except ValueError:
        return None  # the profile's own check reports it
    return total / max(1, int(options.get("processes", 1) or 1))


def client_worker_memory(client: Any) -> float | None:
    """The smallest ``memory_limit`` of the workers connected to ``client`` now, or None
    when no worker is connected or none has a limit."""
    workers = client.scheduler_info().get("workers", {})
    limits = [w.get("memory_limit") or 0 for w in workers.values()]
    limits = [m for m in limits if m > 0]
    return float(min(limits)) if limits else None


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def check_task_memory(spec: SweepSpec, worker_bytes: float | None, where: str) -> None:
    """Raise :class:`~pipeline.errors.ResourceError` (one line) when one task of ``spec``
    needs more than :data:`TERMINATE_FRACTION` of ``worker_bytes`` (None: not known, no
    check). ``where`` names the workers, e.g. ``"a local worker (2 workers)"``."""
    if worker_bytes is None:
        return
    need = make_plan(spec).peak_task_bytes
    if need > TERMINATE_FRACTION * worker_bytes:
        raise ResourceError(
            f"memory: one task of this sweep needs {_bytes(need)} (sweep plan: peak per task) "
            f"but {where} has {_bytes(worker_bytes)}; use smaller chunks or networks, give "
            "each worker more memory (fewer --workers, a larger SLURM 'memory'), or pass "
            "--no-memory-check to run anyway"
        )
