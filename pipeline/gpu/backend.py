"""Which array backend computes a chunk, and what to record about it.

``numpy`` is the readable reference; ``numba`` runs compiled CPU kernels (the ``cpu`` extra:
:mod:`pipeline.experiments.trainability.compiled`,
:mod:`pipeline.experiments.propagation.compiled`); ``cupy`` runs the raw CUDA kernels
(:mod:`pipeline.gpu.kernels`). ``auto`` resolves, on the process that calls
:func:`resolve_backend` (a worker, for a task), to ``cupy`` when the whole CUDA stack works
here: CuPy imports, a device is visible, a tiny kernel compiles with NVRTC and runs, and a
tiny cuBLAS GEMM gives the right numbers (:func:`cupy_unavailable_reason`, probed once per
process). Otherwise ``auto`` is ``numba`` when Numba imports, else ``numpy``; when CuPy is
installed but the probe fails (a broken CUDA stack: no NVRTC or cuBLAS library, a driver too
old, ...) it says so in one line on the ``pipeline.gpu`` logger (stderr by default), once per
process. Asking for ``cupy`` or ``numba`` where it cannot run is a
:class:`~pipeline.errors.BackendError` that says why.
:func:`backend_info` gives the provenance a store records.
"""

from __future__ import annotations

import logging
import os
import platform
from functools import lru_cache
from typing import Any

import numpy as np

from pipeline.errors import BackendError

__all__ = [
    "BACKENDS",
    "HOST_BACKENDS",
    "backend_info",
    "cupy_unavailable_reason",
    "numba_unavailable_reason",
    "resolve_backend",
]

BACKENDS = ("auto", "numpy", "numba", "cupy")
HOST_BACKENDS = ("numpy", "numba")
"""Resolved backends that compute in host memory on the CPU cores."""


_LOG = logging.getLogger("pipeline.gpu")

_PROBE_SOURCE = r"""
extern "C" __global__ void ps_probe(float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = 2.0f * x[i] + 1.0f;
}
"""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def _probe(cupy: Any) -> str | None:
    """Compile and run a tiny kernel (NVRTC, driver) and a tiny GEMM (cuBLAS); the failure, or
    None. Checks the numbers, so a library that loads but computes garbage fails too."""
    try:
        x = cupy.arange(32, dtype=cupy.float32)
        kern = cupy.RawKernel(_PROBE_SOURCE, "ps_probe")
        kern((1,), (32,), (x, cupy.int32(32)))
        if not bool((x == 2 * cupy.arange(32, dtype=cupy.float32) + 1).all()):
            return "the NVRTC-compiled probe kernel computed wrong values"
    except Exception as e:  # NVRTC missing or failing, a driver too old for the runtime, ...
        return f"a tiny CUDA kernel does not compile and run ({_one_line(e)})"
    try:
        a = cupy.arange(64, dtype=cupy.float32).reshape(8, 8)
        got = cupy.asnumpy(a @ a.T)
        want = np.arange(64, dtype=np.float32).reshape(8, 8)
        if not np.array_equal(got, want @ want.T):  # small integers: exact in any order
            return "a tiny cuBLAS GEMM computed wrong values"
    except Exception as e:  # libcublas / libcublasLt missing, ...
        return f"a tiny cuBLAS GEMM fails ({_one_line(e)})"
    return None


@lru_cache(maxsize=1)
def cupy_unavailable_reason() -> str | None:
    """Why the ``cupy`` backend cannot run in this process (one line), or None when it can.

    Checked once per process (``cupy_unavailable_reason.cache_clear()`` forgets it): CuPy
    imports, a CUDA device is visible, and the probe compiles and runs a tiny NVRTC kernel and
    a tiny cuBLAS GEMM with the right results.
    """
    try:
        import cupy
    except ImportError as e:
        return (
            f"CuPy is not installed ({e}); install the 'gpu-cuda12' or 'gpu-cuda13' extra "
            "(pip install 'phase-sweep[gpu-cuda12]') on a machine with a CUDA driver"
        )
    except Exception as e:  # a broken CUDA install can fail at import
        return f"CuPy fails to import: {_one_line(e)}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, no device, ...
        return f"CuPy imports but no CUDA device is usable ({_one_line(e)})"
    if n < 1:
        vis = os.environ.get("CUDA_VISIBLE_DEVICES")
        return "no CUDA device is visible" + (
            f" (CUDA_VISIBLE_DEVICES={vis!r})" if vis is not None else ""
        )
    return _probe(cupy)


