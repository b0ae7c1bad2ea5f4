"""A clean frontier beside pixel noise: the noise-dominated fields of the battery.

A smooth curve (dimension 1) crosses the frame; on one side the class is uniform, on the
other it is *noise*: i.i.d. pixels (``corr_px = 0``) or a Gaussian random field whose
correlation falls as exp(−r²/corr_px²) (white noise smoothed by a Gaussian kernel of
standard deviation corr_px / 2), thresholded at its quantile 1 − p (class ``True`` with
probability p). At scales above the correlation length the noise fills its
side, so every estimator reads its boundary near 2; the frontier the user wants is the
smooth curve. These fields test that the boundary report says "noise-dominated" and that
its separated frontier reads 1, not that an estimator hits a number.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["noise", "noisy_side_field"]


def noise(
    shape: tuple[int, int], corr_px: float, p: float, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """Binary noise of ``shape``: True with probability ``p``, i.i.d. per pixel when
    ``corr_px`` is 0, else a Gaussian field with correlation length ``corr_px`` pixels (see
    the module docstring) thresholded at its 1 − ``p`` quantile."""
    g = rng.standard_normal(shape).astype(np.float32)
    if corr_px > 0:
        g = ndimage.gaussian_filter(g, corr_px / 2.0, mode="wrap")
    return g > np.quantile(g, 1.0 - p)


def noisy_side_field(
    n: int, rng: np.random.Generator, corr_px: float, p: tuple[float, float] = (0.3, 0.7)
) -> NDArray[np.bool_]:
    """An ``n`` × ``n`` field: a smooth random curve y = c + Σ_k a_k sin(2π k x / n + φ_k)
    (k = 1..3, amplitude up to n/16, tilted by up to 30°, a random symmetry of the square)
    splits the frame; one side is uniform (False), the other is :func:`noise` with
    ``corr_px`` and a density p drawn uniformly from ``p``."""
    dens = float(rng.uniform(*p))
    th = math.radians(rng.uniform(-30, 30))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) + np.float32(0.5 - n / 2)
    u = xx * math.cos(th) + yy * math.sin(th)
    v = -xx * math.sin(th) + yy * math.cos(th)
    curve = np.zeros_like(u) + np.float32(rng.uniform(-0.1, 0.1) * n)
    for k in (1, 2, 3):
        a = rng.uniform(0, n / 16) / k
        curve += np.float32(a) * np.sin(2 * math.pi * k * u / n + rng.uniform(0, 2 * math.pi))
    side = v > curve
    del u, v, xx, yy, curve
    out = side & noise((n, n), corr_px, dens, rng)
    k = int(rng.integers(8))
    out = np.rot90(out, k % 4)
    return np.ascontiguousarray(out.T if k >= 4 else out)
