"""One Dask worker per visible GPU on one node, each pinned by ``CUDA_VISIBLE_DEVICES``.

Why not dask-cuda's ``LocalCUDACluster``: it does the same pinning, but brings a dependency
(and RMM/UCX options) for what is a dozen lines here; our tasks need nothing else from it.
Each worker is a separate process (a :class:`distributed.Nanny`) whose environment sets
``CUDA_VISIBLE_DEVICES`` to one device before CUDA initialises, so in the worker that GPU is
device 0 and a task's CuPy calls cannot touch another worker's GPU. One thread per worker:
one task per GPU at a time (a task already fills the device). Workers also advertise the
resource ``GPU=1``.

Wiring (the driver, :func:`pipeline.execute.run_sweep`): when the resolved backend is
``cupy`` and no scheduler or client is given, use ``gpu_local_cluster()`` instead of the
CPU ``LocalCluster``. On SLURM, one worker per job with ``--gres=gpu:1`` is already pinned by
SLURM's own ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

__all__ = ["gpu_local_cluster", "gpu_worker_specs", "visible_devices"]


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
        raise ValueError(
            "gpu_local_cluster: no visible GPU (CUDA_VISIBLE_DEVICES is empty and "
            "nvidia-smi lists none); use the numpy backend"
        )
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": dashboard_address}}
    return SpecCluster(
        scheduler=scheduler,
        workers=gpu_worker_specs(devs, env=env, memory_limit=memory_limit),
        silence_logs=50,
        name="sweep-gpu",
    )
