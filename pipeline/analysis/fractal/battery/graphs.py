"""Graphs of self-affine functions as sign fields: ``f(x, y) = y − A g(x)`` (rotated).

The boundary of the sign field is the graph of g, whose box-counting dimension is 2 − H for

* the Weierstrass function with random phases, Σ_k b^{−Hk} cos(2π b^k u + φ_k) (Kaplan,
  Mallet-Paret & Yorke 1984; the phases do not change the box dimension);
* the Takagi–Landsberg function Σ_k w^k dist(2^k u, ℤ) with w = 2^{−H} (1/2 < w < 1);
* fractional Brownian motion of Hurst index H (almost surely; exact samples by circulant
  embedding, Davies & Harte 1987).

g is sampled on a line of ``OVERSAMPLE`` points per pixel (its finest term below a quarter
pixel) and read at each pixel's rotated abscissa by linear interpolation. A graph in a square
frame also has a rectifiable part in its box counts (every column of boxes holds at least one
box: N(s) ≈ (n/s)(osc(s)/s + 1)), and its raster keeps one value of g per pixel column, so
the range of g inside a column is lost: box counting reads these fields 0.06–0.2 low at
2048² for H = 0.25–0.7. The default estimator reads g's first-order variogram instead (the
flip fraction along the graph's rough axis), which pixel sampling does not bias; the
battery holds H = 0.15, 0.25, 0.3 and 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["fbm", "graph_field", "takagi", "weierstrass"]

OVERSAMPLE = 8


def weierstrass(u: NDArray, hurst: float, rng: np.random.Generator, *, b: float = 1.9) -> NDArray:
    """Σ_{k=0}^{K} b^{−Hk} cos(2π b^k u + φ_k), φ_k uniform; K so that the finest
    wavelength is below a quarter of the spacing of ``u``."""
    du = float(np.min(np.diff(u)))
    kmax = math.ceil(math.log(4.0 / du) / math.log(b))
    out = np.zeros_like(u)
    for k in range(kmax + 1):
        out += b ** (-hurst * k) * np.cos(2 * math.pi * b**k * u + rng.uniform(0, 2 * math.pi))
    return out


def takagi(u: NDArray, hurst: float, rng: np.random.Generator) -> NDArray:
    """Σ_{k=0}^{K} 2^{−Hk} dist(2^k (u + u0), ℤ) with a random offset u0."""
    du = float(np.min(np.diff(u)))
    kmax = math.ceil(math.log2(4.0 / du))
    v = u + rng.uniform(0, 1)
    out = np.zeros_like(u)
    for k in range(kmax + 1):
        x = 2.0**k * v
        out += 2.0 ** (-hurst * k) * np.abs(x - np.round(x))
    return out


def fbm(u: NDArray, hurst: float, rng: np.random.Generator) -> NDArray:
    """Fractional Brownian motion at the equally spaced points ``u`` (exact: circulant
    embedding of fractional Gaussian noise)."""
    m = u.size - 1
    k = np.arange(m + 1, dtype=np.float64)
    h2 = 2 * hurst
    gamma = 0.5 * ((k + 1) ** h2 - 2 * k**h2 + np.abs(k - 1) ** h2)  # fGn autocovariance
    row = np.concatenate([gamma, gamma[-2:0:-1]])
    lam = np.fft.fft(row).real
    lam = np.clip(lam, 0, None)  # tiny negative round-off; the embedding is exact for H < 1
    z = rng.standard_normal(row.size) + 1j * rng.standard_normal(row.size)
    noise = np.fft.fft(np.sqrt(lam / row.size) * z).real[:m]
    return np.concatenate([[0.0], np.cumsum(noise)])


def graph_field(
    g: Callable[[NDArray, np.random.Generator], NDArray],
    n: int,
    rng: np.random.Generator,
    *,
    height: float = 0.6,
    max_tilt_deg: float = 10.0,
) -> NDArray[np.float32]:
    """``y − A g(x)`` on an ``n`` × ``n`` frame: the graph spans the frame's width, its
    range is ``height`` × n, tilted by a random angle up to ``max_tilt_deg`` and put through
    a random symmetry of the square (float32, rows = first axis)."""
    th = math.radians(rng.uniform(-max_tilt_deg, max_tilt_deg))
    half = 0.75 * n  # the rotated frame's abscissae stay within ±0.75 n of the centre
    m = int(2 * half * OVERSAMPLE) + 1
    u = np.linspace(-half, half, m)
    vals = g(u / n, rng)
    vals = (vals - 0.5 * (vals.max() + vals.min())) * (height * n / np.ptp(vals))
    c = np.arange(n) + 0.5 - n / 2
    out = np.empty((n, n), np.float32)
    for r0 in range(0, n, 512):
        y = (np.arange(r0, min(n, r0 + 512)) + 0.5 - n / 2)[:, None]
        xr = c[None, :] * math.cos(th) + y * math.sin(th)
        yr = -c[None, :] * math.sin(th) + y * math.cos(th)
        out[r0 : r0 + y.shape[0]] = yr - np.interp(xr, u, vals)
    k = int(rng.integers(8))  # one of the 8 symmetries of the square
    out = np.rot90(out, k % 4)
    return np.ascontiguousarray(out.T if k >= 4 else out)
