"""The ``trainability`` experiment: where does gradient descent converge?

The experiment's hooks; the numerics are in :mod:`.reference` (NumPy), :mod:`.compiled`
(Numba) and :mod:`.gpu` (CuPy). Two modes:

* ``mode: lr_vs_lr`` (default): the image plane is (``lr_in``, ``lr_out``), log10 learning
  rates of the even (input) and odd layers;
* ``mode: offset_vs_lr``: the plane is (``offset``, ``lr``): an offset added to every
  input-layer weight at initialisation, against one log10 learning rate for all layers.

Grid dims, in order: ``width, depth, activation, eps, seed`` and the two plane axes.
Variables: ``score`` (its sign is the class: negative = converged), ``converged``,
``final_loss`` and, with ``keep_trajectory: true``, ``loss`` over a ``step`` dim.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import SpecError
from pipeline.experiments.base import Experiment, Variable
from pipeline.experiments.trainability.reference import (
    DATASETS,
    TILE_POINTS,
    TRAIN_ACTIVATIONS,
    make_problem,
    n_params,
)
from pipeline.experiments.trainability.reference import train_points as _train_points
from pipeline.gpu.backend import resolve_backend
from pipeline.spec.fields import Axis, AxisRule, positive_int
from pipeline.spec.limits import MAX_RECORDED

if TYPE_CHECKING:
    import xarray as xr

    from pipeline.spec.sweep import SweepSpec

MODES = ("lr_vs_lr", "offset_vs_lr")


def signed_log(score: np.ndarray) -> np.ndarray:
    """``sign(s)·log(1 + |s|)``: the trainability score as Sohl-Dickstein (2024) shows it
    (negative = converged, positive = diverged; the magnitude compressed)."""
    s = np.asarray(score, np.float64)
    return np.sign(s) * np.log1p(np.abs(s))


# CF attributes: see pipeline/experiments/propagation/spec.py (log10 axes are dimensionless)
NETWORK_RULES = (
    AxisRule("width", "int", low=1, default=(8,), long_name="width n (units per layer)"),
    AxisRule("depth", "int", low=1, default=(2,), long_name="number of weight matrices D"),
    AxisRule(
        "activation",
        "str",
        choices=tuple(TRAIN_ACTIVATIONS),
        default=("tanh",),
        long_name="activation function φ",
        units=None,
    ),
    AxisRule(
        "eps",
        "float",
        low=0,
        default=(0.0,),
        long_name="perturbation scale ε of the initial weights",
    ),
    AxisRule(
        "seed",
        "int",
        low=0,
        high=2**64 - 1,
        default=(0,),
        long_name="seed of weights and data",
        dtype="uint64",  # seeds >= 2**63 exact and distinct
    ),
)
PLANE_RULES = {
    "lr_vs_lr": (
        AxisRule(
            "lr_in",
            "float",
            default=None,
            long_name="log10 of the learning rate of the even (input) layers",
        ),
        AxisRule(
            "lr_out",
            "float",
            default=None,
            long_name="log10 of the learning rate of the odd (output) layers",
        ),
    ),
    "offset_vs_lr": (
        AxisRule(
            "offset",
            "float",
            default=None,
            long_name="offset of the input-layer weights at initialisation",
        ),
        AxisRule(
            "lr",
            "float",
            default=None,
            long_name="log10 of the learning rate of all layers",
        ),
    ),
}


@dataclass(frozen=True)
class TrainabilityParams:
    """Validated parameters: ``steps`` of gradient descent, ``dataset`` (full, single,
    minibatch), ``mode`` (lr_vs_lr, offset_vs_lr), ``keep_trajectory``."""

    steps: int
    dataset: str
    mode: str
    keep_trajectory: bool

    @property
    def plane(self) -> tuple[str, str]:
        """Names of the two image-plane axes."""
        return tuple(r.name for r in PLANE_RULES[self.mode])  # type: ignore[return-value]


def _mode(raw: Mapping[str, Any]) -> str:
    mode = raw.get("mode", "lr_vs_lr")
    if mode not in MODES:
        raise SpecError("mode", f"unknown value {mode!r} (allowed: {', '.join(MODES)})")
    return mode


class TrainabilityExperiment(Experiment):
    """Gradient descent on small MLPs over a learning-rate plane (docs/conventions.md)."""

    name = "trainability"
    axis_rules = NETWORK_RULES + PLANE_RULES["lr_vs_lr"] + PLANE_RULES["offset_vs_lr"]
    param_keys = ("steps", "dataset", "mode", "keep_trajectory")
    default_dtype = "float64"  # deep zooms need it (windows narrower than ~1e-7 relative)

    def axis_rules_for(self, raw: Mapping[str, Any]) -> tuple[AxisRule, ...]:
        """Axes of the chosen ``mode``, in dim order."""
        return NETWORK_RULES + PLANE_RULES[_mode(raw)]

    def parse_params(
        self, raw: Mapping[str, Any], axes: tuple[Axis, ...]
    ) -> tuple[TrainabilityParams, dict[str, Any]]:
        """Validate ``steps``, ``dataset``, ``mode`` and ``keep_trajectory``."""
        steps = positive_int(raw.get("steps", 100), "steps", 1)
        dataset = raw.get("dataset", "full")
        if dataset not in DATASETS:
            raise SpecError(
                "dataset", f"unknown value {dataset!r} (allowed: {', '.join(DATASETS)})"
            )
        keep = raw.get("keep_trajectory", False)
        if not isinstance(keep, bool):
            raise SpecError("keep_trajectory", f"value {keep!r} is not true or false")
        if keep and steps > MAX_RECORDED:  # one entry of the `step` dim per step
            raise SpecError(
                "steps",
                f"value {steps:,} with keep_trajectory: true; the limit is {MAX_RECORDED:,} "
                "kept steps",
            )
        params = TrainabilityParams(steps, dataset, _mode(raw), keep)
        canonical = {
            "steps": steps,
            "dataset": dataset,
            "mode": params.mode,
            "keep_trajectory": keep,
        }
        return params, canonical

    def default_chunk(self, axis: Axis) -> int:
        """Plane tiles of up to 64 × 64 points; one network per chunk."""
        if axis.name in ("lr_in", "lr_out", "offset", "lr"):
            return min(len(axis), 64)
        return 1

    def variables(self, spec: SweepSpec) -> list[Variable]:
        """``score``, ``converged``, ``final_loss`` (+ ``loss`` over ``step``)."""
        out = [
            Variable(
                "score",
                (),
                "trainability score: -sum(v) if converged else +sum(1/v) "
                "(v = loss / initial loss, clipped at 1e6); sign = class",
                "1",
            ),
            Variable(
                "converged",
                (),
                "whether the mean of the last 20 normalised losses is < 1",
                None,
                dtype="int8",
                fill=-1,  # not computed yet
                flags=((0, "diverged"), (1, "converged")),
            ),
            Variable("final_loss", (), "normalised loss before the last step", "1"),
        ]
        if spec.params.keep_trajectory:
            out.append(Variable("loss", ("step",), "normalised clipped loss before each step", "1"))
        return out

    def extra_coords(self, spec: SweepSpec) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """The ``step`` coordinate when trajectories are kept."""
        if not spec.params.keep_trajectory:
            return {}
        return {
            "step": (
                np.arange(spec.params.steps, dtype=np.int32),
                {"long_name": "gradient-descent step t", "units": "1"},
            )
        }

    def chunk_cost(self, spec: SweepSpec, chunk_shape: tuple[int, ...]) -> dict[str, float]:
        """FLOPs ≈ 6 · batch · parameters per point and step; peak bytes of a tile."""
        sizes = dict(zip(spec.dims, chunk_shape, strict=True))
        flops = 0.0
        peak = 0.0
        item = np.dtype(spec.dtype).itemsize
        points = math.prod(sizes[a] for a in spec.params.plane)
        per_net = sizes["activation"] * sizes["eps"] * sizes["seed"]
        for w in spec.axis("width").values[: sizes["width"]]:
            for d in spec.axis("depth").values[: sizes["depth"]]:
                npar = n_params(w, d)
                batch = 1 if spec.params.dataset == "single" else npar
                flops += 6.0 * batch * npar * points * spec.params.steps * per_net
                tile = min(points, TILE_POINTS)
                peak = max(peak, tile * (4 * npar + 6 * batch * w) * item)
        return {"flops": flops, "peak_bytes": peak}

    def compute_chunk(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        backend: str = "numpy",
        threads: int = 1,
    ) -> dict[str, np.ndarray]:
        """Train every point of the chunk; arrays of the chunk's shape (+ ``step``).

        ``backend``: ``numpy``, ``numba``, ``cupy`` or ``auto`` (resolved here, i.e. on the
        worker that runs the task: ``cupy`` when it sees a GPU, else ``numba`` when
        installed). The NumPy tiles come from the whole plane, never the chunk; the compiled
        CPU kernel (``threads`` threads) and the GPU kernel train every point independently.
        All give chunking-independent results.
        """
        p = spec.params
        names = [a.name for a in spec.axes]
        shape = tuple(len(coords[nm]) for nm in names)
        va = np.asarray(coords[p.plane[0]], np.float64)
        vb = np.asarray(coords[p.plane[1]], np.float64)
        ga, gb = np.meshgrid(va, vb, indexing="ij")
        flat = self._train(spec, coords, ga.ravel(), gb.ravel(), backend, threads)
        return {k: v.reshape(*shape, *v.shape[6:]) for k, v in flat.items()}

    def compute_points(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        backend: str = "numpy",
        threads: int = 1,
    ) -> dict[str, np.ndarray]:
        """Train P scattered points of the plane (paired plane coordinates, one value on
        every other axis); arrays ``(P,)`` (+ ``step``), equal to :meth:`compute_chunk`'s."""
        a_name, b_name = spec.params.plane
        ga = np.asarray(coords[a_name], np.float64)
        gb = np.asarray(coords[b_name], np.float64)
        one = {k: v[:1] for k, v in coords.items()}
        res = self._train(spec, one, ga, gb, backend, threads)
        return {k: v[0, 0, 0, 0, 0] for k, v in res.items()}

    def _train(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        ga: np.ndarray,
        gb: np.ndarray,
        backend: str,
        threads: int = 1,
    ) -> dict[str, np.ndarray]:
        """Train the P points (ga[p], gb[p]) of the plane for every network of ``coords``'
        non-plane axes; arrays (width, depth, activation, eps, seed, P) (+ ``step``)."""
        backend = resolve_backend(backend)
        if backend == "cupy":
            from pipeline.experiments.trainability.gpu import train_points as train
        elif backend == "numba":
            train = functools.partial(_train_points, backend="numba", threads=threads)
        else:
            train = _train_points
        p = spec.params
        a_name, b_name = p.plane
        if p.mode == "lr_vs_lr":
            lr_in, lr_out, offset = 10.0**ga, 10.0**gb, None
        else:
            lr_in = lr_out = 10.0**gb
            offset = ga
        plane = len(spec.axis(a_name)) * len(spec.axis(b_name))
        n_tiles = -(-plane // TILE_POINTS)
        ppt = -(-plane // n_tiles)  # from the whole plane, never the chunk
        net_axes = ("width", "depth", "activation", "eps", "seed")
        nets = tuple(len(coords[k]) for k in net_axes)
        out = {
            v.name: np.full(
                (*nets, len(ga), *((p.steps,) if v.extra_dims else ())),
                v.fill,
                v.dtype or spec.dtype,
            )
            for v in self.variables(spec)
        }
        for idx in np.ndindex(*nets):
            net = {k: coords[k][i] for k, i in zip(net_axes, idx, strict=True)}
            problem = make_problem(
                int(net["width"]), int(net["depth"]), int(net["seed"]), float(net["eps"]), p.dataset
            )
            res = train(
                problem,
                str(net["activation"]),
                lr_in,
                lr_out,
                offset,
                steps=p.steps,
                dtype=spec.dtype,
                points_per_tile=ppt,
                keep_trajectory=p.keep_trajectory,
            )
            for k in out:
                out[k][idx] = res[k]
        return out

    # ---- optional hooks --------------------------------------------------------------------
    def summary(self, ds: xr.Dataset) -> str:
        """Converged share and boundary dimension per image (:mod:`.summary`)."""
        from pipeline.experiments.trainability.summary import format_trainability

        return format_trainability(ds)

    def plane(self, spec: SweepSpec) -> tuple[str, str]:
        """The image plane of the mode: (lr_in, lr_out) or (offset, lr)."""
        return spec.params.plane

    field_description = "sign of the trainability score"
    display_label = "sign(score)·log(1 + |score|)"

    def signed_field(self, spec: SweepSpec, ds: xr.Dataset) -> xr.DataArray:
        """The score: < 0 converged, > 0 diverged."""
        return ds["score"]

    def display_field(self, values: np.ndarray) -> np.ndarray:
        """:func:`signed_log` of the score."""
        return signed_log(values)


EXPERIMENT = TrainabilityExperiment()
