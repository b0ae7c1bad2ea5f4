"""The ``propagation`` experiment: finite-width signal propagation over a phase-diagram grid.

The experiment's hooks (axes, parameters, output variables, costs, the chunk computation, the
summary and the boundary field); the numerics are in :mod:`.reference` (NumPy), :mod:`.compiled`
(Numba) and :mod:`.gpu` (CuPy). Grid dims, in order: ``width, alpha, seed, activation,
sigma_w | sigma_w2, sigma_b | sigma_b2``; every output variable adds ``layer`` (the recorded
layers), except ``nonfinite_layer``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import PipelineError, SpecError
from pipeline.experiments.axes import ALPHA_RULE, seed_rule
from pipeline.experiments.base import Experiment, Variable
from pipeline.experiments.propagation.architectures import (
    ARCHITECTURES,
    BIAS_LAWS,
    WEIGHT_TYING,
    Network,
    operator_flops,
)
from pipeline.experiments.propagation.draws import DrawsFile, parse_draws
from pipeline.experiments.propagation.probes import (
    DIVERGENCE_INPUTS,
    BatchProbe,
    CircleProbe,
    DivergenceProbe,
    PairProbe,
    Probes,
    tile_points,
)
from pipeline.experiments.propagation.reference import TILE_ROWS, propagate_network
from pipeline.gpu.backend import resolve_backend
from pipeline.spec.fields import (
    Axis,
    AxisRule,
    bounded_number,
    check_keys,
    positive_int,
    suggest,
)
from pipeline.spec.limits import MAX_RECORDED

if TYPE_CHECKING:
    import xarray as xr

    from pipeline.spec.sweep import SweepSpec

ACTIVATION_NAMES = ("erf", "linear", "relu", "tanh")
"""Activations of the propagation experiment (:mod:`pipeline.numerics.activations`, φ as is)."""

# Assumed sustained rate of the propagation GEMMs on one H100 (the cost is GEMM-bound):
# 70 % of ~60 TFLOP/s float32 (CUDA cores, TF32 off) and of ~30 TFLOP/s float64.
GPU_PEAK_FLOPS = {"float32": 60e12, "float64": 30e12}
GPU_EFFICIENCY = 0.7
GPU_SUSTAINED_FLOPS = {k: GPU_EFFICIENCY * v for k, v in GPU_PEAK_FLOPS.items()}

# CF attributes (CF 1.10): a long_name on every coordinate and variable, UDUNITS units ("1"
# for dimensionless numbers: widths, scales, logs; natural-log quantities name their nepers
# in the long_name), no units on strings.
AXIS_RULES = (
    AxisRule("width", "int", low=1, default=None, long_name="width N (units per layer)"),
    ALPHA_RULE,
    seed_rule("seed of the quenched disorder"),
    AxisRule(
        "activation",
        "str",
        choices=ACTIVATION_NAMES,
        default=("tanh",),
        long_name="activation function φ",
        units=None,
    ),
    AxisRule(
        "sigma_w",
        "float",
        low=0,
        squared_name="sigma_w2",
        default=None,
        long_name="weight scale σ_w",
        squared_long_name="weight variance σ_w²",
    ),
    AxisRule(
        "sigma_b",
        "float",
        low=0,
        squared_name="sigma_b2",
        default=(0.0,),
        long_name="bias scale σ_b",
        squared_long_name="bias variance σ_b²",
    ),
)

VARIABLE_DOCS = {
    "q": ("mean squared pre-activation q of input a", "1"),
    "c": ("correlation c of the pre-activations of inputs a and b", "1"),
    "dist": ("mean squared distance of the pre-activations of inputs a and b", "1"),
    "lyap_growth": ("one-layer log growth of the tangent vector (nepers)", "1"),
    "lyapunov": ("finite-depth Lyapunov exponent λ_l (nepers per layer)", "1"),
    "cv": (
        "coefficient of variation of neighbour distances on the propagated circle (NaN where "
        "every distance is 0 in the dtype: the circle collapsed to one point; or from an "
        "overflow, see nonfinite_layer)",
        "1",
    ),
    "eff_rank": ("numerical rank of the m × N post-activation batch matrix", "1"),
    "participation_ratio": ("participation ratio of the batch matrix's singular values", "1"),
    "err": (
        "squared distance Σ_i (s1 - s2)_i² of the states of the divergence probe's two inputs "
        "(D'Inverno et al. 2025)",
        "1",
    ),
    "err_mean": (
        "mean of err over the last probes.divergence.mean_last layers up to this one (the "
        "authors' code of May 2025)",
        "1",
    ),
    "nonfinite_layer": (
        "first layer with a non-finite or overflowed pre-activation (λ is NaN from there; "
        "0: none; -1: not computed)",
        "1",
    ),
    "underflow_layer": (
        "first layer at which the tangent underflowed to 0 although σ_w > 0 (saturated φ'; λ is "
        "NaN from there; 0: none; -1: not computed or written before this variable existed)",
        "1",
    ),
}
"""Per variable: (long_name, UDUNITS units) in the store; the formulas are in
docs/conventions.md, section 2.4."""

FLAG_VARIABLES = ("nonfinite_layer", "underflow_layer")
"""Per-point int32 flags (no ``layer`` dim): the first layer of an event, 0 none, -1 not
computed. ``underflow_layer`` exists with the pair probe (it is about the tangent)."""


def _flags(probes: Probes) -> tuple[str, ...]:
    return FLAG_VARIABLES if probes.pair else FLAG_VARIABLES[:1]


@dataclass(frozen=True)
class PropagationParams:
    """Validated parameters of a propagation sweep.

    depth : L, layers per network. record_layers : layers 1..L where observables are kept.
    probes : which probes run. network : architecture, weight tying and bias law.
    draws : the network's draws read from a file (:mod:`.draws`), or ``None`` (keyed by seed).
    """

    depth: int
    record_layers: tuple[int, ...]
    probes: Probes
    network: Network = Network()
    draws: DrawsFile | None = None

    @property
    def fused(self) -> bool:
        """Whether the fused reference / CUDA kernels compute this sweep (the default network
        without the divergence probe); else :mod:`.network` does."""
        return self.network.is_default and self.probes.divergence is None


def _parse_probes(raw: Any) -> Probes:
    if raw is None:
        return Probes(pair=PairProbe())
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(
            "probes", f"expected a mapping with some of pair, circle, batch; got {raw!r}"
        )
    check_keys(raw, ("pair", "circle", "batch", "divergence"), "probes")
    out: dict[str, Any] = {}
    if "divergence" in raw:
        out["divergence"] = _parse_divergence(raw["divergence"])
    for name, cls, fields in (
        ("pair", PairProbe, ("q0", "c0")),
        ("circle", CircleProbe, ("K", "q0")),
        ("batch", BatchProbe, ("m", "q0")),
    ):
        if name not in raw:
            continue
        body = raw[name] or {}
        if not isinstance(body, Mapping):
            raise SpecError(
                f"probes.{name}", f"expected a mapping of {', '.join(fields)}, got {body!r}"
            )
        check_keys(body, fields, f"probes.{name}")
        kw: dict[str, Any] = {}
        if "q0" in body:
            kw["q0"] = bounded_number(body["q0"], f"probes.{name}.q0", 0, math.inf, lo_open=True)
        if "c0" in body:
            kw["c0"] = bounded_number(body["c0"], f"probes.{name}.c0", -1, 1)
        if "K" in body:
            kw["K"] = positive_int(body["K"], f"probes.{name}.K", 3)
        if "m" in body:
            kw["m"] = positive_int(body["m"], f"probes.{name}.m", 1)
        out[name] = cls(**kw)
    return Probes(**out)


def _choice(value: Any, field_name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise SpecError(
            field_name,
            f"value {value!r} is not one of {', '.join(allowed)}{suggest(str(value), allowed)}",
        )
    return value


def _parse_divergence(body: Any) -> DivergenceProbe:
    body = body or {}
    name = "probes.divergence"
    if not isinstance(body, Mapping):
        raise SpecError(
            name, f"expected a mapping of inputs, noise, threshold, mean_last, got {body!r}"
        )
    check_keys(body, ("inputs", "noise", "threshold", "mean_last"), name)
    kw: dict[str, Any] = {}
    if "inputs" in body:
        kw["inputs"] = _choice(body["inputs"], f"{name}.inputs", DIVERGENCE_INPUTS)
    if "noise" in body:
        kw["noise"] = bounded_number(body["noise"], f"{name}.noise", 0, 1, lo_open=True)
    if "threshold" in body:
        kw["threshold"] = bounded_number(
            body["threshold"], f"{name}.threshold", 0, math.inf, lo_open=True
        )
    if "mean_last" in body:
        kw["mean_last"] = positive_int(body["mean_last"], f"{name}.mean_last", 1)
    return DivergenceProbe(**kw)


def _parse_network(raw: Mapping[str, Any], axes: tuple[Axis, ...]) -> Network:
    net = Network(
        architecture=_choice(raw.get("architecture", "dense"), "architecture", ARCHITECTURES),
        weight_tying=_choice(raw.get("weight_tying", "per_layer"), "weight_tying", WEIGHT_TYING),
        bias=_choice(raw.get("bias", "iid"), "bias", BIAS_LAWS),
    )
    if net.architecture != "dense":
        alphas = [a for ax in axes if ax.name == "alpha" for a in ax.values]
        if any(a != 2.0 for a in alphas):
            raise SpecError(
                "axes.alpha",
                f"values {alphas!r} with architecture {net.architecture}: only 2 is allowed "
                "(its operators are Gaussian)",
            )
    return net


def _parse_draws(
    raw: Any, network: Network, depth: int, probes: Probes, axes: tuple[Axis, ...]
) -> DrawsFile:
    """``draws: {file: PATH}`` (:func:`.draws.parse_draws`), and what it fixes: the width
    (the file's N), one network (one seed, α = 2) and the divergence probe alone."""
    draws = parse_draws(raw, network, depth)
    by_name = {ax.base_name: ax for ax in axes}
    widths = list(by_name["width"].values)
    if widths != [draws.width]:
        raise SpecError(
            "axes.width",
            f"values {widths!r} with draws.file: only [{draws.width}] (the file's N)",
        )
    alphas = list(by_name["alpha"].values)
    if alphas != [2.0]:
        raise SpecError(
            "axes.alpha", f"values {alphas!r} with draws.file: only 2 (the draws are Gaussian)"
        )
    seeds = list(by_name["seed"].values)
    if len(seeds) != 1:
        raise SpecError(
            "axes.seed",
            f"{len(seeds)} values with draws.file: one value or none (the file is one network; "
            "the seed only labels it)",
        )
    others = [k for k in ("pair", "circle", "batch") if getattr(probes, k) is not None]
    if probes.divergence is None or others:
        raise SpecError(
            "probes",
            "with draws.file only the divergence probe is allowed (the file gives its inputs)",
        )
    return draws


def _check_recorded(n: int, field_name: str) -> None:
    """Refuse more than MAX_RECORDED recorded layers before their list is built."""
    if n > MAX_RECORDED:
        raise SpecError(
            field_name,
            f"{n:,} recorded layers; the limit is {MAX_RECORDED:,} "
            "(record 'last', or {every: k} with a larger k)",
        )


def _parse_record_layers(raw: Any, depth: int) -> tuple[int, ...]:
    field_name = "record_layers"
    if raw is None or raw == "all":
        _check_recorded(depth, field_name)
        return tuple(range(1, depth + 1))
    if raw == "last":
        return (depth,)
    if isinstance(raw, Mapping):
        check_keys(raw, ("every",), field_name)
        every = positive_int(raw.get("every"), f"{field_name}.every", 1)
        _check_recorded(depth // every + 1, field_name)
        layers = list(range(every, depth + 1, every))
        if not layers or layers[-1] != depth:
            layers.append(depth)
        return tuple(layers)
    if isinstance(raw, list | tuple) and raw:
        out = []
        for v in raw:
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= depth:
                raise SpecError(field_name, f"value {v!r} is outside 1..{depth} (depth)")
            out.append(v)
        if len(set(out)) != len(out):
            raise SpecError(field_name, f"duplicate layers in {list(raw)!r}")
        return tuple(sorted(out))
    raise SpecError(
        field_name,
        f"value {raw!r} is not 'all', 'last', {{every: k}} or a list of layers in 1..{depth}",
    )


def _propagator(p: PropagationParams, backend: str) -> Any:
    """The propagate function of a sweep on ``backend``: the fused reference, compiled (numba)
    or CUDA path for the default network, else :func:`.network.propagate_architecture` on
    NumPy (``numba``: with its compiled elementwise pass) or CuPy."""
    if p.fused:
        if backend == "cupy":
            from pipeline.experiments.propagation.gpu import propagate_network as gpu_propagate

            return gpu_propagate
        if backend == "numba":
            from pipeline.experiments.propagation.compiled import (
                propagate_network as compiled_propagate,
            )

            return compiled_propagate
        return propagate_network
    from pipeline.experiments.propagation.network import propagate_architecture

    xp = np
    if backend == "cupy":
        import cupy

        xp = cupy

    def run(*args: Any, **kwargs: Any) -> list[dict[str, np.ndarray]]:
        draws = p.draws.load() if p.draws is not None else None
        return propagate_architecture(
            *args, network=p.network, xp=xp, draws=draws, backend=backend, **kwargs
        )

    return run


class PropagationExperiment(Experiment):
    """Signal propagation through random finite-width networks (docs/conventions.md)."""

    name = "propagation"
    axis_rules = AXIS_RULES
    param_keys = (
        "depth",
        "record_layers",
        "probes",
        "architecture",
        "weight_tying",
        "bias",
        "draws",
    )

    def parse_params(
        self, raw: Mapping[str, Any], axes: tuple[Axis, ...]
    ) -> tuple[PropagationParams, dict[str, Any]]:
        """Validate ``depth``, ``record_layers``, ``probes``, the network family
        (``architecture``, ``weight_tying``, ``bias``) and ``draws``; return them and their
        canonical form (the family only when it is not the default, ``mean_last`` only when
        not 1, so older stores keep their spec; ``draws`` with the file's content hash)."""
        if "depth" not in raw:
            raise SpecError("depth", "missing (number of layers L >= 1)")
        depth = positive_int(raw["depth"], "depth", 1)
        layers = _parse_record_layers(raw.get("record_layers"), depth)
        probes = _parse_probes(raw.get("probes"))
        network = _parse_network(raw, axes)
        div = probes.divergence
        if div is not None and div.mean_last > depth:
            raise SpecError(
                "probes.divergence.mean_last",
                f"value {div.mean_last} is larger than depth ({depth})",
            )
        canonical = {
            "depth": depth,
            "record_layers": list(layers),
            "probes": {k: v for k, v in asdict(probes).items() if v is not None},
        }
        if div is not None and div.mean_last == 1:  # the default: older stores keep their spec
            del canonical["probes"]["divergence"]["mean_last"]
        if not network.is_default:
            canonical.update(asdict(network))
        draws = None
        if raw.get("draws") is not None:
            draws = _parse_draws(raw["draws"], network, depth, probes, axes)
            canonical["draws"] = draws.canonical()
        return PropagationParams(depth, layers, probes, network, draws), canonical

    def default_chunk(self, axis: Axis) -> int:
        """Whole σ planes (up to 64 × 64) and one network per chunk by default."""
        if axis.base_name in ("sigma_w", "sigma_b"):
            return min(len(axis), 64)
        if axis.name == "activation":
            return len(axis)
        return 1

    def variables(self, spec: SweepSpec) -> list[Variable]:
        """Observables of the chosen probes (with a ``layer`` dim) plus the flags
        (:data:`FLAG_VARIABLES`: ``nonfinite_layer``; ``underflow_layer`` with the pair probe)."""
        out = [
            Variable(name, ("layer",), VARIABLE_DOCS[name][0], VARIABLE_DOCS[name][1])
            for name in spec.params.probes.observables()
        ]
        for name in _flags(spec.params.probes):
            doc, units = VARIABLE_DOCS[name]
            out.append(Variable(name, (), doc, units, dtype="int32", fill=-1))
        return out

    def extra_coords(self, spec: SweepSpec) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """The ``layer`` coordinate: the recorded layers (1-based)."""
        return {
            "layer": (
                np.asarray(spec.params.record_layers, np.int32),
                {"long_name": "layer l (1: the first hidden layer)", "units": "1"},
            )
        }

    def chunk_cost(self, spec: SweepSpec, chunk_shape: tuple[int, ...]) -> dict[str, float]:
        """FLOPs of the layer operators (dense: the GEMMs, 2·N²·rows per layer; struct/conv
        their FFTs, :func:`~.architectures.operator_flops`) and peak working bytes of a chunk."""
        sizes = dict(zip(spec.dims, chunk_shape, strict=True))
        widths = spec.axis("width").values
        n_max = max(widths)
        probes = spec.params.probes
        r = probes.rows_per_point
        per_net = (
            sizes[spec.axis("activation").name]
            * sizes[spec.axis("sigma_w").name]
            * sizes[spec.axis("sigma_b").name]
        )
        networks = sizes["width"] * sizes["alpha"] * sizes["seed"]
        n_mean = float(np.mean(widths))
        rows = per_net * r
        flops = (
            operator_flops(spec.params.network.architecture, n_mean)
            * rows
            * spec.params.depth
            * networks
        )
        item = np.dtype(spec.dtype).itemsize
        ppt = tile_points(probes, len(spec.axis("sigma_w")) * len(spec.axis("sigma_b")), TILE_ROWS)
        per_act = per_net // max(1, sizes[spec.axis("activation").name])
        padded_rows = sizes[spec.axis("activation").name] * -(-per_act // ppt) * ppt * r
        # probe state of the chunk, two scratch tiles (one task thread), the drawn weight
        # matrix and bias, the drawing's work buffers (~32K values x 8 arrays of 8 bytes),
        # the chunk's outputs, and the layer -> recorded-column table (int64, depth + 1)
        n_out = len(probes.observables()) * len(spec.params.record_layers)
        peak = (
            padded_rows * n_max * item
            + 2 * ppt * r * n_max * item
            + (n_max * n_max + n_max) * item
            + 32768 * 8 * 8
            + math.prod(chunk_shape) * (n_out * item + 4)
            + (spec.params.depth + 1) * 8
        )
        from pipeline.experiments.propagation.gpu import chunk_device_peak_bytes  # no CuPy

        return {
            "flops": flops,
            "peak_bytes": float(peak),
            "device_peak_bytes": float(chunk_device_peak_bytes(spec, chunk_shape)),
        }

    def compute_chunk(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        backend: str = "numpy",
        threads: int = 1,
    ) -> dict[str, np.ndarray]:
        """All variables for the points of one chunk; arrays of shape chunk shape (+ layer).

        ``backend``: ``numpy``, ``numba``, ``cupy`` or ``auto`` (resolved here, i.e. on the
        worker that runs the task: ``cupy`` when it sees a GPU, else ``numba`` when installed).
        Each backend has its own fixed tile shape (``numba``: NumPy's), derived from the whole
        grid, so results never depend on the chunking.
        """
        names = [a.name for a in spec.axes]
        shape = tuple(len(coords[nm]) for nm in names)
        ax_sw, ax_sb = spec.axis("sigma_w"), spec.axis("sigma_b")
        n_sw, n_sb = len(coords[ax_sw.name]), len(coords[ax_sb.name])
        sw_grid = np.repeat(np.asarray(coords[ax_sw.name], np.float64), n_sb)
        sb_grid = np.tile(np.asarray(coords[ax_sb.name], np.float64), n_sw)
        flat = self._propagate(spec, coords, sw_grid, sb_grid, backend, threads)
        return {k: v.reshape(*shape, *v.shape[5:]) for k, v in flat.items()}

    def compute_points(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        backend: str = "numpy",
        threads: int = 1,
    ) -> dict[str, np.ndarray]:
        """P scattered points of the (σ_w, σ_b) plane (paired values, one value on every
        other axis); arrays ``(P, layer)`` and ``(P,)``, equal to :meth:`compute_chunk`'s."""
        ax_sw, ax_sb = spec.axis("sigma_w"), spec.axis("sigma_b")
        sw = np.asarray(coords[ax_sw.name], np.float64)
        sb = np.asarray(coords[ax_sb.name], np.float64)
        one = {k: v[:1] for k, v in coords.items()}
        flat = self._propagate(spec, one, sw, sb, backend, threads)
        return {k: v[0, 0, 0, 0] for k, v in flat.items()}

    def _propagate(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        sw_grid: np.ndarray,
        sb_grid: np.ndarray,
        backend: str,
        threads: int,
    ) -> dict[str, np.ndarray]:
        """The P points (sw_grid[p], sb_grid[p]) (as stored: variances for a squared axis)
        for every network of ``coords``' other axes; arrays (width, alpha, seed, activation,
        P) (+ ``layer``)."""
        backend = resolve_backend(backend)
        p = spec.params
        propagate = _propagator(p, backend)
        if backend == "cupy":
            from pipeline.experiments.propagation.gpu import GPU_TILE_ROWS

            tile_rows = GPU_TILE_ROWS
        else:
            tile_rows = TILE_ROWS
        n_rec = len(p.record_layers)
        obs = p.probes.observables()
        flags = _flags(p.probes)
        acts = list(coords["activation"])
        nets = (len(coords["width"]), len(coords["alpha"]), len(coords["seed"]), len(acts))
        out = {k: np.full((*nets, len(sw_grid), n_rec), np.nan, spec.dtype) for k in obs}
        for name in flags:
            out[name] = np.full((*nets, len(sw_grid)), -1, np.int32)
        ax_sw, ax_sb = spec.axis("sigma_w"), spec.axis("sigma_b")
        if ax_sw.squared:
            sw_grid = np.sqrt(sw_grid)
        if ax_sb.squared:
            sb_grid = np.sqrt(sb_grid)
        # tile shape from the whole grid (never the chunk): bit-identical across chunkings
        ppt = tile_points(p.probes, len(ax_sw) * len(ax_sb), tile_rows)
        for iw, width in enumerate(coords["width"]):
            for ia, alpha in enumerate(coords["alpha"]):
                for i_s, seed in enumerate(coords["seed"]):
                    res = propagate(
                        int(width),
                        float(alpha),
                        int(seed),
                        [(a, sw_grid, sb_grid) for a in acts],
                        depth=p.depth,
                        record_layers=p.record_layers,
                        probes=p.probes,
                        dtype=spec.dtype,
                        threads=threads,
                        points_per_tile=ppt,
                    )
                    for ig, r in enumerate(res):
                        for k in obs:
                            out[k][iw, ia, i_s, ig] = r[k]
                        for name in flags:
                            out[name][iw, ia, i_s, ig] = r[name]
        return out

    # ---- optional hooks --------------------------------------------------------------------
    def summary(self, ds: xr.Dataset) -> str:
        """Where λ_L changes sign against the mean-field line (:mod:`.summary`)."""
        from pipeline.experiments.propagation.summary import format_summary

        return format_summary(ds)

    def plan_lines(self, spec: SweepSpec, flops: float) -> list[str]:
        """The GPU-time estimate of the GEMMs."""
        return [gpu_hours_text(flops, spec.dtype)]

    def plane(self, spec: SweepSpec) -> tuple[str, str]:
        """(σ_w axis, σ_b axis), as stored (``sigma_w`` or ``sigma_w2``, ...)."""
        return spec.axis("sigma_w").name, spec.axis("sigma_b").name

    field_description = "sign of λ_L at the deepest layer"
    display_label = "λ_L (nepers per layer)"
    class_names = ("ordered", "chaotic")

    def stored_plane(self, ds: xr.Dataset) -> tuple[str, str]:
        """(σ_w dim, σ_b dim) of ``ds``: ``sigma_w`` or ``sigma_w2``, ``sigma_b`` or
        ``sigma_b2``."""
        dims = ds.dims
        return (
            "sigma_w2" if "sigma_w2" in dims else "sigma_w",
            "sigma_b2" if "sigma_b2" in dims else "sigma_b",
        )

    def has_critical_regime(self, ds: xr.Dataset) -> bool:
        """With λ_L (the pair probe): critical lines, regime maps, the critical area."""
        return "lyapunov" in ds

    def signed_field(self, spec: SweepSpec | None, ds: xr.Dataset) -> xr.DataArray:
        """λ_L at the deepest recorded layer: > 0 chaotic, <= 0 ordered. Without the pair
        probe, the divergence probe's ln(err_L / threshold): chaotic ⇔ err_L > threshold
        (D'Inverno et al.'s class rule at the probe's ``threshold``; with ``mean_last`` k > 1
        err_mean, the mean over the last k layers, in place of err_L)."""
        if "lyapunov" in ds:
            return ds["lyapunov"].isel(layer=-1)
        div = spec.params.probes.divergence if spec is not None else None
        if div is not None and div.field_variable in ds:
            import xarray as xr

            return xr.apply_ufunc(
                _log_ratio,
                ds[div.field_variable].isel(layer=-1),
                kwargs={"t": div.threshold},
                dask="parallelized",
                output_dtypes=[ds["err"].dtype],
            )
        raise PipelineError(
            "store: no 'lyapunov' (pair probe) or 'err'/'err_mean' (divergence probe) variable; "
            "no boundary"
        )

    def check_zoomable(self, spec: SweepSpec) -> None:
        """A plane with one value on every other axis, and the pair or divergence probe."""
        super().check_zoomable(spec)
        if spec.params.probes.pair is None and spec.params.probes.divergence is None:
            raise PipelineError(
                "zoom: probes.pair or probes.divergence is needed (the boundary is where λ_L "
                "changes sign, or err_L crosses the divergence threshold)"
            )


def _log_ratio(a: np.ndarray, t: float) -> np.ndarray:
    """ln(a / t); a = 0 gives −∞ (the ordered side), without a warning."""
    with np.errstate(divide="ignore"):
        return np.log(a / t)


EXPERIMENT = PropagationExperiment()


def gpu_hours(flops: float, dtype: str = "float32") -> float:
    """GPU-hours on one H100 at the assumed sustained rate :data:`GPU_SUSTAINED_FLOPS`."""
    return flops / GPU_SUSTAINED_FLOPS[dtype] / 3600.0


def gpu_hours_text(flops: float, dtype: str = "float32") -> str:
    """The ``sweep plan`` line: the estimate (a readable duration) and the rate it assumes."""
    from pipeline.durations import format_duration

    rate = GPU_SUSTAINED_FLOPS[dtype]
    return (
        f"GPU time          {format_duration(gpu_hours(flops, dtype) * 3600)} on one H100 "
        f"(assumed sustained "
        f"{GPU_EFFICIENCY:g} x {GPU_PEAK_FLOPS[dtype] / 1e12:g} TFLOP/s {dtype} = "
        f"{rate / 1e12:.0f} TFLOP/s, GEMM FLOPs only; plus start-up and I/O)"
    )
