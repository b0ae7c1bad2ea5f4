"""Fractal dimension of the boundary between the two classes of a signed 2-D field.

Pure NumPy (the lazy variant, :func:`box_counts_lazy`, adds Dask and nothing else).

Conventions
-----------
* A *field* is a 2-D array ``f`` (rows = first axis). Its *class* is ``f > 0``; NaN pixels
  belong to no class and never make a boundary.
* The *boundary mask* ``B`` has shape ``(H − 1, W − 1)``: ``B[i, j]`` is true when the 2×2
  neighbourhood ``f[i:i+2, j:j+2]`` holds both classes (a sign change). A mask pixel is the
  corner shared by four field pixels, so it lies on the curve separating the classes.
* A box of size ``s`` (pixels) is ``B[s·a : s·(a+1), s·b : s·(b+1)]``; boxes tile ``B`` from
  its origin, the last row/column of boxes may be partial. ``N(s)`` is the number of boxes
  holding a boundary pixel. Box counts of a union of row/column blocks add up when ``s``
  divides the block size, which is what makes :func:`box_counts_lazy` exact.
* The box-counting dimension is ``D = −d log N / d log s`` over the scaling range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.errors import PipelineError

__all__ = [
    "DimensionEstimate",
    "boundary_mask",
    "box_counts",
    "box_counts_lazy",
    "box_counting_dimension",
    "dimension_from_counts",
    "sohl_dickstein_dimension",
    "uncertainty_exponent",
]


@dataclass(frozen=True)
class DimensionEstimate:
    """A fractal-dimension estimate with what it was computed from.

    ``estimate`` and the 95 % ``interval`` (low, high); ``scales`` (box sizes or shifts ε, in
    pixels) and ``counts`` (box counts ``N(s)``, or uncertain fractions ``f(ε)``) of *all*
    scales measured, and ``fit_range`` = (first, last) index into them of the scaling range the
    estimate was fitted on (inclusive). ``method`` names the estimator; ``slope`` is the fitted
    log-log slope (``−D`` for box counting, ``2 − D`` for the uncertainty exponent).
    """

    estimate: float
    interval: tuple[float, float]
    scales: NDArray[np.float64]
    counts: NDArray[np.float64]
    fit_range: tuple[int, int]
    method: str
    slope: float = math.nan
    extra: dict = field(default_factory=dict)

    def loglog(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(log s, log N)`` of all scales: ``plt.plot(*est.loglog(), "o")``."""
        ok = self.counts > 0
        return np.log(self.scales[ok]), np.log(self.counts[ok])

    @property
    def fit_scales(self) -> NDArray[np.float64]:
        """The scales of the fitted scaling range."""
        return self.scales[self.fit_range[0] : self.fit_range[1] + 1]


# ---------------------------------------------------------------------------------------------
# Boundary and box counts
# ---------------------------------------------------------------------------------------------


def _as_field(f: ArrayLike) -> NDArray:
    arr = np.asarray(f)
    if arr.ndim != 2:
        raise PipelineError(f"field: expected a 2-D array, got shape {arr.shape}")
    if min(arr.shape) < 2:
        raise PipelineError(f"field: expected at least 2 × 2 pixels, got shape {arr.shape}")
    return arr


def boundary_mask(f: ArrayLike) -> NDArray[np.bool_]:
    """Boolean mask (H − 1, W − 1): the 2×2 neighbourhoods of ``f`` holding both classes.

    Classes are ``f > 0`` and ``f <= 0``; neighbourhoods touching a NaN are never boundary.
    A boolean ``f`` is used as the class directly.
    """
    arr = _as_field(f)
    if arr.dtype == np.bool_:
        pos, valid = arr, None
    else:
        valid = ~np.isnan(arr) if np.issubdtype(arr.dtype, np.floating) else None
        pos = arr > 0
    a, b, c, d = pos[:-1, :-1], pos[:-1, 1:], pos[1:, :-1], pos[1:, 1:]
    any_pos = a | b | c | d
    all_pos = a & b & c & d
    out = any_pos & ~all_pos
    if valid is not None:
        out &= valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1] & valid[1:, 1:]
    return out


