"""The analysis of a sweep as a dataset (what ``sweep analyze`` prints and writes as the
store's ``analysis`` group), with provenance and CF 1.10 attributes (long_name and UDUNITS
units on every variable and coordinate, flag_values/flag_meanings on the regime classes).

* every sweep with a class boundary (a :class:`SignedField`: the experiment's field whose
  sign is the class, over its image plane): the boundary dimension of that boundary per image
  (default estimator);
* sweeps with λ_L (``SignedField.critical_regime``): the critical line vs mean field, regime
  maps and the area of the critical regime.

Which field, which plane and whether λ_L is there is the experiment's to say; reading a
store and asking its experiment is :mod:`pipeline.run.analyze`'s job.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from pipeline.analysis.fractal.boundary import LABELS, boundary_dimension
from pipeline.analysis.fractal.estimators import DEFAULT_ESTIMATOR
from pipeline.analysis.labels import distinct_labels
from pipeline.analysis.multifractal import format_dq
from pipeline.analysis.regimes import (
    CHAOTIC,
    CRITICAL,
    ORDERED,
    measured_critical_line,
    regime_area,
    regime_maps,
    sigma_dims,
)
from pipeline.provenance import package_version

__all__ = ["ANALYSIS_GROUP", "SignedField", "analyze_field", "format_analysis"]

ANALYSIS_GROUP = "analysis"
MIN_PIXELS = 16
"""Fewest grid points along each plane axis for a boundary dimension (an estimator needs
scales)."""

REGIME_FLAGS = {"flag_values": np.array([ORDERED, CRITICAL, CHAOTIC], np.float64),
                "flag_meanings": "ordered critical chaotic"}  # fmt: skip
"""CF flags of the regime maps (float arrays: NaN where the input is NaN)."""


def _yes_no(no: str, yes: str) -> dict[str, Any]:
    """CF flags of a 0/1 (int8) flag variable: 0 means ``no``, 1 means ``yes``."""
    return {"flag_values": np.array([0, 1], np.int8), "flag_meanings": f"{no} {yes}"}


def _boundary_dimensions(field: xr.DataArray, a: str, b: str, what: str) -> xr.Dataset:
    """The boundary report (:func:`~pipeline.analysis.fractal.boundary.boundary_dimension`)
    of the class boundary (sign changes in 2×2 blocks) in every (a, b) slice of ``field``:
    the default estimate and its 95 % interval (NaN where the plane is too small or has no
    boundary), whether the plane is too small (the side it would need), whether the
    estimators disagree, the dimension drifts with resolution, the number is cutoff-limited or
    the boundary is noise-dominated (with the dimension of the frontier with the noise
    separated), and the report's line."""
    other = [d for d in field.dims if d not in (a, b)]
    shape = tuple(field.sizes[d] for d in other)
    est, lo, hi = (np.full(shape, np.nan) for _ in range(3))
    need = np.zeros(shape, np.int64)
    disagree = np.zeros(shape, np.int8)
    drift = np.zeros(shape, np.int8)
    cutoff = np.zeros(shape, np.int8)
    noise = np.zeros(shape, np.int8)
    frontier = np.full(shape, np.nan)
    text = np.full(shape, "", dtype=object)
    small = field.sizes[a] < MIN_PIXELS or field.sizes[b] < MIN_PIXELS
    if not small:
        for idx in np.ndindex(shape):
            sl = field.isel(dict(zip(other, idx, strict=True))).transpose(a, b).values
            r = boundary_dimension(sl)
            text[idx] = r.text()
            if r.estimate is None:
                continue
            est[idx], (lo[idx], hi[idx]) = r.estimate.estimate, r.estimate.interval
            need[idx] = r.needed_side if r.too_small else 0
            disagree[idx], drift[idx] = bool(r.disagreeing), r.drifting
            cutoff[idx] = r.cutoff_limited
            noise[idx] = r.noise_dominated
            if r.noise_dominated and r.noise.frontier is not None:  # type: ignore[union-attr]
                frontier[idx] = r.noise.frontier.estimate  # type: ignore[union-attr]
    coords = {d: field[d] for d in other}
    method = (
        f"{LABELS[DEFAULT_ESTIMATOR]} (pipeline.analysis.fractal, default estimator) of the "
        f"boundary between the classes ({what})"
    )
    return xr.Dataset(
        {
            "boundary_dimension": (
                other,
                est,
                {
                    "long_name": f"boundary dimension of the class boundary in ({a}, {b})",
                    "units": "1",
                    "method": method,
                },
            ),
            "boundary_dimension_low": (
                other,
                lo,
                {"long_name": "boundary_dimension: low end of its 95 % interval", "units": "1"},
            ),
            "boundary_dimension_high": (
                other,
                hi,
                {"long_name": "boundary_dimension: high end of its 95 % interval", "units": "1"},
            ),
            "boundary_dimension_needed_side": (
                other,
                need,
                {
                    "long_name": "grid points per axis a trustworthy boundary_dimension needs "
                    "(0: enough)",
                    "units": "1",
                },
            ),
            "boundary_dimension_disagree": (
                other,
                disagree,
                {
                    "long_name": "whether another estimator's 95 % interval misses "
                    "boundary_dimension's",
                    **_yes_no("agree", "disagree"),
                },
            ),
            "boundary_dimension_drifting": (
                other,
                drift,
                {
                    "long_name": "whether the estimate at 1/2 or 1/4 of the resolution "
                    "excludes boundary_dimension, or the three move one way",
                    **_yes_no("steady", "drifting"),
                },
            ),
            "boundary_dimension_cutoff_limited": (
                other,
                cutoff,
                {
                    "long_name": "whether boundary_dimension may read low by more than its "
                    "scatter: the pixel-cutoff bound on its interval's upper end exceeds the "
                    "symmetric half-width and 0.03",
                    **_yes_no("scatter_limited", "cutoff_limited"),
                },
            ),
            "boundary_dimension_noise": (
                other,
                noise,
                {
                    "long_name": "whether the boundary fills the plane over an octave of box "
                    "sizes (noise-dominated: boundary_dimension reads the noise, near 2)",
                    **_yes_no("clean", "noise_dominated"),
                },
            ),
            "boundary_dimension_frontier": (
                other,
                frontier,
                {
                    "long_name": "boundary dimension of the frontier of the noise-dominated "
                    "region, the noise separated (NaN where not noise-dominated)",
                    "units": "1",
                },
            ),
            "boundary_dimension_report": (
                other,
                text.astype(str),
                {"long_name": "the boundary report, as sweep analyze prints it"},
            ),
        },
        coords=coords,
    )


