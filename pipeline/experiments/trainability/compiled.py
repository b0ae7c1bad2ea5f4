"""Training small MLPs on CPUs with Numba: one network per point, the whole step loop compiled.

The compiled twin of :func:`pipeline.experiments.trainability.reference.train_losses` (same
network, loss, gradients and update; docs/conventions.md). A thread trains its points one
after another, each in buffers of its own: the point's weights and gradient (a few kB) and its
activations laid out batch-minor, (n, B), so that every loop runs over the batch axis and
vectorises (the data are transposed once per call and shared by every point). Threads take
contiguous runs of points (the kernel releases the GIL; no ``prange``, whose compilation costs
seconds per process), so a point's numbers depend on nothing but the point (not its chunk,
its neighbours or the thread count).

Arithmetic (the contract is in docs/conventions.md, section 6): the layer products z = W x and
Wᵀ δ sum over the input units in their sequential order, register-blocked (four outputs and
four inputs at a time), with FMA contraction; the gradient sums over the batch (Σ_b a δ) are
vectorised reductions in the compiler's order (partial sums per SIMD lane, fixed for a given
CPU and Numba build); the loss is a float64 sequential sum. tanh is
:func:`pipeline.numerics.vecmath.tanh64` (vectorisable). So values agree with NumPy to
rounding, not bit for bit.

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

__all__ = ["ACTIVATION_IDS", "train_losses_compiled"]

ACTIVATION_IDS = {name: i for i, name in enumerate(TRAIN_ACTIVATIONS)}  # the table's order
"""The activations of :data:`.reference.TRAIN_ACTIVATIONS` the kernel knows: tanh(√2 z),
√2·relu(z), z, sigmoid(z)."""

_SQRT2 = math.sqrt(2.0)

# numpy error model: no zero-division checks, so loops vectorise; "contract": a·b + c may be
# one FMA (rounded once); no reassociation except in _outer's batch reductions.
_JIT = {"cache": True, "error_model": "numpy", "fastmath": {"contract"}, "nogil": True}
_JIT_REDUCE = {
    "cache": True,
    "error_model": "numpy",
    "fastmath": {"contract", "reassoc"},
    "nogil": True,
}


@njit(**_JIT)
def _mat(w, o, n_in, n_out, src, dst, nb):  # noqa: ANN001, ANN202
    """dst[j, :nb] = Σ_i w[o + i·n_out + j] · src[i, :nb] (i in order), j < n_out.

    ``w[o:]``: the layer's (n_in, n_out) weights, row-major; ``src`` (n_in, ≥ nb), ``dst``
    (n_out, ≥ nb). Four outputs × four inputs per pass over the batch."""
    j = 0
    while j + 4 <= n_out:
        d0, d1, d2, d3 = dst[j], dst[j + 1], dst[j + 2], dst[j + 3]
        for b in range(nb):
            d0[b] = 0
            d1[b] = 0
            d2[b] = 0
            d3[b] = 0
        i = 0
        while i + 4 <= n_in:
            s0, s1, s2, s3 = src[i], src[i + 1], src[i + 2], src[i + 3]
            r0 = o + i * n_out + j
            r1 = r0 + n_out
            r2 = r1 + n_out
            r3 = r2 + n_out
            a0, a1, a2, a3 = w[r0], w[r0 + 1], w[r0 + 2], w[r0 + 3]
            c0, c1, c2, c3 = w[r1], w[r1 + 1], w[r1 + 2], w[r1 + 3]
            e0, e1, e2, e3 = w[r2], w[r2 + 1], w[r2 + 2], w[r2 + 3]
            f0, f1, f2, f3 = w[r3], w[r3 + 1], w[r3 + 2], w[r3 + 3]
            for b in range(nb):
                x0, x1, x2, x3 = s0[b], s1[b], s2[b], s3[b]
                d0[b] = (((d0[b] + a0 * x0) + c0 * x1) + e0 * x2) + f0 * x3
                d1[b] = (((d1[b] + a1 * x0) + c1 * x1) + e1 * x2) + f1 * x3
                d2[b] = (((d2[b] + a2 * x0) + c2 * x1) + e2 * x2) + f2 * x3
                d3[b] = (((d3[b] + a3 * x0) + c3 * x1) + e3 * x2) + f3 * x3
            i += 4
        while i < n_in:
            s0 = src[i]
            r0 = o + i * n_out + j
            a0, a1, a2, a3 = w[r0], w[r0 + 1], w[r0 + 2], w[r0 + 3]
            for b in range(nb):
                x0 = s0[b]
                d0[b] += a0 * x0
                d1[b] += a1 * x0
                d2[b] += a2 * x0
                d3[b] += a3 * x0
            i += 1
        j += 4
    while j < n_out:
        d = dst[j]
        for b in range(nb):
            d[b] = 0
        i = 0
        while i + 4 <= n_in:
            s0, s1, s2, s3 = src[i], src[i + 1], src[i + 2], src[i + 3]
            r0 = o + i * n_out + j
            a0, a1, a2, a3 = w[r0], w[r0 + n_out], w[r0 + 2 * n_out], w[r0 + 3 * n_out]
            for b in range(nb):
                d[b] = (((d[b] + a0 * s0[b]) + a1 * s1[b]) + a2 * s2[b]) + a3 * s3[b]
            i += 4
        while i < n_in:
            a0 = w[o + i * n_out + j]
            s0 = src[i]
            for b in range(nb):
                d[b] += a0 * s0[b]
            i += 1
        j += 1


@njit(**_JIT)
def _mat_t(w, o, n_in, n_out, src, dst, nb):  # noqa: ANN001, ANN202
    """dst[i, :nb] = Σ_j w[o + i·n_out + j] · src[j, :nb] (j in order), i < n_in: the
    transposed product (backpropagation through a hidden layer)."""
    for i in range(n_in):
        d = dst[i]
        for b in range(nb):
            d[b] = 0
        base = o + i * n_out
        j = 0
        while j + 4 <= n_out:
            a0, a1, a2, a3 = w[base + j], w[base + j + 1], w[base + j + 2], w[base + j + 3]
            s0, s1, s2, s3 = src[j], src[j + 1], src[j + 2], src[j + 3]
            for b in range(nb):
                d[b] = (((d[b] + a0 * s0[b]) + a1 * s1[b]) + a2 * s2[b]) + a3 * s3[b]
            j += 4
        while j < n_out:
            a0 = w[base + j]
            s0 = src[j]
            for b in range(nb):
                d[b] += a0 * s0[b]
            j += 1


@njit(**_JIT_REDUCE)
def _outer(a, d, g, o, n_in, n_out, nb, zero):  # noqa: ANN001, ANN202
    """g[o + i·n_out + j] += Σ_b a[i, b] · d[j, b] over b < nb (the weight gradient of one
    layer; the batch sum vectorised, in the compiler's order; accumulated in the dtype of
    ``zero``). Four inputs × two outputs per pass."""
    i = 0
    while i + 4 <= n_in:
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        j = 0
        while j + 2 <= n_out:
            e0, e1 = d[j], d[j + 1]
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
            for b in range(nb):
                p, q = e0[b], e1[b]
                s00 += a0[b] * p
                s01 += a0[b] * q
                s10 += a1[b] * p
                s11 += a1[b] * q
                s20 += a2[b] * p
                s21 += a2[b] * q
                s30 += a3[b] * p
                s31 += a3[b] * q
            r = o + i * n_out + j
            g[r] += s00
            g[r + 1] += s01
            g[r + n_out] += s10
            g[r + n_out + 1] += s11
            g[r + 2 * n_out] += s20
            g[r + 2 * n_out + 1] += s21
            g[r + 3 * n_out] += s30
            g[r + 3 * n_out + 1] += s31
            j += 2
        while j < n_out:
            e0 = d[j]
            s0 = s1 = s2 = s3 = zero
            for b in range(nb):
                p = e0[b]
                s0 += a0[b] * p
                s1 += a1[b] * p
                s2 += a2[b] * p
                s3 += a3[b] * p
            r = o + i * n_out + j
            g[r] += s0
            g[r + n_out] += s1
            g[r + 2 * n_out] += s2
            g[r + 3 * n_out] += s3
            j += 1
        i += 4
    while i < n_in:
        a0 = a[i]
        for j in range(n_out):
            e0 = d[j]
            s0 = zero
            for b in range(nb):
                s0 += a0[b] * e0[b]
            g[o + i * n_out + j] += s0
        i += 1


@njit(**_JIT)
def _tanh_rows(z, dst, n, nb, scale, inv):  # noqa: ANN001, ANN202
    """dst[j, b] = tanh(scale · (z[j, b] · inv)) in float64 (float32 rounds once, at the
    store). Its own function: one loop LLVM vectorises whole."""
    for j in range(n):
        zj = z[j]
        dj = dst[j]
        for b in range(nb):
            dj[b] = tanh64(float(scale * (zj[b] * inv)))


@njit(**_JIT)
def _activate(z, dst, n, nb, act, consts):  # noqa: ANN001, ANN202
    """dst[j, b] = φ(z[j, b] · inv) for j < n, b < nb: tanh(√2 ·), √2·relu (NaN stays NaN),
    identity, sigmoid = ½(1 + tanh(· / 2))."""
    inv, c_sqrt2, c_half, c_one, c_zero = consts[0], consts[1], consts[2], consts[3], consts[4]
    if act == 0:
        _tanh_rows(z, dst, n, nb, c_sqrt2, inv)
    elif act == 1:
        for j in range(n):
            zj = z[j]
            dj = dst[j]
            for b in range(nb):
                v = zj[b] * inv
                dj[b] = c_sqrt2 * (v if v > c_zero else c_zero) if v == v else v
    elif act == 2:
        for j in range(n):
            zj = z[j]
            dj = dst[j]
            for b in range(nb):
                dj[b] = zj[b] * inv
    else:
        _tanh_rows(z, dst, n, nb, c_half, inv)
        for j in range(n):
            dj = dst[j]
            for b in range(nb):
                dj[b] = c_half * (c_one + dj[b])


@njit(**_JIT)
def _scale_dphi(d, a, n, nb, act, consts):  # noqa: ANN001, ANN202
    """d[i, b] ← (d[i, b] · inv) · φ'(z), with φ'(z) from a = φ(z): √2(1 − a²), √2·[a > 0],
    1, a(1 − a)."""
    inv, c_sqrt2, c_one, c_zero = consts[0], consts[1], consts[3], consts[4]
    for i in range(n):
        di = d[i]
        ai = a[i]
        if act == 0:
            for b in range(nb):
                v = ai[b]
                di[b] = (di[b] * inv) * (c_sqrt2 * (c_one - v * v))
        elif act == 1:
            for b in range(nb):
                di[b] = (di[b] * inv) * (c_sqrt2 if ai[b] > 0 else c_zero)
        elif act == 2:
            for b in range(nb):
                di[b] = (di[b] * inv) * c_one
        else:
            for b in range(nb):
                v = ai[b]
                di[b] = (di[b] * inv) * (v * (c_one - v))


@njit(**_JIT)
def _output_delta(dz, w, last, a, da, n, nb, act, consts):  # noqa: ANN001, ANN202
    """δ through the output layer: da[i, b] = ((dz[b] · w[last + i]) · inv) · φ'(z), φ'(z)
    from a = φ(z) as in :func:`_scale_dphi`, in one pass."""
    inv, c_sqrt2, c_one, c_zero = consts[0], consts[1], consts[3], consts[4]
    for i in range(n):
        wi = w[last + i]
        di = da[i]
        ai = a[i]
        if act == 0:
            for b in range(nb):
                v = ai[b]
                di[b] = ((dz[b] * wi) * inv) * (c_sqrt2 * (c_one - v * v))
        elif act == 1:
            for b in range(nb):
                di[b] = ((dz[b] * wi) * inv) * (c_sqrt2 if ai[b] > 0 else c_zero)
        elif act == 2:
            for b in range(nb):
                di[b] = ((dz[b] * wi) * inv) * c_one
        else:
            for b in range(nb):
                v = ai[b]
                di[b] = ((dz[b] * wi) * inv) * (v * (c_one - v))


@njit(**_JIT)
def _pass(w, offs, n, depth, xs, ys, nb, acts, zb, da, f, g, coef, grad, act, consts):  # noqa: ANN001, ANN202
    """One forward pass of the point's network (weights ``w``) over the nb columns of ``xs``
    (n, nb) with targets ``ys``; returns Σ_b r_b² in float64 (r = output − y). With ``grad``
    adds coef·Σ_b ∂(r_b²/2)/∂w to ``g`` (before the update's final factor 1/√n). Buffers:
    ``acts`` (depth − 1, n, ≥ nb) the hidden activations, ``zb``, ``da`` (n, ≥ nb), ``f``
    (1, ≥ nb)."""
    inv, zero = consts[0], consts[4]
    src = xs
    for k in range(depth - 1):
        _mat(w, offs[k], n, n, src, zb, nb)
        _activate(zb, acts[k], n, nb, act, consts)
        src = acts[k]
    _mat(w, offs[depth - 1], n, 1, src, f, nb)
    f0 = f[0]
    acc = 0.0
    for b in range(nb):
        r = (f0[b] * inv) * inv - ys[b]
        f0[b] = r
        acc += float(r) * float(r)
    if not grad:
        return acc
    for b in range(nb):
        f0[b] = (coef * f0[b]) * inv  # dL/d(output pre-activation)
    if depth == 1:
        _outer(xs, f, g, 0, n, 1, nb, zero)
        return acc
    last = offs[depth - 1]
    _outer(acts[depth - 2], f, g, last, n, 1, nb, zero)
    _output_delta(f0, w, last, acts[depth - 2], da, n, nb, act, consts)
    for k in range(depth - 2, 0, -1):  # hidden to hidden (depth >= 3)
        _outer(acts[k - 1], da, g, offs[k], n, n, nb, zero)
        _mat_t(w, offs[k], n, n, da, zb, nb)
        _scale_dphi(zb, acts[k - 1], n, nb, act, consts)
        for i in range(n):
            for b in range(nb):
                da[i, b] = zb[i, b]
    _outer(xs, da, g, 0, n, n, nb, zero)
    return acc


@njit(**_JIT)
def _train_kernel(  # noqa: ANN202
    w0,  # (n_params,) shared initial weights, flat, dtype
    offs,  # (depth,) int64 first entry of each layer in w0
    width,
    depth,
    xt,  # (n, B) dtype: the data, transposed
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
    bsz = xt.shape[1]
    m = mb_idx.shape[1]
    npar = w0.shape[0]
    n0 = n * (n if depth > 1 else 1)  # entries of the input layer
    dt = w0.dtype
    w = np.empty(npar, dt)
    g = np.empty(npar, dt)
    lr = np.empty(npar, dt)
    acts = np.empty((max(depth - 1, 1), n, bsz), dt)
    zb = np.empty((n, bsz), dt)
    da = np.empty((n, bsz), dt)
    f = np.empty((1, bsz), dt)
    xm = np.empty((n, max(m, 1)), dt)
    ym = np.empty(max(m, 1), dt)
    mean = np.empty(1, dt)
    inv = consts[0]
    for pt in range(p_total):
        off = offset[pt]
        for k in range(depth):
            end = offs[k + 1] if k + 1 < depth else npar
            v = lr_in[pt] if k % 2 == 0 else lr_out[pt]
            for q in range(offs[k], end):
                lr[q] = v
        for q in range(npar):
            w[q] = w0[q]
        if not offset_every_step:
            for q in range(n0):
                w[q] += off
        for t in range(steps):
            if offset_every_step:
                for q in range(n0):
                    w[q] += off
            for q in range(npar):
                g[q] = 0
            acc = _pass(
                w, offs, n, depth, xt, y, bsz, acts, zb, da, f, g, consts[5], m == 0, act, consts
            )
            mean[0] = acc / bsz  # rounded to the dtype, as the reference's
            losses[pt, t] = mean[0]
            if m > 0:  # the minibatch's gradient; the recorded loss is the full batch's
                for s in range(m):
                    row = mb_idx[t, s]
                    ym[s] = y[row]
                    for i in range(n):
                        xm[i, s] = xt[i, row]
                _pass(
                    w, offs, n, depth, xm, ym, m, acts, zb, da, f, g, consts[6], True, act, consts
                )
            for q in range(npar):
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
    xt = np.ascontiguousarray(x.T)  # (n, B): the batch is the vectorised axis
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

    def run(a: int, b: int) -> None:  # points a..b-1
        _train_kernel(
            w0,
            offs,
            n,
            depth,
            xt,
            y1,
            act,
            *(v[a:b] for v in args_lr),
            int(steps),
            mb,
            bool(offset_every_step),
            consts,
            losses[a:b],
        )

    workers = max(1, min(int(threads), p))
    cuts = [p * i // workers for i in range(workers + 1)]
    spans = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]
    if workers == 1:
        for a, b in spans:
            run(a, b)
    else:  # the kernel releases the GIL: one thread per contiguous run of points
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda ab: run(*ab), spans))
    return losses
