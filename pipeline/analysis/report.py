"""``sweep analyze``: critical lines, regime areas and boundary dimensions of a store.

Reads the main group lazily, computes the analysis, prints it, and writes it as the Zarr
group ``analysis`` inside the store (``xarray.open_zarr(store, group="analysis")``) with
provenance attrs. The main group is never touched: ``xarray.open_zarr(store)`` still opens
the sweep.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.analysis.fractal.boundary import boundary_dimension
from pipeline.analysis.regimes import (
    measured_critical_line,
    regime_area,
    regime_maps,
    sigma_dims,
)
from pipeline.engine.provenance import package_version
from pipeline.engine.store import open_sweep
from pipeline.errors import PipelineError

__all__ = ["ANALYSIS_GROUP", "analyze", "analyze_store", "format_analysis"]

ANALYSIS_GROUP = "analysis"
MIN_PIXELS = 16
"""Fewest grid points along each σ axis for a boundary dimension (box counting needs scales)."""


def _boundary_dimensions(lam: xr.DataArray, sw: str, sb: str) -> xr.Dataset:
    """The boundary report (:func:`~pipeline.analysis.fractal.boundary.boundary_dimension`)
    of the λ_L = 0 boundary in every (σ_w, σ_b) slice of ``lam``: the default estimate, its
    95 % interval, whether the plane is too small (the side it would need), whether the
    estimators disagree or the dimension drifts with resolution, and the report's line."""
    other = [d for d in lam.dims if d not in (sw, sb)]
    shape = tuple(lam.sizes[d] for d in other)
    est, lo, hi = (np.full(shape, np.nan) for _ in range(3))
    need = np.zeros(shape, np.int64)
    disagree = np.zeros(shape, bool)
    drift = np.zeros(shape, bool)
    text = np.full(shape, "", dtype=object)
    small = lam.sizes[sw] < MIN_PIXELS or lam.sizes[sb] < MIN_PIXELS
    if not small:
        for idx in np.ndindex(shape):
            sl = lam.isel(dict(zip(other, idx, strict=True))).transpose(sw, sb).values
            r = boundary_dimension(sl)
            text[idx] = r.text()
            if r.estimate is None:
                continue
            est[idx], (lo[idx], hi[idx]) = r.estimate.estimate, r.estimate.interval
            need[idx] = r.needed_side if r.too_small else 0
            disagree[idx], drift[idx] = bool(r.disagreeing), r.drifting
    coords = {d: lam[d] for d in other}
    attrs = {
        "method": "box counting (calibrated, pipeline.analysis.fractal) of sign changes of "
        "λ_L in 2x2 neighbourhoods"
    }
    return xr.Dataset(
        {
            "boundary_dimension": (other, est, attrs),
            "boundary_dimension_low": (other, lo, {"long_name": "95 % interval, low"}),
            "boundary_dimension_high": (other, hi, {"long_name": "95 % interval, high"}),
            "boundary_dimension_needed_side": (
                other,
                need,
                {"long_name": "grid points per axis a trustworthy dimension needs (0: enough)"},
            ),
            "boundary_dimension_disagree": (
                other,
                disagree,
                {"long_name": "another estimator's 95 % interval misses the default's"},
            ),
            "boundary_dimension_drifting": (
                other,
                drift,
                {"long_name": "the estimate at 1/2 or 1/4 of the resolution excludes it"},
            ),
            "boundary_dimension_report": (
                other,
                text.astype(str),
                {"long_name": "the boundary report, as sweep analyze prints it"},
            ),
        },
        coords=coords,
    )


