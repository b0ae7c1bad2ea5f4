"""Koch-type islands: closed polygons refined by a generator, filled on the pixel grid.

A *generator* replaces every segment by ``m`` segments of ``ratio`` times its length whose
headings (degrees, relative to the replaced segment) are ``turns``; its limit curve is
self-similar with similarity dimension ``log m / log(1/ratio)`` (an open-set condition holds
for every generator here, so that is also its box-counting dimension). An *island* applies it
to every side of a regular polygon. The level is chosen so that the finest segment is below
``FINEST_PX`` pixels: every detail of the limit curve that a pixel grid can show is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["FINEST_PX", "Island", "fill_polygon", "island_field"]

FINEST_PX = 0.35
"""The finest segment of a rendered island, in pixels (below half a pixel: no pixel centre
can tell the next level apart)."""


@dataclass(frozen=True)
class Island:
    """A regular ``sides``-gon whose sides are refined by the generator ``turns``/``ratio``.

    ``turns``: heading of each generator segment relative to the replaced one, degrees
    (positive = to the left of the direction of travel); the sides are traversed
    counter-clockwise, so positive turns point into the island.
    """

    sides: int
    turns: tuple[float, ...]
    ratio: float

    @property
    def dimension(self) -> float:
        """Similarity dimension log m / log(1/ratio) of the limit curve."""
        return math.log(len(self.turns)) / math.log(1.0 / self.ratio)

    def check(self) -> None:
        """The generator must end where the replaced unit segment ends."""
        h = np.radians(np.asarray(self.turns))
        end = self.ratio * np.array([np.cos(h).sum(), np.sin(h).sum()])
        if not np.allclose(end, [1.0, 0.0], atol=1e-9):
            raise ValueError(f"generator {self.turns} ends at {end}, not at (1, 0)")

    def vertices(self, level: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Vertices (x, y) of the level-``level`` island with unit sides, centred on 0."""
        self.check()
        g = np.radians(np.asarray(self.turns, np.float64))
        heading = np.radians(360.0 / self.sides) * np.arange(self.sides)
        for _ in range(level):  # each segment's heading plus each generator turn
            heading = (heading[:, None] + g[None, :]).ravel()
        step = self.ratio**level
        x = np.concatenate([[0.0], np.cumsum(step * np.cos(heading))])[:-1]
        y = np.concatenate([[0.0], np.cumsum(step * np.sin(heading))])[:-1]
        return x - x.mean(), y - y.mean()


def fill_polygon(vx: NDArray, vy: NDArray, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Even-odd fill of the closed polygon with vertices ``(vx, vy)`` (pixel units, x =
    column, y = row) at pixel centres ``(col + 0.5, row + 0.5)``: True inside.

    Scanline crossings are toggled into an int8 array and accumulated along rows; the int8
    sum wraps, but wrapping by 256 keeps the parity, which is all the even-odd rule needs."""
    h, w = shape
    x0, y0 = np.asarray(vx, np.float64), np.asarray(vy, np.float64)
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    r0 = np.ceil(lo - 0.5).astype(np.int64)  # first row whose centre is >= lo
    r1 = np.ceil(hi - 0.5).astype(np.int64)  # first row whose centre is >= hi (excluded)
    r0, r1 = np.clip(r0, 0, h), np.clip(r1, 0, h)
    n = np.maximum(r1 - r0, 0)
    edge = np.repeat(np.arange(x0.size), n)
    rows = np.repeat(r0, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
    t = (rows + 0.5 - y0[edge]) / (y1[edge] - y0[edge])
    xi = x0[edge] + t * (x1[edge] - x0[edge])
    cols = np.clip(np.floor(xi - 0.5).astype(np.int64) + 1, 0, w)  # first centre > xi
    toggles = np.zeros((h, w + 1), np.int8)
    np.add.at(toggles, (rows, cols), 1)
    return (np.cumsum(toggles, axis=1, dtype=np.int8)[:, :w] & 1).astype(bool)


def island_field(
    island: Island, n: int, rng: np.random.Generator, *, fill: float = 0.8
) -> NDArray[np.bool_]:
    """The island in an ``n`` × ``n`` frame: random rotation, its diameter ``fill`` × n
    (a random factor in [0.85, 1] of it), random centre keeping it inside; True inside."""
    shrink = rng.uniform(0.85, 1.0)
    level = 0
    while True:  # the radius changes a little with the level: refine until fine enough
        x, y = island.vertices(level)
        scale = shrink * fill * n / (2 * float(np.hypot(x, y).max()))
        if scale * island.ratio**level < FINEST_PX:
            break
        level += 1
    th = rng.uniform(0, 2 * math.pi)
    x, y = x * math.cos(th) - y * math.sin(th), x * math.sin(th) + y * math.cos(th)
    x, y = x * scale, y * scale
    span_x = n - (x.max() - x.min())
    span_y = n - (y.max() - y.min())
    cx = rng.uniform(0.25, 0.75) * span_x - x.min()
    cy = rng.uniform(0.25, 0.75) * span_y - y.min()
    return fill_polygon(x + cx, y + cy, (n, n))
