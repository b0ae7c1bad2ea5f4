"""Boundary masks and box counts of a signed 2-D field, in memory or chunk by chunk.

Conventions
-----------
* A *field* is a 2-D array ``f`` (rows = first axis). Its *class* is ``f > 0``; NaN pixels
  belong to no class and never make a boundary. A boolean field is its own class.
* The *boundary mask* ``B`` has shape ``(H − 1, W − 1)``: ``B[i, j]`` is true when the 2×2
  neighbourhood ``f[i:i+2, j:j+2]`` holds both classes (a sign change). A mask pixel is the
  corner shared by four field pixels, so it lies on the curve separating the classes.
* A box of size ``s`` (pixels) with grid offset ``(oy, ox)`` is ``B[s·a − oy : s·(a+1) − oy,
  s·b − ox : s·(b+1) − ox]`` (clipped to the mask). ``N(s)`` is the number of boxes holding a
  boundary pixel; :func:`box_counts` averages it over a few grid offsets per size, which
  removes most of the dependence on where the grid happens to fall (the counts of one
  placement jump by tens of per cent at the largest sizes).
* Box sizes and offsets are multiples of a *base* ``g``: the counts are computed from the
  base occupancy (which g × g cells hold a boundary pixel) through its summed-area table.
  In memory g = 1; :func:`box_counts_lazy` computes the base occupancy chunk by chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.errors import PipelineError

__all__ = [
    "BLOCKS",
    "BoxCounts",
    "as_field",
    "boundary_mask",
    "box_counts",
    "box_counts_from_occupancy",
    "box_counts_lazy",
    "count_boxes",
    "count_boxes_lazy",
    "count_occupancy",
    "default_sizes",
    "occupancy",
]


def as_field(f: ArrayLike) -> NDArray:
    """``f`` as a 2-D array of at least 2 × 2 pixels (one-line error otherwise)."""
    arr = np.asarray(getattr(f, "values", f))
    if arr.ndim != 2:
        raise PipelineError(f"field: expected a 2-D array, got shape {arr.shape}")
    if min(arr.shape) < 2:
        raise PipelineError(f"field: expected at least 2 × 2 pixels, got shape {arr.shape}")
    return arr


def classes(f: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_] | None]:
    """(``f > 0``, valid pixels or None when every pixel is valid) of a field."""
    arr = as_field(f)
    if arr.dtype == np.bool_:
        return arr, None
    valid = ~np.isnan(arr) if np.issubdtype(arr.dtype, np.floating) else None
    if valid is not None and valid.all():
        valid = None
    with np.errstate(invalid="ignore"):
        return arr > 0, valid


def boundary_mask(f: ArrayLike) -> NDArray[np.bool_]:
    """Boolean mask (H − 1, W − 1): the 2×2 neighbourhoods of ``f`` holding both classes.

    Classes are ``f > 0`` and ``f <= 0``; neighbourhoods touching a NaN are never boundary.
    A boolean ``f`` is used as the class directly.
    """
    pos, valid = classes(f)
    a, b, c, d = pos[:-1, :-1], pos[:-1, 1:], pos[1:, :-1], pos[1:, 1:]
    out = (a | b | c | d) & ~(a & b & c & d)
    if valid is not None:
        out &= valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1] & valid[1:, 1:]
    return out


def default_sizes(
    shape: tuple[int, int], *, per_octave: int = 4, base: int = 1, top_fraction: int = 4
) -> NDArray[np.int64]:
    """Box sizes from ``base`` to 1/``top_fraction`` of the smaller side, about
    ``per_octave`` per factor 2, each a multiple of ``base`` (duplicates dropped)."""
    top = max(base, min(shape) // top_fraction)
    k = np.arange(0, per_octave * math.log2(top / base) + 1e-9 + 1)
    sizes = base * np.unique(np.round(2.0 ** (k / per_octave)).astype(np.int64))
    return np.unique(sizes[(sizes >= base) & (sizes <= top)])


def occupancy(mask: NDArray[np.bool_], g: int) -> NDArray[np.bool_]:
    """(ceil(H/g), ceil(W/g)): whether each g × g cell of ``mask`` holds a true pixel."""
    if g == 1:
        return mask
    h, w = mask.shape
    hh, ww = -(-h // g), -(-w // g)
    if hh * g != h or ww * g != w:
        padded = np.zeros((hh * g, ww * g), np.bool_)
        padded[:h, :w] = mask
        mask = padded
    return mask.reshape(hh, g, ww, g).any(axis=(1, 3))


def _offsets(k: int, n_offsets: int) -> list[int]:
    """Up to ``n_offsets`` evenly spaced grid offsets (in base cells) for a box of k cells."""
    return sorted({int(round(i * k / n_offsets)) for i in range(min(k, n_offsets))})


@dataclass(frozen=True)
class BoxCounts:
    """Box counts of the boundary of a field of ``shape`` (pixels; its mask is one smaller
    along each axis): ``sizes`` (S,), ``counts`` (S,)
    (mean over the grid offsets), and ``blocks`` (B, S): the same counts split by which of
    the ``BLOCKS`` × ``BLOCKS`` equal blocks of the mask holds each box's centre (they sum to
    ``counts``), for the spatial jackknife of the estimators' intervals."""

    sizes: NDArray[np.float64]
    counts: NDArray[np.float64]
    blocks: NDArray[np.float64]
    shape: tuple[int, int]


