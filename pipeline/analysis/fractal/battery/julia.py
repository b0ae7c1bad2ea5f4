"""Douady's rabbit: the filled Julia set of z² + c with c the root of c³ + 2c² + c + 1 = 0
in the upper half plane (0 is periodic with period 3: f³(0) = 0).

Its Julia set (the boundary of the filled set) has Hausdorff dimension ≈ 1.3934 (McMullen,
"Hausdorff dimension and conformal dynamics III", 1998); the map is hyperbolic, so the box
dimension is the same. Rendering: a pixel centre is *outside* when its orbit leaves
|z| < ESCAPE, *inside* when it comes within TRAP of 0 (inside the immediate basin of the
superattracting cycle); both happen after a number of steps growing like log(1/distance to
J), so MAX_ITER is far more than a pixel of an 8192² frame needs (points still undecided
are counted and returned).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["RABBIT_C", "RABBIT_DIMENSION", "julia_membership", "rabbit_field"]


def _rabbit_c() -> complex:
    roots = np.roots([1.0, 2.0, 1.0, 1.0])
    return complex(roots[np.argmax(roots.imag)])


RABBIT_C = _rabbit_c()
RABBIT_DIMENSION = 1.3934  # McMullen 1998
ESCAPE, TRAP, MAX_ITER = 1e3, 1e-3, 4000


def julia_membership(z: NDArray[np.complex128], c: complex) -> tuple[NDArray[np.bool_], int]:
    """(inside the filled Julia set, number of points undecided after MAX_ITER steps) for
    ``z`` (any shape); undecided points count as inside."""
    z = z.ravel().copy()
    inside = np.ones(z.size, bool)
    idx = np.arange(z.size)
    for _ in range(MAX_ITER):
        z = z * z + c
        a = np.abs(z)
        out = a > ESCAPE
        inside[idx[out]] = False
        keep = ~(out | (a < TRAP))
        if not keep.all():
            z, idx = z[keep], idx[keep]
        if idx.size == 0:
            break
    return inside, int(idx.size)


def rabbit_field(n: int, rng: np.random.Generator, *, fill: float = 0.8) -> NDArray[np.bool_]:
    """The rabbit in an ``n`` × ``n`` frame, randomly rotated and placed; True inside."""
    # the filled set is symmetric about 0 and lies within 1.42 of it (measured on a 1024²
    # grid over [-1.6, 1.6]²: the farthest inside pixel is 1.411 away)
    radius = 1.42
    th = rng.uniform(0, 2 * math.pi)
    px = 2 * radius / (fill * n * rng.uniform(0.85, 1.0))
    shift = rng.uniform(-0.05, 0.05, 2) * n * px
    rot = complex(math.cos(th), math.sin(th))
    cols = (np.arange(n) + 0.5 - n / 2) * px + shift[0]
    out = np.empty((n, n), bool)
    for r0 in range(0, n, 256):
        rows = (np.arange(r0, min(n, r0 + 256)) + 0.5 - n / 2) * px + shift[1]
        z = rot * (cols[None, :] + 1j * rows[:, None])
        inside, _ = julia_membership(z, RABBIT_C)
        out[r0 : r0 + rows.size] = inside.reshape(z.shape)
    return out
