"""``frontier`` (D'Inverno et al. 2025): the finite-width order/chaos frontier over (σ_w, σ_b).

λ_L over (σ_w, σ_b) with its sign boundary and the mean-field line χ1 = 1; box counts of the
boundary with the dimension and its 95 % interval.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from pipeline.analysis.fractal.boundary import LABELS
from pipeline.analysis.regimes import sigma_dims
from pipeline.figures.common import (
    axis_label,
    clip_to_norm,
    dim_text,
    dimension,
    first_values,
    loglog_labels,
    no_dimension_reason,
    plot_loglog,
    pyplot,
    signed_norm,
    widest,
)
from pipeline.figures.layout import colour_map, note_missing
from pipeline.figures.registry import register
from pipeline.numerics import theory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["frontier", "frontier_notes", "lyapunov_plane"]


def lyapunov_plane(ds: xr.Dataset) -> tuple[np.ndarray, str, str, int]:
    """λ_L at the deepest recorded layer over (σ_w, σ_b), mean over seeds."""
    sw, sb = sigma_dims(ds)
    lam = first_values(ds.lyapunov, (sw, sb)).isel(layer=-1)
    if "seed" in lam.dims:
        lam = lam.mean("seed")
    return np.asarray(lam.transpose(sw, sb).values, np.float64), sw, sb, int(ds.layer[-1])


def frontier(ds: xr.Dataset) -> Figure:
    """The finite-width order/chaos frontier (D'Inverno et al. 2025): λ_L over (σ_w, σ_b) with the
    boundary λ_L = 0 and the mean-field line χ1 = 1; second panel: box counts of the
    boundary, log N vs log s, with the fitted dimension and its 95 % interval."""
    plt = pyplot()
    ds = widest(ds)
    lam, sw, sb, depth = lyapunov_plane(ds)
    x = np.asarray(ds[sw].values, np.float64)
    y = np.asarray(ds[sb].values, np.float64)
    act = str(ds.activation.values.ravel()[0])
    norm = signed_norm(lam)  # 0 in the middle, each side to its own 98th percentile
    d = dimension(lam)
    # without a dimension fit (a grid too small, no boundary) the figure is the map alone,
    # with the reason under it, instead of an empty second panel
    if d.estimate is not None:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    else:
        fig, ax = plt.subplots(figsize=(6.4, 5.0), constrained_layout=True)
    shown = clip_to_norm(lam, norm)
    mesh = ax.pcolormesh(
        x, y, shown.T, shading="nearest", cmap=colour_map("RdBu_r"), norm=norm, rasterized=True
    )
    fig.colorbar(mesh, ax=ax, label=f"λ_L (nepers per layer), L = {depth}")
    if np.nanmin(lam) < 0 < np.nanmax(lam):
        ax.contour(x, y, shown.T, levels=[0.0], colors="k", linewidths=0.6)
    yl = np.linspace(y[0], y[-1], 60)
    sw_line = theory.critical_line(np.sqrt(yl) if sb.endswith("2") else yl, act)
    ax.plot(
        sw_line**2 if sw.endswith("2") else sw_line, yl, "y--", lw=1.5, label="mean field χ1 = 1"
    )
    ax.legend(loc="upper left", fontsize=8)
    note_missing(fig, [lam])
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_xlabel(axis_label(ds, sw))
    ax.set_ylabel(axis_label(ds, sb))
    n = int(ds.width.values.ravel()[0]) if "width" in ds.coords else "?"
    ax.set_title(f"{act}, N = {n}, L = {depth}: black = boundary λ_L = 0", fontsize=9)
    if d.estimate is not None:
        plot_loglog(ax2, d, "measured")
        ax2.legend(fontsize=8)
        xl, yl = loglog_labels(d)
        ax2.set_xlabel(xl)
        ax2.set_ylabel(yl)
        ax2.set_title(f"{LABELS[d.method]}, 95 % interval: {dim_text(d)}", fontsize=9)
    else:
        reason = textwrap.fill(" ".join(no_dimension_reason(lam).split()), 70)
        ax.set_xlabel(f"{axis_label(ds, sw)}\n\n{reason}")
    return fig


def frontier_notes(ds: xr.Dataset) -> list[str]:
    """Boundary dimension, ordered share, and where λ_L first turns positive along σ_w per
    σ_b against the mean-field χ1 = 1 line (the median offset, in σ_w units)."""
    ds = widest(ds)
    lam, sw, sb, depth = lyapunov_plane(ds)
    act = str(ds.activation.values.ravel()[0])
    x = np.asarray(ds[sw].values, np.float64)
    y = np.asarray(ds[sb].values, np.float64)
    pos = lam > 0
    first = np.array(
        [x[np.argmax(pos[:, j])] if pos[:, j].any() else np.nan for j in range(y.size)]
    )
    mf = theory.critical_line(np.sqrt(y) if sb.endswith("2") else y, act)
    mf = mf**2 if sw.endswith("2") else mf
    off = first - mf
    return [
        f"frontier: {act}, L = {depth}, {x.size}x{y.size} points: ordered (λ_L <= 0) "
        f"{100 * np.mean(lam <= 0):.1f} %, boundary {dimension(lam).text()}",
        f"frontier: first λ_L > 0 along {sw} minus mean-field χ1 = 1: median "
        f"{np.nanmedian(off):+.3f}, range [{np.nanmin(off):+.3f}, {np.nanmax(off):+.3f}]"
        f" over {int(np.isfinite(off).sum())} {sb} values",
    ]


register("frontier", frontier, lambda ds, **_: frontier_notes(ds))