def analyze(
    ds: xr.Dataset,
    *,
    factor: float = 10.0,
    burn_in: int = 0,
    threshold: float = 0.01,
) -> xr.Dataset:
    """The analysis dataset of a propagation sweep ``ds`` (see :func:`analyze_store`)."""
    if "lyapunov" not in ds:
        raise PipelineError("store: no 'lyapunov' variable (pair probe); nothing to analyse")
    sw, sb = sigma_dims(ds)
    cl = measured_critical_line(ds, burn_in=burn_in, threshold=threshold)
    maps = regime_maps(ds, factor)
    area = regime_area(maps["regime_lyapunov"])
    deepest = ds["lyapunov"].isel(layer=-1, drop=True).load()
    dims = _boundary_dimensions(deepest, sw, sb)
    out = xr.Dataset(
        {
            **cl.data_vars,
            **maps.data_vars,
            "critical_fraction": area["fraction"],
            "critical_area": area["area"],
            **dims.data_vars,
        }
    )
    out.attrs = {
        "analysis": "pipeline.analysis",
        "factor": float(factor),
        "burn_in": int(burn_in),
        "levy_threshold": float(threshold),
        "source_title": str(ds.attrs.get("title", "")),
        "source_git_revision": str(ds.attrs.get("git_revision", "unknown")),
        "source_created": str(ds.attrs.get("created", "")),
        "package_version": package_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return out


def analyze_store(
    store: str | Path,
    *,
    factor: float = 10.0,
    burn_in: int = 0,
    threshold: float = 0.01,
    write: bool = True,
) -> xr.Dataset:
    """Analyse the sweep in ``store`` and (if ``write``) save it as its ``analysis`` group.

    Variables: ``sigma_w_measured``, ``sigma_w_theory``, ``deviation_steps`` (critical lines,
    :func:`~pipeline.analysis.regimes.measured_critical_line`), ``regime_*`` (class maps per layer,
    seed-averaged), ``critical_fraction``/``critical_area`` (critical regime from λ_L with
    ``factor``), ``boundary_dimension[_low|_high]`` (λ_L = 0 boundary at the deepest layer,
    per seed, by the default estimator; NaN where the plane has fewer than 16 points per axis
    or no boundary) with ``boundary_dimension_needed_side|disagree|drifting|report`` (the
    boundary report: too small, estimators disagreeing, drift with resolution, its line).
    """
    path = Path(store)
    if not (path / "zarr.json").exists():
        raise PipelineError(f"store: {str(store)!r} is not a sweep store (no zarr.json)")
    ds = open_sweep(path)
    out = analyze(ds, factor=factor, burn_in=burn_in, threshold=threshold)
    if write:
        out.to_zarr(path, group=ANALYSIS_GROUP, mode="w", consolidated=False)
        # re-consolidate the root so that xarray.open_zarr(store, group="analysis") finds the
        # new group (the main arrays' metadata is unchanged by this)
        import warnings

        import zarr

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # consolidated metadata is not in the v3 spec
            zarr.consolidate_metadata(str(path))
    return out


def _f(v: float, fmt: str = "7.3f") -> str:
    return "      —" if not math.isfinite(v) else format(v, fmt)


def format_analysis(an: xr.Dataset) -> str:
    """Text tables: critical lines vs theory, critical-regime areas, boundary dimensions."""
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
    for _, r in flat.iterrows():
        lines.append(
            f"{int(r.get('width', 0)):>6} {float(r.get('alpha', 2.0)):>5.2f} "
            f"{str(r.get('activation', '')):>6} {float(r[sb]):>8.3f} {int(r['layer']):>5} "
            f"{_f(r['sigma_w_measured'], '9.3f'):>9} {_f(r['sigma_w_theory'], '8.3f'):>8} "
            f"{_f(r['deviation_steps'], '7.2f'):>7}"
        )
    lines.append(f"Critical regime from λ_L (factor {an.attrs.get('factor')}): fraction, area")
    ar = an[["critical_fraction", "critical_area"]].to_dataframe().reset_index()
    for _, r in ar.iterrows():
        keys = " ".join(f"{k}={r[k]}" for k in ("width", "alpha", "activation", "layer") if k in r)
        lines.append(f"  {keys}: {r['critical_fraction']:.3f}, {r['critical_area']:.4g}")
    if bool(np.isfinite(an["boundary_dimension"].values).any()):
        lines.append("Dimension of the λ_L = 0 boundary (deepest layer)")
        rep = an["boundary_dimension_report"]
        for _, r in rep.to_dataframe().reset_index().iterrows():
            keys = " ".join(
                f"{k}={r[k]}" for k in ("width", "alpha", "activation", "seed") if k in r
            )
            lines.append(f"  {keys}: {r['boundary_dimension_report']}")
    else:
        lines.append(
            f"Boundary dimension: not computed (needs >= {MIN_PIXELS} points along both σ axes)"
        )
    return "\n".join(lines)
