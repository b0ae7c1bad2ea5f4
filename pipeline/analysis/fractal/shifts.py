"""Class flips under axis shifts: the data of the directional uncertainty exponent.

For a shift ε (pixels) along an axis, the *flip fraction* is the share of pixel pairs
(p, p ± ε) whose classes differ, the two signs pooled: ``(#flips(+ε) + #flips(−ε)) /
(#valid pairs(+ε) + #valid pairs(−ε))``. A pair touching a NaN pixel is not counted. Only
the pixels of the *central region* (a margin of the largest ε on every side) are tested, so
every ε sees the same pixels. Counts are kept per axis (0: along rows, i.e. shifts within a
row, the x axis; 1: along columns, the y axis), per ε and per block of a BLOCKS × BLOCKS
partition of the central region (for the spatial jackknife).

For the sign field of a graph y = g(x), the x-axis flip fraction at ε is the mean of
|g(x + ε) − g(x)| over the frame's height (the graph's first-order variogram, ∝ ε^H),
exactly, for any sampling of g; the y-axis one is ∝ ε (the graph is smooth in y). For an
isotropic boundary both are ∝ ε^(2−D).

:func:`axis_flips` takes anything that slices into NumPy row bands: a NumPy array, a
``zarr.Array``, a dask array or an ``xarray.DataArray``; it reads bands of at most
``band_rows`` rows (plus the margin above and below), so a field bigger than memory is
processed with a few bands' worth of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pipeline.analysis.fractal.counts import BLOCKS, classes
from pipeline.errors import PipelineError

__all__ = ["AxisFlips", "axis_flips", "default_shifts", "flips_in_own_box"]


SMALL_SIDE = 512
"""Frames below this side get shifts up to a quarter of the side (the small-frame fallback
ranges of :func:`~.fit.calibrated_dimension` reach 1/4), at the cost of a central region of
half the side."""


def default_shifts(side: int, top: int = 16) -> NDArray[np.float64]:
    """Four shifts per octave from 1 px to ``side // top`` px (``side // 4`` below
    :data:`SMALL_SIDE`), integers without repeats."""
    hi = max(2, side // (top if side >= SMALL_SIDE else 4))
    return np.unique(np.round(np.geomspace(1, hi, 4 * int(np.log2(hi)) + 1)))


@dataclass(frozen=True)
class AxisFlips:
    """Flip counts of one field: ``eps`` (E,) shifts in px; ``flips`` and ``pairs``
    (2, E, BLOCKS²): flipped and valid pairs per axis (0: x, 1: y), shift and block;
    ``shape`` the field's shape; ``class_pixels`` and ``edge_pixels`` (2,): pixels of the
    central region in class ``> 0`` and ``<= 0``, and those of them with a 4-neighbour of
    the other class (see :meth:`edge_share`); ``box``: (first row, end row, first column,
    end column) in the field's coordinates of the central region's pixels with a
    4-neighbour of the other class (the boundary's bounding box; all 0 when there is no
    boundary)."""

    eps: NDArray[np.float64]
    flips: NDArray[np.float64]
    pairs: NDArray[np.float64]
    shape: tuple[int, int]
    class_pixels: NDArray[np.float64]
    edge_pixels: NDArray[np.float64]
    box: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def margin(self) -> int:
        """The central region's margin (px): the largest shift."""
        return int(self.eps.max())

    def _touches(self, axis: int) -> bool:
        m, (h, w) = self.margin, self.shape
        lo, hi, size = (self.box[2], self.box[3], w) if axis == 0 else (*self.box[:2], h)
        return lo <= m or hi >= size - m

    @property
    def enclosed(self) -> bool:
        """Whether the boundary lies inside the central region without reaching its edge on
        any side (a bounded object with room around it)."""
        return self.box[1] > self.box[0] and not (self._touches(0) or self._touches(1))

    def boundary_extent(self, axis: int) -> int:
        """The boundary's extent along ``axis`` (0: x, 1: y) in px: the span of its bounding
        box, or the frame's width (height) when it reaches the central region's edge there
        (it may go on outside the frame); 0 without a boundary."""
        if self.box[1] <= self.box[0]:
            return 0
        if self._touches(axis):
            return self.shape[1 - axis]
        return self.box[3] - self.box[2] if axis == 0 else self.box[1] - self.box[0]

    def edge_share(self) -> float:
        """The largest share, over the two classes, of a class's pixels that touch the other
        class (4-neighbours): near 0 when both classes have an interior, near 1 when one
        class is all boundary (a thin set, e.g. a critical percolation cluster: 0.86)."""
        ok = self.class_pixels > 0
        if not ok.any():
            return 0.0
        return float((self.edge_pixels[ok] / self.class_pixels[ok]).max())

    def fractions(self) -> NDArray[np.float64]:
        """(2, E) flip fraction per axis and shift (0 where no pair is valid)."""
        return self.flips.sum(-1) / np.maximum(self.pairs.sum(-1), 1)

    def leave_one_out(self, axis: int) -> NDArray[np.float64]:
        """(BLOCKS², E) fractions of ``axis`` with each block left out (the jackknife)."""
        f, p = self.flips[axis], self.pairs[axis]
        return (f.sum(-1)[None, :] - f.T) / np.maximum(p.sum(-1)[None, :] - p.T, 1)


