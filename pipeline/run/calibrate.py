"""A time estimate for ``sweep plan``: this machine's backend, measured for a few seconds.

The estimate divides the plan's FLOPs by a measured rate. The rate comes from the spec's own
code: one grid point of the spec (the first value of every axis) is computed, as often as fits
in the budget, and its FLOPs (the experiment's ``chunk_cost``) over the seconds it took give
the rate, start-up and Python overhead included (not the compiled backend's one-off
compilation or cache load: a first grid point is computed untimed). When one point would take
longer than the budget (a paper-scale training run), or cannot be computed here (a draws file
not present), the rate is that of a matrix product of the spec's dtype instead (a GEMM rate:
an upper bound on the speed, so a lower bound on the time). Either way it is an estimate of
one worker's compute, not a promise: sizes change the rate, and the run adds I/O and
scheduling.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from pipeline.experiments import get_experiment
from pipeline.spec.sweep import SweepSpec

__all__ = ["Calibration", "calibrate", "gemm_rate"]


@dataclass(frozen=True)
class Calibration:
    """A measured cost model of one worker on ``backend``: a chunk of F FLOPs takes
    ``per_call_s + F / flops_per_s`` seconds; ``how`` says what was measured."""

    flops_per_s: float
    backend: str
    how: str
    per_call_s: float = 0.0

    def seconds(self, flops: float, calls: int = 0) -> float:
        """The time ``flops`` in ``calls`` chunks take (seconds; NaN when the rate is
        unknown)."""
        if not self.flops_per_s > 0:
            return math.nan
        return calls * self.per_call_s + flops / self.flops_per_s


def _sync(backend: str) -> None:
    if backend == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def gemm_rate(backend: str = "numpy", dtype: str = "float32", budget_s: float = 0.25) -> float:
    """FLOP/s of square matrix products (n = 256) of ``dtype`` on ``backend``, timed for about
    ``budget_s`` seconds (2 n³ FLOPs per product)."""
    if backend == "cupy":
        import cupy as xp
    else:
        xp = np
    n = 256
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.standard_normal((n, n)).astype(dtype))
    b = a @ a  # warm-up (and the library's threads)
    _sync(backend)
    k, t0 = 0, time.perf_counter()
    while True:
        b = a @ b
        b /= n  # keep it finite
        k += 1
        if k % 4 == 0:
            _sync(backend)
            if time.perf_counter() - t0 >= budget_s:
                break
    return k * 2.0 * n**3 / (time.perf_counter() - t0)


def _parts(full: list[int]) -> list[tuple[int, ...]]:
    """Parts of a chunk of shape ``full``, growing from one point: each doubles the axis with
    the most room left, up to the whole chunk."""
    shape = [1] * len(full)
    out = [tuple(shape)]
    while True:
        room = [f / s for f, s in zip(full, shape, strict=True)]
        axis = int(np.argmax(room))
        if room[axis] <= 1:
            return out
        shape[axis] = min(full[axis], 2 * shape[axis])
        out.append(tuple(shape))


def calibrate(spec: SweepSpec, backend: str = "numpy", budget_s: float = 2.5) -> Calibration:
    """Measure how fast this machine's ``backend`` computes ``spec`` in about ``budget_s``
    seconds (see the module docstring). Parts of the first chunk are computed, from one
    grid point up to the largest part predicted to fit the budget; the last two give a cost
    per call (start-up: drawing networks, probes) and a rate per FLOP, since a chunk computes
    its points together and a single point mostly measures the start-up."""
    exp = get_experiment(spec.experiment)
    gemm = gemm_rate(backend, spec.dtype, budget_s=min(0.25, budget_s / 4))
    full = [min(c, len(a)) for c, a in zip(spec.chunks, spec.axes, strict=True)]
    parts = _parts(full)
    cost = [exp.cost_at(spec, _first(spec, p)) for p in parts]  # the timed chunks' own FLOPs
    if cost[0] <= 0 or cost[0] / gemm > budget_s / 2:
        return Calibration(
            gemm, backend, f"{spec.dtype} matrix products (one grid point is too long to time)"
        )
    done: list[tuple[float, float, int]] = []  # (flops, seconds, points)
    spent, i = 0.0, 0
    if backend == "numba":  # compiling (or loading the cache) happens once per worker process,
        try:  # not per chunk: a first, untimed grid point keeps it out of the rate
            exp.compute_chunk(spec, _first(spec, parts[0]), backend=backend, threads=1)
        except Exception as e:  # e.g. a draws file that is not on this machine
            return Calibration(
                gemm, backend, f"{spec.dtype} matrix products (a grid point failed here: "
                f"{type(e).__name__})",
            )  # fmt: skip
    while True:
        coords = _first(spec, parts[i])
        t0 = time.perf_counter()
        try:
            exp.compute_chunk(spec, coords, backend=backend, threads=1)
            _sync(backend)
        except Exception as e:  # e.g. a draws file that is not on this machine
            if done:
                break
            return Calibration(
                gemm, backend, f"{spec.dtype} matrix products (a grid point failed here: "
                f"{type(e).__name__})",
            )  # fmt: skip
        seconds = max(time.perf_counter() - t0, 1e-9)
        spent += seconds
        done.append((cost[i], seconds, math.prod(parts[i])))
        a, r = _fit(done, gemm)
        nxt = [j for j in range(i + 1, len(parts)) if spent + a + cost[j] / r <= budget_s]
        if not nxt:
            break
        i = nxt[-1]
    a, r = _fit(done, gemm) if len(done) > 1 else (0.0, done[-1][0] / done[-1][1])
    what = f"parts of its first chunk up to {done[-1][2]} grid point(s)"
    return Calibration(r, backend, what, per_call_s=a)


def _first(spec: SweepSpec, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The coordinates of the chunk of ``shape`` at the start of every axis."""
    return {a.name: np.asarray(a.values[:n]) for a, n in zip(spec.axes, shape, strict=True)}


def _fit(done: list[tuple[float, float, int]], gemm: float) -> tuple[float, float]:
    """(seconds per call, FLOP/s) through the last two measurements (FLOPs, seconds); with
    one, its seconds as the per-call cost and the GEMM rate (a guess only used to pick the
    next part)."""
    if len(done) == 1:
        return done[0][1], gemm
    (f0, t0, _), (f1, t1, _) = done[-2], done[-1]
    if f1 > f0 and t1 > t0:
        r = (f1 - f0) / (t1 - t0)
        return max(t1 - f1 / r, 0.0), r
    return 0.0, f1 / t1  # no growth seen (noise): all of it per FLOP
