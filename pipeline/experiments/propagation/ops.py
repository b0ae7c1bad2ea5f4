"""The device operations of the GPU propagation loop, on CUDA (:class:`CupyOps`) and emulated
in NumPy (:class:`NumpyOps`).

:func:`pipeline.experiments.propagation.gpu.propagate_network` runs the layer loop against an
``ops`` object with three methods: ``fill_stable`` (the Philox/CMS draws of ``rng.cu``, into a
block of a device array), ``uniforms`` (the uniforms behind them) and ``layer_step`` (the fused
elementwise pass of ``propagate.cu``). :class:`CupyOps` launches the kernels on the current
CuPy device; :class:`NumpyOps` has the same arguments and semantics in NumPy, so that the
loop (tiling, offsets, recording, non-finite markers, Lyapunov sums) is tested without a GPU.
The CUDA kernels are tested against the same contract by ``tests/test_gpu.py`` on a device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.gpu.kernels import cms_args, cms_mode, compiled_module, dtype_suffix, grid_blocks
from pipeline.numerics import rng
from pipeline.numerics.activations import get_activation

__all__ = ["BLOCK", "CupyOps", "NumpyOps"]

BLOCK = 256
"""Threads per block of the layer-step kernel (PS_BLOCK in propagate.cu)."""

_MASK32 = 0xFFFFFFFF


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
        kern = compiled_module("rng.cu", self.device_id).get_function(
            f"ps_fill_stable_{dtype_suffix(out.dtype)}"
        )
        total = n_rows * n_cols
        kern(
            (grid_blocks(total, 256, self._blocks),),
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
            kern = compiled_module("rng.cu", self.device_id).get_function("ps_uniforms_block")
            kern(
                (grid_blocks(u1.size, 256, self._blocks),),
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
        kern = compiled_module("propagate.cu", self.device_id).get_function(
            f"ps_layer_step_{dtype_suffix(h.dtype)}"
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
                np.int32(get_activation(act).kernel_id),
                stats,
                bad,
            ),
        )


class NumpyOps:
    """Host emulation of the device operations (float64 sums of T values, as the kernels)."""

    xp = np

    def fill_stable(
        self,
        out: np.ndarray,
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
        flat = out.reshape(-1)
        view = np.lib.stride_tricks.as_strided(
            flat[offset:],
            shape=(n_rows, n_cols),
            strides=(ld * out.itemsize, out.itemsize),
            writeable=True,
        )
        block = rng.normal_block if normal else rng.stable_block
        args = (seed, stream, layer, row_start, n_rows, col_start, n_cols)
        if normal:
            block(*args, out=view)
        else:
            block(*args, alpha, out=view)

    def uniforms(
        self,
        seed: int,
        stream: int,
        layer: int,
        row_start: int,
        n_rows: int,
        col_start: int,
        n_cols: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(row_start, row_start + n_rows)[:, None]
        cols = np.arange(col_start, col_start + n_cols)[None, :]
        return rng.uniforms(seed, stream, layer, rows, cols)

    def layer_step(
        self,
        h: np.ndarray,
        x: np.ndarray,
        rows_per_point: int,
        has_pair: bool,
        ws: np.ndarray,
        act: str,
        stats: np.ndarray,
        bad: np.ndarray,
    ) -> None:
        rows, n = h.shape
        r = rows_per_point
        p = rows // r
        t_ = h.dtype.type
        a_ = get_activation(act)
        h3 = h.reshape(p, r, n)
        x3 = x[:, :n].reshape(p, r, n)
        w = ws[:, None]
        with np.errstate(all="ignore"):
            ss = np.einsum("prn,prn->pr", h3.astype(np.float64), h3.astype(np.float64))
            bad_rows = ~np.isfinite(ss.astype(h.dtype))
            r0 = 0
            if has_pair:
                ha, hb, ht = h3[:, 0], h3[:, 1], h3[:, 2]
                ha64, hb64, d64 = ha.astype(np.float64), hb.astype(np.float64), (ha - hb)
                d64 = d64.astype(np.float64)
                stats[:p, 0] = ss[:, 0]
                stats[:p, 1] = ss[:, 1]
                stats[:p, 2] = np.einsum("pn,pn->p", ha64, hb64)
                stats[:p, 3] = np.einsum("pn,pn->p", d64, d64)
                stats[:p, 4] = ss[:, 2]
                nt = np.sqrt(ss[:, 2])
                w64 = ws.astype(np.float64)
                scale_t = np.where(nt > 0, w64 / np.where(nt > 0, nt, 1.0), 0.0).astype(h.dtype)
                pa = a_.phi(ha, np)
                dt_ = a_.dphi_hx(ha, pa, np).astype(h.dtype)
                x3[:, 2] = (dt_ * ht) * scale_t[:, None]
                x3[:, 0] = pa * w
                x3[:, 1] = a_.phi(hb, np) * w
                r0 = 3
            if r > r0:
                x3[:, r0:] = a_.phi(h3[:, r0:], np) * w[:, :, None].astype(t_)
        bad[:p] = bad_rows.any(axis=1).astype(np.int32)