def _critical_regime(ds: xr.Dataset, factor: float, burn_in: int, threshold: float) -> xr.Dataset:
    """Critical lines vs mean field, regime maps and the critical regime's area (λ_L)."""
    sw, sb = sigma_dims(ds)
    cl = measured_critical_line(ds, burn_in=burn_in, threshold=threshold)
    maps = regime_maps(ds, factor)
    for name in maps.data_vars:  # classes: CF flags, no units
        source = name.removeprefix("regime_")
        maps[name].attrs = {
            "long_name": f"regime from {source}",
            **REGIME_FLAGS,
            "criterion": maps[name].attrs.get("criterion", ""),
        }
    area = regime_area(maps["regime_lyapunov"])
    out = xr.Dataset({**cl.data_vars, **maps.data_vars})
    out["critical_fraction"] = area["fraction"].copy()
    out["critical_fraction"].attrs = {
        "long_name": f"fraction of the ({sw}, {sb}) grid in the critical regime (from λ_L)",
        "units": "1",
    }
    out["critical_area"] = area["area"].copy()
    out["critical_area"].attrs = {
        "long_name": f"area of the critical regime (from λ_L) in the ({sw}, {sb}) plane",
        "units": "1",
    }
    return out


@dataclass(frozen=True)
class SignedField:
    """What the analysis of a sweep reads from its experiment: ``field`` (whose sign is the
    class: ``> 0`` one class, ``<= 0`` the other) over ``plane`` (its two image axes) and the
    other grid dims, ``what`` (the field, for the method attribute) and ``critical_regime``
    (whether the dataset has λ_L for critical lines and regime maps)."""

    field: xr.DataArray
    plane: tuple[str, str]
    what: str
    critical_regime: bool = False


