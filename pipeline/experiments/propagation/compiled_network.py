"""The elementwise pass of :func:`.network.propagate_architecture`, compiled with Numba.

:func:`.network.propagate_architecture` with ``backend="numba"`` keeps its tiles, draws
(keyed or from a draws file) and operator application (the dense GEMM is the same
``numpy.matmul``, into a buffer the tile keeps), and replaces the NumPy passes after it by one
compiled sweep per tile (:func:`_layer`): per row, h = σ_w · A(y) + σ_b · b (the same two
products and sum as NumPy, so h is bit-identical), its squared norm (the overflow flag),
y = φ(h) written into the next layer's operand, and per point the divergence probe's
err = Σ_i (y₁ − y₂)_i² · w. NumPy runs about ten passes over the tile for the same (SciPy's
erf alone costs more than the N = 100 GEMM); here each row is read once while it is in L1.

φ comes from :mod:`pipeline.numerics.vecmath` (erf ≤ 3 ulp of float64, tanh ≤ 3 ulp, both
vectorised; float32 runs compute in float64 and round once), so values agree with the NumPy
path to a few ulp per layer, not bit for bit; sums run in float64 with eight interleaved
partial sums in a fixed order (NumPy's pairwise order differs). docs/conventions.md §6 states
the contract. Circle and batch observables are computed by the NumPy code on the compiled h
and y; the pair probe and the complex (``struct``) state keep the NumPy pass
(:func:`supported`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from pipeline.experiments.propagation.architectures import Network, Operator
from pipeline.experiments.propagation.probes import Probes
from pipeline.numerics.observables import ROW_OBSERVABLES
from pipeline.numerics.vecmath import erf64, tanh64

__all__ = ["compiled_step", "supported"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


def supported(network: Network, probes: Probes, xp: Any) -> bool:
    """Whether the compiled pass computes this sweep: NumPy arrays, a real state (``dense``,
    ``conv``) and no pair probe (its tangent stays on the NumPy pass)."""
    return xp is np and not network.complex_state and probes.pair is None


@njit(**_JIT)
def _phi_row(h, y, act):  # noqa: ANN001, ANN202
    """y[i] = φ(h[i]) for the kernel ids tanh 0, relu 1, erf 2, linear 3, sigmoid 4; computed
    in float64, rounded once at the store."""
    n = h.shape[0]
    if act == 2:
        for i in range(n):
            y[i] = erf64(np.float64(h[i]))
    elif act == 0:
        for i in range(n):
            y[i] = tanh64(np.float64(h[i]))
    elif act == 1:  # max(h, 0); NaN stays NaN (as numpy.maximum)
        for i in range(n):
            v = h[i]
            y[i] = v if v > 0 or v != v else 0.0
    elif act == 3:
        for i in range(n):
            y[i] = h[i]
    else:
        for i in range(n):
            y[i] = 0.5 * (1.0 + tanh64(0.5 * np.float64(h[i])))


@njit(**_JIT)
def _sum_sq_diff(a, b):  # noqa: ANN001, ANN202
    """Σ_i (a[i] − b[i])² in float64, the difference in the dtype: eight partial sums over
    i mod 8, then their pairwise sum and the tail (a fixed order on every CPU)."""
    n = a.shape[0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    m = n - n % 8
    for i in range(0, m, 8):
        d0 = np.float64(a[i] - b[i])
        d1 = np.float64(a[i + 1] - b[i + 1])
        d2 = np.float64(a[i + 2] - b[i + 2])
        d3 = np.float64(a[i + 3] - b[i + 3])
        d4 = np.float64(a[i + 4] - b[i + 4])
        d5 = np.float64(a[i + 5] - b[i + 5])
        d6 = np.float64(a[i + 6] - b[i + 6])
        d7 = np.float64(a[i + 7] - b[i + 7])
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
        s4 += d4 * d4
        s5 += d5 * d5
        s6 += d6 * d6
        s7 += d7 * d7
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(m, n):
        d = np.float64(a[i] - b[i])
        s += d * d
    return s


@njit(**_JIT)
def _affine1(a, w, c, b):  # noqa: ANN001, ANN202
    """a·w + c·b in the dtype, IEEE (compiled without fast-math flags, also when inlined)."""
    return a * w + c * b


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _affine_norm_sq(z, w, c, bias):  # noqa: ANN001, ANN202
    """z[i] <- z[i]·w + c·bias[i] in z's dtype (NumPy's two products and their sum: one
    rounding each, no FMA); returns Σ z[i]² in float64 summed in the order the vectoriser
    picks (``reassoc`` cannot change the single sum of two products): that norm only decides
    the overflow flag (whether it is finite in the dtype), never a recorded value."""
    s = 0.0
    for i in range(z.shape[0]):
        h = _affine1(z[i], w, c, bias[i])
        z[i] = h
        v = np.float64(h)
        s += v * v
    return s


_BLOCK = 8
"""Points per pass of :func:`_layer`: their rows of h and y stay in L1 between the passes."""


@njit(**_JIT)
def _layer(  # noqa: ANN202, PLR0913
    z,  # (p*R, N) A(y) of the tile, dtype; overwritten by h = σ_w A(y) + σ_b b
    y,  # (p*R, N) dtype; receives φ(h), the next layer's input
    sw,  # (p*R,) σ_w per row, dtype
    sb,  # (p*R,) σ_b per row, dtype
    bias,  # (N,) the layer's unscaled bias, dtype
    act,  # kernel id
    fmax,  # largest finite value of dtype
    r,  # rows per point
    d0,  # first divergence row of a point, or −1
    err_weight,  # factor of Σ (Δy)² in err
    bad,  # (p,) bool out: some |h|² of the point is not finite in dtype
    err,  # (p,) float64 out: err (with the divergence probe)
):
    p = z.shape[0] // r
    for p0 in range(0, p, _BLOCK):
        p1 = min(p, p0 + _BLOCK)
        for pt in range(p0, p1):
            flag = False
            for row in range(pt * r, pt * r + r):
                if not (_affine_norm_sq(z[row], sw[row], sb[row], bias) <= fmax):
                    flag = True
            bad[pt] = flag
        # φ over the block's rows as one flat run (few scalar tail iterations)
        _phi_row(z[p0 * r : p1 * r].reshape(-1), y[p0 * r : p1 * r].reshape(-1), act)
        if d0 >= 0:
            for pt in range(p0, p1):
                r0 = pt * r + d0
                err[pt] = _sum_sq_diff(y[r0], y[r0 + 1]) * err_weight


def compiled_step(
    tile: Any,
    op: Operator,
    bias: np.ndarray,
    layer: int,
    record_at: int,
    probes: Probes,
    network: Network,
    xp: Any = np,  # noqa: ARG001
) -> None:
    """One layer for one tile (``tile``: a ``network._Tile``), as ``network._step`` computes
    it (same arguments; ``xp`` is NumPy): the operator on ``tile.y`` (dense: ``numpy.matmul``
    into the tile's buffer), then the compiled pass; flags, err ring and recorded
    observables updated, ``tile.y`` the next input (overwritten in place)."""
    dt = tile.y.dtype
    if tile.z is None:
        tile.y = np.array(tile.y, dt, order="C")  # our own writable operand
        tile.z = np.empty_like(tile.y)
        tile.scratch = {
            "bad": np.empty(tile.first_nonfinite.shape[0], np.bool_),
            "err": np.zeros(tile.first_nonfinite.shape[0], np.float64),
            "sw": np.ascontiguousarray(tile.sw[:, 0]),
            "sb": np.ascontiguousarray(tile.sb[:, 0]),
        }
    sc = tile.scratch
    if op.kind == "dense":
        np.matmul(tile.y, op.arrays["w_t"], out=tile.z)
        z = tile.z
    else:
        z = np.ascontiguousarray(op.apply(tile.y), dt)
    n = z.shape[1]
    r = probes.rows_per_point
    off = probes.offsets
    d0 = off["divergence"] if probes.divergence else -1
    _layer(
        z,
        tile.y,
        sc["sw"],
        sc["sb"],
        np.ascontiguousarray(bias.reshape(-1), dt),
        tile.act.kernel_id,
        float(np.finfo(dt).max),
        r,
        d0,
        network.err_weight(n),
        sc["bad"],
        sc["err"],
    )
    bad = sc["bad"]
    tile.first_nonfinite[bad & (tile.first_nonfinite == 0)] = layer
    rec = record_at >= 0
    p = z.shape[0] // r
    if rec:
        h3, y3 = z.reshape(p, r, n), tile.y.reshape(p, r, n)
        with np.errstate(all="ignore"):
            for obs in ROW_OBSERVABLES:
                probe = getattr(probes, obs.probe)
                if probe is None:
                    continue
                rows_of = slice(off[obs.probe], off[obs.probe] + probe.rows)
                block = np.ascontiguousarray((h3 if obs.source == "h" else y3)[:, rows_of])
                for name, values in zip(obs.names, obs.compute(block, dt, np), strict=True):
                    tile.out[name][:, record_at] = values
    if probes.divergence and (rec or tile.err_ring is not None):
        err = sc["err"]
        if tile.err_ring is not None:
            k = tile.err_ring.shape[0]
            tile.err_ring[layer % k] = err
        if rec:
            tile.out["err"][:, record_at] = err
            if tile.err_ring is not None and layer >= k:
                tile.out["err_mean"][:, record_at] = tile.err_ring.mean(axis=0)
