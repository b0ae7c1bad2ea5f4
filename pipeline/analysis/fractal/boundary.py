"""One boundary's dimension as every command reports it: :func:`boundary_dimension`.

``sweep analyze``, ``sweep figures``, ``sweep zoom`` and the run summaries all call this one
function, so the same boundary gets the same number and interval everywhere. It holds

* the default estimator's estimate and 95 % interval (:data:`~.estimators.DEFAULT_ESTIMATOR`);
* the other estimators that have intervals (box counting, or the directional uncertainty
  exponent when the default chose box counting; the uncertainty exponent; Sohl-Dickstein's
  on frames of >= 160 px), and which of them **disagree**: box counting (or the
  directional exponent) when it differs from the default by more than their combined
  uncertainty (the two half-widths in quadrature), the others when their interval and the
  default's do not overlap;
* whether the boundary is **noise-dominated** (:mod:`.noise`: it fills the plane over an
  octave of box sizes, so every estimator reads it near 2), with the share of it in small
  clusters and the dimension of the frontier with the noise separated;
* whether the field is **too small** for a trustworthy number: the default's scaling range
  (4 px to 1/16 of the frame) spans less than a factor 8 (frames under 512 px, or a
  boundary too small to reach the range), with the side it would need;
* the estimate at 1/2 and 1/4 of the resolution (the same window, every 2nd or 4th grid
  point, which is what a coarser sweep of that window computes), and whether the dimension
  **drifts** with resolution: a coarser estimate's interval excludes the full-resolution one,
  or the three move one way by more than the full-resolution half-width (the estimates share
  their data, so their intervals overstate the noise of their differences), or the local
  slopes move across the fit range: the default's fit on the upper half of its range (in
  log scale) differs from the fit on the lower half by more than :data:`TREND_MIN` and more
  than the full fit's half-width (what a finer grid would add is the next octave up);
* whether the number is **cutoff-limited**: the one-sided pixel-cutoff bound on the
  default's upper end (:func:`~.estimators.cutoff_bound`: detail below the pixel is lost, so
  the local slopes from 1 to 4 px fall short of the fit, and that deficit can hold the fit
  down) exceeds both the symmetric part of its interval (its scatter and swing bounds) and
  :data:`CUTOFF_MIN`. The interval still holds (its upper end carries the bound), but the
  number may sit low by more than its scatter: quote the interval, or refine the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.analysis.fractal.counts import as_field
from pipeline.analysis.fractal.estimate import DimensionEstimate
from pipeline.analysis.fractal.estimators import (
    BOXES_PER_SIDE,
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    SOHL_DICKSTEIN_MIN_SIZE,
    box_counting_dimension,
    directional_uncertainty_exponent,
    sohl_dickstein_dimension,
    uncertainty_exponent,
)
from pipeline.analysis.fractal.fit import LOW_PX, MIN_SPAN, TOP_FRACTION, linfit
from pipeline.analysis.fractal.noise import NoiseCheck, noise_check
from pipeline.errors import PipelineError

__all__ = [
    "CUTOFF_MIN",
    "TREND_MIN",
    "BoundaryDimension",
    "boundary_dimension",
    "dimension_vs_resolution",
    "range_trend",
]

TREND_MIN = 0.05
"""The smallest change of the fitted dimension between the lower and the upper half of the
fit range that counts as drift (clean battery fields at 2048²: up to 0.09 on the Takagi
graphs and the percolation cluster, whose top octave climbs or falls)."""
CUTOFF_MIN = 0.03
"""The smallest cutoff bound worth a flag (:attr:`BoundaryDimension.cutoff_limited`): an
accuracy of ±0.03 is what an unflagged number is held to on the battery. Measured there
(benchmarks/fractal_battery_trust.py): the zero sets of rough surfaces (H = 0.3, D = 1.7),
which read 0.035-0.046 low at 2048²-4096² with no other flag, carry bounds of 0.09-0.11
against symmetric half-widths of 0.03-0.05; the flag also marks percolation hulls (bounds
0.05-0.09, reading within 0.03) and one of the Koch islands with 12° wedges at 4096², where
the bound is as large and the number happens to hold."""
PAIRED = ("box-counting", "directional-uncertainty")
"""The estimators compared with the default by their combined uncertainty."""

LABELS = {
    "default": "directional uncertainty exponent, or box counting for a thin class",
    "directional-uncertainty": "directional uncertainty exponent",
    "box-counting": "box counting",
    "uncertainty-exponent": "uncertainty exponent",
    "sohl-dickstein-2024": "Sohl-Dickstein",
    "sohl-dickstein-notebook": "Sohl-Dickstein's notebook",
    "dinverno-2025": "D'Inverno",
}


def _try(
    fn: Callable[[NDArray], DimensionEstimate], f: NDArray
) -> tuple[DimensionEstimate | None, str]:
    """``fn(f)``, or None and the one-line reason when the field admits no fit."""
    try:
        return fn(f), ""
    except PipelineError as e:
        return None, str(e)


def range_trend(e: DimensionEstimate) -> float:
    """The dimension fitted (plain power law) on the upper half of ``e``'s fit range minus
    that on the lower half, halves in log scale sharing the middle scale (NaN when a half
    holds fewer than 3 scales). For the uncertainty exponents D = 2 − slope, for box counts
    D = −slope."""
    i, j = e.fit_range
    s, c = e.scales[i : j + 1], e.counts[i : j + 1]
    ok = (s > 0) & (c > 0)
    x, y = np.log(s[ok]), np.log(c[ok])
    if x.size < 5:
        return math.nan
    xm = 0.5 * (x[0] + x[-1])
    lo, hi = x <= xm + 1e-9, x >= xm - 1e-9
    if lo.sum() < 3 or hi.sum() < 3:
        return math.nan
    b_lo, b_hi = linfit(x[lo], y[lo])[0], linfit(x[hi], y[hi])[0]
    return float(-(b_hi - b_lo))  # D = const − slope for both kinds of estimator


def _half(e: DimensionEstimate) -> float:
    """The symmetric part of ``e``'s 95 % half-width: without the one-sided cutoff bound on
    its upper end (:func:`~.estimators.cutoff_bound`), which says how far the fit may sit
    low, not how much it scatters."""
    return e.half_width - 0.5 * float(e.extra.get("cutoff_bound", 0.0))


def _fmt(d: DimensionEstimate) -> str:
    """``1.234 [1.200, 1.268]``."""
    return f"{d.estimate:.3f} [{d.interval[0]:.3f}, {d.interval[1]:.3f}]"


@dataclass(frozen=True)
class BoundaryDimension:
    """The report of one boundary (see the module docstring). ``estimate`` is None when no
    dimension can be fitted (``reason`` says why); ``others`` maps estimator names to their
    estimates (None: not applicable, e.g. a frame too small for Sohl-Dickstein's);
    ``resolutions`` holds (side in px, estimate or None) from the coarsest to the full
    resolution."""

    shape: tuple[int, int]
    estimate: DimensionEstimate | None
    reason: str = ""
    others: dict[str, DimensionEstimate | None] = field(default_factory=dict)
    resolutions: tuple[tuple[int, DimensionEstimate | None], ...] = ()
    noise: NoiseCheck | None = None

    @property
    def method(self) -> str:
        """The name of the estimator that gave the default estimate (the default picks
        between two, :func:`~.estimators.default_dimension`)."""
        return DEFAULT_ESTIMATOR if self.estimate is None else self.estimate.method

    def _range_rule(self) -> tuple[float, int]:
        """(smallest trustworthy span, the main range's top as 1/k of the frame) of the
        default estimator."""
        e = self.estimate
        extra = {} if e is None else e.extra
        return float(extra.get("min_span", MIN_SPAN)), int(extra.get("top", TOP_FRACTION))

    @property
    def too_small(self) -> bool:
        """Whether the scaling range spans less than the factor a trustworthy fit needs."""
        e = self.estimate
        min_span, _ = self._range_rule()
        return e is None or e.extra.get("fallback", False) or e.extra.get("span", 0.0) < min_span

    @property
    def needed_side(self) -> int:
        """The smaller side (grid points) a trustworthy number needs: the present side scaled
        by the factor the scaling range lacks, rounded up to a power of two, at least the
        side whose main range (4 px to 1/k of the frame) spans the trustworthy factor."""
        side = min(self.shape)
        min_span, top = self._range_rule()
        min_side = int(LOW_PX * min_span * top)
        if self.estimate is None:
            return max(min_side, 1 << math.ceil(math.log2(max(side, 2) * 4)))
        span = max(self.estimate.extra.get("span", 1.0), 1.0)
        if self.estimate.extra.get("fallback", False):
            span = max(side / (top * LOW_PX), 1.0)  # what the main range would span
        need = side * min_span / span
        return max(min_side, 1 << math.ceil(math.log2(max(need, side))))

    @property
    def disagreeing(self) -> list[str]:
        """The other estimators that disagree with the default: box counting (or the
        directional exponent) by more than the two half-widths in quadrature, the others
        when their 95 % interval does not overlap the default's."""
        if self.estimate is None:
            return []
        e = self.estimate
        lo, hi = e.interval
        out = []
        for k, d in self.others.items():
            if d is None:
                continue
            if k in PAIRED:
                if abs(d.estimate - e.estimate) > math.hypot(_half(d), _half(e)):
                    out.append(k)
            elif d.interval[1] < lo or d.interval[0] > hi:
                out.append(k)
        return out

    @property
    def trend(self) -> float:
        """:func:`range_trend` of the default estimate (NaN without one)."""
        return math.nan if self.estimate is None else range_trend(self.estimate)

    @property
    def trending(self) -> bool:
        """Whether the local slopes move across the fit range: :attr:`trend` beyond
        :data:`TREND_MIN` and the default's half-width."""
        t = self.trend
        return (
            self.estimate is not None
            and math.isfinite(t)
            and abs(t) > max(TREND_MIN, _half(self.estimate))
        )

    @property
    def cutoff(self) -> float:
        """The default's one-sided cutoff bound (0 without one, e.g. for box counting)."""
        return 0.0 if self.estimate is None else float(self.estimate.extra.get("cutoff_bound", 0))

    @property
    def cutoff_limited(self) -> bool:
        """Whether the default's cutoff bound exceeds its symmetric half-width and
        :data:`CUTOFF_MIN` (see the module docstring)."""
        if self.estimate is None:
            return False
        return self.cutoff > max(CUTOFF_MIN, _half(self.estimate))

    @property
    def noise_dominated(self) -> bool:
        """Whether the boundary fills the plane over an octave (:mod:`.noise`)."""
        return self.noise is not None and self.noise.noisy

    @property
    def drifting(self) -> bool:
        """Whether the dimension moves with resolution: a coarser resolution's interval
        excludes the full-resolution estimate, the estimates move one way across all the
        resolutions by more than the full-resolution half-width, or the local slopes move
        across the fit range (:attr:`trending`)."""
        if self.estimate is None:
            return False
        if self.trending:
            return True
        d = self.estimate.estimate
        if any(
            e is not None and not (e.interval[0] <= d <= e.interval[1])
            for _, e in self.resolutions[:-1]
        ):
            return True
        vals = [e.estimate for _, e in self.resolutions if e is not None]
        if len(vals) < 3 or len(vals) != len(self.resolutions):
            return False
        steps = np.diff(vals)
        one_way = bool(np.all(steps > 0) or np.all(steps < 0))
        return one_way and abs(vals[-1] - vals[0]) > _half(self.estimate)

    def value_text(self) -> str:
        """``D = 1.234 [1.200, 1.268]``, or ``D n/a``."""
        return "D n/a" if self.estimate is None else f"D = {_fmt(self.estimate)}"

    def warnings(self) -> list[str]:
        """What to doubt about the number, one phrase each (empty when nothing)."""
        h, w = self.shape
        if self.estimate is None:
            return [f"no fit on {h} x {w} points: {self.reason}"]
        out = []
        if self.too_small:
            n = self.needed_side
            out.append(
                f"too small for a trustworthy number: needs >= {n} x {n} points (has {h} x {w})"
            )
        for k in self.disagreeing:
            out.append(f"estimators disagree: {LABELS[k]} {_fmt(self.others[k])}")  # type: ignore[arg-type]
        if self.drifting:
            vals = ", ".join(
                f"{e.estimate:.3f} ({s} px)" for s, e in self.resolutions if e is not None
            )
            if self.trending:
                a, b = self.estimate.fit_scales[[0, -1]]
                t = f"local slopes move by {self.trend:+.3f} from {a:g} to {b:g} px"
                vals = f"{vals}; {t}" if vals else t
            out.append(f"drifts with resolution: {vals}")
        if self.cutoff_limited:
            deficit = float(self.estimate.extra.get("cutoff_deficit", math.nan))
            out.append(
                f"cutoff-limited: detail below the pixel is lost (local slopes from 1 to 4 px "
                f"{deficit:.3f} below the fit), so the number may read up to {self.cutoff:.3f} "
                f"low, more than its scatter (+-{_half(self.estimate):.3f}): quote the "
                "interval or refine the grid"
            )
        if self.noise_dominated:
            out.append(self.noise.text())  # type: ignore[union-attr]
        return out

    def text(self) -> str:
        """One line: the value, the estimator, and every warning."""
        head = f"{self.value_text()} ({LABELS[self.method]})"
        return "; ".join([head, *self.warnings()])

    def short(self) -> str:
        """The value, and below it its flags, one per line, for figure titles."""
        flags = []
        if self.estimate is not None:
            if self.too_small:
                flags.append(f"too small: needs {self.needed_side}²")
            if self.disagreeing:
                flags.append("estimators disagree")
            if self.drifting:
                flags.append("drifts with resolution")
            if self.cutoff_limited:
                flags.append(f"cutoff-limited: up to {self.cutoff:.2f} low")
            if self.noise_dominated:
                fr = self.noise.frontier  # type: ignore[union-attr]
                flags.append(
                    "noise-dominated" + ("" if fr is None else f": frontier D = {fr.estimate:.3f}")
                )
        return self.value_text() + "".join(f"\n({f})" for f in flags)


def dimension_vs_resolution(
    f: ArrayLike, factors: tuple[int, ...] = (4, 2, 1)
) -> tuple[tuple[int, DimensionEstimate | None], ...]:
    """The default estimate of the same window at 1/k of the resolution for each k of
    ``factors`` (every k-th grid point: what a sweep of the window with k times fewer points
    per axis computes), as (smaller side, estimate or None), in the order of ``factors``."""
    arr = as_field(f)
    out = []
    for k in factors:
        sub = arr[::k, ::k]
        est = None
        if min(sub.shape) >= 16:
            est, _ = _try(ESTIMATORS[DEFAULT_ESTIMATOR], sub)
        out.append((int(min(sub.shape)), est))
    return tuple(out)


def boundary_dimension(
    f: ArrayLike, *, resolutions: bool = True, noise: bool = True
) -> BoundaryDimension:
    """The report of the sign boundary of the 2-D field ``f`` (class ``f > 0``; NaN pixels
    belong to no class): default estimate, the others, too-small, drift and noise (see the
    module docstring; ``resolutions=False`` skips the coarser estimates, ``noise=False`` the
    noise check)."""
    arr = np.asarray(as_field(f), dtype=None)
    est, reason = _try(ESTIMATORS[DEFAULT_ESTIMATOR], arr)
    others: dict[str, DimensionEstimate | None] = {}
    if est is not None:
        if est.method == "box-counting":  # the default's choice for a thin class
            others["directional-uncertainty"] = _try(directional_uncertainty_exponent, arr)[0]
        else:
            others["box-counting"] = _try(box_counting_dimension, arr)[0]
        others["uncertainty-exponent"] = _try(uncertainty_exponent, arr)[0]
        if min(arr.shape) >= 4 * BOXES_PER_SIDE * SOHL_DICKSTEIN_MIN_SIZE:
            others["sohl-dickstein-2024"] = _try(sohl_dickstein_dimension, arr)[0]
    res: tuple[tuple[int, DimensionEstimate | None], ...] = ()
    if resolutions and est is not None:
        res = (*dimension_vs_resolution(arr, (4, 2)), (int(min(arr.shape)), est))
    nc = None
    if noise and est is not None:
        boxes = est if est.method == "box-counting" else others.get("box-counting")
        counts = None if boxes is None else (boxes.scales, boxes.counts)
        nc = noise_check(arr, counts)
    return BoundaryDimension(
        shape=(int(arr.shape[0]), int(arr.shape[1])),
        estimate=est,
        reason=reason,
        others=others,
        resolutions=res,
        noise=nc,
    )