def default_sizes(shape: tuple[int, int], *, per_octave: int = 2) -> NDArray[np.int64]:
    """Box sizes from 1 pixel to a quarter of the smaller side, ``per_octave`` per factor 2."""
    top = max(1, min(shape) // 4)
    k = np.arange(0, per_octave * math.log2(top) + 1e-9 + 1)
    sizes = np.unique(np.round(2.0 ** (k / per_octave)).astype(np.int64))
    return sizes[(sizes >= 1) & (sizes <= top)]


def _occupied(mask: NDArray[np.bool_], s: int) -> NDArray[np.bool_]:
    """(ceil(H/s), ceil(W/s)) array: whether each s×s box of ``mask`` holds a true pixel."""
    h, w = mask.shape
    hh, ww = -(-h // s), -(-w // s)
    if hh * s != h or ww * s != w:
        padded = np.zeros((hh * s, ww * s), np.bool_)
        padded[:h, :w] = mask
        mask = padded
    return mask.reshape(hh, s, ww, s).any(axis=(1, 3))


def box_counts(mask: ArrayLike, sizes: Sequence[int] | None = None) -> tuple[NDArray, NDArray]:
    """``(sizes, N(sizes))``: boxes of each size holding a true pixel of the boolean ``mask``.

    ``mask`` is a boundary mask (:func:`boundary_mask`). ``sizes`` default to
    :func:`default_sizes`. Power-of-two chains are computed by repeated 2×2 OR-pooling (each
    level from the previous, cheap); other sizes by padding and reshaping.
    """
    m = np.asarray(mask, dtype=np.bool_)
    if m.ndim != 2:
        raise PipelineError(f"mask: expected a 2-D boolean array, got shape {m.shape}")
    sz = default_sizes(m.shape) if sizes is None else np.asarray(sizes, dtype=np.int64)
    if sz.size == 0 or np.any(sz < 1):
        raise PipelineError(f"sizes: expected box sizes >= 1 pixel, got {sz.tolist()}")
    counts = np.empty(sz.size, np.float64)
    pooled: dict[int, NDArray[np.bool_]] = {1: m}
    for i, s in enumerate(sz.tolist()):
        if s & (s - 1) == 0:  # power of two: pool the largest cached power below it
            p = max(k for k in pooled if k <= s and s % k == 0)
            occ = pooled[p]
            while p < s:
                occ = _occupied(occ, 2)
                p *= 2
                pooled[p] = occ
        else:
            occ = _occupied(m, s)
        counts[i] = float(np.count_nonzero(occ))
    return sz.astype(np.float64), counts


def _block_counts(block: NDArray, sizes: tuple[int, ...]) -> NDArray:
    """Box counts of one chunk extended by one row and one column of its neighbours (none
    past the field's last row/column: there the mask ends where the global mask ends)."""
    mask = boundary_mask(np.asarray(block))
    return np.array([float(np.count_nonzero(_occupied(mask, s))) for s in sizes])


def box_counts_lazy(
    field: object, sizes: Sequence[int] | None = None, *, batch: int = 8
) -> tuple[NDArray, NDArray]:
    """:func:`box_counts` of ``boundary_mask(field)`` computed chunk by chunk with Dask.

    ``field``: a 2-D dask array, an ``xarray.DataArray`` backed by one (e.g. a variable of
    ``xarray.open_zarr``), or anything :func:`dask.array.asarray` takes (a ``zarr.Array``).
    Chunks must be regular along each axis. Each task reads one chunk plus one row and one
    column of its neighbours (the 2×2 neighbourhoods across chunk borders) and returns only
    its box counts, which add up because every box size must divide both chunk lengths
    (default: the powers of two up to the smaller chunk length). Tasks run ``batch`` at a time
    (one ``dask.compute`` per batch), so peak memory is a few chunks per task of a batch,
    whatever the size of the field: a plain graph over all chunks lets the scheduler read
    chunks far ahead of their consumers (measured: peak memory growing with the field).
    Equal to the in-memory :func:`box_counts` on the same field, exactly.
    """
    import dask
    import dask.array as da

    arr = getattr(field, "data", field)
    if not isinstance(arr, da.Array):
        arr = da.asarray(arr)
    if arr.ndim != 2:
        raise PipelineError(f"field: expected a 2-D array, got shape {arr.shape}")
    rows, cols = arr.chunks
    cr, cc = rows[0], cols[0]
    if (
        any(c != cr for c in rows[:-1])
        or rows[-1] > cr
        or any(c != cc for c in cols[:-1])
        or (cols[-1] > cc)
    ):
        raise PipelineError(f"field: expected regular chunks, got {arr.chunks}; rechunk first")
    if sizes is None:
        top = min(cr, cc)
        sizes = [2**k for k in range(int(math.log2(top)) + 1)]
    sz = tuple(int(s) for s in sizes)
    bad = [s for s in sz if s < 1 or cr % s or cc % s]
    if bad:
        raise PipelineError(
            f"sizes: box sizes {bad} do not divide the chunk shape ({cr}, {cc}); "
            "counts only add up across chunks for divisors of the chunk lengths"
        )
    h, w = arr.shape
    if min(h, w) < 2:
        raise PipelineError(f"field: expected at least 2 × 2 pixels, got shape {arr.shape}")
    starts_r = np.cumsum((0, *rows[:-1]))
    starts_c = np.cumsum((0, *cols[:-1]))
    blocks = [
        (int(r0), min(int(r0) + cr + 1, h), int(c0), min(int(c0) + cc + 1, w))
        for r0 in starts_r
        for c0 in starts_c
    ]
    counts = np.zeros(len(sz), np.float64)
    count = dask.delayed(_block_counts, pure=True)
    for b in range(0, len(blocks), max(1, int(batch))):
        tasks = [count(arr[r0:r1, c0:c1], sz) for r0, r1, c0, c1 in blocks[b : b + batch]]
        for part in dask.compute(*tasks):
            counts += part
    return np.asarray(sz, np.float64), counts


# ---------------------------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------------------------


def _linfit(x: NDArray, y: NDArray) -> tuple[float, float, float]:
    """Least squares y = a + b x: (slope b, intercept a, standard error of b)."""
    n = x.size
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    b = float(((x - xm) * (y - ym)).sum() / sxx)
    a = float(ym - b * xm)
    rss = float(((y - a - b * x) ** 2).sum())
    se = math.sqrt(rss / max(n - 2, 1) / sxx) if n > 2 else math.inf
    return b, a, se


def choose_scaling_range(
    log_s: NDArray, log_n: NDArray, *, min_points: int = 5, min_decades: float = 0.9
) -> tuple[int, int]:
    """(first, last) indices of the scaling range: among windows of consecutive scales with at
    least ``min_points`` points spanning at least ``min_decades`` decades (falls back to all
    windows of ``min_points``), the one whose least-squares slope has the smallest standard
    error. That favours long windows (large spread of log s) and penalises curvature (large
    residuals), so the crossovers at the pixel scale and the system size drop out."""
    n = log_s.size
    if n < 3:
        raise PipelineError(f"need at least 3 usable scales to fit a slope, got {n}")
    m = min(min_points, n)
    best, best_se = (0, n - 1), math.inf
    for need_decades in (min_decades, 0.0):
        for i in range(n):
            for j in range(i + m - 1, n):
                if (log_s[j] - log_s[i]) / math.log(10) < need_decades:
                    continue
                _, _, se = _linfit(log_s[i : j + 1], log_n[i : j + 1])
                if se < best_se - 1e-12:
                    best, best_se = (i, j), se
        if math.isfinite(best_se):
            break
    return best


def dimension_from_counts(
    sizes: ArrayLike,
    counts: ArrayLike,
    *,
    fit_range: tuple[int, int] | None = None,
    min_points: int = 5,
    n_boot: int = 2000,
    seed: int = 0,
    method: str = "box-counting",
    min_count: float = 4.0,
) -> DimensionEstimate:
    """Box-counting dimension from ``(sizes, N(sizes))``: ``D = −slope`` of log N vs log s.

    The scaling range is chosen by :func:`choose_scaling_range` among scales with at least
    ``min_count`` occupied boxes, unless ``fit_range`` gives it. The 95 % interval is a
    bootstrap over the fit: each replicate resamples the residuals of the chosen range
    (residual bootstrap), refits, *and* refits the slope on a random sub-window of at least
    ``min_points`` scales of the range, so the interval covers both the scatter about the line
    and the drift of the local slope across the range (the finite-resolution bias a single
    power law cannot see). ``n_boot`` replicates, generator seeded by ``seed``.
    """
    s = np.asarray(sizes, np.float64)
    n = np.asarray(counts, np.float64)
    if s.shape != n.shape or s.ndim != 1:
        raise PipelineError(
            f"sizes, counts: expected 1-D arrays of equal length, got {s.shape}, {n.shape}"
        )
    order = np.argsort(s)
    s, n = s[order], n[order]
    usable = np.flatnonzero(n >= min_count)
    if usable.size < 3:
        raise PipelineError(
            f"counts: only {usable.size} scales hold >= {min_count} occupied boxes; "
            "the boundary is too small (or absent) to estimate a dimension"
        )
    if fit_range is None:
        lo_u, hi_u = usable[0], usable[-1]
        i, j = choose_scaling_range(
            np.log(s[lo_u : hi_u + 1]), np.log(n[lo_u : hi_u + 1]), min_points=min_points
        )
        fit_range = (int(lo_u + i), int(lo_u + j))
    i, j = fit_range
    x, y = np.log(s[i : j + 1]), np.log(n[i : j + 1])
    slope, icpt, _ = _linfit(x, y)
    est = -slope
    resid = y - (icpt + slope * x)
    rng = np.random.default_rng(seed)
    k = x.size
    m = min(min_points, k)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        yb = icpt + slope * x + rng.choice(resid, size=k, replace=True)
        a = int(rng.integers(0, k - m + 1))
        e = int(rng.integers(a + m - 1, k))
        boots[b] = -_linfit(x[a : e + 1], yb[a : e + 1])[0]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return DimensionEstimate(
        estimate=float(est),
        interval=(float(min(lo, est)), float(max(hi, est))),
        scales=s,
        counts=n,
        fit_range=(int(i), int(j)),
        method=method,
        slope=float(slope),
    )


def box_counting_dimension(
    f: ArrayLike, sizes: Sequence[int] | None = None, **kwargs: object
) -> DimensionEstimate:
    """Box-counting dimension of the boundary of the signed 2-D field ``f``.

    :func:`boundary_mask`, :func:`box_counts` (``sizes`` default: two per octave from 1 px
    to a quarter of the image), then :func:`dimension_from_counts` (keyword arguments go
    there). For a field too big for memory use :func:`box_counts_lazy` and pass its output to
    :func:`dimension_from_counts`.
    """
    s, n = box_counts(boundary_mask(f), sizes)
    return dimension_from_counts(s, n, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Sohl-Dickstein (2024) estimator
# ---------------------------------------------------------------------------------------------


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


def sohl_dickstein_dimension(
    frames: Sequence[ArrayLike] | ArrayLike,
    *,
    n_sizes: int = 10,
    min_size: int = 10,
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
    ``ValueError`` for a frame under ``16 * min_size`` px.
    """
    if isinstance(frames, np.ndarray) and frames.ndim == 2:
        frames = [frames]
    slopes: list[float] = []
    total: NDArray | None = None
    first_sizes: NDArray | None = None
    for fr in frames:
        a = _as_field(fr)
        pos = a > 0 if a.dtype != np.bool_ else a
        valid = ~np.isnan(a) if np.issubdtype(a.dtype, np.floating) else np.ones(a.shape, bool)
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


# ---------------------------------------------------------------------------------------------
# Uncertainty exponent
# ---------------------------------------------------------------------------------------------


def _uncertain_fraction(pos: NDArray[np.bool_], valid: NDArray[np.bool_], e: int, m: int) -> float:
    """Fraction of pixels of the central region (margin ``m``) whose class differs from that
    of a pixel ε = ``e`` px away along ±x or ±y (pixels next to NaN are left out)."""
    h, w = pos.shape
    c = pos[m : h - m, m : w - m]
    ok = valid[m : h - m, m : w - m].copy()
    flip = np.zeros_like(c)
    for dr, dc in ((e, 0), (-e, 0), (0, e), (0, -e)):
        nb = pos[m + dr : h - m + dr, m + dc : w - m + dc]
        flip |= nb != c
        ok &= valid[m + dr : h - m + dr, m + dc : w - m + dc]
    return float(np.count_nonzero(flip & ok)) / max(1, int(np.count_nonzero(ok)))


def uncertainty_exponent(
    f: ArrayLike | Callable[[NDArray, NDArray], NDArray],
    eps: Sequence[float] | None = None,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    n_points: int = 200_000,
    seed: int = 0,
    **kwargs: object,
) -> DimensionEstimate:
    """Boundary dimension ``D = 2 − γ`` from the uncertain fraction ``f(ε) ∝ ε^γ``.

    A point is *ε-uncertain* when its class (``f > 0``) differs from that of a point shifted
    by ε along ±x or ±y. Two inputs:

    * a 2-D array: every pixel of the central region is tested, ε in pixels (default: integer
      shifts 1, 2, 3, 4, 6, 8, … up to 1/16 of the smaller side); the margin is the largest ε,
      so every ε sees the same pixels;
    * a callable ``g(x, y) -> values`` (vectorised) and ``bounds = (x0, x1, y0, y1)``:
      ``n_points`` uniform random points (generator seeded by ``seed``), ε in the units of
      x and y (required).

    γ is the slope of log f(ε) vs log ε, fitted with :func:`dimension_from_counts`'s range
    choice and bootstrap (keyword arguments go there); ``counts`` hold f(ε).
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
        ev = np.asarray(eps, np.float64)
    else:
        a = _as_field(f)
        pos = a > 0 if a.dtype != np.bool_ else a
        valid = ~np.isnan(a) if np.issubdtype(a.dtype, np.floating) else np.ones(a.shape, bool)
        if eps is None:
            top = max(2, min(a.shape) // 16)
            cand = np.unique(np.round(np.geomspace(1, top, 2 * int(math.log2(top)) + 1)))
            ev = cand.astype(np.float64)
        else:
            ev = np.asarray(eps, np.float64)
        if np.any(ev != np.round(ev)) or np.any(ev < 1):
            raise PipelineError(f"eps: expected integer pixel shifts >= 1, got {ev.tolist()}")
        m = int(ev.max())
        if 2 * m >= min(a.shape):
            raise PipelineError(f"eps: largest shift {m} px is too large for shape {a.shape}")
        fracs = [_uncertain_fraction(pos, valid, int(e), m) for e in ev]
    fr = np.asarray(fracs, np.float64)
    # f(ε) ∝ ε^γ: fit log f = a + γ log ε with the box-count machinery (which fits −slope).
    kw = {"min_count": 1e-300, **kwargs}
    est = dimension_from_counts(ev, fr, method="uncertainty-exponent", **kw)  # type: ignore[arg-type]
    gamma = -est.estimate
    lo, hi = est.interval
    return DimensionEstimate(
        estimate=2.0 - gamma,
        interval=(2.0 + lo, 2.0 + hi),
        scales=est.scales,
        counts=est.counts,
        fit_range=est.fit_range,
        method="uncertainty-exponent",
        slope=gamma,
    )
