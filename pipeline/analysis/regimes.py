"""Ordered / critical / chaotic regime maps, critical lines and regime areas of a sweep.

Inputs are propagation datasets as :func:`pipeline.open_sweep` returns them (dims ``width,
alpha, seed, activation, sigma_w|sigma_w2, sigma_b|sigma_b2, layer``) or any slice of one that
keeps the σ dims; outputs are xarray objects with named dims, lazy where the input is.

Classes (int codes in float arrays, NaN where the input is NaN): ``-1`` ordered, ``0``
critical, ``+1`` chaotic (:data:`ORDERED`, :data:`CRITICAL`, :data:`CHAOTIC`).

* From λ_L (``lyapunov`` at recorded layer L, the mean log growth of a tangent vector over
  layers 1..L): the perturbation grows by ``exp(λ_L L)`` over L layers. Critical when it
  neither collapses nor explodes by more than ``factor``: ``|λ_L| L ≤ log(factor)``;
  ordered below, chaotic above.
* From ``c`` (pair probe, input correlation c0): the distance ``d = 1 − c``. Ordered when the
  two inputs have collapsed onto each other, ``d_L ≤ d_0 / factor``; chaotic when they are at
  least as decorrelated as at the input, ``d_L ≥ d_0``; critical in between (slow, power-law
  relaxation). In a chaotic phase whose fixed point c* exceeds c0 this reads "critical", so
  prefer λ_L where both exist.
* From ``cv`` (circle probe, Qu et al. 2022 Fig. 5): critical where ``cv_L ≥ cv_threshold``
  (mixed contraction and expansion along the circle); elsewhere the sign of λ_L decides
  between ordered and chaotic if ``lyapunov`` is present, else NaN.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from pipeline.errors import PipelineError

__all__ = [
    "CHAOTIC",
    "CRITICAL",
    "ORDERED",
    "classify_correlation",
    "classify_cv",
    "classify_lyapunov",
    "measured_critical_line",
    "late_lyapunov",
    "regime_area",
    "regime_maps",
    "sigma_dims",
    "theory_sigma_w",
    "zero_crossings",
]

ORDERED, CRITICAL, CHAOTIC = -1, 0, 1


def zero_crossings(x: np.ndarray, y: np.ndarray) -> list[float]:
    """x positions where ``y`` changes sign (linear interpolation), ascending.

    ``x``, ``y``: 1-D arrays of equal length, ``x`` increasing. NaN values are skipped.
    """
    ok = np.isfinite(y)
    x, y = np.asarray(x, float)[ok], np.asarray(y, float)[ok]
    out = []
    for i in range(len(x) - 1):
        if y[i] == 0:
            out.append(float(x[i]))
        elif y[i] * y[i + 1] < 0:
            out.append(float(x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i])))
    if len(y) and y[-1] == 0:
        out.append(float(x[-1]))
    return out


def sigma_dims(obj: xr.Dataset | xr.DataArray) -> tuple[str, str]:
    """Names of the weight and bias axes of ``obj``: ``sigma_w`` or ``sigma_w2``, and
    ``sigma_b`` or ``sigma_b2``."""
    dims = obj.dims
    sw = "sigma_w2" if "sigma_w2" in dims else "sigma_w"
    sb = "sigma_b2" if "sigma_b2" in dims else "sigma_b"
    for d in (sw, sb):
        if d not in dims:
            raise PipelineError(
                f"dataset: expected a dim {d!r} (or its variance), got dims {tuple(dims)}"
            )
    return sw, sb


def _three_way(lower: xr.DataArray, upper: xr.DataArray, valid: xr.DataArray) -> xr.DataArray:
    out = xr.where(lower, ORDERED, xr.where(upper, CHAOTIC, CRITICAL)).astype(np.float64)
    # xr.where drops the coordinates' attributes (long_name, units): take them back
    return out.where(valid).assign_coords(valid.coords)


def classify_lyapunov(ds: xr.Dataset | xr.DataArray, factor: float = 10.0) -> xr.DataArray:
    """Classes from λ_L: ordered / critical / chaotic as ``λ_L L <, within, > ±log(factor)``.

    ``ds``: a dataset with ``lyapunov`` or that DataArray, with a ``layer`` coordinate (L).
    ``factor`` > 1.
    """
    if not factor > 1.0:
        raise PipelineError(f"factor: got {factor!r}; allowed: a number > 1")
    lam = ds["lyapunov"] if isinstance(ds, xr.Dataset) else ds
    growth = lam * lam["layer"]
    lim = math.log(factor)
    out = _three_way(growth < -lim, growth > lim, lam.notnull())
    out.attrs = {
        "long_name": "regime from λ_L (-1 ordered, 0 critical, 1 chaotic)",
        "criterion": f"|lambda_L| * L <= log({factor}) is critical",
        "factor": float(factor),
    }
    return out.rename("regime_lyapunov")


def classify_correlation(
    ds: xr.Dataset, factor: float = 10.0, c0: float | None = None
) -> xr.DataArray:
    """Classes from ``c``: ordered if ``1 − c_L ≤ (1 − c0)/factor``, chaotic if
    ``1 − c_L ≥ 1 − c0``, critical between. ``c0`` defaults to the store's pair probe (0.5)."""
    if not factor > 1.0:
        raise PipelineError(f"factor: got {factor!r}; allowed: a number > 1")
    if c0 is None:
        c0 = float(ds.attrs.get("sweep_spec", {}).get("probes", {}).get("pair", {}).get("c0", 0.5))
    d0 = 1.0 - c0
    d = 1.0 - ds["c"]
    out = _three_way(d <= d0 / factor, d >= d0, ds["c"].notnull())
    out.attrs = {
        "long_name": "regime from c (-1 ordered, 0 critical, 1 chaotic)",
        "criterion": f"(1-c0)/{factor} < 1-c_L < 1-c0 is critical, c0 = {c0}",
        "factor": float(factor),
    }
    return out.rename("regime_c")


