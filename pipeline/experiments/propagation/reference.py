"""Finite-width signal propagation through one random network: the NumPy reference.

Pure computation (no I/O, no scheduler). Conventions (docs/conventions.md):

* width N, depth L, ``h¹ = W¹x⁰ + b¹``, ``xˡ = φ(hˡ)``, ``hˡ⁺¹ = Wˡ⁺¹xˡ + bˡ⁺¹``;
* ``Wˡᵢⱼ = σ_w (2N)^(−1/α) Zˡᵢⱼ`` and ``bˡᵢ = σ_b 2^(−1/α) ζˡᵢ`` with Z, ζ standard symmetric
  α-stable S_α(1) drawn by :mod:`pipeline.numerics.rng`, keyed by (seed, stream, layer, row,
  column): every (σ_w, σ_b, activation) point of one (N, α, seed) sees the same Z and ζ;
* probe inputs x⁰ (the input of layer 1) have mean square q0 exactly.

Layout: every probe vector is a *row* of a (rows, N) array and a layer is ``X @ Zᵀ``. The rows
of one grid point are contiguous (``pair``: a, b, tangent; then the K ``circle`` rows; then the
m ``batch`` rows) and points are processed in *tiles* of a fixed number of rows. Every tile
has the same shape (the last one is padded with inert points), each tile's GEMM runs on one
BLAS thread, and tiles go to a small thread pool. That makes every number a function of the
point alone, bit for bit: independent of chunking, of its position in the chunk and of the
number of threads (OpenBLAS picks other kernels, with other rounding, for other shapes and
thread splits), while the tile work stays in cache and uses every core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.experiments.propagation.probes import (
    Probes,
    augmented_width,
    probe_inputs,
    tile_points,
)
from pipeline.numerics import rng
from pipeline.numerics.activations import Activation, get_activation
from pipeline.numerics.observables import ROW_OBSERVABLES

__all__ = ["TILE_ROWS", "dphi_has_zeros", "propagate_network", "tangent_growth"]

TILE_ROWS = 2048
"""Most rows per tile: big enough for a GEMM at the BLAS peak on one thread (at N = 1024 in
float32, 128 rows reach ~75 % of the rate of a full-size GEMM, 1024 rows ~95 %, 2048 rows
~100 %)."""


@dataclass
class _Tile:
    """Rows of ``n_points`` grid points of one activation; mutable state of the layer loop.

    ``x`` is the augmented GEMM operand: ``x[:, :N]`` is the layer input already multiplied
    by the row's σ_w (2N)^(−1/α), ``x[:, N]`` the row's σ_b 2^(−1/α) (0 on tangent rows),
    the rest zero; against ``[Z | ζ | 0]`` one GEMM gives ``h = W x + b`` (scale and bias
    cost no elementwise pass).
    """

    act: Activation
    x: np.ndarray  # (n_points * R, K) augmented layer input, K = augmented_width(N)
    w_scale: np.ndarray  # (n_points * R, 1) σ_w (2N)^(-1/α) per row
    out: dict[str, np.ndarray]  # observable -> (n_points, n_record)
    first_nonfinite: np.ndarray  # (n_points,) int32
    first_underflow: np.ndarray  # (n_points,) int32
    growth_sum: np.ndarray  # (n_points,) float64, Σ lyap_growth so far


def _new_tile(
    act: Activation,
    x0: np.ndarray,
    sw: np.ndarray,
    sb: np.ndarray,
    w_coef: float,
    b_coef: float,
    probes: Probes,
    names: Sequence[str],
    n_record: int,
    dtype: np.dtype,
) -> _Tile:
    p, r = len(sw), x0.shape[0]
    n = x0.shape[1]
    first = x0.copy()
    if probes.pair:
        # The tangent starts as a unit perturbation δh⁰ of the input read as layer-0
        # pre-activations (h⁰ := x⁰_a), so layer 1 applies the same Jacobian map
        # δhˡ = Wˡ (φ'(hˡ⁻¹) ⊙ δhˡ⁻¹) as every later layer and λ_L has no first-layer bias.
        first[2] = act.dphi(x0[0], np) * x0[2]
    w_scale = np.repeat((np.asarray(sw, np.float64) * w_coef).astype(dtype), r)[:, None]
    b_rows = np.repeat((np.asarray(sb, np.float64) * b_coef).astype(dtype), r).reshape(p, r)
    if probes.pair:
        b_rows[:, 2] = 0  # the tangent is propagated by the Jacobian: no bias
    k = augmented_width(n)
    x = np.empty((p * r, k), dtype)
    x3 = x.reshape(p, r, k)
    np.multiply(first.astype(dtype)[None], w_scale.reshape(p, r, 1), out=x3[:, :, :n])
    x[:, n] = b_rows.reshape(-1)
    x[:, n + 1 :] = 0
    return _Tile(
        act=act,
        x=x,
        w_scale=w_scale,
        out={k: np.full((p, n_record), np.nan, dtype) for k in names},
        first_nonfinite=np.zeros(p, np.int32),
        first_underflow=np.zeros(p, np.int32),
        growth_sum=np.zeros(p, np.float64),
    )


def dphi_has_zeros(act: Activation) -> bool:
    """Whether φ' is exactly 0 somewhere (relu: on h ≤ 0), so that a tangent vector can
    vanish exactly in exact arithmetic (every unit dead); for tanh, erf and linear φ' > 0,
    and a vanished tangent is an underflow of the dtype."""
    return bool(act.dphi(np.array([-1.0]), np)[0] == 0.0)  # (at -1e3 tanh' rounds to 0 too)


def tangent_growth(
    ss_a: Any,
    ss_t: Any,
    w_scale: Any,
    act: Activation,
    dtype: np.dtype,
    xp: Any = np,
    flagged: Any = None,
) -> tuple[Any, Any, Any]:
    """One layer's log growth of the tangent and what became of it (docs/conventions.md §2.4).

    ``ss_a``, ``ss_t``: (p,) squared norms of h_a and δh (in ``dtype``, or float64 sums that
    are judged as numbers of ``dtype``); ``w_scale``: (p,) σ_w (2N)^(−1/α); ``xp``: their
    array module. Returns ``(growth, lost, underflow)``, all (p,): growth = log |δh|
    (float64) except NaN where the point's λ is undefined from here on:

    * ``lost``: h_a or δh has a squared norm that is not a finite number of ``dtype``
      (overflow, NaN), or ``flagged`` (p,) bool is set: the layer that sets the point's
      ``nonfinite_layer`` (any row of the point, e.g. h_b, overflowed). The next tangent is
      made NaN, so λ is NaN from the flagged layer on: never "ordered".
    * ``underflow``: δh vanished exactly although it cannot in exact arithmetic (σ_w > 0 and
      φ' has no zeros: tanh/erf saturate, φ'(h) rounds to 0). NaN, and flagged.

    A tangent that vanishes exactly because σ_w = 0 or every ReLU unit is dead keeps
    growth = log 0 = −∞: λ = −∞ is the ordered side, legitimately.
    """
    lost = ~xp.isfinite(ss_a.astype(dtype)) | ~xp.isfinite(ss_t.astype(dtype))
    if flagged is not None:
        lost |= flagged
    underflow = (ss_t == 0) & (w_scale > 0)
    if dphi_has_zeros(act):  # relu: a vanished tangent is every unit dead (ordered)
        underflow = xp.zeros_like(underflow)
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = xp.log(xp.sqrt(ss_t.astype(np.float64)))
    growth[lost | underflow] = np.nan
    return growth, lost, underflow


def _rowdot64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products accumulated in float64, shape (rows,)."""
    return np.einsum("ij,ij->i", a, b, dtype=np.float64)


