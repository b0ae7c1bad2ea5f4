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

__all__ = ["BLOCK", "CupyOps", "NumpyOps", "block_sum"]

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
        if stats.dtype != cp.float64 or bad.dtype != cp.int32:
            raise TypeError(
                f"stats, bad: expected float64 and int32, got {stats.dtype}, {bad.dtype}"
            )
        # the kernel writes stats[pt * 5 + k] and bad[pt]: row-major (>= p, 5) and (>= p,)
        if (
            stats.ndim != 2
            or stats.shape[1] != 5
            or len(stats) < p
            or bad.ndim != 1
            or len(bad) < p
        ):
            raise ValueError(
                f"stats {stats.shape}, bad {bad.shape}: expected (>= {p}, 5), (>= {p},)"
            )
        if not (stats.flags.c_contiguous and bad.flags.c_contiguous):
            raise ValueError(
                "stats, bad: expected C-contiguous arrays (the kernel indexes them flat)"
            )
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
    """Host emulation of the device operations: the kernels' arithmetic in their order."""

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
        """``propagate.cu``'s layer step, operation for operation: the float64 sums in the
        kernel's order (:func:`block_sum`), products rounded before they are added (the kernel
        is compiled with ``--fmad=false``), the same casts. Only φ and φ' come from NumPy's
        math library rather than CUDA's (≤ 1-2 ulp apart)."""
        rows, n = h.shape
        r = rows_per_point
        p = rows // r
        t_ = h.dtype.type
        a_ = get_activation(act)
        h3 = h.reshape(p, r, n)
        x3 = x[:, :n].reshape(p, r, n)
        w = ws[:, None]
        with np.errstate(all="ignore"):
            h64 = h3.astype(np.float64)
            ss = block_sum(h64 * h64)  # (p, r): every row's |h|², for the non-finite check
            finite = np.isfinite(ss.astype(h.dtype))
            r0 = 0
            if has_pair:
                ha, hb, ht = h3[:, 0], h3[:, 1], h3[:, 2]
                ha64, hb64 = h64[:, 0], h64[:, 1]
                d64 = (ha - hb).astype(np.float64)  # the difference in T, as the kernel
                stats[:p, 0] = ss[:, 0]
                stats[:p, 1] = ss[:, 1]
                stats[:p, 2] = block_sum(ha64 * hb64)
                stats[:p, 3] = block_sum(d64 * d64)
                stats[:p, 4] = ss[:, 2]
                lost = ~finite[:, 0] | ~finite[:, 2]
                s4 = np.where(lost, np.nan, ss[:, 2])
                stats[:p, 4] = s4
                w64 = ws.astype(np.float64)
                safe = np.where(s4 > 0, s4, 1.0)
                scale_t = np.where(s4 > 0, w64 / np.sqrt(safe), 0.0)
                scale_t = np.where(lost, np.nan, scale_t).astype(h.dtype)
                pa = a_.phi(ha, np)
                dt_ = a_.dphi_hx(ha, pa, np).astype(h.dtype)
                x3[:, 2] = (dt_ * ht) * scale_t[:, None]
                x3[:, 0] = pa * w
                x3[:, 1] = a_.phi(hb, np) * w
                r0 = 3
            if r > r0:
                x3[:, r0:] = a_.phi(h3[:, r0:], np) * w[:, :, None].astype(t_)
        bad[:p] = (~finite).any(axis=1).astype(np.int32)


def block_sum(terms: np.ndarray) -> np.ndarray:
    """Sums over the last axis (length N) of float64 ``terms`` in ``propagate.cu``'s order.

    Thread t of the :data:`BLOCK`-thread block adds terms t, t + BLOCK, ... one by one,
    starting from 0.0; each warp's 32 partial sums meet in lane 0 by the ``__shfl_down_sync``
    tree (offsets 16, 8, 4, 2, 1; a lane whose partner is outside the warp adds its own value,
    which never reaches lane 0); the warps' sums are added in warp order, from 0.0. Returns the
    leading shape of ``terms``."""
    *lead, n = terms.shape
    steps = -(-n // BLOCK)
    padded = np.zeros((*lead, steps * BLOCK))
    padded[..., :n] = terms
    per = padded.reshape(*lead, steps, BLOCK)
    acc = np.zeros((*lead, BLOCK))
    for s in range(steps):  # sequential per thread (adding 0.0 to a sum changes nothing)
        acc = acc + per[..., s, :]
    lanes = acc.reshape(*lead, BLOCK // 32, 32)
    idx = np.arange(32)
    for o in (16, 8, 4, 2, 1):
        partner = np.where(idx + o < 32, idx + o, idx)
        lanes = lanes + lanes[..., partner]
    total = np.zeros(lead)
    for wp in range(BLOCK // 32):
        total = total + lanes[..., wp, 0]
    return total