def classify_cv(ds: xr.Dataset, cv_threshold: float = 0.5, factor: float = 10.0) -> xr.DataArray:
    """Classes from ``cv``: critical where ``cv_L ≥ cv_threshold``; elsewhere the side of the
    λ_L criterion (:func:`classify_lyapunov` with ``factor``; its critical band is resolved
    by the sign of λ_L) if ``lyapunov`` is present, NaN otherwise."""
    cv = ds["cv"]
    crit = cv >= cv_threshold
    if "lyapunov" in ds:
        side = xr.where(ds["lyapunov"] < 0, ORDERED, CHAOTIC).where(ds["lyapunov"].notnull())
        out = xr.where(crit, CRITICAL, side).where(cv.notnull())
    else:
        out = xr.where(crit, float(CRITICAL), np.nan).where(cv.notnull())
    out = out.astype(np.float64).assign_coords(cv.coords)
    out.attrs = {
        "long_name": "regime from cv (-1 ordered, 0 critical, 1 chaotic)",
        "criterion": f"cv_L >= {cv_threshold} is critical",
    }
    return out.rename("regime_cv")


def regime_maps(
    ds: xr.Dataset,
    factor: float = 10.0,
    *,
    cv_threshold: float = 0.5,
    seed_mean: bool = True,
) -> xr.Dataset:
    """All regime maps the dataset allows (``regime_lyapunov``, ``regime_c``, ``regime_cv``),
    per recorded layer; the observables are first averaged over ``seed`` if ``seed_mean``
    (a point where any seed is NaN stays NaN: unknown, never the survivors' mean; a seed at
    λ = −∞, a vanished tangent, makes the mean −∞: that network is ordered whatever the others).
    ``c`` and ``cv`` count as NaN from a seed's ``nonfinite_layer`` on (its pre-activations
    overflowed: what is left of them, e.g. c = −1 from ∞/∞ arithmetic, is no regime), as λ is."""
    ds = _without_overflowed(ds)
    src = ds.mean("seed", skipna=False) if seed_mean and "seed" in ds.dims else ds
    src.attrs = ds.attrs
    out = {}
    if "lyapunov" in src:
        out["regime_lyapunov"] = classify_lyapunov(src, factor)
    if "c" in src:
        out["regime_c"] = classify_correlation(src, factor)
    if "cv" in src:
        out["regime_cv"] = classify_cv(src, cv_threshold, factor)
    if not out:
        raise PipelineError("dataset: no lyapunov, c or cv variable to classify")
    return xr.Dataset(out)


