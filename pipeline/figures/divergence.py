"""``divergence`` (D'Inverno et al. 2025, their observable): log₁₀ err over (σ_w, σ_b) and
the frontier's dimension by their estimator beside the calibrated one.

Left: log₁₀ err_L (the divergence probe, deepest recorded layer) with the class boundary at
the probe's threshold. Right: their estimator's D(t) for every threshold t (least squares over
1–49 px box sizes, :func:`~pipeline.analysis.fractal.estimators.dinverno_dimension`), its
maximum (the number they report), and the calibrated estimate with its 95 % interval at the
probe's threshold (:func:`~pipeline.analysis.fractal.boundary.boundary_dimension`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from pipeline.analysis.fractal.estimators import dinverno_dimension
from pipeline.analysis.regimes import sigma_dims
from pipeline.errors import PipelineError
from pipeline.figures.common import axis_label, dim_text, dimension, first_values, pyplot, widest
from pipeline.figures.layout import colour_map, note_missing
from pipeline.figures.registry import register
from pipeline.spec import parse_spec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["divergence", "divergence_notes", "err_plane"]


def err_plane(ds: xr.Dataset) -> tuple[np.ndarray, str, str, int, float, str]:
    """(err_L over (σ_w, σ_b) as a float64 array, σ_w dim, σ_b dim, L, the probe's threshold,
    the field's name for labels) of the widest network and the first seed; with
    ``mean_last`` k > 1 the mean of err over the last k layers (``err_mean``, the variable
    the class rule reads; named ``⟨err⟩_k``)."""
    if "err" not in ds:
        raise PipelineError("store: no 'err' variable (probes.divergence); no divergence figure")
    spec = parse_spec(ds.attrs["sweep_spec"])
    probe = spec.params.probes.divergence
    threshold = probe.threshold
    name = probe.field_variable if probe.field_variable in ds else "err"
    ds = widest(ds)
    sw, sb = sigma_dims(ds)
    err = first_values(ds[name], (sw, sb)).isel(layer=-1)
    if "seed" in err.dims:  # one network: the frontier of a single quenched draw
        err = err.isel(seed=0)
    err = err.transpose(sw, sb)
    k = getattr(probe, "mean_last", 1)
    label = f"⟨err⟩ over the last {k} layers" if name != "err" else "err_L"
    return np.asarray(err.values, np.float64), sw, sb, int(ds.layer[-1]), float(threshold), label


def divergence(ds: xr.Dataset) -> Figure:
    """log₁₀ err_L with the class boundary err = threshold; their D(t) and the calibrated D."""
    plt = pyplot()
    err, sw, sb, depth, thr, label = err_plane(ds)
    x = np.asarray(ds[sw].values, np.float64)
    y = np.asarray(ds[sb].values, np.float64)
    with np.errstate(divide="ignore"):
        shown = np.log10(np.maximum(err, 1e-30))
        signed = np.log(err / thr)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    mesh = ax.pcolormesh(
        x, y, shown.T, shading="nearest", cmap=colour_map("viridis"), vmin=-5, vmax=max(0.0,
        float(np.nanmax(shown))), rasterized=True,
    )  # fmt: skip
    fig.colorbar(mesh, ax=ax, label=f"log10 {label}, L = {depth} (clipped at -5)")
    if np.nanmin(signed) < 0 < np.nanmax(signed):
        ax.contour(x, y, signed.T, levels=[0.0], colors="r", linewidths=0.5)
    note_missing(fig, [err])
    ax.set_xlabel(axis_label(ds, sw))
    ax.set_ylabel(axis_label(ds, sb))
    ax.set_title(f"{label}; red: = {thr:g} (ordered below)", fontsize=9)
    try:
        theirs = dinverno_dimension(err, distance=True)
        ts = theirs.extra["thresholds"]
        ax2.semilogx(ts, theirs.extra["per_threshold"], "o-", ms=3, label="their fit D(t)")
        ax2.axhline(theirs.estimate, color="C0", ls=":", label=f"their max {theirs.estimate:.2f}")
    except PipelineError:
        pass
    cal = dimension(signed)
    if cal.estimate is not None:
        lo, hi = cal.estimate.interval
        ax2.errorbar([thr], [cal.estimate.estimate], yerr=[[cal.estimate.estimate - lo],
                     [hi - cal.estimate.estimate]], fmt="s", color="C3",
                     label=f"calibrated at t = {thr:g}")  # fmt: skip
    ax2.set_xlabel(f"threshold t (ordered ⇔ {label} <= t)")
    ax2.set_ylabel("boundary dimension D")
    ax2.set_title(f"calibrated: {dim_text(cal)}", fontsize=9)
    ax2.legend(fontsize=8)
    return fig


def divergence_notes(ds: xr.Dataset) -> list[str]:
    """Their estimator's D (max over thresholds, at which t) and the calibrated report."""
    err, _, _, depth, thr, label = err_plane(ds)
    with np.errstate(divide="ignore"):
        cal = dimension(np.log(err / thr))
    try:
        theirs = dinverno_dimension(err, distance=True)
        t_text = f"D = {theirs.estimate:.3f} at t = {theirs.extra['threshold']:.2g}"
    except PipelineError as e:
        t_text = f"n/a ({e})"
    ordered = 100 * np.mean(err <= thr)
    return [
        f"divergence: L = {depth}, {err.shape[0]}x{err.shape[1]} points, ordered "
        f"({label} <= {thr:g}) {ordered:.1f} %",
        f"divergence: D'Inverno estimator (max over 32 thresholds, 1-49 px) {t_text}",
        f"divergence: calibrated at t = {thr:g}: {cal.text()}",
    ]


register("divergence", divergence, lambda ds, **_: divergence_notes(ds))