def _bounds(n: int) -> list[int]:
    return [i * n // BLOCKS for i in range(BLOCKS + 1)]


def _read(field: object, r0: int, r1: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Class and validity of rows r0..r1 (exclusive) of ``field``."""
    arr = getattr(field, "data", field)  # an xarray.DataArray's array
    band = np.asarray(arr[r0:r1])
    pos, valid = classes(band)
    return pos, np.ones_like(pos) if valid is None else valid


def axis_flips(
    field: object, eps: Sequence[float] | None = None, *, band_rows: int = 2048
) -> AxisFlips:
    """Flip counts of the 2-D ``field`` (class ``> 0``, NaN: no class) for every shift of
    ``eps`` (integer px >= 1; default :func:`default_shifts` of the smaller side), along both
    axes, per block of the central region (see the module docstring). Reads row bands of
    at most ``band_rows`` rows plus the margin above and below."""
    if not hasattr(field, "shape"):
        field = np.asarray(field)  # nested lists
    shape = tuple(int(s) for s in getattr(field, "shape", ()))
    if len(shape) != 2:
        raise PipelineError(f"field: expected a 2-D array, got shape {shape}")
    h, w = shape
    ev = default_shifts(min(h, w)) if eps is None else np.asarray(eps, np.float64)
    if ev.size == 0 or np.any(ev != np.round(ev)) or np.any(ev < 1):
        raise PipelineError(f"eps: expected integer pixel shifts >= 1, got {ev.tolist()}")
    m = int(ev.max())
    if 2 * m >= min(h, w):
        raise PipelineError(f"eps: largest shift {m} px is too large for shape {shape}")
    hc, wc = h - 2 * m, w - 2 * m  # the central region
    rb, cb = _bounds(hc), _bounds(wc)
    cstarts = np.asarray(cb[:-1])
    flips = np.zeros((2, ev.size, BLOCKS * BLOCKS))
    pairs = np.zeros_like(flips)
    n_cls, n_edge = np.zeros(2), np.zeros(2)
    lo, hi = [wc, hc], [-1, -1]  # the boundary's first and last column and row
    for bi in range(BLOCKS):
        for a in range(rb[bi], rb[bi + 1], max(1, int(band_rows))):
            b = min(a + max(1, int(band_rows)), rb[bi + 1])
            if b <= a:
                continue
            # central rows a..b are field rows m + a .. m + b; read the margin around them
            pos, valid = _read(field, a, b + 2 * m)
            c = pos[m : m + b - a, m : m + wc]
            cv = valid[m : m + b - a, m : m + wc]
            cols = slice(bi * BLOCKS, (bi + 1) * BLOCKS)
            edge = np.zeros_like(c)
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                r, q = m + dr, m + dc
                edge |= (pos[r : r + b - a, q : q + wc] != c) & valid[r : r + b - a, q : q + wc]
            edge &= cv
            for k, cls in enumerate((c & cv, ~c & cv)):
                n_cls[k] += np.count_nonzero(cls)
                n_edge[k] += np.count_nonzero(cls & edge)
            for k, hit in enumerate((edge.any(0), edge.any(1))):
                at = np.flatnonzero(hit) + (0 if k == 0 else a)
                if at.size:
                    lo[k], hi[k] = min(lo[k], int(at[0])), max(hi[k], int(at[-1]))
            # a band without NaN has every pair valid: count flips without the masks
            full = np.diff([*cstarts, wc]) * (b - a) if valid.all() else None
            for i, e in enumerate(ev.astype(int)):
                for axis, (dr, dc) in enumerate(((0, e), (e, 0))):
                    for sgn in (1, -1):
                        r, q = m + sgn * dr, m + sgn * dc
                        diff = pos[r : r + b - a, q : q + wc] != c
                        if full is None:
                            ok = cv & valid[r : r + b - a, q : q + wc]
                            diff &= ok
                            pairs[axis, i, cols] += np.add.reduceat(ok.sum(0), cstarts)
                        else:
                            pairs[axis, i, cols] += full
                        flips[axis, i, cols] += np.add.reduceat(diff.sum(0), cstarts)
    box = (0, 0, 0, 0) if hi[1] < 0 else (m + lo[1], m + hi[1] + 1, m + lo[0], m + hi[0] + 1)
    return AxisFlips(
        eps=ev,
        flips=flips,
        pairs=pairs,
        shape=(h, w),
        class_pixels=n_cls,
        edge_pixels=n_edge,
        box=box,
    )


class _Window:
    """Rows ``r0:r1`` and columns ``c0:c1`` of a 2-D field, sliced lazily by rows (a view
    for :func:`axis_flips`: a zarr or dask field is read band by band)."""

    def __init__(self, field: object, r0: int, r1: int, c0: int, c1: int):
        # an xarray.DataArray's array (a NumPy array's .data is its raw buffer)
        self.field = field if isinstance(field, np.ndarray) else getattr(field, "data", field)
        self.r0, self.c0, self.c1 = r0, c0, c1
        self.shape = (r1 - r0, c1 - c0)

    def __getitem__(self, rows: slice) -> object:
        return self.field[self.r0 + rows.start : self.r0 + rows.stop, self.c0 : self.c1]


def flips_in_own_box(field: object, af: AxisFlips, top: int, *, band_rows: int = 2048) -> AxisFlips:
    """The flip counts ``af`` of ``field`` recounted in the boundary's own frame when the
    boundary is :attr:`~AxisFlips.enclosed` (a bounded object inside a larger frame): the
    bounding box plus twice the margin of the shifts up to 1/``top`` of its larger extent.
    Outside the box the central region holds one class, so every flipped pair has an end in
    the box and both ends in the window's central region (the box plus the margin): the flip
    counts are the frame's (unless the frame's own margin, which the frame's pairs reach
    into, holds other boundary), the valid pairs scale by a constant (the fitted slopes do
    not change), and the jackknife's blocks partition the object rather than mostly empty
    frame. ``af`` itself when the boundary is not enclosed or the window does not fit in
    the frame."""
    if not af.enclosed:
        return af
    reach = max(af.boundary_extent(0), af.boundary_extent(1)) / top
    ev = af.eps[af.eps <= max(reach, af.eps.min())]
    m = int(ev.max())
    r0, r1, c0, c1 = af.box
    h, w = af.shape
    if r0 < 2 * m or c0 < 2 * m or r1 + 2 * m > h or c1 + 2 * m > w:
        return af
    win = _Window(field, r0 - 2 * m, r1 + 2 * m, c0 - 2 * m, c1 + 2 * m)
    return axis_flips(win, ev, band_rows=band_rows)
