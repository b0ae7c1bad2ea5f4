"""The chunk grid of a sweep: chunk keys, their slices, flat positions and names.

:class:`ChunkGrid` is the value object the run and the store pass around (the grid's shape,
chunk lengths and chunks per axis, with key ↔ flat ↔ name ↔ slices); the functions below are
the same mappings for a spec.

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

from pipeline.errors import PipelineError
from pipeline.spec.sweep import SweepSpec

__all__ = [
    "ChunkGrid",
    "ChunkKey",
    "chunk_coords",
    "chunk_counts",
    "chunk_slices",
    "describe_chunk",
    "flat_to_key",
    "iter_chunk_keys",
    "key_from_str",
    "key_to_flat",
    "key_to_str",
    "n_chunks",
]

ChunkKey = tuple[int, ...]


@dataclass(frozen=True)
class ChunkGrid:
    """A sweep's grid of chunks: ``shape`` (points per axis, spec order) cut into chunks of
    ``chunks`` points (the last one along an axis may be short). Chunks are numbered in
    row-major order over :attr:`counts` (their *flat* position); a chunk's name is its
    key's string (``"0.3.1"``, its done marker's file name)."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @classmethod
    def of(cls, spec: SweepSpec) -> ChunkGrid:
        """The grid of ``spec``."""
        return cls(tuple(spec.shape), tuple(spec.chunks))

    @property
    def counts(self) -> tuple[int, ...]:
        """Chunks along each axis."""
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunks, strict=True))

    @property
    def n_chunks(self) -> int:
        """Chunks in the grid."""
        return math.prod(self.counts)

    def key(self, flat: int) -> ChunkKey:
        """The key of the chunk at flat position ``flat``."""
        return flat_to_key(flat, self.counts)

    def flat(self, key: ChunkKey) -> int:
        """The flat position of chunk ``key`` (``ValueError`` outside the grid)."""
        return key_to_flat(key, self.counts)

    def name(self, flat: int) -> str:
        """The name of the chunk at flat position ``flat`` (``"0.3.1"``)."""
        return key_to_str(self.key(flat))

    def slices(self, key: ChunkKey) -> tuple[slice, ...]:
        """Grid slices (one per axis) covered by chunk ``key``."""
        self.flat(key)  # a key outside the grid is a ValueError
        return tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(key, self.chunks, self.shape, strict=True)
        )

    def keys(self) -> Iterator[ChunkKey]:
        """Every chunk key, in flat order."""
        return itertools.product(*(range(n) for n in self.counts))


def chunk_counts(spec: SweepSpec) -> tuple[int, ...]:
    """Number of chunks along each axis."""
    return ChunkGrid.of(spec).counts


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