@lru_cache(maxsize=1)
def numba_unavailable_reason() -> str | None:
    """Why the ``numba`` backend cannot run in this process (one line), or None when it can
    (Numba imports; checked once per process)."""
    try:
        import numba  # noqa: F401
    except ImportError as e:
        return (
            f"Numba is not installed ({e}); install the 'cpu' extra "
            "(pip install 'phase-sweep[cpu]')"
        )
    except Exception as e:  # a broken llvmlite, ...
        return f"Numba fails to import: {_one_line(e)}"
    return None


def _cupy_installed() -> bool:
    import sys
    from importlib.util import find_spec

    return "cupy" in sys.modules or find_spec("cupy") is not None


@lru_cache(maxsize=1)
def _say_fallback(why: str, host: str = "numpy") -> None:
    """One line per process when ``auto`` falls back although CuPy is installed."""
    _LOG.warning("backend auto: using %s, the CUDA stack does not work here: %s", host, why)


def resolve_backend(name: str) -> str:
    """Map a requested backend (``auto`` or a concrete name) to one available here.

    Raises :class:`~pipeline.errors.BackendError` for an unknown name (listing the allowed
    ones), for ``cupy`` when it cannot run here (saying why: CuPy missing, no device, the
    kernel or GEMM probe failing) and for ``numba`` without Numba. ``auto`` is ``cupy`` with
    a working CUDA stack, else ``numba`` when Numba imports, else ``numpy``; one warning line
    per process when CuPy is installed but unusable (so the user expected a GPU).
    """
    if name not in BACKENDS:
        raise BackendError(f"backend: unknown value {name!r} (allowed: {', '.join(BACKENDS)})")
    if name == "numpy":
        return "numpy"
    if name == "numba":
        why_numba = numba_unavailable_reason()
        if why_numba is not None:
            raise BackendError(f"backend: 'numba' is unavailable here: {why_numba}")
        return "numba"
    why = cupy_unavailable_reason()
    if name == "cupy" and why is not None:
        raise BackendError(f"backend: 'cupy' is unavailable here: {why}")
    if why is None:
        return "cupy"
    host = "numba" if numba_unavailable_reason() is None else "numpy"
    if _cupy_installed():
        _say_fallback(why, host)
    return host


def backend_info(name: str) -> dict[str, Any]:
    """Provenance of a resolved backend, for the store's attrs (JSON-serialisable).

    Always ``backend`` and ``numpy_version``; for ``cupy`` also ``device`` (the current
    device's name), ``device_count``, ``compute_capability``, ``cuda_runtime_version``,
    ``cuda_driver_version``, ``cupy_version``, ``tf32`` (True only when ``CUPY_TF32=1``:
    float32 GEMMs in TF32), ``kernel_cache_dir`` and ``nvrtc_options``. For ``numpy`` and
    ``numba``, ``device`` is the CPU, and ``cupy_unavailable`` says why CuPy, if installed,
    was not used; ``numba`` adds ``numba_version`` and ``llvmlite_version``.
    """
    if name not in ("numpy", "numba", "cupy"):
        raise BackendError(
            f"backend: expected a resolved backend (numpy, numba or cupy), got {name!r}"
        )
    info: dict[str, Any] = {"backend": name, "numpy_version": np.__version__}
    if name in HOST_BACKENDS:
        info["device"] = platform.processor() or platform.machine()
        if name == "numba":
            import llvmlite
            import numba

            info["numba_version"] = numba.__version__
            info["llvmlite_version"] = llvmlite.__version__
        why = cupy_unavailable_reason() if _cupy_installed() else None
        if why is not None:  # CuPy is installed, so a reader may wonder why it was not used
            info["cupy_unavailable"] = why
        return info
    import cupy

    from pipeline.gpu.kernels import NVRTC_OPTIONS, kernel_cache_dir

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
        nvrtc_options=list(NVRTC_OPTIONS),
    )
    return info
