"""Stage 2 of the pipeline: the cost of a sweep before anything runs (sizes, FLOPs, memory),
and the plan lines of ``sweep plan``. The chunk keys themselves are
:mod:`pipeline.store.grid`'s (a pure function of the spec).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from pipeline.experiments import get_experiment
from pipeline.spec.sweep import SweepSpec
from pipeline.store.grid import ChunkKey, chunk_counts, chunk_slices
from pipeline.store.variables import store_variables

__all__ = ["Plan", "make_plan"]


@dataclass(frozen=True)
class Plan:
    """What a sweep will do: sizes, FLOPs and memory, computed from the spec alone."""

    n_points: int
    n_chunks: int
    chunk_shape: tuple[int, ...]
    flops: float
    output_bytes: int
    peak_task_bytes: float
    variables: tuple[str, ...]
    device_peak_bytes: float | None = None
    notes: tuple[str, ...] = ()

    def describe(self, spec: SweepSpec) -> str:
        """Human-readable summary (what ``sweep plan`` prints)."""
        dims = " × ".join(f"{a.name}={len(a)}" for a in spec.axes)
        chunk = " × ".join(f"{d}={c}" for d, c in zip(spec.dims, self.chunk_shape, strict=True))
        return "\n".join(
            [
                f"experiment        {spec.experiment}  ({spec.dtype})",
                f"grid              {dims}",
                f"grid points       {self.n_points:,}",
                f"chunk shape       {chunk}",
                f"chunks            {self.n_chunks:,}",
                f"FLOPs             {self.flops:.3e}",
                f"output size       {_bytes(self.output_bytes)}",
                f"peak per task     {_bytes(self.peak_task_bytes)} (host, NumPy backend)",
                *(
                    [f"peak per task     {_bytes(self.device_peak_bytes)} (GPU memory, CuPy)"]
                    if self.device_peak_bytes is not None
                    else []
                ),
                f"variables         {', '.join(self.variables)}",
                f"store             {spec.store or 'none given (--store, or store: in the spec)'}",
                *self.notes,
            ]
        )


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def make_plan(spec: SweepSpec) -> Plan:
    """Plan a sweep: nothing is computed or written. ``notes`` holds the experiment's own
    lines (e.g. a GPU-hours estimate)."""
    exp = get_experiment(spec.experiment)
    variables = store_variables(spec)
    extra = {k: len(v[0]) for k, v in exp.extra_coords(spec).items()}
    out_bytes = 0
    for v in variables:
        item = np.dtype(v.dtype or spec.dtype).itemsize
        out_bytes += spec.n_points * math.prod(extra[d] for d in v.extra_dims) * item
    flops = 0.0
    for key, count in _representative_keys(spec):
        cost = exp.chunk_cost(spec, tuple(s.stop - s.start for s in chunk_slices(spec, key)))
        flops += cost["flops"] * count
    full = exp.chunk_cost(spec, spec.chunks)
    return Plan(
        n_points=spec.n_points,
        n_chunks=math.prod(chunk_counts(spec)),
        chunk_shape=spec.chunks,
        flops=flops,
        output_bytes=out_bytes,
        peak_task_bytes=full["peak_bytes"],
        device_peak_bytes=full.get("device_peak_bytes"),
        variables=tuple(v.name for v in variables),
        notes=(*exp.plan_lines(spec, flops), *_refine_lines(spec)),
    )


def _refine_lines(spec: SweepSpec) -> list[str]:
    """``sweep plan``'s lines for a refined sweep: the expected share of pixels computed."""
    if spec.refine is None:
        return []
    from pipeline.run.refine_plan import expected_fraction

    plane = get_experiment(spec.experiment).plane(spec)
    assert plane is not None
    shape = (len(spec.axis(plane[0])), len(spec.axis(plane[1])))
    r = spec.refine
    shares = ", ".join(f"D = {d}: {expected_fraction(shape, r, d):.3f}" for d in (1.0, 1.3, 1.6))
    return [
        f"refine            coarse {r.coarse}, {r.n_levels} levels (final spacing {r.final}), "
        f"guard {r.guard}, audit {r.audit:g} (seed {r.audit_seed})",
        f"expected share    of the grid computed, for a boundary of dimension {shares} "
        "(a prior: the store's 'refine' attrs hold the measured share)",
    ]


def _representative_keys(spec: SweepSpec) -> list[tuple[ChunkKey, int]]:
    """One key per distinct chunk shape, with how many chunks have that shape (so a plan of
    10^6 chunks costs as much as one of 2^axes)."""
    per_axis = []
    for n, c in zip(spec.shape, spec.chunks, strict=True):
        full, rem = divmod(n, c)
        opts = [(0, full)] if full else []
        if rem:
            opts.append((full, 1))
        per_axis.append(opts)
    out = []
    for combo in itertools.product(*per_axis):
        key = tuple(i for i, _ in combo)
        out.append((key, math.prod(m for _, m in combo)))
    return out
