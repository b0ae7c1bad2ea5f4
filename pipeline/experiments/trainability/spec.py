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

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import PipelineError, SpecError
from pipeline.experiments.axes import seed_rule
from pipeline.experiments.base import Experiment, Variable
from pipeline.experiments.trainability.draws import (
    check_draws_axes,
    perturbed,
    problem_from_draws,
)
from pipeline.experiments.trainability.reference import (
    DATASETS,
    MINIBATCH,
    TILE_POINTS,
    TRAIN_ACTIVATIONS,
    Problem,
    default_batch,
    make_problem,
    n_params,
)
from pipeline.experiments.trainability.reference import train_points as _train_points
from pipeline.gpu.backend import resolve_backend
from pipeline.spec.draws import DrawsFile, parse_draws
from pipeline.spec.fields import Axis, AxisRule, positive_int
from pipeline.spec.limits import MAX_RECORDED

if TYPE_CHECKING:
    import xarray as xr

    from pipeline.spec.sweep import SweepSpec

MODES = ("lr_vs_lr", "offset_vs_lr", "log_offset_vs_lr")


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
    seed_rule("seed of weights and data"),
)
PLANE_RULES = {
    "lr_vs_lr": (
        AxisRule(
            "lr_in",
            "float",
            default=None,
            long_name="log10 of the learning rate of the even (input) layers",
            label="log10 lr_in (input layer)",
        ),
        AxisRule(
            "lr_out",
            "float",
            default=None,
            long_name="log10 of the learning rate of the odd (output) layers",
            label="log10 lr_out (output layer)",
        ),
    ),
    "offset_vs_lr": (
        AxisRule(
            "offset",
            "float",
            default=None,
            long_name="offset of the input-layer weights",
        ),
        AxisRule(
            "lr",
            "float",
            default=None,
            long_name="log10 of the learning rate of all layers",
            label="log10 learning rate (all layers)",
        ),
    ),
    "log_offset_vs_lr": (
        AxisRule(
            "log_offset",
            "float",
            default=None,
            long_name="log10 of the offset of the input-layer weights",
            label="log10 offset of the input-layer weights",
        ),
        AxisRule(
            "lr",
            "float",
            default=None,
            long_name="log10 of the learning rate of all layers",
            label="log10 learning rate (all layers)",
        ),
    ),
}


@dataclass(frozen=True)
class TrainabilityParams:
    """Validated parameters: ``steps`` of gradient descent (the largest step count),
    ``score_steps`` (the step counts scored, a ``steps`` dim, or None for one count and no
    dim), ``dataset`` (full, single, minibatch), ``mode`` (:data:`MODES`),
    ``keep_trajectory``, ``batch`` (rows of the data set, None: the dataset's default),
    ``offset_every_step`` (the offset re-added before every step, as Sohl-Dickstein's
    notebook does, instead of once at initialisation) and ``draws`` (initial weights and data
    from a file, :mod:`.draws`)."""

    steps: int
    dataset: str
    mode: str
    keep_trajectory: bool
    score_steps: tuple[int, ...] | None = None
    batch: int | None = None
    offset_every_step: bool = False
    draws: DrawsFile | None = None

    @property
    def plane(self) -> tuple[str, str]:
        """Names of the two image-plane axes."""
        return tuple(r.name for r in PLANE_RULES[self.mode])  # type: ignore[return-value]

    @property
    def step_counts(self) -> tuple[int, ...]:
        """The step counts scored: ``score_steps`` or ``(steps,)``."""
        return self.score_steps or (self.steps,)


def _mode(raw: Mapping[str, Any]) -> str:
    mode = raw.get("mode", "lr_vs_lr")
    if mode not in MODES:
        raise SpecError("mode", f"unknown value {mode!r} (allowed: {', '.join(MODES)})")
    return mode


