"""A stub experiment that only writes: the driver's benchmark and the engine's tests.

``f(a, b) = 1000 a + b + offset`` (float32) over two integer axes, one point per chunk by default,
``chunk_cost`` one FLOP per point: everything a chunk costs is the engine's (task, write,
marker). Found on every process (Dask worker processes and ``sweep`` subprocesses included)
as the entry point ``stub`` of ``phase_sweep.experiments`` when this folder is on the Python
path: ``phase_sweep_test_stub-1.0.dist-info`` beside this file declares it, as an installed
plugin package would.

The spec field ``offset`` tells two runs' values apart. ``SWEEP_STUB_DELAY`` (seconds, an
environment variable, so not part of the spec: a resume may run without it) makes each
chunk sleep first, for runs that must still be going when a test interrupts them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.experiments.base import Experiment, Variable
from pipeline.spec.fields import Axis, AxisRule, bounded_number


class StubExperiment(Experiment):
    """f = 1000 a + b + offset per point; nothing else."""

    name = "stub"
    axis_rules = (
        AxisRule("a", "int", low=0, default=None, long_name="first index"),
        AxisRule("b", "int", low=0, default=(0,), long_name="second index"),
    )
    param_keys = ("offset",)

    def parse_params(self, raw: Mapping[str, Any], axes: tuple[Axis, ...]) -> tuple[Any, dict]:
        offset = bounded_number(raw.get("offset", 0.0), "offset", -1e6, 1e6)
        return offset, {"offset": offset}

    def default_chunk(self, axis: Axis) -> int:
        return 1

    def variables(self, spec: Any) -> list[Variable]:
        return [Variable("f", (), "1000 a + b + offset")]

    def chunk_cost(self, spec: Any, chunk_shape: tuple[int, ...]) -> dict[str, float]:
        return {"flops": float(np.prod(chunk_shape)), "peak_bytes": 64.0}

    def compute_chunk(self, spec, coords, backend="numpy", threads=1):
        delay = float(os.environ.get("SWEEP_STUB_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        a, b = np.meshgrid(coords["a"], coords["b"], indexing="ij")
        return {"f": (1000.0 * a + b + spec.params).astype(np.float32)}


def expected(spec: Any) -> np.ndarray:
    """What a complete store of ``spec`` holds in ``f``."""
    a, b = np.meshgrid(spec.axis("a").values, spec.axis("b").values, indexing="ij")
    return (1000.0 * a + b + spec.params).astype(np.float32)


EXPERIMENT = StubExperiment()


class PlaneStubExperiment(Experiment):
    """A closed-form plane for refinement tests: over integer pixels (a, b),
    ``f = b - c(a)`` with ``c(a) = centre + amplitude * sin(a / 7)`` (the class is its sign)
    and ``g = 1000 a + b``, which names the pixel a value came from (a filled pixel shows its
    source's). ``compute_points`` sleeps ``SWEEP_STUB_DELAY`` seconds once per call."""

    name = "stub_plane"
    axis_rules = (
        AxisRule("a", "int", low=0, default=None, long_name="row pixel"),
        AxisRule("b", "int", low=0, default=None, long_name="column pixel"),
    )
    param_keys = ("centre", "amplitude")

    def parse_params(self, raw: Mapping[str, Any], axes: tuple[Axis, ...]) -> tuple[Any, dict]:
        c = bounded_number(raw.get("centre", 20.0), "centre", -1e6, 1e6)
        amp = bounded_number(raw.get("amplitude", 10.0), "amplitude", 0, 1e6)
        return (c, amp), {"centre": c, "amplitude": amp}

    def default_chunk(self, axis: Axis) -> int:
        return min(len(axis), 16)

    def variables(self, spec: Any) -> list[Variable]:
        return [Variable("f", (), "b - c(a)"), Variable("g", (), "1000 a + b")]

    def chunk_cost(self, spec: Any, chunk_shape: tuple[int, ...]) -> dict[str, float]:
        return {"flops": float(np.prod(chunk_shape)), "peak_bytes": 64.0}

    def compute_chunk(self, spec, coords, backend="numpy", threads=1):
        a, b = np.meshgrid(coords["a"], coords["b"], indexing="ij")
        return plane_values(spec, a, b)

    def compute_points(self, spec, coords, backend="numpy", threads=1):
        delay = float(os.environ.get("SWEEP_STUB_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        return plane_values(spec, np.asarray(coords["a"]), np.asarray(coords["b"]))

    def plane(self, spec: Any) -> tuple[str, str]:
        return ("a", "b")

    def signed_field(self, spec: Any, ds: Any) -> Any:
        return ds["f"]


def plane_values(spec: Any, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """``f`` and ``g`` of :class:`PlaneStubExperiment` at pixels (a, b) (any equal shapes)."""
    centre, amp = spec.params
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return {"f": b - (centre + amp * np.sin(a / 7.0)), "g": 1000.0 * a + b}


PLANE_EXPERIMENT = PlaneStubExperiment()
