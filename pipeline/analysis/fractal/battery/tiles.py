"""The twindragon: the self-affine tile of base b = −1 + i with digits {0, 1}.

T = {Σ_{k≥1} d_k b^{−k} : d_k ∈ {0, 1}}. Its translates by the Gaussian integers tile the
plane (area 1), and its boundary (the boundary of the Heighway dragon's twin) has dimension
log2(x) · 2 with x the real root of x³ − x² − 2 = 0, ≈ 1.5236270862 (Chang & Zhang 1999).

Rendering: T is the limit of T_n = b^{−n} (Q + G_n), Q the unit square and G_n the 2^n
Gaussian integers with an n-digit expansion in base b; a point z is in T_n when the floor of
b^n z (a Gaussian integer) reduces to 0 in at most n steps g → (g − d)/b, d = (Re g + Im g)
mod 2. n is chosen so that |b|^{−n} (the size of Q's copies) is below a quarter pixel.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["TWINDRAGON_DIMENSION", "twindragon_field", "twindragon_membership"]


def _twindragon_dimension() -> float:
    # real root of x³ − x² − 2 = 0 (Chang & Zhang 1999: D = 2 log2 of it)
    roots = np.roots([1.0, -1.0, 0.0, -2.0])
    x = float(roots[np.argmin(np.abs(roots.imag))].real)
    return 2.0 * math.log2(x)


TWINDRAGON_DIMENSION = _twindragon_dimension()


def twindragon_membership(z: NDArray[np.complex128], level: int) -> NDArray[np.bool_]:
    """Whether each point ``z`` is in T_level (see the module docstring)."""
    w = z * (-1 + 1j) ** level
    p = np.floor(w.real).astype(np.int64)
    q = np.floor(w.imag).astype(np.int64)
    for _ in range(level):
        d = (p + q) & 1
        p = p - d
        # (p + q i) / (−1 + i) = (p + q i)(−1 − i) / 2 = ((q − p) + (−p − q) i) / 2
        p, q = (q - p) // 2, (-p - q) // 2
    return (p == 0) & (q == 0)


def twindragon_field(n: int, rng: np.random.Generator, *, fill: float = 0.8) -> NDArray[np.bool_]:
    """The twindragon in an ``n`` × ``n`` frame, randomly rotated and placed, its diameter
    about ``fill`` × n; True inside."""
    level = 2 * math.ceil(math.log2(4 * n))  # |b|^level = 2^(level/2) > 4 n
    # T has its centroid at −0.2 − 0.1i (the mean of the digit series) and lies within
    # 0.9 of it (the farthest of 2·10^5 random points is 0.897 away)
    centre, radius = complex(-0.2, -0.1), 0.9
    th = rng.uniform(0, 2 * math.pi)
    px = 2 * radius / (fill * n * rng.uniform(0.85, 1.0))  # plane units per pixel
    shift = (rng.uniform(-0.05, 0.05, 2) * n) * px
    out = np.empty((n, n), bool)
    cols = (np.arange(n) + 0.5 - n / 2) * px
    rot = complex(math.cos(th), math.sin(th))
    for r0 in range(0, n, 256):
        rows = (np.arange(r0, min(n, r0 + 256)) + 0.5 - n / 2) * px
        z = (cols[None, :] + shift[0]) + 1j * (rows[:, None] + shift[1])
        out[r0 : r0 + rows.size] = twindragon_membership(centre + rot * z, level)
    return out
