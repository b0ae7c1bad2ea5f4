"""Training small MLPs on CPUs with Numba: one network per point, the whole step loop compiled.

The compiled twin of :func:`pipeline.experiments.trainability.reference.train_losses` (same
network, loss, gradients and update; docs/conventions.md): every point trains its own copy of
the shared initial weights in buffers of its own (a few tens of kB: they stay in L1/L2), with
lane blocks of :data:`LANES` points, and contiguous runs of blocks on ``threads`` threads (the
kernel releases the GIL; no ``prange``, whose compilation costs seconds per process), so a
point's numbers depend on nothing but the point (not its chunk, its neighbours, its lane or the
thread count). Loops are ordered so that the inner loop runs
over a block of points' lanes or a contiguous row (vectorised without reassociating any
sum), tanh is :func:`pipeline.numerics.vecmath.tanh64` (vectorisable), ``fastmath`` is off
(no FMA contraction, IEEE semantics), and sums run in a fixed sequential order; they differ
from BLAS's order, so values agree with NumPy to rounding, not bit for bit (the measured
contract is in docs/conventions.md).

Numba is optional: importing this module without it raises ``ImportError``; the ``numba``
backend (:func:`pipeline.gpu.backend.resolve_backend`) checks for it first.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from pipeline.errors import PipelineError
from pipeline.experiments.trainability.activations import TRAIN_ACTIVATIONS
from pipeline.numerics.vecmath import tanh64

__all__ = ["ACTIVATION_IDS", "LANES", "train_losses_compiled"]

ACTIVATION_IDS = {name: i for i, name in enumerate(TRAIN_ACTIVATIONS)}  # the table's order
"""The activations of :data:`.reference.TRAIN_ACTIVATIONS` the kernel knows: tanh(√2 z),
√2·relu(z), z, sigmoid(z)."""

_SQRT2 = math.sqrt(2.0)


LANES = 8
"""Points trained side by side by one thread: lane l of every buffer belongs to point l of the
block, and every operation is elementwise across lanes (one SIMD vector of float64 with
AVX-512, two of float32 for AVX2), so no lane ever reads another: a point's numbers do not
depend on its lane, its block or the thread count. Inert lanes pad the last block."""

_JIT = {"cache": True, "error_model": "numpy"}  # numpy: no zero-division checks, so loops vectorise


@njit(**_JIT)
def _activate(z, dst, count, act, consts):  # noqa: ANN001, ANN202
    """dst[q] = φ(z[q] · inv), q < count (flat (n, LANES) blocks)."""
    inv, c_sqrt2, c_half, c_one, c_zero = consts[0], consts[1], consts[2], consts[3], consts[4]
    if act == 0:  # tanh(√2 z); float32 rounds the float64 tanh once, at the store
        for q in range(count):
            dst[q] = tanh64(float(c_sqrt2 * (z[q] * inv)))
    elif act == 1:  # √2 relu(z), NaN stays NaN
        for q in range(count):
            v = z[q] * inv
            dst[q] = c_sqrt2 * (v if v > c_zero else c_zero) if v == v else v
    elif act == 2:
        for q in range(count):
            dst[q] = z[q] * inv
    else:  # sigmoid = ½(1 + tanh(z/2)), the tanh rounded to the dtype as in the reference
        for q in range(count):
            dst[q] = tanh64(float(c_half * (z[q] * inv)))
        for q in range(count):
            dst[q] = c_half * (c_one + dst[q])


@njit(**_JIT)
def _dphi(a, act, c_sqrt2, c_one, c_zero):  # noqa: ANN001, ANN202
    """φ'(z) from a = φ(z): √2(1 − a²), √2·[a > 0], 1, a(1 − a)."""
    if act == 0:
        return c_sqrt2 * (c_one - a * a)
    if act == 1:
        return c_sqrt2 if a > 0 else c_zero
    if act == 2:
        return c_one
    return a * (c_one - a)


@njit(**_JIT)
def _layer0_forward(x, rows, count, w, zs, n, depth):  # noqa: ANN001, ANN202
    """Layer 0's sums x·W₀ of ``count`` (≤ 4) data rows ``rows[:count]`` into ``zs[:count]``
    (each row's sum in the sequential order; four rows share every load of W₀). The input row
    is the same for every lane."""
    cnt = (n if depth > 1 else 1) * LANES
    for s in range(count):
        zr = zs[s]
        for q in range(cnt):
            zr[q] = 0
    if count == 4:
        z0, z1, z2, z3 = zs[0], zs[1], zs[2], zs[3]
        for i in range(n):
            x0, x1, x2, x3 = x[rows[0], i], x[rows[1], i], x[rows[2], i], x[rows[3], i]
            base = i * cnt
            for q in range(cnt):
                wv = w[base + q]
                z0[q] += x0 * wv
                z1[q] += x1 * wv
                z2[q] += x2 * wv
                z3[q] += x3 * wv
        return
    for s in range(count):
        zr = zs[s]
        for i in range(n):
            xi = x[rows[s], i]
            base = i * cnt
            for q in range(cnt):
                zr[q] += xi * w[base + q]


