"""The probes of the propagation experiment: what each grid point propagates, and its inputs.

A point propagates a block of rows (probe vectors): ``pair`` (inputs a, b and a tangent
vector), ``circle`` (K points on a circle), ``batch`` (m random inputs), ``divergence`` (the
two inputs of D'Inverno et al. 2025, whose output distance err is their observable). The
inputs depend only on (seed, width) and the probes, never on σ_w, σ_b, α or the activation, so every
point of a seed sees the same inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.numerics import rng
from pipeline.numerics.observables import ROW_OBSERVABLES

__all__ = [
    "OBSERVABLES",
    "BatchProbe",
    "CircleProbe",
    "DivergenceProbe",
    "PairProbe",
    "Probes",
    "augmented_width",
    "divergence_inputs",
    "probe_inputs",
    "tile_points",
]


@dataclass(frozen=True)
class PairProbe:
    """Two inputs with mean square ``q0`` and correlation ``c0``, plus a tangent vector."""

    q0: float = 1.0
    c0: float = 0.5


@dataclass(frozen=True)
class CircleProbe:
    """``K`` inputs ``√(N q0)(cos θ_k e₁ + sin θ_k e₂)``, θ_k = 2πk/K, e₁ ⟂ e₂ unit vectors."""

    K: int = 64
    q0: float = 1.0

    @property
    def rows(self) -> int:
        """Rows one point propagates for this probe."""
        return self.K


@dataclass(frozen=True)
class BatchProbe:
    """``m`` independent Gaussian inputs, each rescaled to mean square ``q0`` exactly."""

    m: int = 8
    q0: float = 1.0

    @property
    def rows(self) -> int:
        """Rows one point propagates for this probe."""
        return self.m


DIVERGENCE_INPUTS = ("independent", "sensitivity")
"""Input pairs of the divergence probe."""


@dataclass(frozen=True)
class DivergenceProbe:
    """The observable of D'Inverno et al. (2025): two unit-norm inputs x₁, x₂ and
    err = Σ_i (s₁ᴸ − s₂ᴸ)_i² of their states (docs/conventions.md §2.5).

    ``inputs``: ``independent`` (x₁, x₂ independent Gaussian directions) or ``sensitivity``
    (x₂ = (ξ + ``noise``·η)/|ξ + ``noise``·η| for x₁ = ξ/|ξ|). ``threshold``: the class rule
    of the boundary field, ordered ⇔ err ≤ threshold (their estimator scans thresholds itself).
    ``mean_last``: k > 1 also records ``err_mean``, the mean of err over the layers
    l − k + 1, …, l at each recorded layer l (NaN for l < k): the observable of the authors'
    code of May 2025 (k = 10), which the boundary field then uses; 1 (default): err only.
    """

    inputs: str = "independent"
    noise: float = 1e-5
    threshold: float = 1e-3
    mean_last: int = 1

    @property
    def field_variable(self) -> str:
        """The variable the class rule reads: ``err_mean`` with ``mean_last`` > 1, else
        ``err``."""
        return "err_mean" if self.mean_last > 1 else "err"


@dataclass(frozen=True)
class Probes:
    """Which probes a sweep propagates (any non-empty subset)."""

    pair: PairProbe | None = None
    circle: CircleProbe | None = None
    batch: BatchProbe | None = None
    divergence: DivergenceProbe | None = None

    @property
    def rows_per_point(self) -> int:
        """Rows (probe vectors) one grid point propagates."""
        return sum(n for _, n in self._row_counts())

    def _row_counts(self) -> tuple[tuple[str, int], ...]:
        return (
            ("pair", 3 if self.pair else 0),
            ("circle", self.circle.K if self.circle else 0),
            ("batch", self.batch.m if self.batch else 0),
            ("divergence", 2 if self.divergence else 0),
        )

    @property
    def offsets(self) -> dict[str, int]:
        """First row of each probe inside a point's block of rows."""
        out, at = {}, 0
        for name, n in self._row_counts():
            if n:
                out[name] = at
                at += n
        return out

    def observables(self) -> tuple[str, ...]:
        """Names of the per-layer observables these probes produce."""
        out: list[str] = []
        for probe, names in OBSERVABLES.items():
            if getattr(self, probe) is not None:
                out.extend(names)
        if self.divergence is not None and self.divergence.mean_last > 1:
            out.append("err_mean")
        return tuple(out)