_LOCAL = threading.local()


def _scratch(shape: tuple[int, int], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Two work arrays of ``shape`` owned by the calling thread (reused across tiles and
    layers: allocating megabytes per tile costs page faults comparable to the arithmetic)."""
    bufs = getattr(_LOCAL, "bufs", None)
    if bufs is None or bufs[0].shape != shape or bufs[0].dtype != dtype:
        bufs = (np.empty(shape, dtype), np.empty(shape, dtype))
        _LOCAL.bufs = bufs
    return bufs


def _step(
    tile: _Tile,
    zt: np.ndarray,
    layer: int,
    record_at: int,
    probes: Probes,
    elementwise: Callable[..., None] | None = None,
) -> None:
    """Advance one tile by one layer (``zt`` = [Z | ζ | 0]ᵀ); record observables when
    ``record_at >= 0``. ``elementwise(tile, h, layer, record_at, probes)``: a replacement of
    the pass after the GEMM (the compiled backend's), or None for :func:`_elementwise`."""
    with np.errstate(all="ignore"):  # per thread: overflow and 0/0 are data here, not errors
        if elementwise is None:
            _step_inner(tile, zt, layer, record_at, probes)
        else:
            h, _ = _scratch((tile.x.shape[0], zt.shape[1]), tile.x.dtype)
            np.matmul(tile.x, zt, out=h)
            elementwise(tile, h, layer, record_at, probes)


SUB_ROWS = 128
"""Rows per elementwise sub-block: the φ/tangent passes run on blocks that stay in the L2
cache."""


def _step_inner(
    tile: _Tile,
    zt: np.ndarray,
    layer: int,
    record_at: int,
    probes: Probes,
) -> None:
    p = len(tile.first_nonfinite)
    r = probes.rows_per_point
    n = zt.shape[1]
    h, tmp = _scratch((tile.x.shape[0], n), tile.x.dtype)
    np.matmul(tile.x, zt, out=h)
    sub = max(1, SUB_ROWS // r)
    for a in range(0, p, sub):
        _elementwise(tile, h, tmp, slice(a, min(p, a + sub)), layer, record_at, probes)


def _elementwise(
    tile: _Tile,
    h_all: np.ndarray,
    tmp_all: np.ndarray,
    pts: slice,
    layer: int,
    record_at: int,
    probes: Probes,
) -> None:
    """φ, tangent update, next input and observables for the points ``pts`` of a tile whose
    pre-activations ``h = W x + b`` are in ``h_all``."""
    n = h_all.shape[1]
    r = probes.rows_per_point
    rows = slice(pts.start * r, pts.stop * r)
    p = pts.stop - pts.start
    h, tmp = h_all[rows], tmp_all[rows]
    h3 = h.reshape(p, r, n)

    # Squared norm of every row in the compute dtype: a row is non-finite when its squared
    # norm is not a finite number (a non-finite entry, or an overflow of the dtype).
    ss = np.einsum("ij,ij->i", h, h).reshape(p, r)
    bad = ~np.isfinite(ss).all(axis=1)
    first = tile.first_nonfinite[pts]
    first[bad & (first == 0)] = layer

    x3 = tile.x[rows, :n].reshape(p, r, n)  # a strided view into the augmented operand
    tile.act.phi(h3, np, out=x3)
    off = probes.offsets
    rec = record_at >= 0
    out = {k: v[pts] for k, v in tile.out.items()}
    if probes.pair:
        ha, hb, ht = h3[:, 0], h3[:, 1], h3[:, 2]
        ws = tile.w_scale[rows].reshape(p, r)[:, 2].astype(np.float64)
        growth, lost, underflow = tangent_growth(
            ss[:, 0], ss[:, 2], ws, tile.act, h.dtype, flagged=bad
        )
        norm = np.sqrt(ss[:, 2].astype(np.float64))
        under = tile.first_underflow[pts]
        under[underflow & (under == 0)] = layer
        tile.growth_sum[pts] += growth
        t = tmp.reshape(p, r, n)[:, 0]
        t[...] = tile.act.dphi_hx(ha, x3[:, 0], np)
        np.multiply(t, ht, out=t)
        # next tangent input: σ_w-scaled φ'(h_a) ⊙ δh / |δh| (renormalised every layer). A
        # tangent that vanished exactly stays 0 (never 0/0); a lost one (overflow) becomes NaN,
        # so its λ stays NaN (tangent_growth).
        scale = np.divide(ws, norm, out=np.zeros_like(ws), where=norm > 0)
        scale[lost] = np.nan
        np.multiply(t, scale.astype(h.dtype)[:, None], out=x3[:, 2])
        if rec:
            # observables accumulate in float64 (the per-layer norms above stay in the compute
            # dtype: they serve the tangent and the non-finite flag)
            saa, sbb, sab = _rowdot64(ha, ha), _rowdot64(hb, hb), _rowdot64(ha, hb)
            np.subtract(ha, hb, out=t)
            out["q"][:, record_at] = saa / n
            out["c"][:, record_at] = sab / np.sqrt(saa * sbb)
            out["dist"][:, record_at] = _rowdot64(t, t) / n
            out["lyap_growth"][:, record_at] = growth
            out["lyapunov"][:, record_at] = tile.growth_sum[pts] / layer
    if rec:
        for obs in ROW_OBSERVABLES:
            probe = getattr(probes, obs.probe)
            if probe is None:
                continue
            rows_of = slice(off[obs.probe], off[obs.probe] + probe.rows)
            block = (h3 if obs.source == "h" else x3)[:, rows_of]
            for name, values in zip(obs.names, obs.compute(block, h.dtype, np), strict=True):
                out[name][:, record_at] = values
    # the next layer's input, pre-multiplied by σ_w (2N)^(−1/α) (tangent rows already are)
    ws3 = tile.w_scale[rows].reshape(p, r, 1)
    if probes.pair:
        np.multiply(x3[:, :2], ws3[:, :2], out=x3[:, :2])
        if r > 3:
            np.multiply(x3[:, 3:], ws3[:, 3:], out=x3[:, 3:])
    else:
        np.multiply(x3, ws3, out=x3)


def propagate_network(
    width: int,
    alpha: float,
    seed: int,
    groups: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    depth: int,
    record_layers: Sequence[int],
    probes: Probes,
    dtype: str | np.dtype = "float32",
    threads: int = 1,
    points_per_tile: int | None = None,
    elementwise: Callable[..., None] | None = None,
    philox: str = "numpy",
) -> list[dict[str, np.ndarray]]:
    """Propagate every probe of every point of one network (N = ``width``, α, seed).

    Parameters
    ----------
    groups : one entry per activation: ``(activation name, sigma_w, sigma_b)`` with σ_w, σ_b
        1-D arrays of equal length P (scales, not variances): the P grid points of that
        activation. All groups share the same Z and ζ.
    depth : L, number of layers.
    record_layers : layers (1..L, increasing) at which observables are recorded.
    dtype : compute precision of the GEMM and elementwise pass (reductions in float64).
    threads : worker threads (tiles run in parallel; the result does not depend on it).
    points_per_tile : tile size in points (default :func:`~.probes.tile_points` for the largest
        group). Every tile has this shape, padded with inert points, so a point's numbers are
        bit-identical across calls with the same ``points_per_tile``, whatever its neighbours:
        the sweep passes the value derived from the whole grid, never from the chunk.
    elementwise : the pass after each layer's GEMM, ``f(tile, h, layer, record_at, probes)``
        (:mod:`.compiled`'s); None: this module's NumPy pass.
    philox : the generator behind the keyed draws, ``numpy`` (the reference) or ``numba``
        (:mod:`pipeline.numerics.rng_compiled`, the compiled backend's): the same draws bit
        for bit (``rng.stable_block``'s ``philox``).

    Returns
    -------
    One dict per group: each observable of ``probes.observables()`` as an array
    (P, len(record_layers)) of ``dtype``, and ``nonfinite_layer`` (P,) int32: the first layer
    at which one of the point's pre-activation vectors has a squared norm that is not a finite
    number of ``dtype`` (a non-finite entry, or an overflow; 0: none) and, with the pair
    probe, ``underflow_layer`` (P,) int32: the first layer at which the tangent vanished by
    underflow (:func:`tangent_growth`; 0: none). Non-finite values are kept in the
    observables, never dropped; λ is NaN from a lost or underflowed tangent on.
    """
    dt = np.dtype(dtype)
    n = int(width)
    w_coef = (2.0 * n) ** (-1.0 / alpha)
    b_coef = 2.0 ** (-1.0 / alpha)
    x0 = probe_inputs(seed, n, probes)
    ppt = points_per_tile or tile_points(probes, max(len(g[1]) for g in groups), TILE_ROWS)
    names = probes.observables()
    rec_index = np.full(depth + 1, -1)
    rec_index[np.asarray(record_layers)] = np.arange(len(record_layers))

    tiles: list[tuple[int, _Tile]] = []
    for g, (act_name, sw, sb) in enumerate(groups):
        act = get_activation(act_name)
        sw, sb = np.asarray(sw, np.float64), np.asarray(sb, np.float64)
        n_tiles = -(-len(sw) // ppt)
        pad = n_tiles * ppt - len(sw)
        sw = np.concatenate([sw, np.zeros(pad)])
        sb = np.concatenate([sb, np.zeros(pad)])
        for t in range(n_tiles):
            s = slice(t * ppt, (t + 1) * ppt)
            tiles.append(
                (
                    g,
                    _new_tile(
                        act, x0, sw[s], sb[s], w_coef, b_coef, probes, names, len(record_layers), dt
                    ),
                )
            )

    z = np.zeros((n, augmented_width(n)), dt)  # [Z | ζ | 0]: h = x_aug @ z.T
    zeta = z[:, n : n + 1]
    row_blocks = [(s, min(n, s + 256)) for s in range(0, n, 256)]

    def gen(block: tuple[int, int], layer: int) -> None:
        a, b = block
        rng.stable_block(
            seed, rng.STREAMS["weight"], layer, a, b - a, 0, n, alpha, z[a:b, :n], philox=philox
        )

    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=threads) if threads > 1 else nullcontext() as pool,
        np.errstate(all="ignore"),
    ):
        run = pool.map if pool is not None else map
        for layer in range(1, depth + 1):
            if pool is None:
                rng.stable_block(
                    seed, rng.STREAMS["weight"], layer, 0, n, 0, n, alpha, z[:, :n], philox=philox
                )
            else:
                list(pool.map(lambda blk, layer=layer: gen(blk, layer), row_blocks))
            rng.stable_block(
                seed, rng.STREAMS["bias"], layer, 0, n, 0, 1, alpha, zeta, philox=philox
            )
            ri = int(rec_index[layer])
            list(
                run(
                    lambda t, layer=layer, ri=ri: _step(t[1], z.T, layer, ri, probes, elementwise),
                    tiles,
                )
            )

    results: list[dict[str, np.ndarray]] = []
    for g, (_, sw, _) in enumerate(groups):
        mine = [t for gi, t in tiles if gi == g]
        p = len(sw)
        res = {k: np.concatenate([t.out[k] for t in mine])[:p] for k in names}
        res["nonfinite_layer"] = np.concatenate([t.first_nonfinite for t in mine])[:p]
        if probes.pair:
            res["underflow_layer"] = np.concatenate([t.first_underflow for t in mine])[:p]
        results.append(res)
    return results
