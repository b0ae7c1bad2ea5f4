"""Rasterised test shapes of known boundary dimension (helpers for tests/test_analysis*.py)."""

from __future__ import annotations

import math

import numpy as np


def fill_polygon(vx: np.ndarray, vy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Even-odd fill of a closed polygon (vertices in pixel units, x = column, y = row) at
    pixel centres: a float field, +1 inside, -1 outside."""
    h, w = shape
    x0, y0 = vx, vy
    x1, y1 = np.roll(vx, -1), np.roll(vy, -1)
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    r0 = np.ceil(lo - 0.5).astype(np.int64)  # first row with centre >= lo
    r1 = np.ceil(hi - 0.5).astype(np.int64)  # first row with centre >= hi (excluded)
    n = np.maximum(r1 - r0, 0)
    edge = np.repeat(np.arange(vx.size), n)
    start = np.repeat(r0, n)
    offs = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    rows = start + offs
    yc = rows + 0.5
    t = (yc - y0[edge]) / (y1[edge] - y0[edge])
    xi = x0[edge] + t * (x1[edge] - x0[edge])
    cols = np.clip(np.floor(xi - 0.5).astype(np.int64) + 1, 0, w)
    ok = (rows >= 0) & (rows < h)
    toggles = np.zeros((h, w + 1), np.int64)
    np.add.at(toggles, (rows[ok], cols[ok]), 1)
    inside = (np.cumsum(toggles, axis=1)[:, :w] % 2).astype(bool)
    return np.where(inside, 1.0, -1.0)


def _turtle(commands: str, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    moves = [c for c in commands if c in "F+-"]
    heading = 0.0
    xs, ys = [0.0], [0.0]
    a = math.radians(angle_deg)
    x = y = 0.0
    for c in moves:
        if c == "F":
            x += math.cos(heading)
            y += math.sin(heading)
            xs.append(x)
            ys.append(y)
        elif c == "+":
            heading += a
        else:
            heading -= a
    return np.array(xs[:-1]), np.array(ys[:-1])


def _lsystem(axiom: str, rule: str, level: int) -> str:
    s = axiom
    for _ in range(level):
        s = s.replace("F", rule)
    return s


def quadratic_koch(level: int = 4, unit: int = 2, pad: int = 16) -> np.ndarray:
    """Quadratic Koch island (Minkowski sausage), boundary dimension log 8 / log 4 = 1.5.

    Lattice polygon: every segment is ``unit`` pixels long and lies on pixel edges, so the
    raster is exact."""
    xs, ys = _turtle(_lsystem("F+F+F+F", "F+F-F-FF+F+F-F", level), 90.0)
    xs, ys = np.round(xs).astype(np.int64) * unit, np.round(ys).astype(np.int64) * unit
    xs, ys = xs - xs.min() + pad, ys - ys.min() + pad
    shape = (int(ys.max()) + pad + 1, int(xs.max()) + pad + 1)
    return fill_polygon(xs.astype(float), ys.astype(float), shape)


def koch_snowflake(level: int = 6, size: int = 1024, pad: int = 8) -> np.ndarray:
    """Koch snowflake, boundary dimension log 4 / log 3 ≈ 1.2619, side ≈ ``size`` px."""
    xs, ys = _turtle(_lsystem("F--F--F", "F+F--F+F", level), 60.0)
    scale = size / 3.0**level
    xs, ys = xs * scale, ys * scale
    xs, ys = xs - xs.min() + pad + 0.123, ys - ys.min() + pad + 0.377
    shape = (int(ys.max()) + pad + 1, int(xs.max()) + pad + 1)
    return fill_polygon(xs, ys, shape)


def disk(n: int = 1024, radius: float = 400.0) -> np.ndarray:
    """Signed field radius − r of a disk centred off the pixel grid: boundary dimension 1."""
    y, x = np.mgrid[0:n, 0:n] + 0.5
    c = n / 2 + 0.31
    return radius - np.hypot(x - c, y - c + 0.17)


def tilted_line(n: int = 1024, slope: float = 0.37) -> np.ndarray:
    """Half plane below a tilted line: boundary dimension 1."""
    y, x = np.mgrid[0:n, 0:n] + 0.5
    return y - (slope * x + 0.3 * n + 0.21)
