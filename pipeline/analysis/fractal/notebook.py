"""The fractal-dimension estimator of Sohl-Dickstein's (2024) notebook, as published.

Sohl-Dickstein, "The boundary of neural network trainability is fractal" (2024), measures
each panel's dimension in the notebook that comes with the paper; this module does the same
arithmetic, so our frames can be compared with the paper's numbers like for like:

1. **edges** (:func:`notebook_edges`): an image of shape (H − 1, W − 1) whose pixel (i, j) is
   an edge when the 2×2 block ``f[i:i+2, j:j+2]`` holds a strictly positive and a strictly
   negative value (the notebook's ``sign(max · min) < 0``: a zero or a NaN in the block makes
   no edge; we compare signs instead of multiplying, which differs only where the product
   would underflow, |max · min| below ~1e-308);
2. **box counts** (:func:`notebook_box_counts`, porespy's ``metrics.boxcount`` with its default
   ``bins=10``): sizes ``unique(int(logspace(1, log10(min(shape)), 10)))`` (``int`` truncates),
   where ``shape`` is the edge image's; for each size d the image is tiled from its top-left
   corner in steps of d (the boxes at the right and bottom borders are partial), and a box
   counts when it holds an edge pixel *and* a non-edge pixel (a box all edge does not count);
3. **local slopes**: ``−numpy.gradient(log N, log d)`` (central differences for non-uniform
   spacing inside, one-sided at the two ends), one per size;
4. **the dimension**: the median of *all* local slopes of *all* frames pooled (the notebook's
   frames are the zoom-out sequence of :mod:`pipeline.run.zoom_out`).

The notebook reports no interval; ours (:func:`sohl_dickstein_notebook_dimension`) is a
bootstrap of the pooled median that resamples whole frames (their slopes are correlated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.analysis.fractal.counts import as_field
from pipeline.analysis.fractal.estimate import DimensionEstimate
from pipeline.errors import PipelineError

__all__ = [
    "NOTEBOOK_BINS",
    "NotebookCounts",
    "notebook_box_counts",
    "notebook_box_sizes",
    "notebook_edges",
    "sohl_dickstein_notebook_dimension",
]

NOTEBOOK_BINS = 10
"""porespy's default number of box sizes (``boxcount(im, bins=10)``)."""


def notebook_edges(f: ArrayLike) -> NDArray[np.bool_]:
    """The notebook's edge image of the signed 2-D field ``f`` (H, W): a boolean (H − 1, W − 1)
    array, true where the 2×2 block ``f[i:i+2, j:j+2]`` holds a value > 0 and a value < 0.

    Zeros and NaNs are on neither side (a block with a NaN is never an edge). A boolean ``f``
    is read as +1 (True) and −1 (False). Unlike :func:`~.counts.boundary_mask` (classes
    ``> 0`` and ``<= 0``), a block of zeros and positives is not an edge here."""
    arr = as_field(f)
    if arr.dtype == np.bool_:
        arr = np.where(arr, 1.0, -1.0)
    a, b, c, d = arr[:-1, :-1], arr[:-1, 1:], arr[1:, :-1], arr[1:, 1:]
    with np.errstate(invalid="ignore"):
        hi = np.maximum(np.maximum(a, b), np.maximum(c, d))  # NaN propagates
        lo = np.minimum(np.minimum(a, b), np.minimum(c, d))
        return (hi > 0) & (lo < 0)


def notebook_box_sizes(shape: tuple[int, ...], bins: int = NOTEBOOK_BINS) -> NDArray[np.int64]:
    """porespy's default box sizes for an image of ``shape`` (px): ``bins`` values log-spaced
    from 10 to the smaller side, truncated to integers, duplicates dropped, ascending. (A side
    under 10 px gives sizes from that side up to 10: the boxes then exceed the image.)"""
    side = min(shape)
    if side < 1:
        raise PipelineError(f"shape: expected an image of at least 1 px per side, got {shape}")
    return np.unique(np.logspace(1, np.log10(side), int(bins)).astype(np.int64))


@dataclass(frozen=True)
class NotebookCounts:
    """One frame's box counts: ``sizes`` (S,) box sides in px, ``counts`` (S,) boxes holding
    both edge and non-edge pixels, ``slopes`` (S,) the local slopes −d log N / d log s
    (``numpy.gradient``), and ``shape``, the edge image's (the field's less one per axis)."""

    sizes: NDArray[np.int64]
    counts: NDArray[np.int64]
    slopes: NDArray[np.float64]
    shape: tuple[int, int]


def _mixed_box_count(edges: NDArray[np.bool_], d: int) -> int:
    """Boxes of side ``d`` tiled from (0, 0) (partial at the far borders) holding both an edge
    and a non-edge pixel."""
    h, w = edges.shape
    rows, cols = np.arange(0, h, d), np.arange(0, w, d)
    sums = np.add.reduceat(np.add.reduceat(edges, rows, axis=0, dtype=np.int64), cols, axis=1)
    pixels = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))
    return int(np.count_nonzero((sums > 0) & (sums < pixels)))


