"""Whether a boundary is noise-dominated, and the frontier with the noise separated.

Pixel noise (i.i.d., or correlated over a few pixels: speckle beside filaments, a chaotic
phase sampled below its correlation length) has a boundary that *fills the plane* above
its correlation length: within the noisy region every box holds both classes, so the box
counts grow as s^−2 and every estimator reads the boundary near 2, whatever the frontier
between the noisy region and the rest looks like. :func:`noise_check` measures

* the **local dimension** of the box counts over each octave [s, 2s] from 1 px to 1/16 of
  the frame (the default's range top), and the octaves where it is at least
  :data:`NOISE_DIMENSION`: there the boundary fills the plane (no boundary of the battery
  reaches it: the highest, the critical percolation cluster of D = 91/48, tops out at 1.90
  at 4096²);
  the boundary is **noise-dominated** when such an octave exists;
* the share of boundary pixels (a 4-neighbour of the other class) in or beside *small
  clusters*, 4-connected components of either class of at most :data:`SMALL_AREA` pixels
  (isolated pixels, specks): i.i.d. noise 0.9–1, smooth or fractal boundaries 0–0.7
  (critical percolation clusters, steep Koch islands whose narrow wedges break into pixels);
  reported, not used for the flag (correlated noise has larger clusters);
* the **separated frontier**: the region where the noise fills the plane (boxes of 2 s*
  px, s* the first octave that fills it, that hold both classes, kept where they form solid
  blocks: a morphological closing then opening with 3 × 3 boxes removes the 1–2 box wide
  chains that a curve occupies), and the default estimator's dimension of that region's
  boundary: the frontier between the noise and the clean part of the frame, with the
  noise's own structure separated (its dimension is 1 for a smooth frontier beside noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from pipeline.analysis.fractal.counts import as_field, boundary_mask, classes, count_occupancy
from pipeline.analysis.fractal.estimate import DimensionEstimate
from pipeline.errors import PipelineError

__all__ = [
    "NOISE_DIMENSION",
    "SMALL_AREA",
    "NoiseCheck",
    "noise_check",
    "octave_dimensions",
    "small_cluster_share",
]

NOISE_DIMENSION = 1.93
"""Local box-counting dimension over one octave at which a boundary fills the plane: i.i.d.
and correlated noise beside a clean frontier reach 1.94–2.0 at 1024²–4096² (1.98 and up at
2048²–4096²; noise correlated over 4 px only 1.90–1.92 at 512²); every clean battery field
tops out at or below 1.90 (BENCHMARKS.md, "Boundary report: flags and coverage")."""
SMALL_AREA = 16
"""Components of a class of at most this many pixels are *small clusters* (specks)."""
TOP_FRACTION = 16
"""Octaves are searched up to 1/TOP_FRACTION of the frame's smaller side."""


