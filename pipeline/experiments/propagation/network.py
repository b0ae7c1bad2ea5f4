"""Finite-width propagation through any architecture of :mod:`.architectures`, on NumPy or CuPy.

One code path for every (architecture, weight tying, bias law), written against an array
module ``xp``: the NumPy run and the CuPy run execute the same lines (``cupy.fft`` for the
struct and conv operators, ``cupy.matmul`` for the dense one). The default network (dense,
per-layer, iid biases) without the divergence probe keeps its fused reference and CUDA
kernels (:mod:`.reference`, :mod:`.gpu`); this path computes the same numbers for it (tested)
and everything else.

Every grid point of one (N, α, seed) shares the operators, the biases and the inputs, so a
layer is one operator application to the stacked rows of many points (a GEMM or a batch of
FFTs over points), then a per-row scale σ_w and bias σ_b bˡ:

    z = σ_w · A_l(y) + σ_b · bˡ        (tangent rows: δz = σ_w · A_l(out'(z_a) ⊙ δz/|δz|))

Points go through in tiles of a fixed number of points derived from the whole grid (as in
:mod:`.reference`), one BLAS thread per tile, so a point's numbers are bit-identical whatever
the chunking, its neighbours or the thread count.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.experiments.propagation.architectures import (
    Network,
    Operator,
    bias_matrix,
    draw_bias,
    draw_operator,
    output_map,
)
from pipeline.experiments.propagation.draws import NetworkDraws
from pipeline.experiments.propagation.probes import Probes, probe_inputs, tile_points
from pipeline.experiments.propagation.reference import TILE_ROWS, tangent_growth
from pipeline.numerics.activations import Activation, get_activation
from pipeline.numerics.observables import ROW_OBSERVABLES

__all__ = ["propagate_architecture"]


@dataclass
class _Tile:
    """Rows of the points of one tile (one activation) and their running state."""

    act: Activation
    y: Any  # (p*R, N) layer input, real
    sw: Any  # (p*R, 1) σ_w per row
    sb: Any  # (p*R, 1) σ_b per row (0 on tangent rows)
    out: dict[str, Any]  # observable -> (p, n_record)
    first_nonfinite: Any  # (p,) int32
    first_underflow: Any  # (p,) int32
    growth_sum: Any  # (p,) float64
    err_ring: Any = None  # (k, p) float64: err of the last k layers (divergence mean_last k)
    z: Any = None  # (p*R, N) operator output buffer (compiled pass)
    scratch: Any = None  # the compiled pass's per-tile arrays


def _first_input(
    x0: np.ndarray, act: Activation, network: Network, probes: Probes, n: int
) -> np.ndarray:
    """Layer-1 inputs y⁰ of one point (R, N), float64: the probe rows; the pair's tangent is
    out'(x⁰_a) δh⁰ (the input read as h⁰, as in :mod:`.reference`); the divergence rows are
    rescaled to the architecture's input (:meth:`Network.input_scale`)."""
    y = x0.copy()
    off = probes.offsets
    if probes.pair:
        y[2] = output_map(network, act, x0[0], np, dphi=True) * x0[2]
    if probes.divergence:
        d = off["divergence"]
        y[d : d + 2] *= network.input_scale(n)
    return y


def _new_tile(
    act: Activation,
    y0: np.ndarray,
    sw: np.ndarray,
    sb: np.ndarray,
    probes: Probes,
    names: Sequence[str],
    n_record: int,
    dtype: np.dtype,
    xp: Any,
) -> _Tile:
    p, r = len(sw), y0.shape[0]
    k = probes.divergence.mean_last if probes.divergence else 1
    sb_rows = np.repeat(sb, r).reshape(p, r)
    if probes.pair:
        sb_rows[:, 2] = 0.0  # the tangent follows the Jacobian: no bias
    return _Tile(
        act=act,
        y=xp.asarray(np.broadcast_to(y0[None], (p, r, y0.shape[1])).reshape(p * r, -1), dtype),
        sw=xp.asarray(np.repeat(sw, r)[:, None], dtype),
        sb=xp.asarray(sb_rows.reshape(-1, 1), dtype),
        out={k: xp.full((p, n_record), np.nan, dtype) for k in names},
        first_nonfinite=xp.zeros(p, np.int32),
        first_underflow=xp.zeros(p, np.int32),
        growth_sum=xp.zeros(p, np.float64),
        err_ring=xp.zeros((k, p), np.float64) if k > 1 else None,
    )


def _sq(v: Any, xp: Any) -> Any:
    """Row-wise squared norms (…, N) → (…,), accumulated in float64 (complex: |v|²)."""
    if xp.iscomplexobj(v):
        re, im = v.real.astype(np.float64), v.imag.astype(np.float64)
        return (re * re).sum(-1) + (im * im).sum(-1)
    v64 = v.astype(np.float64)
    return (v64 * v64).sum(-1)