def notebook_box_counts(
    edges: ArrayLike, sizes: Sequence[int] | None = None, *, bins: int = NOTEBOOK_BINS
) -> NotebookCounts:
    """porespy's ``boxcount`` of the boolean 2-D image ``edges`` (e.g. :func:`notebook_edges`):
    ``sizes`` default to :func:`notebook_box_sizes` (``bins`` of them); counts and local slopes
    as in the module docstring. Raises ``PipelineError`` when fewer than two sizes remain or a
    count is zero (an image with no edge, or all edge: its log count is −inf)."""
    e = np.asarray(edges, dtype=np.bool_)
    if e.ndim != 2 or min(e.shape) < 1:
        raise PipelineError(f"edges: expected a 2-D image, got shape {e.shape}")
    sz = notebook_box_sizes(e.shape, bins) if sizes is None else np.asarray(sizes, np.int64)
    if sz.size < 2 or np.any(sz < 1):
        raise PipelineError(
            f"sizes: expected at least two box sizes >= 1 px, got {sz.tolist()} "
            f"(edge image {e.shape})"
        )
    counts = np.array([_mixed_box_count(e, int(d)) for d in sz], np.int64)
    if np.any(counts == 0):
        what = "no edge pixel" if not e.any() else "edges only" if e.all() else "no mixed box"
        raise PipelineError(
            f"edges: {what} in a {e.shape[0]} x {e.shape[1]} image (box size "
            f"{int(sz[np.argmax(counts == 0)])} px counts 0 boxes, log 0 has no slope)"
        )
    slopes = -np.gradient(np.log(counts.astype(np.float64)), np.log(sz.astype(np.float64)))
    return NotebookCounts(sz, counts, slopes, (int(e.shape[0]), int(e.shape[1])))


def sohl_dickstein_notebook_dimension(
    frames: Sequence[ArrayLike] | ArrayLike,
    *,
    bins: int = NOTEBOOK_BINS,
    n_boot: int = 2000,
    seed: int = 0,
) -> DimensionEstimate:
    """The dimension by the notebook of Sohl-Dickstein (2024): the median of the local slopes
    of every frame's porespy box counts, all frames pooled (module docstring).

    ``frames``: one signed 2-D field (H, W) or a sequence of them (the zoom-out sequence,
    widest first; the order does not change the median), class by sign as
    :func:`notebook_edges`. The 95 % interval is ours (the notebook gives none): the 2.5 and
    97.5 percentiles of the pooled median over ``n_boot`` resamplings of whole frames with
    replacement (of single slopes when there is one frame), generator seeded by ``seed``.
    ``scales``/``counts`` are the first frame's sizes and counts; ``extra["frames"]`` holds
    every frame's :class:`NotebookCounts` (sizes, counts, slopes), ``extra["local_slopes"]``
    the pooled slopes. Raises ``PipelineError`` (naming the frame) for a frame without a
    sign change.

    How it differs from :func:`~.estimators.sohl_dickstein_dimension` (``sohl-dickstein-2024``,
    our earlier reading of the paper): that one boxes the two classes (``> 0``, ``<= 0``) of
    the field itself, takes 10 sizes from 10 px to 1/4 of the side (rounded, complete boxes
    only), uses forward differences between consecutive sizes and a bootstrap over slopes;
    this one boxes the 2×2 edge image (a box of edges only does not count), takes porespy's
    sizes up to the whole side (partial border boxes), and ``numpy.gradient``'s slopes.
    """
    if isinstance(frames, np.ndarray) and frames.ndim == 2:
        frames = [frames]
    elif not isinstance(frames, Sequence) and hasattr(frames, "ndim"):
        frames = [frames]  # one xarray.DataArray / array-like field
    per: list[NotebookCounts] = []
    for k, fr in enumerate(frames):
        try:
            per.append(notebook_box_counts(notebook_edges(fr), bins=bins))
        except PipelineError as e:
            raise PipelineError(f"frame {k}: {e}") from None
    if not per:
        raise PipelineError("frames: expected at least one 2-D field, got none")
    pooled = np.concatenate([p.slopes for p in per])
    est = float(np.median(pooled))
    rng = np.random.default_rng(seed)
    if len(per) > 1:
        pick = rng.integers(0, len(per), size=(n_boot, len(per)))
        boots = np.array([np.median(np.concatenate([per[i].slopes for i in row])) for row in pick])
    else:
        boots = np.median(rng.choice(pooled, size=(n_boot, pooled.size)), axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    first = per[0]
    return DimensionEstimate(
        estimate=est,
        interval=(float(lo), float(hi)),
        scales=first.sizes.astype(np.float64),
        counts=first.counts.astype(np.float64),
        fit_range=(0, len(first.sizes) - 1),
        method="sohl-dickstein-notebook",
        slope=-est,
        extra={"frames": tuple(per), "local_slopes": pooled},
    )
