"""NumPy emulation of a launch of the training kernel (``train.cu``), for tests.

:func:`run_train_kernel` is the NumPy twin of one ``ps_train_*`` launch: the kernel's
algorithm in its order of operations (sums over rows and inputs, the xor butterfly, the
reduce-scatter of hidden layers, masked padding lanes), vectorised over points.
:func:`pipeline.experiments.trainability.gpu.train_points` runs on it without a GPU
(``runner=run_train_kernel``), so everything but the CUDA code itself is tested in the normal
test run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.numerics.activations import ACTIVATIONS

__all__ = ["run_train_kernel"]

_TANH, _RELU, _SIGMOID, _LINEAR = (
    ACTIVATIONS[n].kernel_id for n in ("tanh", "relu", "sigmoid", "linear")
)

Act = tuple[int, np.floating, np.floating]
"""(kernel id, input gain, output gain) in the kernel's dtype, as ``train.cu``'s ``PtAct``."""


def _train_phi(z: np.ndarray, act: Act, tanh: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """gain_out · base(gain_in · z) (``pt_phi``; a gain of 1 multiplies exactly)."""
    t_ = z.dtype.type
    kid, g_in, g_out = act
    u = g_in * z
    if kid == _TANH:
        return g_out * tanh(u)
    if kid == _RELU:  # NaN propagates
        return g_out * np.where((u > 0) | np.isnan(u), u, t_(0))
    if kid == _SIGMOID:
        return g_out * (t_(0.5) * (t_(1) + tanh(t_(0.5) * u)))
    if kid == _LINEAR:
        return g_out * u
    raise ValueError(f"act: no training activation has kernel id {kid}")


def _train_dphi(z: np.ndarray, a: np.ndarray, act: Act) -> np.ndarray:
    """gain_in · gain_out · base'(gain_in · z) from a = φ(z) (``pt_dphi``)."""
    t_ = z.dtype.type
    kid, g_in, g_out = act
    g = g_in * g_out
    b = a / g_out
    if kid == _TANH:
        return g * (t_(1) - b * b)
    if kid == _RELU:
        return np.where(g_in * z > 0, g, t_(0))
    if kid == _SIGMOID:
        return g * (b * (t_(1) - b))
    if kid == _LINEAR:
        return np.full_like(z, g)
    raise ValueError(f"act: no training activation has kernel id {kid}")


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
    gain_in: float,
    gain_out: float,
    *,
    tanh: Callable[[np.ndarray], np.ndarray] = np.tanh,
) -> np.ndarray:
    """NumPy twin of a ``ps_train_*`` launch (``train.cu``): losses (P, steps) float64.
    ``act`` is the base activation's kernel id, ``gain_in`` / ``gain_out`` its gains
    (φ(z) = gain_out · base(gain_in · z), :data:`.reference.TRAIN_ACTIVATIONS`); an id the
    kernel has no case for is a ``ValueError`` (the kernel traps).

    Vectorised over points (axis 0) and lanes (axis 1: lane j owns hidden unit j); per lane
    the kernel's algorithm in its order: sequential sums over rows and over i, the xor
    butterfly for the output, the recursive-halving reduce-scatter for dL/da of hidden
    layers, masked padding lanes (j ≥ n). The kernel is compiled with ``--fmad=false``, so
    every product rounds before it is added, here too: the only difference left is the math
    library's ``tanh`` (NumPy's by default; ``tanh=`` takes another, e.g. CUDA's own from
    :mod:`pipeline.gpu.host_build`, which makes this the kernel's arithmetic throughout).
    """
    lanes = int(name.split("_n")[1].split("_")[0])
    depth = int(name.rsplit("_d", 1)[1])
    dt = w0.dtype
    t_ = dt.type
    p = len(lr_in)
    act_: Act = (int(act), t_(gain_in), t_(gain_out))
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
            as_ = [np.where(real, _train_phi(zs[0], act_, tanh), t_(0))]
            for h in range(1, depth - 1):
                s = np.zeros((p, lanes), dt)
                for i in range(n):
                    s = s + as_[-1][:, i : i + 1] * mats[h][:, :, i]
                zs.append(s * inv)
                as_.append(np.where(real, _train_phi(zs[-1], act_, tanh), t_(0)))
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
            dzj = np.where(real, ((dz[:, None] * wd) * inv) * _train_dphi(zs[-1], as_[-1], act_), 0)
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
                dzj = np.where(real, (v[:, :, 0] * inv) * _train_dphi(zs[h], as_[h], act_), 0)
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