def _without_overflowed(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``c`` and ``cv`` NaN at the layers L ≥ ``nonfinite_layer`` (> 0) of their
    network (point and seed); unchanged without the flag or the ``layer`` dim."""
    flag = ds.get("nonfinite_layer")
    if flag is None or "layer" not in ds.dims:
        return ds
    overflowed = (flag > 0) & (flag <= ds["layer"])
    out = ds.copy()
    for name in ("c", "cv"):
        if name in out:
            out[name] = out[name].where(~overflowed)
    return out


def _cell_widths(x: np.ndarray) -> np.ndarray:
    """Widths of the cells around grid points x (midpoints between neighbours; 1 if single)."""
    if x.size < 2:
        return np.ones_like(x, dtype=np.float64)
    mid = 0.5 * (x[1:] + x[:-1])
    edges = np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])
    return np.diff(edges)


def regime_area(classes: xr.DataArray, regime: int = CRITICAL) -> xr.Dataset:
    """Area of one regime in the (σ_w, σ_b) plane, per remaining dim (alpha, layer, …).

    Returns ``fraction`` (of classified grid points) and ``area`` in the units of the two
    axes (σ or σ², as the grid is stored): the sum of the cell areas of the points in the
    regime (cells bounded by midpoints between grid values).
    """
    sw, sb = sigma_dims(classes)
    wx = xr.DataArray(_cell_widths(np.asarray(classes[sw].values, float)), dims=sw)
    wy = xr.DataArray(_cell_widths(np.asarray(classes[sb].values, float)), dims=sb)
    hit = (classes == regime).where(classes.notnull())
    frac = hit.mean((sw, sb))
    area = (hit.fillna(0) * wx * wy).sum((sw, sb))
    return xr.Dataset(
        {
            "fraction": frac.assign_attrs(long_name=f"fraction of the plane in regime {regime}"),
            "area": area.assign_attrs(long_name=f"area in ({sw}, {sb}) units of regime {regime}"),
        }
    )


def late_lyapunov(lam: xr.DataArray, burn_in: int) -> xr.DataArray:
    """Mean log growth over layers ``burn_in``+1..L: ``(L λ_L − B λ_B)/(L − B)``, for the
    recorded layers L > B (``lam`` is the ``lyapunov`` variable; B must be recorded)."""
    layers = np.asarray(lam["layer"].values)
    if burn_in not in layers:
        raise PipelineError(
            f"burn_in: layer {burn_in} is not recorded; recorded layers: {layers.tolist()}"
        )
    if burn_in >= layers.max():
        raise PipelineError(
            f"burn_in: layer {burn_in} is the last recorded one; it must be below "
            f"{int(layers.max())} so that some layers follow it"
        )
    base = lam.sel(layer=burn_in, drop=True)
    late = lam.sel(layer=layers[layers > burn_in])
    with np.errstate(invalid="ignore"):  # −∞ − (−∞): handled below
        mean = (late * late["layer"] - base * burn_in) / (late["layer"] - burn_in)
    # a tangent that vanished (λ = −∞) by layer B stays zero: the late exponent is −∞ too
    return mean.where(~np.isneginf(late), -np.inf)


def theory_sigma_w(alpha: float, activation: str, sigma_b: float, threshold: float = 0.01) -> float:
    """Mean-field critical σ_w (a scale) at bias scale ``sigma_b``: χ1 = 1 at α = 2, the
    Lévy ordered transition (q* = ``threshold``) for α < 2; NaN where there is none."""
    try:
        if alpha == 2.0:
            from pipeline.numerics.theory import critical_sigma_w

            return float(critical_sigma_w(sigma_b, activation))
        from pipeline.numerics.levy import ordered_transition_sigma_w

        return ordered_transition_sigma_w(sigma_b, alpha, activation, threshold=threshold)
    except (ValueError, RuntimeError):
        return math.nan


def measured_critical_line(
    ds: xr.Dataset,
    *,
    layer: int | None = None,
    seed_mean: bool = True,
    threshold: float = 0.01,
    theory: bool = True,
    burn_in: int = 0,
) -> xr.Dataset:
    """Measured and mean-field critical lines, per (width, α, activation, σ_b) and layer.

    The measured line is the first σ_w (along the stored axis, linear interpolation) where
    the seed-averaged λ_L changes sign: the λ_L = 0 contour of the (σ_w, σ_b) plane, read at
    every σ_b. The theory line is χ1 = 1 (:func:`pipeline.numerics.theory.critical_sigma_w`)
    at α = 2 and the Lévy ordered transition
    (:func:`pipeline.numerics.levy.ordered_transition_sigma_w`, q* = ``threshold``) for
    α < 2. Both are in the units of the stored axis (σ_w or σ_w²).
    ``deviation_steps`` = (measured − theory) / grid step along σ_w at the theory value.
    ``layer``: one recorded layer (default: all). ``burn_in`` = B > 0 measures the exponent
    over layers B+1..L only, ``(L λ_L − B λ_B)/(L − B)`` (B must be a recorded layer; layers
    ≤ B are dropped): the mean-field line is a fixed-point property, and the relaxation of q
    towards q* biases λ_L at finite depth (tanh at σ_b = 0: 3 grid steps at L = 30 with B = 0,
    about 1 with B = 10, N = 1024).
    """
    sw, sb = sigma_dims(ds)
    lam = late_lyapunov(ds["lyapunov"], burn_in) if burn_in else ds["lyapunov"]
    if layer is not None:
        lam = lam.sel(layer=[layer])
    if seed_mean and "seed" in lam.dims:
        lam = lam.mean("seed", skipna=False)
    xs = np.asarray(ds[sw].values, float)

    def first_crossing(y: np.ndarray) -> float:
        c = zero_crossings(xs, y)
        return c[0] if c else math.nan

    measured = xr.apply_ufunc(
        first_crossing,
        lam.load(),
        input_core_dims=[[sw]],
        vectorize=True,
        output_dtypes=[np.float64],
    )
    out = xr.Dataset({"sigma_w_measured": measured})
    what = "σ_w²" if sw.endswith("2") else "σ_w"  # the stored axis: variance or scale
    out["sigma_w_measured"].attrs = {
        "long_name": f"measured critical {what}: first zero crossing of λ_L along {what}",
        "units": "1",
    }
    if theory:
        th = (
            xr.zeros_like(measured.isel(layer=0, drop=True))
            if "layer" in measured.dims
            else xr.zeros_like(measured)
        )
        th = th.copy()
        for idx in np.ndindex(th.shape):
            sel = {d: th[d].values[i] for d, i in zip(th.dims, idx, strict=True) if d in th.coords}
            a = float(sel.get("alpha", 2.0))
            act = str(sel.get("activation", "tanh"))
            b = float(sel[sb])
            b = math.sqrt(b) if sb.endswith("2") else b
            v = theory_sigma_w(a, act, b, threshold)
            th[idx] = v * v if sw.endswith("2") else v
        out["sigma_w_theory"] = th.assign_attrs(
            long_name=f"mean-field critical {what} (χ1 = 1 at α = 2, Lévy q* = threshold else)",
            units="1",
            threshold=threshold,
        )
        step = np.interp(th.values, xs, _cell_widths(xs))
        step_da = th.copy(data=np.where(np.isfinite(th.values), step, np.nan))
        out["deviation_steps"] = ((out["sigma_w_measured"] - th) / step_da).assign_attrs(
            long_name=f"(measured − mean-field critical {what}) in grid steps along {what}",
            units="1",
        )
    return out
