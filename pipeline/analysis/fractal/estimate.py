"""The result of every dimension estimator: :class:`DimensionEstimate`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["DimensionEstimate"]


@dataclass(frozen=True)
class DimensionEstimate:
    """A fractal-dimension estimate with what it was computed from.

    ``estimate`` and the 95 % ``interval`` (low, high); ``scales`` (box sizes or shifts ε, in
    pixels) and ``counts`` (box counts ``N(s)``, or uncertain fractions ``f(ε)``) of *all*
    scales measured, and ``fit_range`` = (first, last) index into them of the scaling range the
    estimate was fitted on (inclusive). ``method`` names the estimator; ``slope`` is the fitted
    log-log slope at the range's geometric centre (``−D`` for box counting, ``2 − D`` for the
    uncertainty exponent). ``model`` names the fitted curve (``power law``, or ``power law +
    rectifiable part``: N = A s^−D + B s^−1); ``extra`` holds estimator-specific details
    (e.g. ``jackknife_sd`` and ``range_spread``, the two parts of the interval).
    """

    estimate: float
    interval: tuple[float, float]
    scales: NDArray[np.float64]
    counts: NDArray[np.float64]
    fit_range: tuple[int, int]
    method: str
    slope: float = math.nan
    model: str = "power law"
    params: tuple[float, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def half_width(self) -> float:
        """Half the width of the 95 % interval."""
        return 0.5 * (self.interval[1] - self.interval[0])

    def loglog(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(log s, log N)`` of all scales with a positive count: ``plt.plot(*est.loglog())``."""
        ok = self.counts > 0
        return np.log(self.scales[ok]), np.log(self.counts[ok])

    @property
    def fit_scales(self) -> NDArray[np.float64]:
        """The scales of the fitted scaling range."""
        return self.scales[self.fit_range[0] : self.fit_range[1] + 1]

    def fitted(self, log_s: NDArray) -> NDArray[np.float64]:
        """The fitted log N at ``log_s`` (NaN when the estimator fits no curve)."""
        x = np.asarray(log_s, np.float64)
        if self.model == "power law + rectifiable part" and len(self.params) == 3:
            a, d, lb = self.params
            return np.logaddexp(a - d * x, lb - x)
        if len(self.params) >= 2:
            a, slope = self.params[:2]
            return a + slope * x
        return np.full_like(x, np.nan)