PAIR_OBSERVABLES = ("q", "c", "dist", "lyap_growth", "lyapunov")
"""The pair probe's observables (from the fused per-layer sums of the pair and tangent rows)."""

OBSERVABLES: dict[str, tuple[str, ...]] = {
    "pair": PAIR_OBSERVABLES,
    **{
        probe: tuple(n for o in ROW_OBSERVABLES if o.probe == probe for n in o.names)
        for probe in ("circle", "batch")
    },
    "divergence": ("err",),
}
"""Observable names per probe (the row observables from :mod:`pipeline.numerics.observables`)."""


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def probe_inputs(seed: int, width: int, probes: Probes) -> np.ndarray:
    """Input rows x⁰ of one grid point, float64, shape (rows_per_point, width).

    They depend only on (seed, width) and the probes, never on σ_w, σ_b, α or the activation
    (Gaussian directions are α = 2 draws of the ``input``/``tangent``/``circle``/``batch``
    streams at layer 0). The tangent row (δh⁰) has unit norm.
    """
    n = width
    blocks = []
    if probes.pair:
        g = rng.normal_block(seed, rng.STREAMS["input"], 0, 0, n, 0, 2)
        u1 = _unit(g[:, 0])
        u2 = _unit(g[:, 1] - (u1 @ g[:, 1]) * u1) if n > 1 else np.zeros(n)
        r = math.sqrt(n * probes.pair.q0)
        c0 = probes.pair.c0
        xa = r * u1
        xb = r * (c0 * u1 + math.sqrt(max(0.0, 1.0 - c0 * c0)) * u2)
        t = _unit(rng.normal_block(seed, rng.STREAMS["tangent"], 0, 0, n, 0, 1)[:, 0])
        blocks += [xa, xb, t]
    if probes.circle:
        g = rng.normal_block(seed, rng.STREAMS["circle"], 0, 0, n, 0, 2)
        e1 = _unit(g[:, 0])
        e2 = _unit(g[:, 1] - (e1 @ g[:, 1]) * e1)
        theta = 2 * np.pi * np.arange(probes.circle.K) / probes.circle.K
        r = math.sqrt(n * probes.circle.q0)
        blocks += list(r * (np.cos(theta)[:, None] * e1 + np.sin(theta)[:, None] * e2))
    if probes.batch:
        g = rng.normal_block(seed, rng.STREAMS["batch"], 0, 0, n, 0, probes.batch.m)
        g = g / np.linalg.norm(g, axis=0, keepdims=True)
        blocks += list(math.sqrt(n * probes.batch.q0) * g.T)
    if probes.divergence:
        blocks += list(divergence_inputs(seed, n, probes.divergence))
    return np.asarray(blocks, dtype=np.float64).reshape(len(blocks), n)


def divergence_inputs(seed: int, width: int, probe: DivergenceProbe) -> np.ndarray:
    """The divergence probe's two unit-norm inputs x₁, x₂, float64 (2, width): normal draws of
    the ``divergence`` stream (columns 0, 1; ``sensitivity``: x₂ from column 0 plus
    ``noise`` times column 1). The architecture rescales them to its layer-1 input
    (:meth:`~.architectures.Network.input_scale`)."""
    g = rng.normal_block(seed, rng.STREAMS["divergence"], 0, 0, width, 0, 2)
    if probe.inputs == "independent":
        return np.stack([_unit(g[:, 0]), _unit(g[:, 1])])
    return np.stack([_unit(g[:, 0]), _unit(g[:, 0] + probe.noise * g[:, 1])])


def augmented_width(n: int) -> int:
    """Inner GEMM length of a layer: N weights, one bias column, zero padding to a multiple
    of 16 (the augmented operand ``[x | σ_b | 0]`` against ``[Z | ζ | 0]``)."""
    return -(-(n + 1) // 16) * 16


def tile_points(probes: Probes, points_per_network: int, tile_rows: int) -> int:
    """Points per tile for a grid with ``points_per_network`` points of one activation per
    (N, α, seed): as many as fit in ``tile_rows`` rows, but no more than the grid has (a tile
    of a small grid is not padded with thousands of inert rows), balanced so the grid splits
    into equal tiles with the least padding. Derived from the whole grid, never the chunk, so
    a point's numbers do not depend on the chunking."""
    most = max(1, tile_rows // probes.rows_per_point)
    n_tiles = -(-max(1, points_per_network) // most)
    return -(-max(1, points_per_network) // n_tiles)