@njit(**_JIT)
def _forward_row(z, w, offs, n, depth, acts, f, act, consts):  # noqa: ANN001, ANN202
    """One data row through every lane's network from its layer-0 sums ``z``
    (:func:`_layer0_forward`; overwritten). Flat lane-minor layouts: weight q of lane l at
    ``w[q * LANES + l]``; hidden outputs of layer k into ``acts[k]`` (n * LANES); the output f
    (before subtracting y) into ``f`` (LANES,)."""
    inv = consts[0]
    if depth == 1:
        for lane in range(LANES):
            f[lane] = (z[lane] * inv) * inv
        return
    _activate(z, acts[1], n * LANES, act, consts)
    for k in range(1, depth - 1):  # hidden to hidden (depth >= 3)
        a = acts[k]
        o = offs[k] * LANES
        for q in range(n * LANES):
            z[q] = 0
        for i in range(n):
            for j in range(n):
                base = o + (i * n + j) * LANES
                for lane in range(LANES):
                    z[j * LANES + lane] += a[i * LANES + lane] * w[base + lane]
        _activate(z, acts[k + 1], n * LANES, act, consts)
    a = acts[depth - 1]
    o = offs[depth - 1] * LANES
    for lane in range(LANES):
        f[lane] = 0
    for i in range(n):
        for lane in range(LANES):
            f[lane] += a[i * LANES + lane] * w[o + i * LANES + lane]
    for lane in range(LANES):
        f[lane] = (f[lane] * inv) * inv


@njit(**_JIT)
def _backward_row(x, b, w, g, offs, n, depth, acts, r, dz, da, pend, coef, act, consts):  # noqa: ANN001, ANN202
    """Add the gradient of data row ``x[b]`` (residuals r, (LANES,)) to ``g`` (before the
    final factor 1/√n), from the activations of the last :func:`_forward_row`; layer 0's
    part is left in ``pend`` for :func:`_flush_layer0`."""
    inv, c_sqrt2, c_one, c_zero = consts[0], consts[1], consts[3], consts[4]
    for lane in range(LANES):
        dz[lane] = (coef * r[lane]) * inv
    if depth > 1:
        a = acts[depth - 1]
        o = offs[depth - 1] * LANES
        for i in range(n):
            for lane in range(LANES):
                g[o + i * LANES + lane] += a[i * LANES + lane] * dz[lane]
        for i in range(n):
            for lane in range(LANES):
                v = a[i * LANES + lane]
                da[i * LANES + lane] = ((dz[lane] * w[o + i * LANES + lane]) * inv) * _dphi(
                    v, act, c_sqrt2, c_one, c_zero
                )
    for k in range(depth - 2, 0, -1):  # hidden to hidden (depth >= 3); da: dL/dz_k
        a = acts[k]
        o = offs[k] * LANES
        for i in range(n):
            for j in range(n):
                base = o + (i * n + j) * LANES
                for lane in range(LANES):
                    g[base + lane] += a[i * LANES + lane] * da[j * LANES + lane]
        for i in range(n):
            for lane in range(LANES):
                dz[i * LANES + lane] = 0
            for j in range(n):
                base = o + (i * n + j) * LANES
                for lane in range(LANES):
                    dz[i * LANES + lane] += da[j * LANES + lane] * w[base + lane]
            for lane in range(LANES):
                v = a[i * LANES + lane]
                dz[i * LANES + lane] = (dz[i * LANES + lane] * inv) * _dphi(
                    v, act, c_sqrt2, c_one, c_zero
                )
        for q in range(n * LANES):
            da[q] = dz[q]
    src = da if depth > 1 else dz
    cnt = (n if depth > 1 else 1) * LANES
    for q in range(cnt):  # layer 0's dL/dz waits in ``pend`` (see _flush_layer0)
        pend[q] = src[q]