def octave_dimensions(
    sizes: NDArray, counts: NDArray, side: int, top: int = TOP_FRACTION
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(lower ends s in px, local dimensions) of the box counts ``counts`` at ``sizes``:
    −Δlog N / Δlog s between each size s and the size nearest 2 s, for 2 s <= ``side`` /
    ``top`` (sizes with a zero count are skipped)."""
    s = np.asarray(sizes, np.float64)
    n = np.asarray(counts, np.float64)
    ok = n > 0
    s, n = s[ok], n[ok]
    lo, dims = [], []
    for i, si in enumerate(s):
        j = int(np.argmin(np.abs(np.log(s / (2 * si)))))
        if j <= i or s[j] > side / top or abs(math.log(s[j] / (2 * si))) > 0.2:
            continue
        lo.append(si)
        dims.append(-(math.log(n[j]) - math.log(n[i])) / (math.log(s[j]) - math.log(si)))
    return np.asarray(lo, np.float64), np.asarray(dims, np.float64)


def small_cluster_share(pos: NDArray[np.bool_], area: int = SMALL_AREA) -> float:
    """Share of the boundary pixels of the class image ``pos`` (pixels with a 4-neighbour of
    the other class) that lie in or beside a 4-connected component of either class of at
    most ``area`` pixels (0 when there is no boundary)."""
    edge = np.zeros_like(pos)
    dy, dx = pos[:-1] != pos[1:], pos[:, :-1] != pos[:, 1:]
    edge[:-1] |= dy
    edge[1:] |= dy
    edge[:, :-1] |= dx
    edge[:, 1:] |= dx
    total = np.count_nonzero(edge)
    if total == 0:
        return 0.0
    four = ndimage.generate_binary_structure(2, 1)
    small = np.zeros_like(pos)
    for cls in (pos, ~pos):
        lab, _ = ndimage.label(cls, four)
        sz = np.bincount(lab.ravel())
        sz[0] = area + 1
        small |= sz[lab] <= area
        del lab
    small = ndimage.binary_dilation(small, four)
    return float(np.count_nonzero(edge & small) / total)


@dataclass(frozen=True)
class NoiseCheck:
    """The noise check of one boundary (see the module docstring). ``scales``/``dims``: the
    octaves' lower ends (px) and local dimensions; ``filling``: (first, last) lower end in
    px of the octaves at or above :data:`NOISE_DIMENSION` (None: none); ``small_share``:
    boundary pixels in or beside small clusters; ``region_share``: the share of the frame in
    the noise region (0 when not noisy); ``frontier``: the default estimate of the noise
    region's boundary (None: not noisy, or no frontier, ``reason`` says why)."""

    scales: NDArray[np.float64]
    dims: NDArray[np.float64]
    filling: tuple[float, float] | None
    small_share: float
    region_share: float = 0.0
    frontier: DimensionEstimate | None = None
    reason: str = ""

    @property
    def noisy(self) -> bool:
        """Whether the boundary fills the plane over an octave (noise-dominated)."""
        return self.filling is not None

    @property
    def pixel_dimension(self) -> float:
        """The local dimension of the first octave (1 to 2 px; NaN if not measured)."""
        return float(self.dims[0]) if self.dims.size and self.scales[0] == 1 else math.nan

    def text(self) -> str:
        """``noise-dominated: ...`` with the separated frontier, or "" when not noisy."""
        if not self.noisy:
            return ""
        a, b = self.filling  # type: ignore[misc]
        head = (
            f"noise-dominated: the boundary fills the plane (local dimension >= "
            f"{NOISE_DIMENSION:.2f}) from {a:g} to {2 * b:g} px, {100 * self.small_share:.0f} % "
            "of it in specks"
        )
        if self.frontier is None:
            return f"{head}; frontier with the noise separated: n/a ({self.reason})"
        e = self.frontier
        return (
            f"{head}; frontier with the noise separated: D = {e.estimate:.3f} "
            f"[{e.interval[0]:.3f}, {e.interval[1]:.3f}] (noise region "
            f"{100 * self.region_share:.0f} % of the frame)"
        )


def noise_region(f: ArrayLike, cell: int) -> NDArray[np.bool_]:
    """The pixels of ``f`` in the noise region at a cell of ``cell`` px: the cells of the
    boundary mask's occupancy grid that hold boundary, closed then opened with a 3 × 3
    structuring element (solid blocks of mixed cells; a curve's 1–2 cell chain goes), back
    on the pixel grid (the field's shape)."""
    arr = as_field(f)
    m = boundary_mask(arr)
    h, w = m.shape
    hh, ww = -(-h // cell), -(-w // cell)
    pad = np.zeros((hh * cell, ww * cell), bool)
    pad[:h, :w] = m
    occ = pad.reshape(hh, cell, ww, cell).any(axis=(1, 3))
    sq = np.ones((3, 3), bool)
    occ = ndimage.binary_closing(occ, sq, border_value=0)
    occ = ndimage.binary_opening(occ, sq, border_value=0)
    full = np.repeat(np.repeat(occ, cell, axis=0), cell, axis=1)
    out = np.zeros(arr.shape, bool)
    out[:h, :w] = full[:h, :w]
    out[h:, :w] = full[h - 1 : h, :w]
    out[:, w:] = out[:, w - 1 : w]
    return out


def noise_check(
    f: ArrayLike,
    box_counts: tuple[NDArray, NDArray] | None = None,
    *,
    frontier: bool = True,
) -> NoiseCheck:
    """The noise check of the sign boundary of the 2-D field ``f`` (class ``f > 0``).

    ``box_counts``: (sizes, counts) of its boundary mask from 1 px up (e.g. the box-counting
    estimate's ``scales``/``counts``), else counted here (two per octave, 2 × 2 grid
    offsets). ``frontier=False`` skips the separated frontier's dimension."""
    from pipeline.analysis.fractal.estimators import default_dimension

    arr = as_field(f)
    side = int(min(arr.shape))
    if box_counts is None:
        sizes = np.unique(np.round(2.0 ** np.arange(0, math.log2(max(side // 8, 2)) + 0.01, 0.5)))
        bc = count_occupancy(boundary_mask(arr), 1, sizes.astype(np.int64))
        box_counts = (bc.sizes, bc.counts)
    lo, dims = octave_dimensions(*box_counts, side)
    pos, valid = classes(arr)
    if valid is not None:
        pos = pos & valid
    share = small_cluster_share(pos)
    hit = np.flatnonzero(dims >= NOISE_DIMENSION)
    if hit.size == 0:
        return NoiseCheck(lo, dims, None, share)
    filling = (float(lo[hit[0]]), float(lo[hit[-1]]))
    if not frontier:
        return NoiseCheck(lo, dims, filling, share)
    region = noise_region(arr, max(2, int(2 * filling[0])))
    rshare = float(region.mean())
    if rshare >= 0.999:
        return NoiseCheck(lo, dims, filling, share, rshare, None, "noise fills the frame")
    try:
        est = default_dimension(region)
    except PipelineError as e:
        return NoiseCheck(lo, dims, filling, share, rshare, None, str(e))
    if est.interval[1] < 1.0 or est.interval[0] > 2.0:
        # the boundary of a region of the plane has 1 <= D <= 2: a fit whose whole interval
        # lies outside saw no scaling (a few blocky patches filling most of the frame)
        why = (
            f"the noise region's boundary shows no scaling: its fit reads {est.estimate:.2f} "
            f"[{est.interval[0]:.2f}, {est.interval[1]:.2f}], outside 1-2"
        )
        return NoiseCheck(lo, dims, filling, share, rshare, None, why)
    return NoiseCheck(lo, dims, filling, share, rshare, est)
