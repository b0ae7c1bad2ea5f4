"""The named boundary-dimension estimators of a signed 2-D field.

* ``default`` (:func:`default_dimension`): the directional uncertainty exponent, or box
  counting when one class is thin (all boundary);
* ``directional-uncertainty`` (:func:`directional_uncertainty_exponent`): the flip fraction
  under shifts along the axis where the boundary is roughest (first-order variogram of a
  graph), fitted like the uncertainty exponent;
* ``box-counting`` (:func:`box_counting_dimension`): offset-averaged box counts and the
  calibrated fit of :mod:`.fit` (raster cut-off, frame-aware model, interval with the range
  choice and a spatial jackknife);
* ``uncertainty-exponent`` (:func:`uncertainty_exponent`): D = 2 − γ from the fraction of
  pixels whose class changes under a shift ε, f(ε) ∝ ε^γ, with the same range and interval
  machinery;
* ``sohl-dickstein-2024`` (:func:`sohl_dickstein_dimension`): median of local slopes of
  mixed-box counts from 10 px, pooled over the frames of a zoom;
* ``sohl-dickstein-notebook`` (:func:`~.notebook.sohl_dickstein_notebook_dimension`): the
  paper's notebook as published (porespy box counts of the 2×2 edge image, median of all
  ``numpy.gradient`` local slopes of all frames pooled), for comparing with its numbers;
* ``dinverno-2025`` (:func:`dinverno_dimension`): least squares over box sizes 1–49 px,
  and for a distance field the maximum over thresholds |d| <= t, t in logspace(−5, 0, 32),
  as D'Inverno et al. (2025) measure their frontier; for comparing with that paper like for
  like (its interval is the least-squares standard error only).

Their bias and coverage on the calibration battery are in BENCHMARKS.md ("Fractal battery").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.analysis.fractal.counts import (
    BLOCKS,
    as_field,
    boundary_mask,
    classes,
    count_boxes,
    count_boxes_lazy,
    count_occupancy,
)
from pipeline.analysis.fractal.estimate import DimensionEstimate
from pipeline.analysis.fractal.fit import (
    Z95,
    calibrated_dimension,
    dimension_from_counts,
    fit_scaling,
    linfit,
)
from pipeline.analysis.fractal.notebook import sohl_dickstein_notebook_dimension
from pipeline.analysis.fractal.shifts import (
    AxisFlips,
    axis_flips,
    default_shifts,
    flips_in_own_box,
)
from pipeline.errors import PipelineError

__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "box_counting_dimension",
    "default_dimension",
    "dinverno_dimension",
    "directional_uncertainty_exponent",
    "estimate_dimension",
    "sohl_dickstein_dimension",
    "uncertainty_exponent",
]


def box_counting_dimension(
    f: ArrayLike, sizes: Sequence[int] | None = None, **kwargs: object
) -> DimensionEstimate:
    """Box-counting dimension of the boundary of the signed 2-D field ``f`` (the default
    estimator).

    :func:`~.counts.count_boxes` (``sizes`` default: four per octave from 1 px to a quarter
    of the smaller side, each count the mean over 4 grid offsets), then
    :func:`~.fit.dimension_from_counts` with the frame's smaller side and the per-block
    counts (keyword arguments go there). For a field too big for memory use
    :func:`~.counts.count_boxes_lazy` and pass its counts the same way.
    """
    bc = count_boxes(f, sizes)
    kw = {"side": min(bc.shape), "blocks": bc.blocks, **kwargs}
    return dimension_from_counts(bc.sizes, bc.counts, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------- uncertainty exponent


def _shift_flips(
    pos: NDArray[np.bool_], valid: NDArray[np.bool_] | None, e: int, m: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(flip, ok) over the central region (margin ``m``): whether a pixel's class differs
    from that of a pixel ``e`` px away along ±x or ±y, and whether all five are valid."""
    h, w = pos.shape
    c = pos[m : h - m, m : w - m]
    ok = np.ones_like(c) if valid is None else valid[m : h - m, m : w - m].copy()
    flip = np.zeros_like(c)
    for dr, dc in ((e, 0), (-e, 0), (0, e), (0, -e)):
        flip |= pos[m + dr : h - m + dr, m + dc : w - m + dc] != c
        if valid is not None:
            ok &= valid[m + dr : h - m + dr, m + dc : w - m + dc]
    return flip, ok


