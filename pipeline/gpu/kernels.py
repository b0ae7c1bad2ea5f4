"""Loading and launching the raw CUDA kernels of ``kernels/`` (CuPy ``RawModule``).

Each wrapper validates its arguments, normalises dtypes and contiguity, passes explicit
``np.int32`` / ``np.int64`` / ``np.uint32`` / ``np.float64`` scalars (CuPy would otherwise
guess the C type of a Python int) and launches a grid-stride kernel. ``#include "x.cuh"``
lines are inlined here before compilation, so CuPy's on-disk kernel cache (keyed by the
source text) sees a header change. The cache lives in ``CUPY_CACHE_DIR`` (CuPy's own
setting, default ``~/.cupy/kernel_cache``); :func:`set_kernel_cache_dir` sets it before the
first compilation, e.g. to node-local scratch on a cluster.

:class:`CupyOps` is the interface the GPU propagation loop calls; :mod:`.emulate` has a NumPy
twin of it (same arguments, same semantics) that lets the loop be tested without a GPU.
"""

from __future__ import annotations

import math
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ACT_IDS",
    "CMS_ALPHA2",
    "CMS_GENERAL",
    "CMS_NORMAL",
    "KERNEL_DIR",
    "CupyOps",
    "cms_args",
    "kernel_cache_dir",
    "kernel_source",
    "set_kernel_cache_dir",
]

KERNEL_DIR = Path(__file__).resolve().parents[2] / "kernels"
"""The CUDA C sources (``*.cu`` entry points, ``*.cuh`` shared device code)."""

CMS_GENERAL, CMS_ALPHA2, CMS_NORMAL = 0, 1, 2
"""``mode`` of the fill kernel (PS_CMS_* in philox_cms.cuh)."""

ACT_IDS = {"tanh": 0, "relu": 1, "erf": 2, "linear": 3}
"""Activation ids of the layer-step kernel (PS_ACT_* in propagate.cu)."""

BLOCK = 256
"""Threads per block of the layer-step kernel (PS_BLOCK in propagate.cu)."""

_MASK32 = 0xFFFFFFFF
_INCLUDE = re.compile(r'^#include "([A-Za-z0-9_.]+)"\s*$', re.MULTILINE)


def kernel_source(name: str) -> str:
    """Text of ``kernels/<name>`` with its ``#include "..."`` headers inlined (one level
    deep, each header once; ``#pragma once`` lines dropped)."""
    path = KERNEL_DIR / name
    text = path.read_text()
    seen: set[str] = set()

    def inline(m: re.Match[str]) -> str:
        header = m.group(1)
        if header in seen:
            return ""
        seen.add(header)
        body = (KERNEL_DIR / header).read_text()
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


