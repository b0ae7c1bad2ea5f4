"""Loading and compiling the raw CUDA kernels (CuPy ``RawModule``), shipped as package data.

The CUDA C sources are the package ``pipeline.kernels`` (``*.cu`` entry points, ``*.cuh``
shared device code; ``kernels/`` at the repository root points there), read with
:mod:`importlib.resources`, so an installed wheel has them. ``#include "x.cuh"`` lines are
inlined here before compilation, so CuPy's on-disk kernel cache (keyed by the source text)
sees a header change. The cache lives in ``CUPY_CACHE_DIR`` (CuPy's own setting, default
``~/.cupy/kernel_cache``); :func:`set_kernel_cache_dir` sets it before the first
compilation, e.g. to node-local scratch on a cluster.

The launch wrappers (in the experiments' ``ops``/``gpu`` modules) validate their arguments,
normalise dtypes and contiguity, pass explicit ``np.int32`` / ``np.int64`` / ``np.uint32`` /
``np.float64`` scalars (CuPy would otherwise guess the C type of a Python int) and launch
grid-stride kernels; :func:`grid_blocks` and :func:`dtype_suffix` are their helpers.
"""

from __future__ import annotations

import math
import os
import re
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CMS_ALPHA2",
    "CMS_GENERAL",
    "CMS_NORMAL",
    "cms_args",
    "cms_mode",
    "compiled_module",
    "dtype_suffix",
    "grid_blocks",
    "kernel_cache_dir",
    "kernel_files",
    "kernel_source",
    "set_kernel_cache_dir",
]


def kernel_files() -> Traversable:
    """The installed kernel sources: the package-data folder ``pipeline.kernels``."""
    return files("pipeline.kernels")


CMS_GENERAL, CMS_ALPHA2, CMS_NORMAL = 0, 1, 2
"""``mode`` of the fill kernel (PS_CMS_* in philox_cms.cuh)."""

_INCLUDE = re.compile(r'^#include "([A-Za-z0-9_.]+)"\s*$', re.MULTILINE)


def kernel_source(name: str) -> str:
    """Text of the kernel source ``name`` (e.g. ``"rng.cu"``) with its ``#include "..."``
    headers inlined (one level deep, each header once; ``#pragma once`` lines dropped)."""
    root = kernel_files()
    text = root.joinpath(name).read_text()
    seen: set[str] = set()

    def inline(m: re.Match[str]) -> str:
        header = m.group(1)
        if header in seen:
            return ""
        seen.add(header)
        body = root.joinpath(header).read_text()
        return body.replace("#pragma once\n", "")

    return _INCLUDE.sub(inline, text)


def kernel_cache_dir() -> str:
    """Where CuPy keeps compiled kernels (``CUPY_CACHE_DIR`` or CuPy's default)."""
    return os.environ.get("CUPY_CACHE_DIR") or str(Path.home() / ".cupy" / "kernel_cache")


def set_kernel_cache_dir(path: str | os.PathLike[str]) -> str:
    """Point CuPy's kernel cache at ``path`` (created if missing); call before the first
    kernel compiles in this process (a Dask worker: in a worker plugin or its environment).
    Returns the absolute path."""
    p = Path(path).expanduser().resolve()
    p.mkdir(parents=True, exist_ok=True)
    os.environ["CUPY_CACHE_DIR"] = str(p)
    return str(p)


def cms_args(alpha: float, normal: bool = False) -> tuple[np.float64, ...]:
    """(pi, pi_1ma, pi_a2, c_t, c_s) of ``rng._cms_constants`` as float64 kernel scalars
    (the same Python-float expressions, so the same bits)."""
    return (
        np.float64(math.pi),
        np.float64(math.pi * (1.0 - alpha)),
        np.float64(0.5 * math.pi * alpha),
        np.float64(0.5 / alpha),
        np.float64(0.5 * (1.0 - alpha) / alpha),
    )


def cms_mode(alpha: float, normal: bool = False) -> int:
    """Which evaluation rng._cms runs for this α (the α = 2 special case, or general)."""
    if normal:
        return CMS_NORMAL
    return CMS_ALPHA2 if alpha == 2.0 else CMS_GENERAL


def grid_blocks(total: int, block: int, device_blocks: int) -> int:
    """Blocks for a grid-stride loop over ``total`` items: enough to fill the device, at
    most one per ``block`` items."""
    return max(1, min(-(-total // block), device_blocks))


@lru_cache(maxsize=8)
def compiled_module(name: str, device_id: int) -> Any:
    """The ``cupy.RawModule`` of kernel source ``name`` on device ``device_id`` (compiled
    once per process; CuPy's disk cache keeps the binary across processes)."""
    import cupy as cp

    with cp.cuda.Device(device_id):
        return cp.RawModule(code=kernel_source(name), options=("--std=c++14",))


def dtype_suffix(dtype: np.dtype) -> str:
    """``f32`` or ``f64``: the suffix of a kernel entry point for ``dtype``."""
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
