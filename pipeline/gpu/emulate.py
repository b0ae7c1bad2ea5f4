"""NumPy emulation of the raw kernels' contract (:class:`~.kernels.CupyOps`), for tests.

:class:`NumpyOps` has the methods of ``CupyOps`` with the same arguments and the same
semantics, written in NumPy: it runs :func:`pipeline.gpu.propagate_network`'s driver loop
(tiling, offsets, recording, non-finite markers, Lyapunov sums) on a machine without a GPU,
so that everything except the CUDA code itself is tested in the normal test run. The CUDA
kernels are tested against the same contract by ``tests/test_gpu.py`` on a device.
"""

from __future__ import annotations

import numpy as np

from pipeline import rng
from pipeline.activations import get_activation

__all__ = ["NumpyOps"]


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
                scale_t = (ws.astype(np.float64) / np.sqrt(ss[:, 2])).astype(h.dtype)
                pa = a_.phi(ha, np)
                dt_ = a_.dphi_hx(ha, pa, np).astype(h.dtype)
                x3[:, 2] = (dt_ * ht) * scale_t[:, None]
                x3[:, 0] = pa * w
                x3[:, 1] = a_.phi(hb, np) * w
                r0 = 3
            if r > r0:
                x3[:, r0:] = a_.phi(h3[:, r0:], np) * w[:, :, None].astype(t_)
        bad[:p] = bad_rows.any(axis=1).astype(np.int32)
