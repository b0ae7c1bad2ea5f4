"""NumPy emulation of the raw kernels' contract (:class:`~.kernels.CupyOps`), for tests.

:class:`NumpyOps` has the methods of ``CupyOps`` with the same arguments and the same
semantics, written in NumPy: it runs :func:`pipeline.gpu.propagate_network`'s driver loop
(tiling, offsets, recording, non-finite markers, Lyapunov sums) on a machine without a GPU,
so that everything except the CUDA code itself is tested in the normal test run. The CUDA
kernels are tested against the same contract by ``tests/test_gpu.py`` on a device.

:func:`run_train_kernel` is the NumPy twin of a launch of ``kernels/train.cu`` (the
trainability kernel): :func:`pipeline.gpu.train_cupy.train_points` runs on it without a GPU.
"""

from __future__ import annotations

import numpy as np

from pipeline import rng
from pipeline.activations import get_activation

__all__ = ["NumpyOps", "run_train_kernel"]


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


# ---------------------------------------------------------------- kernels/train.cu

_SQRT2 = 1.4142135623730951


def _train_phi(z: np.ndarray, act: int) -> np.ndarray:
    t_ = z.dtype.type
    if act == 0:  # tanh(√2 z)
        return np.tanh(t_(_SQRT2) * z)
    if act == 1:  # √2 relu(z), NaN propagates
        return t_(_SQRT2) * np.where((z > 0) | np.isnan(z), z, t_(0))
    if act == 3:  # sigmoid
        return t_(0.5) * (t_(1) + np.tanh(t_(0.5) * z))
    return z


def _train_dphi(z: np.ndarray, a: np.ndarray, act: int) -> np.ndarray:
    t_ = z.dtype.type
    if act == 0:
        return t_(_SQRT2) * (t_(1) - a * a)
    if act == 1:
        return np.where(z > 0, t_(_SQRT2), t_(0))
    if act == 3:
        return a * (t_(1) - a)
    return np.ones_like(z)


def run_train_kernel(
    name: str,
    w0: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    mb: np.ndarray,
    lr_in: np.ndarray,
    lr_out: np.ndarray,
    offset: np.ndarray,
    n: int,
    batch: int,
    steps: int,
    minibatch: int,
    act: int,
) -> np.ndarray:
    """NumPy twin of a ``ps_train_*`` launch (kernels/train.cu): losses (P, steps) float64.

    Vectorised over points (axis 0) and lanes (axis 1: lane j owns hidden unit j); per lane
    the kernel's algorithm in its order: sequential sums over rows and over i, the xor
    butterfly for the output, the recursive-halving reduce-scatter for dL/da of hidden
    layers, masked padding lanes (j ≥ n). The kernel contracts a·b + c into FMAs, this does
    not: the two agree to rounding, not bit for bit.
    """
    lanes = int(name.split("_n")[1].split("_")[0])
    depth = int(name.rsplit("_d", 1)[1])
    dt = w0.dtype
    t_ = dt.type
    p = len(lr_in)
    lane = np.arange(lanes)
    real = lane < n  # (N,)
    inv = t_(1.0 / np.sqrt(float(n)))
    scale_full = t_(2.0 / batch)
    scale_mb = t_(2.0 / minibatch) if minibatch else t_(0)
    # per lane j: column j of each matrix (W[p, j, i] = W_k[i, j]), zero-padded to N x N
    mats = []
    pos = 0
    for _ in range(depth - 1):
        w = np.zeros((lanes, lanes), dt)
        w[:n, :n] = w0[pos : pos + n * n].reshape(n, n).T
        pos += n * n
        mats.append(np.repeat(w[None], p, axis=0))
    mats[0][:, :n, :n] += offset[:, None, None]
    wd = np.zeros((p, lanes), dt)
    wd[:, :n] = w0[pos : pos + n]
    lrs = [lr_in if k % 2 == 0 else lr_out for k in range(depth)]
    losses = np.empty((p, steps), np.float64)

    def pass_(rows: np.ndarray, grads: list[np.ndarray] | None, scale: t_) -> np.ndarray:
        loss = np.zeros(p, dt)
        for r in rows:
            xr, yr = x[r], y[r]
            acc = np.zeros((p, lanes), dt)
            for i in range(n):
                acc = acc + xr[i] * mats[0][:, :, i]
            zs = [acc * inv]
            as_ = [np.where(real, _train_phi(zs[0], act), t_(0))]
            for h in range(1, depth - 1):
                s = np.zeros((p, lanes), dt)
                for i in range(n):
                    s = s + as_[-1][:, i : i + 1] * mats[h][:, :, i]
                zs.append(s * inv)
                as_.append(np.where(real, _train_phi(zs[-1], act), t_(0)))
            s = np.where(real, as_[-1] * wd, t_(0))
            o = lanes // 2
            while o:
                s = s + s[:, lane ^ o]
                o //= 2
            res = (s[:, 0] * inv) * inv - yr
            loss = loss + res * res
            if grads is None:
                continue
            dz = (scale * res) * inv  # (P,)
            grads[-1] += as_[-1] * dz[:, None]
            dzj = np.where(real, ((dz[:, None] * wd) * inv) * _train_dphi(zs[-1], as_[-1], act), 0)
            dzj = dzj.astype(dt)
            for h in range(depth - 3, -1, -1):  # mats[h + 1] maps as_[h] to zs[h + 1]
                for i in range(n):
                    grads[h + 1][:, :, i] += as_[h][:, i : i + 1] * dzj
                v = mats[h + 1] * dzj[:, :, None]
                o = lanes // 2
                while o:
                    up = ((lane & o) != 0)[None, :]
                    for t in range(o):
                        send = np.where(up, v[:, :, t], v[:, :, t + o])
                        keep = np.where(up, v[:, :, t + o], v[:, :, t])
                        v[:, :, t] = keep + send[:, lane ^ o]
                    o //= 2
                dzj = np.where(real, (v[:, :, 0] * inv) * _train_dphi(zs[h], as_[h], act), 0)
                dzj = dzj.astype(dt)
            for i in range(n):
                grads[0][:, :, i] += xr[i] * dzj
        return loss

    with np.errstate(all="ignore"):
        for t in range(steps):
            grads = [np.zeros_like(m) for m in mats] + [np.zeros_like(wd)]
            if minibatch:
                loss = pass_(np.arange(batch), None, scale_full)
                pass_(mb[t * minibatch : (t + 1) * minibatch], grads, scale_mb)
            else:
                loss = pass_(np.arange(batch), grads, scale_full)
            losses[:, t] = loss / t_(batch)
            for k, g in enumerate(grads):
                lr = lrs[k][:, None, None] if k < depth - 1 else lrs[k][:, None]
                w = mats[k] if k < depth - 1 else wd
                upd = w - lr * (g * inv)
                if k < depth - 1:
                    w[:, :n, :n] = upd[:, :n, :n]
                else:
                    w[:, :n] = upd[:, :n]
    return losses