BLOCKS = 4
"""The mask is cut into BLOCKS × BLOCKS blocks for the jackknife (16 blocks)."""


def count_occupancy(
    occ: NDArray[np.bool_],
    g: int,
    sizes: Sequence[int],
    *,
    n_offsets: int = 2,
    shape: tuple[int, int] | None = None,
) -> BoxCounts:
    """:class:`BoxCounts` from the base occupancy ``occ`` (cells of ``g`` pixels; ``shape``
    is the field's, default ``occ.shape`` × g + 1): for each size (a multiple of ``g``), the mean
    over ``n_offsets``² grid offsets (multiples of g) of the boxes holding an occupied cell."""
    sz = np.asarray(sizes, np.int64)
    if sz.size == 0 or np.any(sz < g) or np.any(sz % g):
        raise PipelineError(
            f"sizes: expected box sizes that are multiples of the base {g} px, got {sz.tolist()}"
        )
    h, w = occ.shape
    # summed-area table with a zero first row/column: every box sum in O(1)
    sat = np.zeros((h + 1, w + 1), np.int64 if occ.size >= 2**31 else np.int32)
    np.cumsum(np.cumsum(occ, axis=0, dtype=sat.dtype), axis=1, out=sat[1:, 1:])
    blocks = np.zeros((BLOCKS * BLOCKS, sz.size), np.float64)
    for i, s in enumerate(sz.tolist()):
        k = s // g
        offs = _offsets(k, n_offsets)
        for oy in offs:
            ry = np.unique(np.clip(np.arange(-oy, h + k, k), 0, h))
            by = np.minimum((ry[:-1] + ry[1:]) * BLOCKS // (2 * h), BLOCKS - 1)
            for ox in offs:
                rx = np.unique(np.clip(np.arange(-ox, w + k, k), 0, w))
                bx = np.minimum((rx[:-1] + rx[1:]) * BLOCKS // (2 * w), BLOCKS - 1)
                box = sat[np.ix_(ry[1:], rx[1:])] - sat[np.ix_(ry[:-1], rx[1:])]
                box -= sat[np.ix_(ry[1:], rx[:-1])] - sat[np.ix_(ry[:-1], rx[:-1])]
                which = (by[:, None] * BLOCKS + bx[None, :])[box > 0]
                blocks[:, i] += np.bincount(which, minlength=BLOCKS * BLOCKS)
        blocks[:, i] /= len(offs) ** 2
    mshape = shape if shape is not None else (h * g + 1, w * g + 1)
    return BoxCounts(sz.astype(np.float64), blocks.sum(axis=0), blocks, mshape)


def box_counts_from_occupancy(
    occ: NDArray[np.bool_], g: int, sizes: Sequence[int], *, n_offsets: int = 2
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(sizes, N(sizes))`` of :func:`count_occupancy`."""
    bc = count_occupancy(occ, g, sizes, n_offsets=n_offsets)
    return bc.sizes, bc.counts


def count_boxes(
    f: ArrayLike, sizes: Sequence[int] | None = None, *, n_offsets: int = 2
) -> BoxCounts:
    """:class:`BoxCounts` of the boundary of the signed field ``f`` (sizes default to
    :func:`default_sizes`: four per octave from 1 px to a quarter of the smaller side)."""
    m = boundary_mask(f)
    sz = default_sizes(m.shape) if sizes is None else np.asarray(sizes, dtype=np.int64)
    if sz.size == 0 or np.any(sz < 1):
        raise PipelineError(f"sizes: expected box sizes >= 1 pixel, got {sz.tolist()}")
    return count_occupancy(m, 1, sz, n_offsets=n_offsets)


def box_counts(
    mask: ArrayLike, sizes: Sequence[int] | None = None, *, n_offsets: int = 2
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(sizes, N(sizes))`` of the boolean ``mask`` (a :func:`boundary_mask`), each count
    the mean over ``n_offsets``² grid offsets (``n_offsets = 1``: the grid from the mask's
    origin only). ``sizes`` default to :func:`default_sizes` (four per octave, 1 px to a
    quarter of the smaller side)."""
    m = np.asarray(mask, dtype=np.bool_)
    if m.ndim != 2:
        raise PipelineError(f"mask: expected a 2-D boolean array, got shape {m.shape}")
    sz = default_sizes(m.shape) if sizes is None else np.asarray(sizes, dtype=np.int64)
    if sz.size == 0 or np.any(sz < 1):
        raise PipelineError(f"sizes: expected box sizes >= 1 pixel, got {sz.tolist()}")
    return box_counts_from_occupancy(m, 1, sz, n_offsets=n_offsets)


def _block_occupancy(block: NDArray, g: int) -> NDArray[np.bool_]:
    """Base occupancy of one chunk extended by one row and one column of its neighbours
    (none past the field's last row/column: there the mask ends where the global mask
    ends)."""
    return occupancy(boundary_mask(np.asarray(block)), g)


def box_counts_lazy(
    field: object,
    sizes: Sequence[int] | None = None,
    *,
    base: int | None = None,
    n_offsets: int = 2,
    batch: int = 8,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(sizes, N(sizes))`` of :func:`count_boxes_lazy` (same arguments)."""
    bc = count_boxes_lazy(field, sizes, base=base, n_offsets=n_offsets, batch=batch)
    return bc.sizes, bc.counts


def count_boxes_lazy(
    field: object,
    sizes: Sequence[int] | None = None,
    *,
    base: int | None = None,
    n_offsets: int = 2,
    batch: int = 8,
) -> BoxCounts:
    """:func:`count_boxes` of a field too big for memory.

    ``field``: a 2-D dask array, an ``xarray.DataArray`` backed by one (e.g. a variable of
    ``xarray.open_zarr``), or anything :func:`dask.array.asarray` takes (a ``zarr.Array``).
    Chunks must be regular along each axis, with lengths that are multiples of ``base``
    (default: the largest power of two <= 8 dividing both). Each task reads one chunk plus
    one row and one column of its neighbours (the 2×2 neighbourhoods across chunk borders)
    and returns its base occupancy ((chunk/base)² booleans); the occupancies are stitched in
    memory ((H/base) × (W/base)) and counted exactly as :func:`box_counts` counts the whole
    mask, for sizes and offsets that are multiples of ``base`` (default sizes:
    :func:`default_sizes` with that base). Tasks run ``batch`` at a time (one
    ``dask.compute`` per batch), so peak memory is a few chunks per task of a batch.
    """
    import dask
    import dask.array as da

    arr = getattr(field, "data", field)
    if not isinstance(arr, da.Array):
        arr = da.asarray(arr)
    if arr.ndim != 2:
        raise PipelineError(f"field: expected a 2-D array, got shape {arr.shape}")
    rows, cols = arr.chunks
    cr, cc = rows[0], cols[0]
    if (
        any(c != cr for c in rows[:-1])
        or rows[-1] > cr
        or any(c != cc for c in cols[:-1])
        or (cols[-1] > cc)
    ):
        raise PipelineError(f"field: expected regular chunks, got {arr.chunks}; rechunk first")
    if base is None:
        base = max(b for b in (1, 2, 4, 8) if cr % b == 0 and cc % b == 0)
    g = int(base)
    if g < 1 or cr % g or cc % g:
        raise PipelineError(
            f"base: {g} px does not divide the chunk shape ({cr}, {cc}); the occupancy of "
            "cells only stitches across chunks for divisors of the chunk lengths"
        )
    h, w = arr.shape
    if min(h, w) < 2:
        raise PipelineError(f"field: expected at least 2 × 2 pixels, got shape {arr.shape}")
    mh, mw = h - 1, w - 1  # the mask's shape
    occ = np.zeros((-(-mh // g), -(-mw // g)), np.bool_)
    starts_r = np.cumsum((0, *rows[:-1]))
    starts_c = np.cumsum((0, *cols[:-1]))
    blocks = [(int(r0), int(c0)) for r0 in starts_r for c0 in starts_c]
    task = dask.delayed(_block_occupancy, pure=True)
    for b in range(0, len(blocks), max(1, int(batch))):
        part = blocks[b : b + batch]
        tasks = [
            task(arr[r0 : min(r0 + cr + 1, h), c0 : min(c0 + cc + 1, w)], g) for r0, c0 in part
        ]
        for (r0, c0), o in zip(part, dask.compute(*tasks), strict=True):
            # the block's mask rows r0 .. r0 + cr − 1 (its extra row only completes them)
            nr, nc = min(cr // g, o.shape[0]), min(cc // g, o.shape[1])
            occ[r0 // g : r0 // g + nr, c0 // g : c0 // g + nc] |= o[:nr, :nc]
    sz = default_sizes((mh, mw), base=g) if sizes is None else np.asarray(sizes, np.int64)
    return count_occupancy(occ, g, sz, n_offsets=n_offsets, shape=(h, w))
