"""Finite-width signal propagation on a GPU: CuPy + the raw kernels of ``kernels/``.

Same function as :func:`pipeline.experiments.propagation.reference.propagate_network` (the
readable NumPy reference): same arguments, same outputs, random draws bit-identical, observables
equal within float tolerance. Per layer, on the device:

1. ``rng.cu`` fills [Zˡ | ζˡ | 0] (N × K, K = ``augmented_width(N)``) from Philox + CMS: the
   matrix never crosses the bus;
2. per tile, one cuBLAS GEMM ``h = x_aug @ [Z | ζ | 0]ᵀ`` (``cupy.matmul``) gives
   ``h = W x + b`` with σ_w and σ_b already folded into ``x_aug``;
3. per tile, ``propagate.cu`` runs the fused elementwise pass (φ, φ', tangent update and
   renormalisation, σ_w pre-scaling of the next input, per-point reductions); the few
   per-point scalars (q, c, dist, lyap_growth) and the circle CV / batch SVD at recorded
   layers are CuPy array code.

Tiles have a fixed shape derived from the whole grid (:func:`gpu_tile_points`), as in the
NumPy path, so a point's numbers do not depend on the chunking (cuBLAS is deterministic for a
given shape, GPU architecture and library version). Nothing syncs with the host inside the
layer loop; the results are copied back once at the end.

TF32: CuPy runs float32 GEMMs in full float32 unless ``CUPY_TF32=1`` is set in the
environment; :func:`pipeline.gpu.backend.backend_info` records the setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.experiments.propagation.probes import (
    Probes,
    augmented_width,
    probe_inputs,
    tile_points,
)
from pipeline.experiments.propagation.reference import tangent_growth
from pipeline.numerics import rng
from pipeline.numerics.activations import get_activation
from pipeline.numerics.observables import ROW_OBSERVABLES

__all__ = [
    "GPU_TILE_ROWS",
    "chunk_device_peak_bytes",
    "device_peak_bytes",
    "gpu_tile_points",
    "propagate_network",
]

GPU_TILE_ROWS = 8192
"""Most rows per GPU tile: at N ≥ 1024 a (8192 × K) @ (K × N) GEMM runs near the cuBLAS
peak, and the per-tile kernels fill the device (one block per point)."""


def gpu_tile_points(probes: Probes, points_per_network: int) -> int:
    """Points per GPU tile: :func:`~.probes.tile_points` with :data:`GPU_TILE_ROWS`."""
    return tile_points(probes, points_per_network, GPU_TILE_ROWS)


def device_peak_bytes(
    width: int,
    probes: Probes,
    points_per_tile: int,
    n_tiles: int,
    n_record: int,
    dtype: str | np.dtype = "float32",
) -> int:
    """Peak device memory of one :func:`propagate_network` call, in bytes (before CuPy's
    memory-pool rounding and cuBLAS workspace, a few MiB).

    ``n_tiles`` is the number of tiles of all groups together (per activation
    ``ceil(points / points_per_tile)``). Everything is allocated before the layer loop:
    the augmented inputs of all tiles (the propagated state), one pre-activation buffer of a
    tile, the matrix [Z | ζ | 0], per-point scalars and outputs, and at a recorded layer the
    circle/batch temporaries of one tile.
    """
    item = np.dtype(dtype).itemsize
    n, k, r = int(width), augmented_width(int(width)), probes.rows_per_point
    rows = points_per_tile * r
    n_obs = len(probes.observables())
    state = n_tiles * rows * k * item
    h = rows * n * item
    z = n * k * item
    per_point = n_tiles * points_per_tile * (n_obs * n_record * item + 4 + 8 + item)
    scratch = points_per_tile * (5 * 8 + 4)
    temp = 0
    if probes.circle:  # roll + difference in T, the float64 copy, per tile
        temp = max(temp, points_per_tile * probes.circle.K * n * (2 * item + 8))
    if probes.batch:  # φ(h) in T and in float64 (+ SVD workspace, small for m ≤ 32)
        temp = max(temp, points_per_tile * probes.batch.m * n * (item + 16))
    return int(state + h + z + per_point + scratch + temp)


def chunk_device_peak_bytes(spec: Any, chunk_shape: tuple[int, ...]) -> int:
    """Peak device memory of one task of a propagation sweep (``spec``: a parsed
    :class:`~pipeline.spec.sweep.SweepSpec`), for ``sweep plan``: the largest network of the chunk
    (one network runs at a time), its tiles sized from the whole grid as the task sizes them."""
    sizes = dict(zip(spec.dims, chunk_shape, strict=True))
    probes = spec.params.probes
    ax_sw, ax_sb, ax_act = spec.axis("sigma_w"), spec.axis("sigma_b"), spec.axis("activation")
    ppt = gpu_tile_points(probes, len(ax_sw) * len(ax_sb))
    per_act = sizes[ax_sw.name] * sizes[ax_sb.name]
    n_tiles = sizes[ax_act.name] * -(-per_act // ppt)
    n_rec = len(spec.params.record_layers)
    width = max(spec.axis("width").values)
    return device_peak_bytes(width, probes, ppt, n_tiles, n_rec, spec.dtype)


@dataclass
class _DevTile:
    act: str
    x: Any  # (p*R, K) augmented input, device
    ws: Any  # (p,) σ_w (2N)^(-1/α) per point, dtype T, device
    out: dict[str, Any]  # observable -> (p, n_record) device arrays
    first_nonfinite: Any  # (p,) int32
    first_underflow: Any  # (p,) int32
    growth_sum: Any  # (p,) float64


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
    ops: Any = None,
) -> list[dict[str, np.ndarray]]:
    """GPU twin of :func:`.reference.propagate_network` (same parameters and
    returns; NumPy arrays on the host). Runs on the current CuPy device.

    ``threads`` is accepted for signature compatibility and ignored. ``points_per_tile``
    defaults to :func:`gpu_tile_points` of the largest group (the sweep passes the value of
    the whole grid). ``ops`` is the kernel interface (default :class:`.ops.CupyOps`; tests
    pass its NumPy emulation :class:`.ops.NumpyOps`).
    """
    del threads
    if ops is None:
        from pipeline.experiments.propagation.ops import CupyOps

        ops = CupyOps()
    xp = ops.xp
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    n = int(width)
    k = augmented_width(n)
    w_coef = (2.0 * n) ** (-1.0 / alpha)
    b_coef = 2.0 ** (-1.0 / alpha)
    x0 = probe_inputs(seed, n, probes)
    r = probes.rows_per_point
    ppt = points_per_tile or gpu_tile_points(probes, max(len(g[1]) for g in groups))
    names = probes.observables()
    n_rec = len(record_layers)
    rec_index = np.full(depth + 1, -1)
    rec_index[np.asarray(record_layers)] = np.arange(n_rec)
    off = probes.offsets

    tiles: list[tuple[int, _DevTile]] = []
    for g, (act_name, sw, sb) in enumerate(groups):
        act = get_activation(act_name)
        sw, sb = np.asarray(sw, np.float64), np.asarray(sb, np.float64)
        n_tiles = -(-len(sw) // ppt)
        pad = n_tiles * ppt - len(sw)
        sw = np.concatenate([sw, np.zeros(pad)])
        sb = np.concatenate([sb, np.zeros(pad)])
        first = x0.copy()
        if probes.pair:  # as the reference's _new_tile: δh⁰ read at h⁰ := x⁰_a
            first[2] = act.dphi(x0[0], np) * x0[2]
        first_dev = xp.asarray(first.astype(dt))  # (R, N): the only probe data uploaded
        for t in range(n_tiles):
            s = slice(t * ppt, (t + 1) * ppt)
            ws, x = _initial_input(xp, first_dev, sw[s], sb[s], w_coef, b_coef, probes, k, dt)
            tiles.append(
                (
                    g,
                    _DevTile(
                        act=act_name,
                        x=x,
                        ws=ws,
                        out={nm: xp.full((ppt, n_rec), np.nan, dt) for nm in names},
                        first_nonfinite=xp.zeros(ppt, np.int32),
                        first_underflow=xp.zeros(ppt, np.int32),
                        growth_sum=xp.zeros(ppt, np.float64),
                    ),
                )
            )

    z = xp.zeros((n, k), dt)  # [Z | ζ | 0]; the zero padding is never overwritten
    h = xp.empty((ppt * r, n), dt)
    stats = xp.empty((ppt, 5), np.float64)
    bad = xp.empty(ppt, np.int32)
    with np.errstate(all="ignore"):  # overflow and 0/0 are data here (host emulation only)
        for layer in range(1, depth + 1):
            ops.fill_stable(z, 0, k, seed, rng.STREAMS["weight"], layer, 0, n, 0, n, alpha)
            ops.fill_stable(z, n, k, seed, rng.STREAMS["bias"], layer, 0, n, 0, 1, alpha)
            ri = int(rec_index[layer])
            for _, tile in tiles:
                xp.matmul(tile.x, z.T, out=h)
                if ri >= 0:
                    _record_h(xp, tile, h, ri, probes, off, ppt, n)
                ops.layer_step(h, tile.x, r, probes.pair is not None, tile.ws, tile.act, stats, bad)
                _bookkeep(xp, tile, stats, bad, layer, ri, probes, n)

    results: list[dict[str, np.ndarray]] = []
    for g, (_, sw, _) in enumerate(groups):
        mine = [t for gi, t in tiles if gi == g]
        p = len(sw)
        res = {nm: np.concatenate([_host(xp, t.out[nm]) for t in mine])[:p] for nm in names}
        res["nonfinite_layer"] = np.concatenate([_host(xp, t.first_nonfinite) for t in mine])[:p]
        if probes.pair:
            under = np.concatenate([_host(xp, t.first_underflow) for t in mine])[:p]
            res["underflow_layer"] = under
        results.append(res)
    return results


def _initial_input(
    xp: Any,
    first: Any,
    sw: np.ndarray,
    sb: np.ndarray,
    w_coef: float,
    b_coef: float,
    probes: Probes,
    k: int,
    dt: np.dtype,
) -> tuple[Any, Any]:
    """(ws, x) of a tile built on the device, value for value as
    the reference's ``_new_tile``: ``x[:, :N]`` = first rows × σ_w (2N)^(−1/α) (in
    the compute dtype), ``x[:, N]`` = σ_b 2^(−1/α) (0 on the tangent row), the rest 0."""
    r, n = first.shape
    p = len(sw)
    ws_host = (np.asarray(sw, np.float64) * w_coef).astype(dt)
    b_host = np.repeat((np.asarray(sb, np.float64) * b_coef).astype(dt), r).reshape(p, r)
    if probes.pair:
        b_host[:, 2] = 0  # the tangent is propagated by the Jacobian: no bias
    ws = xp.asarray(ws_host)
    x = xp.zeros((p * r, k), dt)
    x3 = x.reshape(p, r, k)
    xp.multiply(first[None], ws[:, None, None], out=x3[:, :, :n])
    x[:, n] = xp.asarray(b_host.reshape(-1))
    return ws, x


def _host(xp: Any, a: Any) -> np.ndarray:
    return a if xp is np else xp.asnumpy(a)


def _bookkeep(
    xp: Any,
    tile: _DevTile,
    stats: Any,
    bad: Any,
    layer: int,
    ri: int,
    probes: Probes,
    n: int,
) -> None:
    """Non-finite and underflow markers, Lyapunov sums and the pair observables from the
    kernel's sums (the kernel reports |δh|² as NaN for a lost tangent)."""
    first = tile.first_nonfinite
    xp.copyto(first, np.int32(layer), where=(bad != 0) & (first == 0))
    if not probes.pair:
        return
    saa, sbb, sab, sdd, stt = (stats[:, i] for i in range(5))
    act = get_activation(tile.act)
    # λ is NaN from the layer that sets the flag (any row of the point, h_b and the other
    # probes' rows included; the kernel's own NaN tangent covers h_a and δh only)
    growth, _, underflow = tangent_growth(saa, stt, tile.ws, act, tile.ws.dtype, xp, bad != 0)
    under = tile.first_underflow
    xp.copyto(under, np.int32(layer), where=underflow & (under == 0))
    tile.growth_sum += growth
    if ri >= 0:
        out = tile.out
        out["q"][:, ri] = saa / n
        out["c"][:, ri] = sab / xp.sqrt(saa * sbb)
        out["dist"][:, ri] = sdd / n
        out["lyap_growth"][:, ri] = growth
        out["lyapunov"][:, ri] = tile.growth_sum / layer


def _record_h(
    xp: Any,
    tile: _DevTile,
    h: Any,
    ri: int,
    probes: Probes,
    off: dict[str, int],
    p: int,
    n: int,
) -> None:
    """Circle CV and batch rank / participation ratio at a recorded layer (CuPy array code,
    before the layer step overwrites the tile's input)."""
    r = probes.rows_per_point
    h3 = h.reshape(p, r, n)
    act = get_activation(tile.act)
    for obs in ROW_OBSERVABLES:
        probe = getattr(probes, obs.probe)
        if probe is None:
            continue
        block = h3[:, off[obs.probe] : off[obs.probe] + probe.rows]
        if obs.source == "x":
            block = act.phi(block, xp)
        for name, values in zip(obs.names, obs.compute(block, h.dtype, xp), strict=True):
            tile.out[name][:, ri] = values