@njit(**_JIT)
def _flush_layer0(x, rows, pend, count, g, n, depth):  # noqa: ANN001, ANN202
    """Add the layer-0 gradients of ``count`` (≤ 4) rows (data rows ``rows[:count]``, their
    dL/dz in ``pend[:count]``) to ``g`` in row order: g ← (((g + r₀) + r₁) + r₂) + r₃, the
    sequential sum, with one load and store of g per four rows."""
    cnt = (n if depth > 1 else 1) * LANES
    if count == 4:
        p0, p1, p2, p3 = pend[0], pend[1], pend[2], pend[3]
        for i in range(n):
            x0, x1, x2, x3 = x[rows[0], i], x[rows[1], i], x[rows[2], i], x[rows[3], i]
            base = i * cnt
            for q in range(cnt):
                g[base + q] = (((g[base + q] + x0 * p0[q]) + x1 * p1[q]) + x2 * p2[q]) + x3 * p3[q]
        return
    for s in range(count):
        ps = pend[s]
        for i in range(n):  # the input row is the same for every lane
            xi = x[rows[s], i]
            base = i * cnt
            for q in range(cnt):
                g[base + q] += xi * ps[q]


@njit(cache=True, error_model="numpy", nogil=True)
def _train_kernel(  # noqa: ANN202
    w0,  # (n_params,) shared initial weights, flat, dtype
    offs,  # (depth,) int64 first entry of each layer in w0
    width,
    depth,
    x,  # (B, n) dtype
    y,  # (B,) dtype
    act,
    lr_in,  # (P,) dtype
    lr_out,  # (P,) dtype
    offset,  # (P,) dtype
    steps,
    mb_idx,  # (steps, m) int64; m = 0 columns: full batch
    offset_every_step,
    consts,  # dtype: inv, √2, 0.5, 1, 0, 2/B, 2/m
    losses,  # (P, steps) float64, out
):
    p_total = lr_in.shape[0]
    n = width
    bsz = x.shape[0]
    m = mb_idx.shape[1]
    npar = w0.shape[0]
    n0 = n * (n if depth > 1 else 1)  # entries of the input layer
    dt = w0.dtype
    n_blocks = (p_total + LANES - 1) // LANES
    for blk in range(n_blocks):
        w = np.empty(npar * LANES, dt)
        g = np.empty(npar * LANES, dt)
        lr = np.zeros(npar * LANES, dt)
        off = np.zeros(LANES, dt)
        acts = np.empty((depth, n * LANES), dt)
        zs = np.empty((4, n * LANES), dt)
        dz = np.empty(n * LANES, dt)
        da = np.empty(n * LANES, dt)
        pend = np.empty((4, n * LANES), dt)
        rows = np.empty(4, np.int64)
        f = np.empty(LANES, dt)
        r = np.empty(LANES, dt)
        mean = np.empty(LANES, dt)
        acc = np.empty(LANES, np.float64)
        for lane in range(LANES):
            pt = blk * LANES + lane
            if pt < p_total:  # else an inert lane: learning rate 0
                off[lane] = offset[pt]
                for k in range(depth):
                    end = offs[k + 1] if k + 1 < depth else npar
                    v = lr_in[pt] if k % 2 == 0 else lr_out[pt]
                    for q in range(offs[k], end):
                        lr[q * LANES + lane] = v
        for q in range(npar):
            for lane in range(LANES):
                w[q * LANES + lane] = w0[q]
        if not offset_every_step:
            for q in range(n0):
                for lane in range(LANES):
                    w[q * LANES + lane] += off[lane]
        for t in range(steps):
            if offset_every_step:
                for q in range(n0):
                    for lane in range(LANES):
                        w[q * LANES + lane] += off[lane]
            for q in range(npar * LANES):
                g[q] = 0
            for lane in range(LANES):
                acc[lane] = 0.0
            for b0 in range(0, bsz, 4):  # the full batch: the loss (and the gradient without m)
                ns = min(4, bsz - b0)
                for s in range(ns):
                    rows[s] = b0 + s
                _layer0_forward(x, rows, ns, w, zs, n, depth)
                for s in range(ns):
                    b = rows[s]
                    _forward_row(zs[s], w, offs, n, depth, acts, f, act, consts)
                    for lane in range(LANES):
                        r[lane] = f[lane] - y[b]
                        acc[lane] += float(r[lane]) * float(r[lane])
                    if m == 0:
                        _backward_row(
                            x,
                            b,
                            w,
                            g,
                            offs,
                            n,
                            depth,
                            acts,
                            r,
                            dz,
                            da,
                            pend[s],
                            consts[5],
                            act,
                            consts,
                        )
                if m == 0:
                    _flush_layer0(x, rows, pend, ns, g, n, depth)
            for lane in range(LANES):
                mean[lane] = acc[lane] / bsz  # rounded to the dtype, as the reference's
                pt = blk * LANES + lane
                if pt < p_total:
                    losses[pt, t] = mean[lane]
            for b0 in range(0, m, 4):  # the minibatch's gradient
                ns = min(4, m - b0)
                for s in range(ns):
                    rows[s] = mb_idx[t, b0 + s]
                _layer0_forward(x, rows, ns, w, zs, n, depth)
                for s in range(ns):
                    row = rows[s]
                    _forward_row(zs[s], w, offs, n, depth, acts, f, act, consts)
                    for lane in range(LANES):
                        r[lane] = f[lane] - y[row]
                    _backward_row(
                        x,
                        row,
                        w,
                        g,
                        offs,
                        n,
                        depth,
                        acts,
                        r,
                        dz,
                        da,
                        pend[s],
                        consts[6],
                        act,
                        consts,
                    )
                _flush_layer0(x, rows, pend, ns, g, n, depth)
            inv = consts[0]
            for q in range(npar * LANES):
                w[q] -= lr[q] * (g[q] * inv)