def _step(
    tile: _Tile,
    op: Operator,
    bias: Any,
    layer: int,
    record_at: int,
    probes: Probes,
    network: Network,
    xp: Any,
) -> None:
    """One layer for one tile: z = σ_w A(y) + σ_b b, observables, next input."""
    with np.errstate(all="ignore"):
        _step_inner(tile, op, bias, layer, record_at, probes, network, xp)


def _step_inner(
    tile: _Tile,
    op: Operator,
    bias: Any,
    layer: int,
    record_at: int,
    probes: Probes,
    network: Network,
    xp: Any,
) -> None:
    n = tile.y.shape[1]
    r = probes.rows_per_point
    p = tile.y.shape[0] // r
    z = op.apply(tile.y)
    z *= tile.sw
    z += tile.sb * bias  # real bias: on Re z for struct
    z3 = z.reshape(p, r, n)
    h3 = z3.real if network.complex_state else z3  # what φ sees
    ss = _sq(z3, xp)  # (p, r) |z|² per row (compute dtype judged below)
    bad = ~xp.isfinite(ss.astype(tile.y.dtype)).all(axis=1)
    tile.first_nonfinite[bad & (tile.first_nonfinite == 0)] = layer

    y_next = output_map(network, tile.act, z, xp).astype(tile.y.dtype, copy=False)
    y3 = y_next.reshape(p, r, n)
    off = probes.offsets
    rec = record_at >= 0
    if probes.pair:
        growth, lost, underflow = tangent_growth(
            ss[:, 0], ss[:, 2], tile.sw.reshape(p, r)[:, 2], tile.act, tile.y.dtype, xp, bad
        )
        tile.first_underflow[underflow & (tile.first_underflow == 0)] = layer
        tile.growth_sum += growth
        norm = xp.sqrt(ss[:, 2])
        scale = xp.where(norm > 0, 1.0 / xp.where(norm > 0, norm, 1.0), 0.0)
        scale[lost] = np.nan
        d = output_map(network, tile.act, z3[:, 0], xp, dphi=True)
        dz = z3[:, 2].real if network.complex_state else z3[:, 2]
        y3[:, 2] = (d * dz * scale[:, None]).astype(tile.y.dtype)
        if rec:
            ha, hb = h3[:, 0], h3[:, 1]
            saa, sbb = _sq(ha, xp), _sq(hb, xp)
            sab = (ha.astype(np.float64) * hb.astype(np.float64)).sum(-1)
            tile.out["q"][:, record_at] = saa / n
            tile.out["c"][:, record_at] = sab / xp.sqrt(saa * sbb)
            tile.out["dist"][:, record_at] = _sq(ha - hb, xp) / n
            tile.out["lyap_growth"][:, record_at] = growth
            tile.out["lyapunov"][:, record_at] = tile.growth_sum / layer
    if rec:
        for obs in ROW_OBSERVABLES:
            probe = getattr(probes, obs.probe)
            if probe is None:
                continue
            rows_of = slice(off[obs.probe], off[obs.probe] + probe.rows)
            block = (h3 if obs.source == "h" else y3)[:, rows_of]
            block = xp.ascontiguousarray(block.astype(tile.y.dtype))
            for name, values in zip(obs.names, obs.compute(block, tile.y.dtype, xp), strict=True):
                tile.out[name][:, record_at] = values
    if probes.divergence and (rec or tile.err_ring is not None):
        d0 = off["divergence"]
        err = _sq(y3[:, d0] - y3[:, d0 + 1], xp) * network.err_weight(n)
        if tile.err_ring is not None:
            k = tile.err_ring.shape[0]
            tile.err_ring[layer % k] = err
        if rec:
            tile.out["err"][:, record_at] = err
            if tile.err_ring is not None and layer >= k:
                tile.out["err_mean"][:, record_at] = tile.err_ring.mean(axis=0)
    tile.y = y_next


