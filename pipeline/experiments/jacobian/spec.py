"""The ``jacobian`` experiment: eigenvalues and eigenvectors of the layer Jacobians of
bias-free networks with α-stable weights (Qu, Wardak & Gong 2022, Figs. 2–3).

Grid dims, in order: ``width, alpha, seed, activation, sigma_w``. Every variable adds
``layer`` (the recorded layers) and ``jac_kind`` (``pre``: Wˡ⁺¹Dˡ, ``post``: DˡWˡ), some a
``quantile``, ``power``, ``log_bin``, ``q`` or ``lam_class`` dim. One network (seed, width, α)
is drawn once per chunk for the whole σ_w axis (quenched weights, :mod:`.network`), and
``ln|det Z|`` is one ``slogdet`` per network and layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.errors import SpecError
from pipeline.experiments.axes import ALPHA_RULE, seed_rule
from pipeline.experiments.base import Experiment, Variable
from pipeline.experiments.jacobian import network as net
from pipeline.experiments.jacobian.observables import (
    LAMBDA_CLASSES,
    POWERS,
    JacobianSettings,
    layer_observables,
)
from pipeline.numerics.jacobian import JAC_KINDS
from pipeline.spec.fields import Axis, AxisRule, check_keys, number_list, positive_int

if TYPE_CHECKING:
    import xarray as xr

    from pipeline.spec.sweep import SweepSpec

ACTIVATION_NAMES = ("erf", "tanh")
"""Bounded activations (the Lévy fixed point q* exists; log φ' is exact, no underflow)."""

PARAM_KEYS = ("depth", "record_layers", "jac_kinds", "q", "quantiles", "hist")
MAX_WIDTH = 4096
EIG_FLOPS_PER_N3 = 25.0
"""General real eigendecomposition with right eigenvectors (LAPACK ``geev``): ~25 N³ flops
(Golub & Van Loan's count for the Schur form with vectors)."""

AXIS_RULES = (
    AxisRule("width", "int", low=2, high=MAX_WIDTH, default=None, long_name="width N"),
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
    AxisRule("sigma_w", "float", low=0, low_open=True, default=None, long_name="weight scale σ_w"),
)

# name: (extra dims after layer, jac_kind; long name)
VARIABLE_DOCS: dict[str, tuple[tuple[str, ...], str]] = {
    "spectral_radius": ((), "spectral radius max |λ| of the layer Jacobian"),
    "abs_quantile": (("quantile",), "quantiles of |λ| over the N eigenvalues"),
    "share_above_one": ((), "share of the N eigenvalues with |λ| > 1"),
    "share_below_min": ((), "share of the N eigenvalues with |λ| < 0.01 (left out below)"),
    "j_id": ((), "J_id = (1/N) Σ |λ| over |λ| ≥ 0.01"),
    "j_log": ((), "J_log = (1/N) ln|det J| from slogdet, all eigenvalues (nepers)"),
    "j_f1": (("power",), "(1/N) Σ sgn(ln|λ|) |ln|λ||^L over |λ| ≥ 0.01 (f_1 averages)"),
    "log_abs_hist": (("log_bin",), "share of the N eigenvalues per bin of log10|λ|"),
    "mean_log_ipr": (("q",), "mean over |λ| ≥ 0.01 of ln IPR_q of the right eigenvectors"),
    "mean_ipr": (("q",), "mean over |λ| ≥ 0.01 of IPR_q of the right eigenvectors"),
    "mean_log_ipr_class": (("lam_class", "q"), "mean ln IPR_q per |λ| class"),
    "class_share": (("lam_class",), "share of the N eigenvalues per |λ| class"),
    "residual": ((), "max ‖J v − λ v‖₂ over the unit-norm eigenvectors with |λ| ≥ 0.01"),
}


@dataclass(frozen=True)
class JacobianParams:
    """Validated parameters: depth, recorded layers, kinds, and what is summarised."""

    depth: int
    record_layers: tuple[int, ...]
    jac_kinds: tuple[str, ...]
    settings: JacobianSettings

    @property
    def drawn_layers(self) -> int:
        """Weight matrices drawn per network: depth, + 1 when ``pre`` needs W^{depth+1}."""
        return self.depth + (1 if "pre" in self.jac_kinds else 0)


def _parse_layers(raw: Any, depth: int) -> tuple[int, ...]:
    if raw is None or raw == "last":
        return (depth,)
    vals = number_list(raw, "record_layers", 1, depth, integers=True, max_len=64)
    if len(set(vals)) != len(vals) or list(vals) != sorted(vals):
        raise SpecError("record_layers", f"got {raw!r}; allowed: increasing distinct layers")
    return tuple(int(v) for v in vals)


def _parse_kinds(raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else list(raw or ["pre"])
    for k in items:
        if k not in JAC_KINDS:
            raise SpecError("jac_kinds", f"unknown value {k!r} (allowed: {', '.join(JAC_KINDS)})")
    if not items or len(set(items)) != len(items):
        raise SpecError("jac_kinds", f"got {raw!r}; allowed: distinct values of pre, post")
    return tuple(items)


def _parse_hist(raw: Any) -> tuple[float, ...]:
    body = {} if raw is None else raw
    if not isinstance(body, Mapping):
        raise SpecError("hist", f"got {raw!r}; allowed: a mapping with low, high, bins")
    check_keys(body, ("low", "high", "bins"), "hist")
    low, high = (
        number_list(body.get("low", -3.0), "hist.low", -30, 30)[0],
        number_list(body.get("high", 3.0), "hist.high", -30, 30)[0],
    )
    bins = positive_int(body.get("bins", 60), "hist.bins", 1, 1000)
    if not high > low:
        raise SpecError("hist.high", f"value {high} must be > hist.low ({low})")
    return tuple(float(x) for x in np.linspace(low, high, bins + 1))


def _flops(spec: SweepSpec, sizes: dict[str, int], widths: np.ndarray) -> float:
    """FLOPs of a chunk of ``sizes`` (dim → points) with N³ and N² averaged over ``widths``:
    one general eigendecomposition with right eigenvectors per point, recorded layer and
    Jacobian kind, counted as :data:`EIG_FLOPS_PER_N3` N³ (LAPACK ``geev``: Hessenberg
    reduction ~10/3 N³, QR iterations ~10 N³, back-transformation and vectors ~10 N³; the
    rate ``sweep plan`` measures on it is far below a matrix product's), plus ⅔ N³ (LU) for the
    ``slogdet`` per network and weight matrix, the forward pass (2 N² per point and layer)
    and the draws (~60 N² per weight matrix)."""
    p = spec.params
    n3, n2 = float(np.mean(widths**3)), float(np.mean(widths**2))
    points = math.prod(sizes.values())
    eigs = points * len(p.record_layers) * len(p.jac_kinds)
    nets = sizes["width"] * sizes["alpha"] * sizes["seed"]
    return float(
        eigs * EIG_FLOPS_PER_N3 * n3
        + nets * len(p.record_layers) * len(p.jac_kinds) * n3 * 2.0 / 3.0
        + points * p.depth * 2 * n2
        + nets * p.drawn_layers * 60 * n2
    )


class JacobianExperiment(Experiment):
    """Layer-Jacobian spectra over (width, α, seed, activation, σ_w); see the module doc."""

    name = "jacobian"
    axis_rules = AXIS_RULES
    param_keys = PARAM_KEYS
    default_dtype = "float64"

    def parse_params(
        self, raw: Mapping[str, Any], axes: tuple[Axis, ...]
    ) -> tuple[JacobianParams, dict[str, Any]]:
        """``depth`` (required), ``record_layers`` (list or ``last``, the default),
        ``jac_kinds`` (default ``[pre]``), ``q`` (IPR exponents, > 0 and ≠ 1; default
        ``[2]``), ``quantiles`` (default ``[0.1, 0.5, 0.9]``), ``hist`` (log10|λ| bins:
        ``low`` −3, ``high`` 3, ``bins`` 60)."""
        if "depth" not in raw:
            raise SpecError("depth", "missing (number of layers L >= 1)")
        depth = positive_int(raw["depth"], "depth", 1, 10_000)
        layers = _parse_layers(raw.get("record_layers"), depth)
        kinds = _parse_kinds(raw.get("jac_kinds"))
        qs = number_list(raw.get("q", [2.0]), "q", 0.0, 20.0, lo_open=True, max_len=32)
        if any(q == 1.0 for q in qs):
            raise SpecError("q", "value 1 has no D_q = ln IPR_q / ((1 − q) ln N); allowed: q ≠ 1")
        quant = number_list(raw.get("quantiles", [0.1, 0.5, 0.9]), "quantiles", 0.0, 1.0)
        edges = _parse_hist(raw.get("hist"))
        settings = JacobianSettings(tuple(qs), tuple(quant), edges)
        canonical = {
            "depth": depth,
            "record_layers": list(layers),
            "jac_kinds": list(kinds),
            "q": list(qs),
            "quantiles": list(quant),
            "hist": {"low": edges[0], "high": edges[-1], "bins": len(edges) - 1},
        }
        return JacobianParams(depth, layers, kinds, settings), canonical

    def default_chunk(self, axis: Axis) -> int:
        """The whole σ_w axis (up to 16) and one network per chunk."""
        if axis.name == "sigma_w":
            return min(len(axis), 16)
        if axis.name == "activation":
            return len(axis)
        return 1

    def variables(self, spec: SweepSpec) -> list[Variable]:
        """Every entry of :data:`VARIABLE_DOCS`, with dims (layer, jac_kind, …)."""
        units = {"residual": "1"}
        return [
            Variable(name, ("layer", "jac_kind", *extra), doc, units.get(name, "1"))
            for name, (extra, doc) in VARIABLE_DOCS.items()
        ]

    def extra_coords(self, spec: SweepSpec) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """``layer``, ``jac_kind``, ``quantile``, ``power``, ``log_bin`` (bin centres of
        log10|λ|), ``q``, ``lam_class`` (lower |λ| of the class)."""
        s = spec.params.settings
        edges = np.asarray(s.hist_edges)
        return {
            "layer": (np.asarray(spec.params.record_layers, np.int32), {"long_name": "layer l"}),
            "jac_kind": (
                np.asarray(spec.params.jac_kinds),
                {"long_name": "layer Jacobian: pre W^{l+1} D^l, post D^l W^l"},
            ),
            "quantile": (np.asarray(s.quantiles), {"long_name": "quantile level of |λ|"}),
            "power": (np.asarray(POWERS, np.int32), {"long_name": "power L of f_1"}),
            "log_bin": (
                0.5 * (edges[1:] + edges[:-1]),
                {"long_name": "bin centre of log10|λ| (end bins hold everything beyond)"},
            ),
            "q": (np.asarray(s.q), {"long_name": "IPR exponent q"}),
            "lam_class": (
                np.asarray([lo for lo, _ in LAMBDA_CLASSES]),
                {"long_name": "lower |λ| of the class (up to the next one)"},
            ),
        }

    def chunk_cost(self, spec: SweepSpec, chunk_shape: tuple[int, ...]) -> dict[str, float]:
        """FLOPs of a chunk (:func:`_flops`) with N³ and N² averaged over the width axis (a
        chunk holds one width, so the plan's sum over chunks is exact); peak bytes at the
        largest N: the drawn matrices and ~6 N² complex work arrays."""
        widths = np.asarray(spec.axis("width").values, np.float64)
        n = float(widths.max())
        p = spec.params
        flops = _flops(spec, dict(zip(spec.dims, chunk_shape, strict=True)), widths)
        peak = p.drawn_layers * n * n * 8 + 6 * n * n * 16 + math.prod(chunk_shape) * 4096 * 8
        return {"flops": flops, "peak_bytes": float(peak)}

    def cost_at(self, spec: SweepSpec, coords: dict[str, np.ndarray]) -> float:
        """FLOPs of the chunk at ``coords``, at its own widths (what calibration times)."""
        sizes = {k: len(v) for k, v in coords.items()}
        return _flops(spec, sizes, np.asarray(coords["width"], np.float64))

    def compute_chunk(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        backend: str = "numpy",
        threads: int = 1,
    ) -> dict[str, np.ndarray]:
        """Every variable for the chunk; arrays (width, alpha, seed, activation, sigma_w,
        layer, jac_kind, …). ``backend`` ``cupy`` runs the eigensolver on the GPU where CuPy
        has one (else the host); the rest is NumPy. BLAS/LAPACK run on ``threads`` threads (one
        per worker by default: an oversubscribed ``geev`` is many times slower); results do
        not depend on it."""
        with threadpool_limits(limits=max(1, int(threads)), user_api="blas"):
            return self._compute(spec, coords, backend)

    def _compute(
        self, spec: SweepSpec, coords: dict[str, np.ndarray], backend: str
    ) -> dict[str, np.ndarray]:
        p = spec.params
        xp: Any = np
        if backend == "cupy":
            import cupy as xp  # noqa: F811 (optional: only on a GPU worker)
        names = list(spec.dims)
        shape = tuple(len(coords[nm]) for nm in names)
        out: dict[str, np.ndarray] = {}
        n_lay, n_kind = len(p.record_layers), len(p.jac_kinds)
        for idx in np.ndindex(*shape):
            width, alpha, seed, act, sw = (coords[nm][i] for nm, i in zip(names, idx, strict=True))
            width, alpha, seed, sw = int(width), float(alpha), int(seed), float(sw)
            z = net.weight_draws(seed, width, alpha, p.drawn_layers)
            h = net.preactivations(z, net.input_vector(seed, width), alpha, sw, str(act), p.depth)
            c = net.weight_scale(width, alpha, sw)
            for li, layer in enumerate(p.record_layers):
                for ki, kind in enumerate(p.jac_kinds):
                    wl = layer + 1 if kind == "pre" else layer
                    ld = width * math.log(c) + net.log_abs_det_z(
                        seed, width, alpha, wl, p.drawn_layers
                    )
                    obs = layer_observables(
                        c * z[wl - 1], h[layer - 1], str(act), kind, ld, p.settings, xp=xp
                    )
                    for name, val in obs.items():
                        arr = np.asarray(val, np.float64)
                        if name not in out:
                            out[name] = np.full((*shape, n_lay, n_kind, *arr.shape), np.nan)
                        out[name][(*idx, li, ki)] = arr
        return {k: v.astype(spec.dtype) for k, v in out.items()}

    def extra_analysis(self, ds: xr.Dataset) -> xr.Dataset:
        """D_q fitted across the ``width`` axis with a jackknife over seeds
        (:func:`pipeline.analysis.multifractal.dq_analysis`); needs ≥ 2 widths."""
        from pipeline.analysis.multifractal import dq_analysis

        return dq_analysis(ds)

    def summary(self, ds: xr.Dataset) -> str:
        """Sizes, and the range of the spectral radius and J_log at the deepest layer."""
        rad = ds["spectral_radius"].isel(layer=-1)
        jl = ds["j_log"].isel(layer=-1)
        sizes = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
        return (
            f"jacobian store: {sizes}\n"
            f"spectral radius (deepest layer): {float(rad.min()):.3g} .. {float(rad.max()):.3g}; "
            f"J_log: {float(jl.min()):.3g} .. {float(jl.max()):.3g} nepers; "
            f"max residual {float(ds['residual'].max()):.2g}"
        )


EXPERIMENT = JacobianExperiment()
