"""Experiment registry: what a sweep computes at each grid point.

An experiment is a module-level object with the :class:`Experiment` protocol. The spec parser
asks it for its axes and parameters; the store asks for its output variables; the executor
calls :meth:`Experiment.compute_chunk` on a worker. Adding an experiment (``trainability``
next) means adding a module here and one line to ``_REGISTRY``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from pipeline.spec import Axis, AxisRule, SweepSpec

__all__ = ["Experiment", "Variable", "get_experiment", "known_experiments"]

_REGISTRY = {
    "propagation": "pipeline.experiments.propagation",
    "trainability": "pipeline.experiments.trainability",
}


@dataclass(frozen=True)
class Variable:
    """One output variable: extra trailing dims after the grid dims, dtype, fill and attrs.

    ``dtype`` ``None`` means the spec's float dtype. ``fill`` is what an unwritten chunk
    reads as (NaN for floats), so a missing chunk is never mistaken for data.
    """

    name: str
    extra_dims: tuple[str, ...]
    long_name: str
    units: str = "1"
    dtype: str | None = None
    fill: Any = np.nan
    description: str = ""


class Experiment(Protocol):
    """What the spec parser, the planner, the store and the executor need of an experiment."""

    name: str
    axis_rules: tuple[AxisRule, ...]
    param_keys: tuple[str, ...]

    def parse_params(
        self, raw: Mapping[str, Any], axes: tuple[Axis, ...]
    ) -> tuple[Any, dict[str, Any]]:
        """Validate the experiment's own top-level fields; return (params, canonical dict)."""

    def default_chunk(self, axis: Axis) -> int:
        """Default chunk length along ``axis``."""

    def variables(self, spec: SweepSpec) -> list[Variable]:
        """Output variables of a sweep."""

    def extra_coords(self, spec: SweepSpec) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """Coordinates of the non-grid dims (e.g. ``layer``), with their attrs."""

    def chunk_cost(self, spec: SweepSpec, chunk_shape: tuple[int, ...]) -> dict[str, float]:
        """Cost of one chunk: ``flops`` and ``peak_bytes`` (a task's working memory)."""

    def compute_chunk(
        self, spec: SweepSpec, coords: dict[str, np.ndarray], backend: str = "numpy"
    ) -> dict[str, np.ndarray]:
        """Compute every variable for the grid points in ``coords`` (the chunk's coordinate
        values per axis, in spec order). Returns arrays of shape
        ``chunk_shape + extra dims``; pure: no I/O, no scheduler."""


def known_experiments() -> tuple[str, ...]:
    """Names accepted by the spec's ``experiment`` field."""
    return tuple(_REGISTRY)


def get_experiment(name: str) -> Experiment:
    """The experiment object registered as ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"experiment: unknown value {name!r} (allowed: {', '.join(_REGISTRY)})")
    return importlib.import_module(_REGISTRY[name]).EXPERIMENT