def analyze_field(
    ds: xr.Dataset,
    signed: SignedField | None,
    *,
    factor: float = 10.0,
    burn_in: int = 0,
    threshold: float = 0.01,
    extra: xr.Dataset | None = None,
) -> xr.Dataset:
    """The analysis dataset of a sweep ``ds`` whose class boundary is ``signed``: boundary
    dimensions per image, and with ``signed.critical_regime`` critical lines vs mean field,
    regime maps (``factor``, ``burn_in``, Lévy ``threshold``) and the critical area; then
    ``extra`` (the experiment's own results, e.g. D_q fits) merged in; CF and provenance
    attributes. ``signed`` None (no class boundary) needs ``extra``."""
    parts = (
        []
        if signed is None
        else [_boundary_dimensions(signed.field, *signed.plane, what=signed.what)]
    )
    if signed is not None and signed.critical_regime:
        parts.insert(0, _critical_regime(ds, factor, burn_in, threshold))
    if extra is not None:
        parts.append(extra)
    if not parts:
        raise ValueError("analyze_field: neither a class boundary nor extra results")
    out = xr.merge(parts, combine_attrs="override")
    for name in out.coords:  # the sweep's coordinates keep their CF attributes
        if name in ds.coords:
            out[name].attrs = dict(ds[name].attrs)
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    out.attrs = {
        "Conventions": "CF-1.10",
        "title": f"analysis of {ds.attrs.get('title', 'a sweep')}",
        "history": f"{created}: sweep analyze (phase-sweep {package_version()})",
        "analysis": "pipeline.analysis",
        "experiment": str(ds.attrs.get("experiment", "propagation")),
        "factor": float(factor),
        "burn_in": int(burn_in),
        "levy_threshold": float(threshold),
        "source_title": str(ds.attrs.get("title", "")),
        "source_git_revision": str(ds.attrs.get("git_revision", "unknown")),
        "source_created": str(ds.attrs.get("created", "")),
        "package_version": package_version(),
        "created": created,
    }
    return out


def _f(v: float, fmt: str = "7.3f") -> str:
    return "      —" if not math.isfinite(v) else format(v, fmt)


def _keys(row: Any, names: list[str]) -> str:
    return " ".join(f"{k}={row[k]}" for k in names if k in row)


def format_analysis(an: xr.Dataset) -> str:
    """Text tables: critical lines vs theory and critical-regime areas (stores with λ_L),
    D_q fits (jacobian stores), then the boundary dimensions (stores with a class
    boundary)."""
    lines: list[str] = []
    if "partial" in an.attrs:
        lines.append(f"{an.attrs['partial']} (the missing ones read as NaN; sweep run resumes)")
    if "regime_lyapunov" in an:
        lines += _critical_lines_text(an)
    if "dq" in an:
        lines += format_dq(an)
    if "boundary_dimension" not in an:
        return "\n".join(lines)
    other = list(an["boundary_dimension"].dims)
    if bool(np.isfinite(an["boundary_dimension"].values).any()):
        lines.append("Dimension of the class boundary, 95 % interval, and its flags")
        rep = an["boundary_dimension_report"]
        for _, r in rep.to_dataframe().reset_index().iterrows():
            lines.append(f"  {_keys(r, other)}: {r['boundary_dimension_report']}")
    else:
        lines.append(
            f"Boundary dimension: not computed (needs >= {MIN_PIXELS} points along both axes "
            "of the plane and a boundary in it)"
        )
    return "\n".join(lines)


def _critical_lines_text(an: xr.Dataset) -> list[str]:
    sw, sb = sigma_dims(an["regime_lyapunov"])
    lines = [
        f"Critical line (λ_L = 0 along {sw}) vs mean field, burn-in {an.attrs.get('burn_in', 0)}"
    ]
    lines.append(
        f"{'width':>6} {'alpha':>5} {'act':>6} {sb:>8} {'layer':>5} {'measured':>9} "
        f"{'theory':>8} {'steps':>7}"
    )
    cl = an[["sigma_w_measured", "sigma_w_theory", "deviation_steps"]]
    flat = cl.to_dataframe().reset_index()
    alphas = distinct_labels(flat["alpha"] if "alpha" in flat else [2.0], 2)
    biases = distinct_labels(flat[sb], 3)
    for _, r in flat.iterrows():
        lines.append(
            f"{int(r.get('width', 0)):>6} {alphas[float(r.get('alpha', 2.0))]:>5} "
            f"{str(r.get('activation', '')):>6} {biases[float(r[sb])]:>8} {int(r['layer']):>5} "
            f"{_f(r['sigma_w_measured'], '9.3f'):>9} {_f(r['sigma_w_theory'], '8.3f'):>8} "
            f"{_f(r['deviation_steps'], '7.2f'):>7}"
        )
    lines.append(f"Critical regime from λ_L (factor {an.attrs.get('factor')}): fraction, area")
    ar = an[["critical_fraction", "critical_area"]].to_dataframe().reset_index()
    for _, r in ar.iterrows():
        keys = _keys(r, ["width", "alpha", "activation", "layer"])
        lines.append(f"  {keys}: {r['critical_fraction']:.3f}, {r['critical_area']:.4g}")
    return lines