def _block_sums(a: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Sums of ``a`` over BLOCKS × BLOCKS equal blocks (by row/column position)."""
    h, w = a.shape
    r = [i * h // BLOCKS for i in range(BLOCKS + 1)]
    c = [j * w // BLOCKS for j in range(BLOCKS + 1)]
    return np.array(
        [np.count_nonzero(a[r[i] : r[i + 1], c[j] : c[j + 1]]) for i in range(BLOCKS)
         for j in range(BLOCKS)],
        np.float64,
    )  # fmt: skip


def uncertainty_exponent(
    f: ArrayLike | Callable[[NDArray, NDArray], NDArray],
    eps: Sequence[float] | None = None,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    n_points: int = 200_000,
    seed: int = 0,
) -> DimensionEstimate:
    """Boundary dimension ``D = 2 − γ`` from the uncertain fraction ``f(ε) ∝ ε^γ``.

    A point is *ε-uncertain* when its class (``f > 0``) differs from that of a point shifted
    by ε along ±x or ±y. Two inputs:

    * a 2-D array: every pixel of the central region is tested, ε in pixels (default: four
      per octave from 1 px to 1/16 of the smaller side); the margin is the largest ε, so
      every ε sees the same pixels. γ is fitted like a box count (:mod:`.fit`): ε from 4 px
      to 1/16 of the frame, the interval from the spread over ranges starting at 4 or 8 px
      and ending at 1/16, 1/32 or 1/64 of the frame, and a jackknife over blocks;
    * a callable ``g(x, y) -> values`` (vectorised) and ``bounds = (x0, x1, y0, y1)``:
      ``n_points`` uniform random points (generator seeded by ``seed``), ε in the units of
      x and y (required); a plain least-squares fit over all ε with its standard error.
    """
    if callable(f):
        if bounds is None or eps is None:
            raise PipelineError("uncertainty_exponent: a callable field needs bounds and eps")
        x0, x1, y0, y1 = (float(b) for b in bounds)
        rng = np.random.default_rng(seed)
        x = rng.uniform(x0, x1, n_points)
        y = rng.uniform(y0, y1, n_points)
        c0 = np.asarray(f(x, y)) > 0
        fracs = []
        for e in eps:
            flip = np.zeros(n_points, bool)
            for dx, dy in ((e, 0), (-e, 0), (0, e), (0, -e)):
                flip |= (np.asarray(f(x + dx, y + dy)) > 0) != c0
            fracs.append(flip.mean())
        ev, fr = np.asarray(eps, np.float64), np.asarray(fracs, np.float64)
        if np.count_nonzero(fr > 0) < 3:
            raise PipelineError("field: fewer than 3 shifts ε find an uncertain point")
        ok = fr > 0
        g, a, se = linfit(np.log(ev[ok]), np.log(fr[ok]))
        return DimensionEstimate(
            estimate=2.0 - g,
            interval=(2.0 - g - Z95 * se, 2.0 - g + Z95 * se),
            scales=ev,
            counts=fr,
            fit_range=(int(np.flatnonzero(ok)[0]), int(np.flatnonzero(ok)[-1])),
            method="uncertainty-exponent",
            slope=g,
            params=(a, g),
        )
    arr = as_field(f)
    pos, valid = classes(arr)
    side = min(arr.shape)
    if eps is None:
        ev = default_shifts(side)
    else:
        ev = np.asarray(eps, np.float64)
    if np.any(ev != np.round(ev)) or np.any(ev < 1):
        raise PipelineError(f"eps: expected integer pixel shifts >= 1, got {ev.tolist()}")
    m = int(ev.max())
    if 2 * m >= side:
        raise PipelineError(f"eps: largest shift {m} px is too large for shape {arr.shape}")
    unc = np.empty((ev.size, BLOCKS * BLOCKS))
    tot = np.empty((ev.size, BLOCKS * BLOCKS))
    for i, e in enumerate(ev):
        flip, ok = _shift_flips(pos, valid, int(e), m)
        unc[i], tot[i] = _block_sums(flip & ok), _block_sums(ok)
    fr = unc.sum(1) / np.maximum(tot.sum(1), 1)
    loo = (unc.sum(1)[None, :] - unc.T) / np.maximum(tot.sum(1)[None, :] - tot.T, 1)
    return _exponent_estimate(ev, fr, side, loo, "uncertainty-exponent")


UE_LOWS = (4, 8)
UE_TOPS = (16, 32, 64)
"""The uncertainty exponents' admissible ranges: from 4 or 8 px to 1/16, 1/32 or 1/64 of
the frame; the main fit runs from 4 px to 1/16 (span 8 at 512 px)."""
UE_MIN_SPAN = 8.0
"""The smallest span of the main range (ε_max / ε_min) a trustworthy exponent needs."""
UE_HIGH_LOW = 16
"""Frames whose range from this many px to 1/16 (and to 1/32) of the side still spans
UE_MIN_SPAN add those ranges to the spread of the interval (frames of >= 2048 px): a raster
cutoff that reaches above 8 px (a steep Koch island's 10° wedges fill up to ~1/sin 5° px)
biases the main fit without moving the fits from 4 or 8 px apart; it moves the fit from
16 px."""


def directional_uncertainty_exponent(
    f: object, eps: Sequence[float] | None = None, *, band_rows: int = 2048
) -> DimensionEstimate:
    """Boundary dimension ``D = 2 − γ`` from the flip fraction along the roughest axis.

    :func:`~.shifts.axis_flips` counts, for shifts ε along x and along y, the pixel pairs
    (p, p ± ε) of different class; the axis whose flip fraction is larger over the fitted
    range is the boundary's roughest direction, and its fraction f(ε) ∝ ε^γ is fitted like a
    box count (:func:`~.fit.calibrated_dimension`: ε from 4 px to 1/16 of the frame's
    smaller side; the interval holds the spread over ranges from 4 or 8 px to 1/16, 1/32 or
    1/64 of the frame and a jackknife over blocks). A boundary *enclosed* in the frame (a
    bounded object that reaches no edge of the central region:
    :attr:`~.shifts.AxisFlips.enclosed`) takes its extent along the fitted axis
    (:meth:`~.shifts.AxisFlips.boundary_extent`) in place of the frame's side, and its
    flips are recounted in its own window (:func:`~.shifts.flips_in_own_box`, same flip
    counts): pairs that straddle the whole object saturate the flips as ε nears its size,
    which reads D high (the Brownian frontier of a walk 1/7–1/2 of the frame across: +0.034
    at 8192² with the frame's side, +0.004 with its extent; BENCHMARKS.md); the span of
    such an object's range, not the frame's, then says whether it is too small. A boundary
    that crosses the frame keeps the frame's side (a curve's extent along an axis is not a
    scale of its roughness). For an isotropic boundary both axes
    give 2 − D; for a self-affine graph y = g(x) the x-axis fraction is g's first-order
    variogram (∝ ε^H, D = 2 − H, exact at pixel sampling) while shifts along y or the
    union over directions add a part ∝ ε that biases D low (0.04–0.2 at 2048² for H =
    0.15–0.5, BENCHMARKS.md). It needs both classes to have an interior: for a class that is
    all boundary (a critical percolation cluster) the flip fraction saturates at twice the
    class's share and D reads high (+0.02–0.04 at 2048²–8192²); :func:`default_dimension`
    uses box counting there. ``f``: a 2-D NumPy array, or a ``zarr.Array``/dask array/
    ``xarray.DataArray`` too big for memory (read in bands of ``band_rows`` rows).
    ``extra``: ``axis`` (0: x, shifts within rows; 1: y), ``side`` (the side the range is
    scaled to), ``frame_side``, ``extent``, ``min_span``, ``edge_share``
    (:meth:`~.shifts.AxisFlips.edge_share`)."""
    return _directional(f, axis_flips(f, eps, band_rows=band_rows), band_rows)


OWN_BOX_TOP = 4
"""An enclosed boundary is recounted with the shifts up to 1/4 of its extent (the reach of
the small-frame fallback ranges of :func:`~.fit.calibrated_dimension`)."""


def _directional(f: object, af: AxisFlips, band_rows: int) -> DimensionEstimate:
    """The directional exponent of ``f`` from its frame's flip counts ``af``: recounted in
    the boundary's own window when it is enclosed; ``edge_share`` is the frame's."""
    own = flips_in_own_box(f, af, OWN_BOX_TOP, band_rows=band_rows)
    est = _from_flips(own, frame=min(af.shape))
    return dataclasses.replace(est, extra=est.extra | {"edge_share": af.edge_share()})


def _from_flips(af: AxisFlips, frame: int | None = None) -> DimensionEstimate:
    """:func:`directional_uncertainty_exponent` from its flip counts ``af``, counted in a
    frame whose smaller side is ``frame`` px (default: ``af``'s) or in a window of it."""
    frame = min(af.shape) if frame is None else frame
    # a bounded object inside the frame: its extent plays the frame's part in the range
    sides = [min(frame, af.boundary_extent(a)) if af.enclosed else frame for a in (0, 1)]
    fr = af.fractions()
    main = (af.eps >= UE_LOWS[0]) & (af.eps <= min(sides) / UE_TOPS[0])
    if not main.any():
        main = np.ones_like(main)
    axis = int(np.argmax(fr[:, main].sum(1)))
    extra = {
        "axis": axis,
        "edge_share": af.edge_share(),
        "frame_side": frame,
        "extent": af.boundary_extent(axis),
    }
    return _exponent_estimate(
        af.eps, fr[axis], sides[axis], af.leave_one_out(axis), "directional-uncertainty", extra
    )


CUTOFF_SCALES = (1.0, 4.0)
"""The shifts (px) between which :func:`cutoff_bound` measures the local slope below the
fit range (the range starts at the upper one)."""


CUTOFF_MAX_WEIGHT = 0.75
"""The largest share of the deficit below the range that :func:`cutoff_bound` carries into
the range (b <= 3 δ)."""


def cutoff_bound(
    ev: NDArray, fr: NDArray, dim: float, fit_range: tuple[int, int]
) -> tuple[float, float]:
    """(bound b >= 0, deficit δ) of a pixel-scale cutoff in the uncertain fractions ``fr``
    at shifts ``ev`` (px) fitted as dimension ``dim`` over ``ev[fit_range]``.

    δ is ``dim`` minus the dimension of the step from 1 to 4 px (:data:`CUTOFF_SCALES`):
    a raster or a spectrum that stops at the pixel loses the flips of the sub-pixel detail,
    so the local slopes fall short of D there. Such a loss is a constant deficit K in f(ε)
    (at shifts above the lost detail), and a constant deficit lowers the local dimension by
    ≈ γ K / f(ε) ∝ ε^−γ, γ = 2 − D: for boundaries of high D it reaches far up the
    range (the zero set of a fractional Brownian surface of H = 0.3, spectrum cut at the
    pixel: local slopes 1.47 at 1.4 px, 1.63 at 4.5 px, 1.66 at 12 px, for D = 1.7).
    With w the least-squares slope, over the fit range, of the log-f change that a
    deficit (ε / 2 px)^−γ of the local dimension implies (the share of the deficit at 2 px
    that the fit keeps), b = w δ / (1 − w): how far the fit can sit below D if the deficit
    seen below the range decays no faster than a constant missing share of the flips
    allows (δ is measured from the fit, which sits low by b itself; on f = ε^γ − K over
    4–128 px, γ = 0.15–0.74, b holds the fit's bias). Sharp boundaries rendered on pixels
    recover faster (≈ 1/ε), so b overstates their bias; it is one-sided (the cutoff only
    lowers D) and goes on the interval's upper end. b = 0 when δ <= 0 or the shifts do not
    reach both scales."""
    lo, hi = CUTOFF_SCALES
    ok = fr > 0
    e, f = np.asarray(ev, np.float64)[ok], np.asarray(fr, np.float64)[ok]
    if e.size < 2 or e[0] > lo or e[-1] < hi:
        return 0.0, math.nan
    lf = np.interp(np.log([lo, hi]), np.log(e), np.log(f))
    deficit = float(dim - (2.0 - (lf[1] - lf[0]) / math.log(hi / lo)))
    i, j = fit_range
    x = np.log(np.asarray(ev, np.float64)[i : j + 1])
    if deficit <= 0 or x.size < 3 or not math.isfinite(deficit):
        return 0.0, deficit
    g = max(2.0 - dim, 0.1)
    # log f_true − log f_observed, up to a constant: its x-derivative is the deficit
    c = -(deficit / g) * math.sqrt(lo * hi) ** g * np.exp(-g * x)
    w = min(max(float(linfit(x, c)[0]) / deficit, 0.0), CUTOFF_MAX_WEIGHT)
    # δ is measured from the fit, which sits low by the bias itself: bias = w (δ + bias)
    return w * deficit / (1.0 - w), deficit


def _exponent_estimate(
    ev: NDArray, fr: NDArray, side: int, loo: NDArray, method: str, extra: dict | None = None
) -> DimensionEstimate:
    """D = 2 − γ from uncertain fractions ``fr`` at shifts ``ev`` (px) on a frame of smaller
    side ``side``, ``loo`` (B, E) the fractions with each block left out: the calibrated fit
    over the uncertainty exponents' ranges (:data:`UE_LOWS`, :data:`UE_TOPS`; from
    :data:`UE_HIGH_LOW` px too on large frames). The 95 % half-width is 1.96 × (jackknife sd
    and range spread in quadrature) plus the *swing bound* 3 a / L (``extra["swing_bound"]``):
    a the largest residual of log f about the fitted line, L the fit's log-range; a residual
    pattern of amplitude a can move a least-squares slope over L by at most that (the
    log-periodic swings of a steep self-similar island, ±0.13 in local slope, bias the fit
    by 0.01–0.03 without moving the jackknife or the range spread). The upper end adds the
    *cutoff bound* (:func:`cutoff_bound`, ``extra["cutoff_bound"]``): the most a pixel-scale
    cutoff seen below the range can still hold the fit down."""
    # the fit's "dimension" is −slope = −γ, so D = 2 + it
    r = calibrated_dimension(
        ev, fr, side, jackknife=loo, to_dimension=lambda q: 2.0 + q.dimension,
        allow_rectifiable=False, lows=UE_LOWS, tops=UE_TOPS, top=UE_TOPS[0], min_count=1e-300,
    )  # fmt: skip
    fit = r["fit"]
    est, interval, spread = r["estimate"], r["interval"], r["range_spread"]
    high = [t for t in UE_TOPS[:2] if not r["fallback"] and side / t / UE_HIGH_LOW >= UE_MIN_SPAN]
    for t in high:  # ranges from UE_HIGH_LOW px: a raster cutoff above the main range's low end
        j = np.flatnonzero((ev >= UE_HIGH_LOW) & (ev <= side / t) & (fr > 0))
        if j.size >= 4:
            q = fit_scaling(np.log(ev[j]), np.log(fr[j]), rectifiable=False)
            spread = max(spread, abs(2.0 + q.dimension - est))
    # swings: a residual pattern of amplitude a (log-periodic swings of a self-similar set,
    # the bend of a cutoff) moves a least-squares slope over a log-range L by up to 3a/L
    i, k = r["fit_range"]
    x, y = np.log(ev[i : k + 1]), np.log(fr[i : k + 1])
    swing = 0.0
    if len(fit.params) >= 2 and x.size >= 3 and x[-1] > x[0]:
        res = y - (fit.params[0] + fit.params[1] * x)
        swing = 3.0 * float(np.abs(res).max()) / float(x[-1] - x[0])
    cut, deficit = (0.0, math.nan) if r["fallback"] else cutoff_bound(ev, fr, est, r["fit_range"])
    if spread > r["range_spread"] or swing > 0 or cut > 0:
        jack, se = r["jackknife_sd"], fit.se
        stat = jack if math.isfinite(jack) else (se if math.isfinite(se) else 0.0)
        half = Z95 * math.hypot(stat, spread) + swing
        interval = (est - half, est + half + cut)
    r = r | {"range_spread": spread, "swing_bound": swing}
    return DimensionEstimate(
        estimate=est,
        interval=interval,
        scales=np.asarray(ev, np.float64),
        counts=np.asarray(fr, np.float64),
        fit_range=r["fit_range"],
        method=method,
        slope=2.0 - r["estimate"],
        model=fit.model,
        params=fit.params,
        extra={k: r[k] for k in ("jackknife_sd", "range_spread", "swing_bound", "span", "fallback")}
        | {"cutoff_bound": cut, "cutoff_deficit": deficit}
        | {"side": side, "min_span": UE_MIN_SPAN, "top": UE_TOPS[0]}
        | (extra or {}),
    )


THIN_EDGE_SHARE = 0.5
"""A class whose pixels touch the other class at least this often is *thin* (all boundary):
critical percolation clusters 0.86, every other battery field <= 0.39 at 1024²."""


def default_dimension(f: object, *, band_rows: int = 2048) -> DimensionEstimate:
    """The default boundary dimension of the signed 2-D field ``f``: the directional
    uncertainty exponent (:func:`directional_uncertainty_exponent`), or, when one class is
    thin (:data:`THIN_EDGE_SHARE`: its pixels are mostly boundary, so flips saturate), box
    counting (:func:`box_counting_dimension`; through :func:`~.counts.count_boxes_lazy` for a
    chunked field: zarr, dask, or an xarray.DataArray backed by one). ``method`` of the
    result says which ran; ``extra`` holds ``edge_share``. ``f``: as
    :func:`directional_uncertainty_exponent`."""
    af = axis_flips(f, None, band_rows=band_rows)
    share = af.edge_share()
    if share < THIN_EDGE_SHARE:
        return _directional(f, af, band_rows)
    if getattr(getattr(f, "data", f), "chunks", None) is None:  # in memory
        est = box_counting_dimension(f)  # type: ignore[arg-type]
    else:  # a zarr.Array, a dask array or an xarray.DataArray backed by one
        bc = count_boxes_lazy(f)
        est = dimension_from_counts(bc.sizes, bc.counts, side=min(bc.shape), blocks=bc.blocks)
    return dataclasses.replace(est, extra=est.extra | {"edge_share": share})


# ------------------------------------------------------------- Sohl-Dickstein (2024)


def _mixed_boxes(pos: NDArray[np.bool_], valid: NDArray[np.bool_], s: int) -> int:
    """Number of complete s×s boxes of the image holding both classes."""
    h, w = pos.shape
    hh, ww = h // s, w // s
    p = pos[: hh * s, : ww * s].reshape(hh, s, ww, s)
    v = valid[: hh * s, : ww * s].reshape(hh, s, ww, s)
    has_pos = (p & v).any(axis=(1, 3))
    has_neg = (~p & v).any(axis=(1, 3))
    return int(np.count_nonzero(has_pos & has_neg))


BOXES_PER_SIDE = 4  # sohl_dickstein_dimension: the largest box is 1/4 of the smaller side
SOHL_DICKSTEIN_MIN_SIZE = 10


def sohl_dickstein_dimension(
    frames: Sequence[ArrayLike] | ArrayLike,
    *,
    n_sizes: int = 10,
    min_size: int = SOHL_DICKSTEIN_MIN_SIZE,
    n_boot: int = 2000,
    seed: int = 0,
) -> DimensionEstimate:
    """The estimator of Sohl-Dickstein (2024), pooled over a sequence of frames.

    For each 2-D frame (e.g. a zoom sequence of windows halving around a boundary point):
    ``n_sizes`` log-spaced box sizes from ``min_size`` px to a quarter of the frame's smaller
    side (so that even the largest boxes tile it 4 × 4), the number of boxes holding both
    classes (``f > 0`` and ``f <= 0``; NaN is neither) at each size, and the local slopes
    −Δlog N / Δlog s between consecutive sizes (pairs with a zero count are skipped). The
    estimate is the median of the local slopes of all frames pooled; the 95 % interval is a
    bootstrap of that median. ``scales``/``counts`` hold the first frame's sizes and the counts
    summed over frames; ``extra["local_slopes"]`` the pooled local slopes. Raises
    ``PipelineError`` for a frame under ``16 * min_size`` px.
    """
    if isinstance(frames, np.ndarray) and frames.ndim == 2:
        frames = [frames]
    slopes: list[float] = []
    total: NDArray | None = None
    first_sizes: NDArray | None = None
    for fr in frames:
        a = as_field(fr)
        pos, valid = classes(a)
        if valid is None:
            valid = np.ones(a.shape, bool)
        # The largest box still fits BOXES_PER_SIDE times along the smaller side: with one or
        # two boxes per side a count is 0, 1 or 2 whatever the boundary, and its slopes are 0.
        top = min(a.shape) // BOXES_PER_SIDE
        if top < 4 * min_size:
            raise PipelineError(
                f"frame: shape {a.shape} is too small for this estimator (the smaller side must "
                f"be >= {4 * BOXES_PER_SIDE * min_size} px: box sizes from min_size = "
                f"{min_size} px to 1/{BOXES_PER_SIDE} of it, at least a factor 4 apart)"
            )
        sizes = np.unique(np.round(np.geomspace(min_size, top, n_sizes)).astype(np.int64))
        counts = np.array([_mixed_boxes(pos, valid, int(s)) for s in sizes], np.float64)
        if total is None:
            total, first_sizes = counts.copy(), sizes
        elif counts.shape == total.shape:
            total += counts
        ok = (counts[:-1] > 0) & (counts[1:] > 0)
        ls, ln = np.log(sizes), np.log(np.where(counts > 0, counts, 1.0))
        slopes.extend((-(ln[1:] - ln[:-1]) / (ls[1:] - ls[:-1]))[ok].tolist())
    if not slopes:
        raise PipelineError("frames: no frame holds both classes at two box sizes")
    sl = np.asarray(slopes)
    est = float(np.median(sl))
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(sl, size=(n_boot, sl.size), replace=True), axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    assert total is not None and first_sizes is not None
    return DimensionEstimate(
        estimate=est,
        interval=(float(lo), float(hi)),
        scales=first_sizes.astype(np.float64),
        counts=total,
        fit_range=(0, len(first_sizes) - 1),
        method="sohl-dickstein-2024",
        slope=-est,
        extra={"local_slopes": sl},
    )


# ------------------------------------------------------------ D'Inverno et al. (2025)

DINVERNO_SIZES = tuple(range(1, 50))
DINVERNO_THRESHOLDS = tuple(np.logspace(-5, 0, 32).tolist())


def _dinverno_fit(mask: NDArray[np.bool_]) -> DimensionEstimate | None:
    sizes = [s for s in DINVERNO_SIZES if s <= min(mask.shape)]
    bc = count_occupancy(mask, 1, sizes, n_offsets=1)
    ok = bc.counts > 0
    if np.count_nonzero(ok) < 3:
        return None
    b, a, se = linfit(np.log(bc.sizes[ok]), np.log(bc.counts[ok]))
    return DimensionEstimate(
        estimate=-b,
        interval=(-b - Z95 * se, -b + Z95 * se),
        scales=bc.sizes,
        counts=bc.counts,
        fit_range=(int(np.flatnonzero(ok)[0]), int(np.flatnonzero(ok)[-1])),
        method="dinverno-2025",
        slope=b,
        params=(a, b),
    )


def dinverno_dimension(
    f: ArrayLike, *, distance: bool = False, thresholds: Sequence[float] = DINVERNO_THRESHOLDS
) -> DimensionEstimate:
    """The estimator of D'Inverno et al. (2025): a least-squares line through log N vs
    log s over every box size from 1 to 49 px (one grid, from the origin), D = −slope.

    ``distance=False``: ``f`` is a signed field, boxed on its sign boundary. ``distance=True``:
    ``f`` is a distance-like field (e.g. the propagation experiment's ``dist``, the squared
    distance between two propagated inputs); for each threshold t of ``thresholds`` (default
    logspace(−5, 0, 32)) the class is ``|f| <= t``, and D is the largest D_t over the
    thresholds whose class boundary exists (``extra``: ``threshold``, ``thresholds``,
    ``per_threshold``). The interval is the line's least-squares standard error (the paper
    reports none; it ignores the range choice and the correlation of the counts)."""
    arr = as_field(f)
    if not distance:
        est = _dinverno_fit(boundary_mask(arr))
        if est is None:
            raise PipelineError("field: fewer than 3 box sizes hold a boundary box")
        return est
    a = np.abs(np.asarray(arr, np.float64))
    per = np.full(len(thresholds), np.nan)
    best: DimensionEstimate | None = None
    best_t = math.nan
    for i, t in enumerate(thresholds):
        cls = np.where(np.isnan(a), np.nan, np.where(a <= t, 1.0, -1.0))
        est = _dinverno_fit(boundary_mask(cls))
        if est is None:
            continue
        per[i] = est.estimate
        if best is None or est.estimate > best.estimate:
            best, best_t = est, float(t)
    if best is None:
        raise PipelineError("field: no threshold |d| <= t gives a boundary to box-count")
    extra = {"threshold": best_t, "thresholds": np.asarray(thresholds), "per_threshold": per}
    return dataclasses.replace(best, extra=extra)


# -------------------------------------------------------------------------- registry

ESTIMATORS: dict[str, Callable[..., DimensionEstimate]] = {
    "default": default_dimension,
    "directional-uncertainty": directional_uncertainty_exponent,
    "box-counting": box_counting_dimension,
    "uncertainty-exponent": uncertainty_exponent,
    "sohl-dickstein-2024": sohl_dickstein_dimension,
    "sohl-dickstein-notebook": sohl_dickstein_notebook_dimension,
    "dinverno-2025": dinverno_dimension,
}
DEFAULT_ESTIMATOR = "default"


def estimate_dimension(f: ArrayLike, method: str = DEFAULT_ESTIMATOR) -> DimensionEstimate:
    """The boundary dimension of the signed field ``f`` by the estimator named ``method``
    (one of :data:`ESTIMATORS`)."""
    if method not in ESTIMATORS:
        raise PipelineError(
            f"method: {method!r} is not one of the estimators {', '.join(ESTIMATORS)}"
        )
    return ESTIMATORS[method](f)