def propagate_architecture(
    width: int,
    alpha: float,
    seed: int,
    groups: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    depth: int,
    record_layers: Sequence[int],
    probes: Probes,
    network: Network,
    dtype: str | np.dtype = "float32",
    threads: int = 1,
    points_per_tile: int | None = None,
    xp: Any = np,
    draws: NetworkDraws | None = None,
    backend: str = "numpy",
) -> list[dict[str, np.ndarray]]:
    """Propagate every probe of every point of one network (N = ``width``, α, seed) of the
    family ``network``; arguments and returns as
    :func:`pipeline.experiments.propagation.reference.propagate_network` (σ_w, σ_b scales;
    one dict per activation group of (P, len(record_layers)) observables in ``dtype`` plus
    ``nonfinite_layer`` and, with the pair probe, ``underflow_layer``; host NumPy arrays).

    Conventions of the rows (docs/conventions.md §2.5): pair/circle/batch inputs are y⁰ = x⁰
    (mean square q0); the pair's observables use h = z (``struct``: h = Re z, the argument of
    φ) and its tangent is the complex δz for ``struct``, λ_L = mean of log |δzˡ| over layers;
    the divergence probe's err = Σ_i (s₁ − s₂)_i² of the authors' state s (dense: y/√N).
    ``xp``: NumPy or CuPy (tiles then run one after the other on the device).
    ``draws``: the operators, biases and divergence inputs read from a file
    (:mod:`.draws`) in place of those keyed by the seed (which then only labels the network;
    the same layer loop runs on them).
    ``backend``: ``numpy``, or ``numba`` for the compiled elementwise pass of
    :mod:`.compiled_network` where it applies (:func:`.compiled_network.supported`; elsewhere
    the NumPy pass runs) and the compiled Philox generator for the keyed draws: the same
    operators and draws bit for bit, values within its stated contract.
    """
    dt = np.dtype(dtype)
    n = int(width)
    x0 = probe_inputs(seed, n, probes)
    if draws is not None:
        if draws.width != n:
            raise ValueError(f"width {n} differs from the draws' N = {draws.width}")
        if probes.divergence:
            d = probes.offsets["divergence"]
            x0[d : d + 2] = draws.inputs()
    ppt = points_per_tile or tile_points(probes, max(len(g[1]) for g in groups), TILE_ROWS)
    names = probes.observables()
    rec_index = np.full(depth + 1, -1)
    rec_index[np.asarray(record_layers)] = np.arange(len(record_layers))

    tiles: list[tuple[int, _Tile]] = []
    for g, (act_name, sw, sb) in enumerate(groups):
        act = get_activation(act_name)
        y0 = _first_input(x0, act, network, probes, n)
        sw, sb = np.asarray(sw, np.float64), np.asarray(sb, np.float64)
        n_tiles = -(-len(sw) // ppt)
        pad = n_tiles * ppt - len(sw)
        sw = np.concatenate([sw, np.zeros(pad)])
        sb = np.concatenate([sb, np.zeros(pad)])
        for t in range(n_tiles):
            s = slice(t * ppt, (t + 1) * ppt)
            tile = _new_tile(act, y0, sw[s], sb[s], probes, names, len(record_layers), dt, xp)
            tiles.append((g, tile))

    step: Any = _step
    philox = "numpy"
    if backend == "numba":
        from pipeline.experiments.propagation import compiled_network

        philox = "numba"  # the compiled Philox generator: the same draws, bit for bit
        if compiled_network.supported(network, probes, xp):
            step = compiled_network.compiled_step
    b_mat = None
    if network.bias == "projected" and draws is None:
        b_mat = bias_matrix(seed, n, philox=philox)
    use_pool = threads > 1 and xp is np
    op: Operator | None = None
    op_key = -1
    with (
        threadpool_limits(limits=1, user_api="blas") if xp is np else nullcontext(),
        ThreadPoolExecutor(max_workers=threads) if use_pool else nullcontext() as pool,
    ):
        run = pool.map if pool is not None else map
        for layer in range(1, depth + 1):
            if network.operator_key(layer) != op_key:  # a tied network draws once
                op_key = network.operator_key(layer)
                if draws is None:
                    op = draw_operator(network, seed, layer, n, alpha, dt, xp, philox=philox)
                else:
                    op = draws.operator(network, layer, dt, xp)
            if draws is None:
                b = draw_bias(network, seed, layer, n, alpha, b_mat, philox=philox)
            else:
                b = draws.bias(layer)
            bias = xp.asarray(b[None, :], dt)
            ri = int(rec_index[layer])
            list(
                run(
                    lambda t, layer=layer, ri=ri, op=op, bias=bias: step(
                        t[1], op, bias, layer, ri, probes, network, xp
                    ),
                    tiles,
                )
            )

    def host(a: Any) -> np.ndarray:
        return a if xp is np else xp.asnumpy(a)

    results: list[dict[str, np.ndarray]] = []
    for g, (_, sw, _) in enumerate(groups):
        mine = [t for gi, t in tiles if gi == g]
        p = len(sw)
        res = {k: host(xp.concatenate([t.out[k] for t in mine]))[:p] for k in names}
        res["nonfinite_layer"] = host(xp.concatenate([t.first_nonfinite for t in mine]))[:p]
        if probes.pair:
            res["underflow_layer"] = host(xp.concatenate([t.first_underflow for t in mine]))[:p]
        results.append(res)
    return results
