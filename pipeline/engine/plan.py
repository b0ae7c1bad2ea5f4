"""Stage 2 of the pipeline: chunk keys and the cost of a sweep, before anything runs.

A chunk key is a tuple of chunk indices, one per grid axis, in spec order. It maps to slices
by a pure function (:func:`chunk_slices`), keys are enumerated in one deterministic order
(:func:`iter_chunk_keys`), and a key's string form (:func:`key_to_str`, e.g. ``"0.0.3.0.1.0"``)
names its done marker in the store. A key's *flat index* is its position in that order
(:func:`key_to_flat`, :func:`flat_to_key`): the driver and the done index keep chunks as flat
indices, so a sweep of 10^6 chunks costs a few bytes per chunk, not a Python tuple each.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.engine.variables import store_variables
from pipeline.errors import PipelineError
from pipeline.experiments import get_experiment
from pipeline.spec.sweep import SweepSpec

__all__ = [
    "ChunkKey",
    "Plan",
    "chunk_coords",
    "chunk_counts",
    "chunk_slices",
    "describe_chunk",
    "flat_to_key",
    "iter_chunk_keys",
    "key_from_str",
    "key_to_flat",
    "key_to_str",
    "make_plan",
    "n_chunks",
]

ChunkKey = tuple[int, ...]


def chunk_counts(spec: SweepSpec) -> tuple[int, ...]:
    """Number of chunks along each axis."""
    return tuple(-(-n // c) for n, c in zip(spec.shape, spec.chunks, strict=True))


def n_chunks(spec: SweepSpec) -> int:
    """Number of chunks of the sweep."""
    return math.prod(chunk_counts(spec))


def key_to_flat(key: ChunkKey, counts: tuple[int, ...]) -> int:
    """Position of ``key`` in :func:`iter_chunk_keys` order (row-major over ``counts``, the
    chunks per axis); ``ValueError`` for a key outside the grid."""
    if len(key) != len(counts) or not all(0 <= i < n for i, n in zip(key, counts, strict=True)):
        raise ValueError(f"chunk key {key!r} is outside a grid of {counts} chunks")
    flat = 0
    for i, n in zip(key, counts, strict=True):
        flat = flat * n + i
    return flat


def flat_to_key(flat: int, counts: tuple[int, ...]) -> ChunkKey:
    """Inverse of :func:`key_to_flat`."""
    return tuple(int(i) for i in np.unravel_index(int(flat), counts))


def iter_chunk_keys(spec: SweepSpec) -> Iterator[ChunkKey]:
    """Every chunk key of the sweep, in row-major order."""
    return itertools.product(*(range(n) for n in chunk_counts(spec)))


def chunk_slices(spec: SweepSpec, key: ChunkKey) -> tuple[slice, ...]:
    """Grid slices (one per axis) covered by chunk ``key``; the last chunk may be short."""
    if len(key) != len(spec.axes):
        raise PipelineError(
            f"chunk key {key!r} has {len(key)} indices, the grid has {len(spec.axes)} axes"
        )
    out = []
    for i, c, n in zip(key, spec.chunks, spec.shape, strict=True):
        if not 0 <= i < -(-n // c):
            raise PipelineError(f"chunk key {key!r} is outside the grid")
        out.append(slice(i * c, min((i + 1) * c, n)))
    return tuple(out)


def chunk_coords(spec: SweepSpec, key: ChunkKey) -> dict[str, np.ndarray]:
    """Coordinate values of the chunk along each axis, keyed by dim name."""
    return {a.name: a.array[s] for a, s in zip(spec.axes, chunk_slices(spec, key), strict=True)}


def describe_chunk(spec: SweepSpec, key: ChunkKey) -> str:
    """Where chunk ``key`` lies, on the axes with more than one value: ``"sigma_w=0.5..1.2,
    sigma_b=0.3"`` (first..last coordinate of the chunk)."""
    parts = []
    for axis, values in zip(spec.axes, chunk_coords(spec, key).values(), strict=True):
        if len(axis) > 1:
            parts.append(f"{axis.name}={_span(values)}")
    return ", ".join(parts)


def _span(values: np.ndarray) -> str:
    def fmt(v: object) -> str:
        return f"{v:.6g}" if isinstance(v, float | np.floating) else f"{v}"

    return fmt(values[0]) if len(values) == 1 else f"{fmt(values[0])}..{fmt(values[-1])}"


def key_to_str(key: ChunkKey) -> str:
    """``(0, 3, 1)`` → ``"0.3.1"`` (the done marker's name)."""
    return ".".join(str(i) for i in key)


def key_from_str(text: str) -> ChunkKey:
    """Inverse of :func:`key_to_str`."""
    return tuple(int(p) for p in text.split("."))


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
    from pipeline.engine.refine_plan import expected_fraction

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