def train_losses_compiled(
    weights: tuple[np.ndarray, ...],
    x: np.ndarray,
    y: np.ndarray,
    activation: str,
    lr_in: np.ndarray,
    lr_out: np.ndarray,
    offset: np.ndarray,
    *,
    steps: int,
    dtype: np.dtype,
    minibatch_idx: np.ndarray | None,
    offset_every_step: bool,
    threads: int,
) -> np.ndarray:
    """Full-batch MSE loss before each step of gradient descent, one network per point.

    ``weights[k]``: (n, fan_out_k) shared initial weights (fan_out n, the last 1); ``x`` (B, n),
    ``y`` (B, 1); ``lr_in``, ``lr_out``, ``offset``: (P,) learning rates (not logs) of the
    even / odd layers (0-based k) and the input-layer offset. ``offset`` is added to every
    input-layer weight once at initialisation, or, with ``offset_every_step``, before every
    step's forward pass (it accumulates). ``minibatch_idx`` (steps, m) int64: the gradient
    of step t uses rows ``minibatch_idx[t]`` while the recorded loss is the full batch's;
    None: full-batch gradients. Computes in ``dtype`` (float32 or float64) on ``threads``
    threads (the numbers do not depend on it). Returns (P, steps) float64, not normalised.
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise PipelineError(f"dtype: value {dt.name!r} is not float32 or float64")
    if activation not in ACTIVATION_IDS:
        raise PipelineError(
            f"activation: unknown value {activation!r} (allowed: {', '.join(ACTIVATION_IDS)})"
        )
    depth = len(weights)
    x = np.ascontiguousarray(x, dt)
    bsz, n = x.shape
    for k, w in enumerate(weights):
        want = (n, n if k < depth - 1 else 1)
        if w.shape != want:
            raise PipelineError(f"weights[{k}]: shape {w.shape}, expected {want}")
    sizes = [w.size for w in weights]
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    w0 = np.concatenate([np.asarray(w, np.float64).ravel() for w in weights]).astype(dt)
    p = len(lr_in)
    if minibatch_idx is None:
        mb = np.zeros((steps, 0), np.int64)
    else:
        mb = np.ascontiguousarray(minibatch_idx, np.int64)
        if mb.shape[0] < steps or mb.ndim != 2:
            raise PipelineError(f"minibatch_idx: shape {mb.shape}, expected ({steps}, m)")
        if mb.size and (mb.min() < 0 or mb.max() >= bsz):
            raise PipelineError(f"minibatch_idx: indices outside 0..{bsz - 1}")
    m = mb.shape[1]
    consts = np.array([1.0 / math.sqrt(n), _SQRT2, 0.5, 1.0, 0.0, 2.0 / bsz, 2.0 / max(m, 1)], dt)
    losses = np.empty((p, steps), np.float64)
    args_lr = [np.asarray(v, np.float64).astype(dt) for v in (lr_in, lr_out, offset)]
    y1 = np.ascontiguousarray(np.asarray(y).reshape(-1), dt)
    act = ACTIVATION_IDS[activation]

    def run(a: int, b: int) -> None:  # points a..b-1 (a a multiple of LANES)
        _train_kernel(
            w0,
            offs,
            n,
            depth,
            x,
            y1,
            act,
            *(v[a:b] for v in args_lr),
            int(steps),
            mb,
            bool(offset_every_step),
            consts,
            losses[a:b],
        )

    n_blocks = -(-p // LANES)
    workers = max(1, min(int(threads), n_blocks))
    cuts = [LANES * (n_blocks * i // workers) for i in range(workers)] + [p]
    spans = [(a, min(b, p)) for a, b in zip(cuts, cuts[1:], strict=False) if a < min(b, p)]
    if workers == 1:
        for a, b in spans:
            run(a, b)
    else:  # the kernel releases the GIL: one thread per contiguous run of lane blocks
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda ab: run(*ab), spans))
    return losses
