"""Which array backend computes a chunk, and what to record about it.

``numpy`` is the readable reference and the default without a GPU; ``cupy`` runs the raw CUDA
kernels (:mod:`pipeline.gpu.kernels`). ``auto`` resolves, on the process that calls
:func:`resolve_backend` (a worker, for a task), to ``cupy`` when CuPy imports and a CUDA
device is visible, else ``numpy``. Asking for ``cupy`` where it cannot run is a
:class:`~pipeline.errors.BackendError` that says why. :func:`backend_info` gives the
provenance a store records.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from pipeline.errors import BackendError

__all__ = ["BACKENDS", "backend_info", "cupy_unavailable_reason", "resolve_backend"]

BACKENDS = ("auto", "numpy", "cupy")


def cupy_unavailable_reason() -> str | None:
    """Why the ``cupy`` backend cannot run in this process, or None when it can."""
    try:
        import cupy
    except ImportError as e:
        return (
            f"CuPy is not installed ({e}); install the 'gpu' extra "
            "(pip install 'phase-sweep[gpu]') on a machine with a CUDA driver"
        )
    except Exception as e:  # a broken CUDA install can fail at import
        return f"CuPy fails to import: {type(e).__name__}: {e}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, no device, ...
        return f"CuPy imports but no CUDA device is usable ({type(e).__name__}: {e})"
    if n < 1:
        vis = os.environ.get("CUDA_VISIBLE_DEVICES")
        return "no CUDA device is visible" + (
            f" (CUDA_VISIBLE_DEVICES={vis!r})" if vis is not None else ""
        )
    return None


def resolve_backend(name: str) -> str:
    """Map a requested backend (``auto`` or a concrete name) to one available here.

    Raises :class:`~pipeline.errors.BackendError` for an unknown name (listing the allowed
    ones) and for ``cupy`` when it cannot run here (saying why: CuPy missing, no device).
    """
    if name not in BACKENDS:
        raise BackendError(f"backend: unknown value {name!r} (allowed: {', '.join(BACKENDS)})")
    if name == "numpy":
        return "numpy"
    why = cupy_unavailable_reason()
    if name == "cupy" and why is not None:
        raise BackendError(f"backend: 'cupy' is unavailable here: {why}")
    return "numpy" if why is not None else "cupy"


def backend_info(name: str) -> dict[str, Any]:
    """Provenance of a resolved backend, for the store's attrs (JSON-serialisable).

    Always ``backend`` and ``numpy_version``; for ``cupy`` also ``device`` (the current
    device's name), ``device_count``, ``compute_capability``, ``cuda_runtime_version``,
    ``cuda_driver_version``, ``cupy_version``, ``tf32`` (True only when ``CUPY_TF32=1``:
    float32 GEMMs in TF32) and ``kernel_cache_dir``. For ``numpy``, ``device`` is the CPU.
    """
    if name not in ("numpy", "cupy"):
        raise BackendError(f"backend: expected a resolved backend (numpy or cupy), got {name!r}")
    info: dict[str, Any] = {"backend": name, "numpy_version": np.__version__}
    if name == "numpy":
        info["device"] = platform.processor() or platform.machine()
        return info
    import cupy

    from pipeline.gpu.kernels import kernel_cache_dir

    rt = cupy.cuda.runtime
    dev = cupy.cuda.Device()
    props = rt.getDeviceProperties(dev.id)
    dev_name = props["name"]
    info.update(
        device=dev_name.decode() if isinstance(dev_name, bytes) else str(dev_name),
        device_count=int(rt.getDeviceCount()),
        compute_capability=str(dev.compute_capability),
        cuda_runtime_version=int(rt.runtimeGetVersion()),
        cuda_driver_version=int(rt.driverGetVersion()),
        cupy_version=cupy.__version__,
        tf32=os.environ.get("CUPY_TF32", "0") not in ("", "0"),
        kernel_cache_dir=kernel_cache_dir(),
    )
    return info
