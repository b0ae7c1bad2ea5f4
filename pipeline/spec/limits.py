"""Size limits of a spec, checked while it is parsed, before anything is allocated.

Each limit is far above what the shipped workflows need and far below what would exhaust a
machine before the first chunk runs (a ``linspace`` of 10¹² values, a layer list of 2³¹
entries, a grid whose chunk list alone fills the driver's memory). What the kernels can index
is a hard limit: widths, depths, counts and layer indices are 32-bit signed integers there.
Memory per task against the workers' memory is checked later, by the command that knows the
workers (:mod:`pipeline.run.resources`).
"""

from __future__ import annotations

__all__ = [
    "MAX_AXIS_VALUES",
    "MAX_CHUNKS",
    "MAX_GRID_POINTS",
    "MAX_INDEX",
    "MAX_RECORDED",
]

MAX_INDEX = 2**31 - 1
"""Largest width, depth, probe size or step count: the CUDA kernels index them as int32."""

MAX_AXIS_VALUES = 2**20
"""Most values on one axis (a paper-scale plane has 1024 per axis)."""

MAX_GRID_POINTS = 10**9
"""Most grid points in one store: 10 × the largest grids the pipeline is built for (10⁸);
beyond it, split the sweep into several stores (e.g. by seed)."""

MAX_CHUNKS = 2**20
"""Most chunks in one store: every chunk is a Dask task and a done marker; more than this
and the driver's bookkeeping outgrows the work (use larger ``chunks``)."""

MAX_RECORDED = 2**20
"""Most recorded layers (``record_layers``) or kept steps (``keep_trajectory``): each one is
an entry along an extra dim of every variable."""