def _grid(total: int, block: int, device_blocks: int) -> int:
    """Blocks for a grid-stride loop over ``total`` items: enough to fill the device, at
    most one per ``block`` items."""
    return max(1, min(-(-total // block), device_blocks))


@lru_cache(maxsize=8)
def _module(name: str, device_id: int) -> Any:
    import cupy as cp

    with cp.cuda.Device(device_id):
        return cp.RawModule(code=kernel_source(name), options=("--std=c++14",))


def _suffix(dtype: np.dtype) -> str:
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"dtype: expected float32 or float64, got {dtype}")


class CupyOps:
    """The raw-kernel operations of one GPU propagation (current CuPy device)."""

    def __init__(self) -> None:
        import cupy as cp

        self.xp = cp
        dev = cp.cuda.Device()
        self.device_id = int(dev.id)
        n_sm = int(dev.attributes["MultiProcessorCount"])
        self._blocks = 32 * n_sm  # grid-stride loops: plenty of blocks to hide latency

    def fill_stable(
        self,
        out: Any,
        offset: int,
        ld: int,
        seed: int,
        stream: int,
        layer: int,
        row_start: int,
        n_rows: int,
        col_start: int,
        n_cols: int,
        alpha: float,
        normal: bool = False,
    ) -> None:
        """``out.flat[offset + r*ld + c]`` = the draw keyed (seed, stream, layer, row_start + r,
        col_start + c), r < n_rows, c < n_cols: :func:`pipeline.rng.stable_block` (or
        ``normal_block``) on the device. ``out`` is a C-contiguous float32/float64 array."""
        cp = self.xp
        if not isinstance(out, cp.ndarray) or not out.flags.c_contiguous:
            raise TypeError("out: expected a C-contiguous cupy array")
        if n_rows and n_cols:
            last = offset + (n_rows - 1) * ld + n_cols - 1
            if offset < 0 or ld < n_cols or last >= out.size:
                raise ValueError(
                    f"out: block {n_rows}x{n_cols} at offset {offset}, ld {ld} does not fit "
                    f"an array of {out.size} values"
                )
        else:
            return
        kern = _module("rng.cu", self.device_id).get_function(
            f"ps_fill_stable_{_suffix(out.dtype)}"
        )
        total = n_rows * n_cols
        kern(
            (_grid(total, 256, self._blocks),),
            (256,),
            (
                out,
                np.int64(offset),
                np.int64(ld),
                np.uint32(seed & _MASK32),
                np.uint32(seed >> 32),
                np.uint32(stream),
                np.uint32(layer),
                np.uint32(row_start),
                np.uint32(n_rows),
                np.uint32(col_start),
                np.uint32(n_cols),
                *cms_args(alpha, normal),
                np.int32(cms_mode(alpha, normal)),
            ),
        )

    def uniforms(
        self,
        seed: int,
        stream: int,
        layer: int,
        row_start: int,
        n_rows: int,
        col_start: int,
        n_cols: int,
    ) -> tuple[Any, Any]:
        """Device twin of ``rng.uniforms`` on a block: two float64 (n_rows, n_cols) arrays."""
        cp = self.xp
        u1 = cp.empty((n_rows, n_cols), cp.float64)
        u2 = cp.empty((n_rows, n_cols), cp.float64)
        if u1.size:
            kern = _module("rng.cu", self.device_id).get_function("ps_uniforms_block")
            kern(
                (_grid(u1.size, 256, self._blocks),),
                (256,),
                (
                    u1,
                    u2,
                    np.uint32(seed & _MASK32),
                    np.uint32(seed >> 32),
                    np.uint32(stream),
                    np.uint32(layer),
                    np.uint32(row_start),
                    np.uint32(n_rows),
                    np.uint32(col_start),
                    np.uint32(n_cols),
                ),
            )
        return u1, u2

    def layer_step(
        self,
        h: Any,
        x: Any,
        rows_per_point: int,
        has_pair: bool,
        ws: Any,
        act: str,
        stats: Any,
        bad: Any,
    ) -> None:
        """The fused elementwise pass of one layer (see ``kernels/propagate.cu``).

        ``h`` (p*R, N) pre-activations; ``x`` (p*R, K) augmented input, columns :N
        overwritten with the next layer's σ_w-scaled input; ``ws`` (p,) σ_w (2N)^(−1/α) per
        point in h's dtype; ``stats`` (≥p, 5) float64 and ``bad`` (≥p,) int32 receive
        (|h_a|², |h_b|², ⟨h_a,h_b⟩, |h_a−h_b|², |δh|²) and the non-finite flag per point.
        """
        cp = self.xp
        rows, n = h.shape
        p = rows // rows_per_point
        if x.dtype != h.dtype or ws.dtype != h.dtype:
            raise TypeError(f"x, ws: expected dtype {h.dtype}, got {x.dtype}, {ws.dtype}")
        if not (h.flags.c_contiguous and x.flags.c_contiguous and ws.flags.c_contiguous):
            raise ValueError("h, x, ws: expected C-contiguous arrays")
        if x.shape[0] != rows or x.shape[1] < n or ws.shape != (p,):
            raise ValueError(f"x {x.shape}, ws {ws.shape}: do not match h {h.shape}")
        if stats.dtype != cp.float64 or bad.dtype != cp.int32 or len(stats) < p or len(bad) < p:
            raise TypeError("stats, bad: expected float64 (p, 5) and int32 (p,) arrays")
        if p == 0:
            return
        kern = _module("propagate.cu", self.device_id).get_function(
            f"ps_layer_step_{_suffix(h.dtype)}"
        )
        kern(
            (min(p, 65535),),
            (BLOCK,),
            (
                h,
                x,
                np.int64(x.shape[1]),
                np.int32(n),
                np.int32(rows_per_point),
                np.int32(p),
                np.int32(1 if has_pair else 0),
                ws,
                np.int32(ACT_IDS[act]),
                stats,
                bad,
            ),
        )