def _parse_steps(raw: Any) -> tuple[int, tuple[int, ...] | None]:
    """``steps``: one count (no ``steps`` dim) or a list of counts (a ``steps`` dim)."""
    if isinstance(raw, list | tuple):
        if not raw:
            raise SpecError("steps", "empty list (give one step count or a list of them)")
        counts = [positive_int(v, "steps", 1) for v in raw]
        if len(set(counts)) != len(counts):
            raise SpecError("steps", f"duplicate step counts in {list(raw)!r}")
        counts.sort()
        return counts[-1], tuple(counts)
    return positive_int(raw, "steps", 1), None


def _flag(raw: Mapping[str, Any], key: str) -> bool:
    v = raw.get(key, False)
    if not isinstance(v, bool):
        raise SpecError(key, f"value {v!r} is not true or false")
    return v


class TrainabilityExperiment(Experiment):
    """Gradient descent on small MLPs over a learning-rate plane (docs/conventions.md)."""

    name = "trainability"
    axis_rules = (
        NETWORK_RULES
        + PLANE_RULES["lr_vs_lr"]
        + PLANE_RULES["offset_vs_lr"]
        + PLANE_RULES["log_offset_vs_lr"][:1]
    )
    param_keys = (
        "steps",
        "dataset",
        "mode",
        "keep_trajectory",
        "batch",
        "offset_every_step",
        "draws",
    )
    default_dtype = "float64"  # deep zooms need it (windows narrower than ~1e-7 relative)

    def axis_rules_for(self, raw: Mapping[str, Any]) -> tuple[AxisRule, ...]:
        """Axes of the chosen ``mode``, in dim order."""
        return NETWORK_RULES + PLANE_RULES[_mode(raw)]

    def parse_params(
        self, raw: Mapping[str, Any], axes: tuple[Axis, ...]
    ) -> tuple[TrainabilityParams, dict[str, Any]]:
        """Validate ``steps``, ``dataset``, ``mode``, ``keep_trajectory``, ``batch``,
        ``offset_every_step`` and ``draws`` (a draws file's arrays checked against the
        axes' width, depth and seed and the data set)."""
        steps, score_steps = _parse_steps(raw.get("steps", 100))
        dataset = raw.get("dataset", "full")
        if dataset not in DATASETS:
            raise SpecError(
                "dataset", f"unknown value {dataset!r} (allowed: {', '.join(DATASETS)})"
            )
        keep = _flag(raw, "keep_trajectory")
        if keep and steps > MAX_RECORDED:  # one entry of the `step` dim per step
            raise SpecError(
                "steps",
                f"value {steps:,} with keep_trajectory: true; the limit is {MAX_RECORDED:,} "
                "kept steps",
            )
        mode = _mode(raw)
        every = _flag(raw, "offset_every_step")
        if every and mode == "lr_vs_lr":
            raise SpecError(
                "offset_every_step",
                "needs an offset plane (mode: offset_vs_lr or log_offset_vs_lr)",
            )
        batch = raw.get("batch")
        if batch is not None:
            batch = positive_int(batch, "batch", 1)
            if dataset == "single" and batch != 1:
                raise SpecError("batch", f"value {batch} with dataset: single (one row: 1)")
            if dataset == "minibatch" and batch < MINIBATCH:
                raise SpecError("batch", f"value {batch} is below the minibatch size {MINIBATCH}")
        draws = parse_draws(raw.get("draws"))
        if draws is not None:
            check_draws_axes(axes)
            if "sha256" not in raw["draws"]:  # a user's spec: the arrays are checked now
                by = {ax.name: ax for ax in axes}
                problem_from_draws(
                    draws,
                    int(by["width"].values[0]),
                    int(by["depth"].values[0]),
                    dataset,
                    batch,
                    (score_steps or (steps,)),
                )
        params = TrainabilityParams(steps, dataset, mode, keep, score_steps, batch, every, draws)
        canonical: dict[str, Any] = {
            "steps": list(score_steps) if score_steps else steps,
            "dataset": dataset,
            "mode": mode,
            "keep_trajectory": keep,
        }
        # fields at their defaults stay out, so stores made before them keep their spec
        if batch is not None:
            canonical["batch"] = batch
        if every:
            canonical["offset_every_step"] = True
        if draws is not None:
            canonical["draws"] = draws.canonical()
        return params, canonical

    def default_chunk(self, axis: Axis) -> int:
        """Plane tiles of up to 64 × 64 points; one network per chunk."""
        if axis.name in ("lr_in", "lr_out", "offset", "log_offset", "lr"):
            return min(len(axis), 64)
        return 1

    def variables(self, spec: SweepSpec) -> list[Variable]:
        """``score``, ``converged``, ``final_loss`` (over ``steps`` when several step counts
        are scored) (+ ``loss`` over ``step``)."""
        per = ("steps",) if spec.params.score_steps else ()
        out = [
            Variable(
                "score",
                per,
                "trainability score: -sum(v) if converged else +sum(1/v) "
                "(v = loss / initial loss, clipped at 1e6); sign = class",
                "1",
            ),
            Variable(
                "converged",
                per,
                "whether the mean of the last 20 normalised losses is < 1",
                None,
                dtype="int8",
                fill=-1,  # not computed yet
                flags=((0, "diverged"), (1, "converged")),
            ),
            Variable("final_loss", per, "normalised loss before the last step", "1"),
        ]
        if spec.params.keep_trajectory:
            out.append(Variable("loss", ("step",), "normalised clipped loss before each step", "1"))
        return out

    def extra_coords(self, spec: SweepSpec) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """The ``steps`` coordinate (several step counts) and the ``step`` coordinate (kept
        trajectories)."""
        out: dict[str, tuple[np.ndarray, dict[str, str]]] = {}
        if spec.params.score_steps:
            out["steps"] = (
                np.asarray(spec.params.score_steps, dtype=np.int32),
                {"long_name": "number of gradient-descent steps scored", "units": "1"},
            )
        if spec.params.keep_trajectory:
            out["step"] = (
                np.arange(spec.params.steps, dtype=np.int32),
                {"long_name": "gradient-descent step t", "units": "1"},
            )
        return out

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
                batch = spec.params.batch or default_batch(w, d, spec.params.dataset)
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
        non-plane axes; arrays (width, depth, activation, eps, seed, P) (+ ``steps``,
        ``step``)."""
        backend = resolve_backend(backend)
        p = spec.params
        if backend == "cupy":
            _check_gpu_variant(p)
        a_name, b_name = p.plane
        if p.mode == "lr_vs_lr":
            lr_in, lr_out, offset = 10.0**ga, 10.0**gb, None
        else:
            lr_in = lr_out = 10.0**gb
            offset = 10.0**ga if p.mode == "log_offset_vs_lr" else ga
        plane = len(spec.axis(a_name)) * len(spec.axis(b_name))
        n_tiles = -(-plane // TILE_POINTS)
        ppt = -(-plane // n_tiles)  # from the whole plane, never the chunk
        net_axes = ("width", "depth", "activation", "eps", "seed")
        nets = tuple(len(coords[k]) for k in net_axes)
        out = {
            v.name: np.full(
                (
                    *nets,
                    len(ga),
                    *(len(self.extra_coords(spec)[d][0]) for d in v.extra_dims),
                ),
                v.fill,
                v.dtype or spec.dtype,
            )
            for v in self.variables(spec)
        }
        for idx in np.ndindex(*nets):
            net = {k: coords[k][i] for k, i in zip(net_axes, idx, strict=True)}
            problem = self._problem(spec, net)
            kw = {
                "steps": p.steps,
                "dtype": spec.dtype,
                "points_per_tile": ppt,
                "keep_trajectory": p.keep_trajectory,
            }
            if backend == "cupy":
                from pipeline.experiments.trainability.gpu import train_points as train_gpu

                res = _per_step_count(
                    train_gpu, problem, str(net["activation"]), lr_in, lr_out, offset, p, kw
                )
            else:
                res = _train_points(
                    problem,
                    str(net["activation"]),
                    lr_in,
                    lr_out,
                    offset,
                    offset_every_step=p.offset_every_step,
                    score_steps=p.score_steps,
                    backend=backend,
                    threads=threads,
                    **kw,
                )
            for k in out:
                out[k][idx] = res[k]
        return out

    @staticmethod
    def _problem(spec: SweepSpec, net: Mapping[str, Any]) -> Problem:
        """The initial weights and data of one network: from the draws file (plus the
        ``eps`` perturbation of the keyed stream) or from the keyed generator."""
        p = spec.params
        width, depth, seed, eps = (
            int(net["width"]),
            int(net["depth"]),
            int(net["seed"]),
            float(net["eps"]),
        )
        if p.draws is None:
            return make_problem(width, depth, seed, eps, p.dataset, p.batch)
        problem = problem_from_draws(p.draws, width, depth, p.dataset, p.batch, p.step_counts)
        return perturbed(problem, seed, eps)

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
    class_names = ("converged", "diverged")

    def stored_plane(self, ds: xr.Dataset) -> tuple[str, str]:
        """The plane of the stored spec's ``mode`` (``lr_vs_lr`` when the dataset has none)."""
        mode = ds.attrs.get("sweep_spec", {}).get("mode", "lr_vs_lr")
        a, b = PLANE_RULES.get(mode, PLANE_RULES["lr_vs_lr"])
        return a.name, b.name

    def signed_field(self, spec: SweepSpec | None, ds: xr.Dataset) -> xr.DataArray:
        """The score: < 0 converged, > 0 diverged (one image per step count when several
        are scored)."""
        return ds["score"]

    def pixel_class(self, spec: SweepSpec, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The class of each of P points: the sign of the score when one step count is
        scored; with several, +1 / -1 where every step count agrees and NaN ("no class")
        where they differ, so refinement resolves the boundary of every step count's image
        (a block whose corners disagree in any image is computed)."""
        score = np.asarray(arrays["score"], np.float64)
        if score.ndim == 1:
            return np.where(np.isnan(score), np.nan, np.where(score > 0, 1.0, -1.0))
        pos = np.all(score > 0, axis=1)
        neg = np.all(score <= 0, axis=1)
        return np.where(pos, 1.0, np.where(neg, -1.0, np.nan))

    def check_zoomable(self, spec: SweepSpec) -> None:
        """A plane with one value on every other axis and one step count."""
        super().check_zoomable(spec)
        if spec.params.score_steps and len(spec.params.score_steps) > 1:
            raise PipelineError(
                f"zoom: steps {list(spec.params.score_steps)} — a zoom follows one boundary: "
                "give one step count"
            )

    def display_field(self, values: np.ndarray) -> np.ndarray:
        """:func:`signed_log` of the score."""
        return signed_log(values)


def _check_gpu_variant(p: TrainabilityParams) -> None:
    """The CUDA kernel adds the offset once; refuse the every-step variant there."""
    if p.offset_every_step:
        raise PipelineError(
            "backend: 'cupy' does not implement offset_every_step (use numpy or numba)"
        )


def _per_step_count(
    train: Any,
    problem: Problem,
    activation: str,
    lr_in: np.ndarray,
    lr_out: np.ndarray,
    offset: np.ndarray | None,
    p: TrainabilityParams,
    kw: dict[str, Any],
) -> dict[str, np.ndarray]:
    """``train`` (one step count per call) run once per scored step count, stacked on a
    last ``steps`` axis when several are scored (the trajectory of the longest run)."""
    if not p.score_steps:
        return train(problem, activation, lr_in, lr_out, offset, **kw)
    runs = [
        train(problem, activation, lr_in, lr_out, offset, **{**kw, "steps": t})
        for t in p.score_steps
    ]
    out = {k: np.stack([r[k] for r in runs], axis=-1) for k in ("score", "converged", "final_loss")}
    if p.keep_trajectory:
        out["loss"] = runs[-1]["loss"]
    return out


EXPERIMENT = TrainabilityExperiment()
