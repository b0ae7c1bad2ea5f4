"""The fused per-layer epilogue of the propagation reference, compiled with Numba.

:func:`propagate_network` is :func:`.reference.propagate_network` (the same tiles, draws,
keyed weights, augmented GEMM on one BLAS thread per tile, thread pool over tiles) with the
elementwise pass after each layer's GEMM replaced by one compiled sweep over the tile's rows
(:func:`_epilogue`): per point, the squared norms of its rows, φ of every row, the tangent
update φ'(h_a) ⊙ δh / |δh| and the pair observables, written straight into the next GEMM's
operand. NumPy needs a dozen passes over the tile for the same (erf alone costs several GEMMs
at N = 100); here the rows are read once, while they are in L1.

Weights never enter the epilogue: the driver loop draws them as the reference does, through
the compiled Philox generator of :mod:`pipeline.numerics.rng_compiled` (the same uniforms bit
for bit, then NumPy's transform), so draws and chunking independence are the reference's.
Sums run in float64 in a fixed sequential order (NumPy's einsum order differs), φ and φ' come
from the vectorisable erf, tanh and exp of :mod:`pipeline.numerics.vecmath` (``erf64``, ≤ 3
ulp of float64; float32 runs round it once) rather than SciPy/NumPy (sigmoid: C's ``tanh``):
values agree with the reference to a few ulp per layer, not bit for bit (docs/conventions.md
states the measured contract). Circle and batch observables are computed by the reference's
NumPy code on the compiled φ values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from pipeline.experiments.propagation import reference
from pipeline.experiments.propagation.probes import Probes
from pipeline.numerics.observables import ROW_OBSERVABLES
from pipeline.numerics.vecmath import erf64, exp_neg, tanh64

__all__ = ["propagate_network"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_JIT)
def _phi_row(src, dst, ws, act, fast):  # noqa: ANN001, ANN202
    """dst[i] = φ(src[i]) · ws (kernel ids: tanh, relu, erf, linear, sigmoid); erf and tanh
    by :mod:`pipeline.numerics.vecmath` (vectorised), in float64; ``fast`` (float32 runs):
    φ rounded to float32 first, then the product in float32 (as NumPy's float32 pass)."""
    n = src.shape[0]
    if act == 0:
        if fast:
            for i in range(n):
                dst[i] = tanh64(float(src[i]))  # rounded to the dtype at the store
            for i in range(n):
                dst[i] = dst[i] * ws
        else:
            for i in range(n):
                dst[i] = tanh64(src[i]) * ws
    elif act == 1:  # max(h, 0); NaN stays NaN
        for i in range(n):
            v = src[i]
            dst[i] = v * ws if v > 0 or v != v else 0.0 * ws
    elif act == 2:
        if fast:
            for i in range(n):
                dst[i] = erf64(float(src[i]))  # rounded to the dtype at the store
            for i in range(n):
                dst[i] = dst[i] * ws
        else:
            for i in range(n):
                dst[i] = erf64(src[i]) * ws
    elif act == 3:
        for i in range(n):
            dst[i] = src[i] * ws
    else:
        for i in range(n):
            dst[i] = (0.5 * (1.0 + math.tanh(0.5 * src[i]))) * ws


@njit(**_JIT)
def _tangent_row(ha, ht, xa, dst, sc, act, fast):  # noqa: ANN001, ANN202
    """dst[i] = φ'(ha[i]) · ht[i] · sc, with xa = φ(ha) (unscaled) at hand."""
    n = ha.shape[0]
    if act == 0:
        for i in range(n):
            dst[i] = ((1 - xa[i] * xa[i]) * ht[i]) * sc
    elif act == 1:
        for i in range(n):
            dst[i] = ((1.0 if ha[i] > 0 else 0.0) * ht[i]) * sc
    elif act == 2:
        if fast:
            for i in range(n):
                v = float(ha[i])
                dst[i] = _TWO_OVER_SQRT_PI * exp_neg(-v * v)  # rounded to the dtype
            for i in range(n):
                dst[i] = (dst[i] * ht[i]) * sc
        else:
            for i in range(n):
                dst[i] = ((_TWO_OVER_SQRT_PI * exp_neg(-ha[i] * ha[i])) * ht[i]) * sc
    elif act == 3:
        for i in range(n):
            dst[i] = ht[i] * sc
    else:
        for i in range(n):
            dst[i] = ((xa[i] * (1.0 - xa[i])) * ht[i]) * sc


@njit(**_JIT)
def _epilogue(  # noqa: ANN202, PLR0913
    h,  # (p*R, N) pre-activations of the tile, dtype
    x,  # (p*R, K) augmented GEMM operand; columns :N get the next layer's input
    r,  # rows per point
    has_pair,
    w_scale,  # (p*R,) σ_w (2N)^(-1/α) per row, dtype
    act,  # kernel id
    fast,  # vectorisable erf (float32)
    tangent_can_vanish,  # relu: a vanished tangent is every unit dead, not an underflow
    scale_others,  # multiply the non-pair rows by w_scale now (False: the caller records first)
    layer,
    rec,  # record column, or -1
    fmax,  # largest finite value of dtype
    first_nonfinite,  # (p,) int32
    first_underflow,  # (p,) int32
    growth_sum,  # (p,) float64
    out_q,  # (p, n_record) dtype, or (0, 0) without the pair probe
    out_c,
    out_dist,
    out_growth,
    out_lyap,
    cast,  # (2,) dtype scratch
):
    n = h.shape[1]
    p = h.shape[0] // r
    one = cast[:1]
    one[0] = 1
    for pt in range(p):
        r0 = pt * r
        bad = False
        first = r0
        # any row of the point not finite flags it (nonfinite_layer), and λ is lost from
        # that layer on (the reference's rule): the other probes' rows are checked first
        other_bad = False
        for row in range(r0 + (3 if has_pair else 0), r0 + r):
            s = 0.0
            for i in range(n):
                v = float(h[row, i])
                s += v * v
            if not (s <= fmax):
                other_bad = True
        if has_pair:
            ra, rb, rt = r0, r0 + 1, r0 + 2
            saa = 0.0
            sbb = 0.0
            sab = 0.0
            stt = 0.0
            sdd = 0.0
            for i in range(n):  # float64 sums, sequential (the same order on every CPU)
                a = float(h[ra, i])
                b = float(h[rb, i])
                t = float(h[rt, i])
                d = float(h[ra, i] - h[rb, i])  # the difference in the dtype, as NumPy
                saa += a * a
                sbb += b * b
                sab += a * b
                stt += t * t
                sdd += d * d
            # φ(h_a) unscaled in its own row (φ' of tanh/sigmoid reads it), φ(h_b) · ws
            _phi_row(h[ra], x[ra, :n], one[0], act, fast)
            _phi_row(h[rb], x[rb, :n], w_scale[rb], act, fast)
            bad = not (saa <= fmax) or not (sbb <= fmax) or not (stt <= fmax)
            lost = bad or other_bad
            ws_t = float(w_scale[rt])
            under = stt == 0.0 and ws_t > 0 and not tangent_can_vanish
            if lost or under:
                growth = np.nan
            else:
                growth = math.log(math.sqrt(stt)) if stt > 0 else -np.inf
            if under and first_underflow[pt] == 0:
                first_underflow[pt] = layer
            growth_sum[pt] += growth
            norm = math.sqrt(stt)
            scale = ws_t / norm if norm > 0 else 0.0
            if lost:
                scale = np.nan
            cast[1] = scale  # the scale in the dtype, as the reference's
            _tangent_row(h[ra], h[rt], x[ra, :n], x[rt, :n], cast[1], act, fast)
            ws_a = w_scale[ra]
            for i in range(n):
                x[ra, i] = x[ra, i] * ws_a
            if rec >= 0:
                out_q[pt, rec] = saa / n
                out_c[pt, rec] = sab / math.sqrt(saa * sbb)
                out_dist[pt, rec] = sdd / n
                out_growth[pt, rec] = growth
                out_lyap[pt, rec] = growth_sum[pt] / layer
            first = r0 + 3
        bad = bad or other_bad
        for row in range(first, r0 + r):
            _phi_row(h[row], x[row, :n], w_scale[row] if scale_others else one[0], act, fast)
        if bad and first_nonfinite[pt] == 0:
            first_nonfinite[pt] = layer


def _compiled_elementwise(
    tile: Any, h: np.ndarray, layer: int, record_at: int, probes: Probes
) -> None:
    """The reference's per-layer elementwise pass for one tile (``tile``: its ``_Tile``),
    compiled: next input in ``tile.x``, observables, flags and Lyapunov sums."""
    r = probes.rows_per_point
    n = h.shape[1]
    p = h.shape[0] // r
    others = r > (3 if probes.pair else 0)
    record_others = record_at >= 0 and others
    empty = np.empty((0, 0), h.dtype)
    pair_names = ("q", "c", "dist", "lyap_growth", "lyapunov")
    outs = [tile.out[k] for k in pair_names] if probes.pair else [empty] * 5
    _epilogue(
        h,
        tile.x,
        r,
        probes.pair is not None,
        tile.w_scale[:, 0],
        tile.act.kernel_id,
        h.dtype == np.float32,
        reference.dphi_has_zeros(tile.act),
        not record_others,
        layer,
        record_at,
        float(np.finfo(h.dtype).max),
        tile.first_nonfinite,
        tile.first_underflow,
        tile.growth_sum,
        *outs,
        np.empty(2, h.dtype),
    )
    if not record_others:
        return
    x3 = tile.x[:, :n].reshape(p, r, n)
    h3 = h.reshape(p, r, n)
    off = probes.offsets
    with np.errstate(all="ignore"):
        for obs in ROW_OBSERVABLES:
            probe = getattr(probes, obs.probe)
            if probe is None:
                continue
            rows_of = slice(off[obs.probe], off[obs.probe] + probe.rows)
            block = (h3 if obs.source == "h" else x3)[:, rows_of]
            for name, values in zip(obs.names, obs.compute(block, h.dtype, np), strict=True):
                tile.out[name][:, record_at] = values
        first = 3 if probes.pair else 0
        ws3 = tile.w_scale.reshape(p, r, 1)
        np.multiply(x3[:, first:], ws3[:, first:], out=x3[:, first:])


def propagate_network(
    width: int,
    alpha: float,
    seed: int,
    groups: Sequence[tuple[str, np.ndarray, np.ndarray]],
    **kwargs: Any,
) -> list[dict[str, np.ndarray]]:
    """:func:`.reference.propagate_network` (same arguments, returns, tiles and draws) with the
    compiled elementwise pass and the compiled Philox generator (the same draws bit for bit);
    ``threads`` tiles run at once (one BLAS thread each)."""
    return reference.propagate_network(
        width, alpha, seed, groups, elementwise=_compiled_elementwise, philox="numba", **kwargs
    )
