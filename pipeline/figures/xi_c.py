"""``xi_c_map`` (Schoenholz et al. 2016): the correlation depth scale ξ_c over (σ_w², σ_b²).

ξ_c is measured per point from the decay |c_l − c*| ∝ exp(−l/ξ_c) (:func:`fit_xi_c`) and
drawn beside the mean-field ξ_c contours and the critical line χ1 = 1; a second panel plots
measured against mean-field ξ_c.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.figures.common import first_values, pyplot, sigma_axis, widest
from pipeline.figures.layout import colour_map, note_missing
from pipeline.figures.registry import register
from pipeline.numerics import theory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["NO_FIT_COLOUR", "NO_FIT_LABEL", "fit_xi_c", "xi_c_map", "xi_c_notes"]

NO_FIT_COLOUR = "#d9d9d9"
"""Light grey: a point with data but no ξ_c fit (unlike the missing-data grey)."""
NO_FIT_LABEL = "no fit: |c_l − c*| under the noise floor within 3 layers"


def fit_xi_c(ds: xr.Dataset, *, fit_from: int = 1, c_star: np.ndarray | None = None) -> xr.Dataset:
    """Measured ξ_c over the (σ_w, σ_b) plane of the widest network, α = 2.

    Per point, c_l is averaged over seeds and ``d_l = |c̄_l − c*|`` with c* from
    :func:`pipeline.theory.c_star` (or ``c_star``, shape (n_w, n_b)). The fit is least
    squares of log d_l on l over the layers ``l >= fit_from`` up to the first one where
    d_l falls below a floor: ``100·eps`` of the dtype where c* = 1 (the pair merges
    deterministically), ``4/√(N·seeds)`` where c* < 1 (finite-N fluctuations of c̄ around
    c*); ``ξ_c = −1/slope``. Fewer than 3 usable layers,
    or no decay: NaN. Returns ``xi_c``, ``n_fit`` (layers used) and ``has_data`` (False
    where c is missing, e.g. a chunk not computed) over the two σ dims.
    """
    ds = widest(ds)
    if "alpha" in ds.dims:
        ds = ds.sel(alpha=2.0) if 2.0 in ds.alpha.values else ds.isel(alpha=-1)
    sw_dim, sw2 = sigma_axis(ds, "w")
    sb_dim, sb2 = sigma_axis(ds, "b")
    c = first_values(ds.c, (sw_dim, sb_dim)).transpose("seed", sw_dim, sb_dim, "layer")
    act = str(ds.activation.values.ravel()[0]) if "activation" in ds.coords else "tanh"
    cbar = np.asarray(c.mean("seed").values, np.float64)
    if c_star is None:
        c_star = np.asarray(theory.c_star(np.sqrt(sw2)[:, None], np.sqrt(sb2)[None, :], act))
    d = np.abs(cbar - c_star[..., None])
    layers = np.asarray(ds.layer.values, np.float64)
    n = int(ds.width.values) if "width" in ds.coords else 1
    # Ordered side (c* = 1): the pair merges deterministically, so 1 − c decays down to the
    # dtype's resolution. Chaotic side (c* < 1): c̄ fluctuates around c* by ~1/√(N·seeds).
    noise = 4.0 / math.sqrt(n * c.sizes["seed"])
    floor = np.where(c_star >= 1.0, 100 * np.finfo(c.dtype).eps, noise)[..., None]
    usable = (d > floor) & np.isfinite(d) & (layers >= fit_from)
    # the leading run of usable layers only (after the first drop, d is noise)
    started = np.cumsum(layers >= fit_from, axis=-1) > 0
    run = np.cumprod(usable | ~started, axis=-1).astype(bool) & usable
    k = run.sum(-1)
    y = np.log(np.where(run, d, 1.0))
    x = np.where(run, layers, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = x.sum(-1) / k
        ym = y.sum(-1) / k
        sxy = (np.where(run, (x - xm[..., None]) * (y - ym[..., None]), 0.0)).sum(-1)
        sxx = (np.where(run, (x - xm[..., None]) ** 2, 0.0)).sum(-1)
        slope = sxy / sxx
        xi = np.where(slope < 0, -1.0 / slope, np.inf)
    xi = np.where((k >= 3) & np.isfinite(c_star), xi, np.nan)
    coords = {sw_dim: ds[sw_dim].values, sb_dim: ds[sb_dim].values}
    return xr.Dataset(
        {
            "xi_c": ((sw_dim, sb_dim), xi, {"long_name": "measured ξ_c", "units": "layers"}),
            "n_fit": ((sw_dim, sb_dim), k, {"long_name": "layers in the fit", "units": "1"}),
            "c_star": ((sw_dim, sb_dim), c_star, {"long_name": "mean-field c*", "units": "1"}),
            "has_data": (
                (sw_dim, sb_dim),
                np.isfinite(cbar).any(-1),
                {"long_name": "whether the point has any finite seed-mean c"},
            ),
        },
        coords=coords,
    )


def _theory_grid(values: np.ndarray, points: int) -> np.ndarray:
    return values if values.size <= points else np.linspace(values[0], values[-1], points)


def xi_c_map(
    ds: xr.Dataset,
    *,
    fit_from: int = 1,
    theory_points: int = 40,
    xi_levels: Sequence[float] = (2, 5, 10, 20, 50, 100),
) -> Figure:
    """Measured ξ_c over (σ_w², σ_b²) with mean-field ξ_c contours and the critical line."""
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.patches import Patch

    plt = pyplot()
    fit = fit_xi_c(ds, fit_from=fit_from)
    sw_dim, sw2 = sigma_axis(fit, "w")
    sb_dim, sb2 = sigma_axis(fit, "b")
    act = str(ds.activation.values.ravel()[0]) if "activation" in ds.coords else "tanh"
    depth = int(ds.layer.values.max())
    xi = np.asarray(fit.xi_c.values, np.float64)
    shown = np.clip(np.where(np.isinf(xi), 10 * depth, xi), 0.5, 10 * depth)

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    finite = shown[np.isfinite(shown)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.5, 10 * depth)
    norm = LogNorm(vmin=max(0.5, lo), vmax=max(1.0, hi))
    mesh = ax.pcolormesh(
        sw2, sb2, shown.T, shading="nearest", norm=norm, cmap=colour_map("viridis")
    )
    fig.colorbar(mesh, ax=ax, label="measured ξ_c (layers)")
    # cells with data but no fit (the decay leaves the noise floor within 3 layers, or
    # never starts) get their own colour; cells without data the missing-data grey
    has_data = np.asarray(fit.has_data.values, bool)
    no_fit = has_data & ~np.isfinite(xi)
    handles = []
    if no_fit.any():
        ax.pcolormesh(
            sw2,
            sb2,
            np.ma.masked_where(~no_fit, np.zeros_like(xi)).T,
            shading="nearest",
            cmap=ListedColormap([NO_FIT_COLOUR]),
        )
        handles.append(Patch(facecolor=NO_FIT_COLOUR, edgecolor="k", lw=0.5, label=NO_FIT_LABEL))
    note_missing(fig, [np.where(has_data, 0.0, np.nan)])
    tw = _theory_grid(sw2, theory_points)
    tb = _theory_grid(sb2, theory_points)
    xi_th = np.asarray(theory.xi_c(np.sqrt(tw)[:, None], np.sqrt(tb)[None, :], act), float)
    levels = [v for v in xi_levels if v < 1e6]
    cs = ax.contour(
        tw,
        tb,
        np.where(np.isfinite(xi_th), xi_th, 1e6).T,
        levels=levels,
        colors="white",
        linewidths=0.8,
    )
    ax.clabel(cs, fmt="%g", fontsize=7)
    sb_line = np.linspace(sb2[0], sb2[-1], 60)
    crit = theory.critical_line(np.sqrt(sb_line), act) ** 2
    ax.plot(crit, sb_line, "r--", lw=1.5, label="mean field χ1 = 1")
    ax.set_xlim(sw2[0], sw2[-1])
    ax.set_ylim(sb2[0], sb2[-1])
    ax.set_xlabel("weight variance σ_w²")
    ax.set_ylabel("bias variance σ_b²")
    n = int(ds.width.max()) if "width" in ds.dims else "?"
    ax.set_title(f"ξ_c from |c_l − c*| ∝ exp(−l/ξ_c), {act}, N = {n}, L = {depth}", fontsize=9)
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], *handles], loc="upper left", fontsize=7)

    xi_mf = np.asarray(theory.xi_c(np.sqrt(sw2)[:, None], np.sqrt(sb2)[None, :], act), float)
    ok = np.isfinite(xi) & np.isfinite(xi_mf)
    ax2.loglog(xi_mf[ok], xi[ok], "o", ms=3, alpha=0.7)
    lim = [0.5, 10 * depth]
    ax2.plot(lim, lim, "k-", lw=0.8, label="measured = mean field")
    ax2.axhline(depth, color="gray", ls=":", lw=0.8, label=f"depth L = {depth}")
    ax2.set_xlabel("mean-field ξ_c (layers)")
    ax2.set_ylabel("measured ξ_c (layers)")
    ax2.set_title("per grid point", fontsize=9)
    ax2.legend(fontsize=8)
    return fig


def xi_c_notes(ds: xr.Dataset, *, fit_from: int = 1, **_: Any) -> list[str]:
    """Measured / mean-field ξ_c over the points with mean-field ξ_c < L/3."""
    fit = fit_xi_c(ds, fit_from=fit_from)
    _, sw2 = sigma_axis(fit, "w")
    _, sb2 = sigma_axis(fit, "b")
    act = str(ds.activation.values.ravel()[0])
    mf = np.asarray(theory.xi_c(np.sqrt(sw2)[:, None], np.sqrt(sb2)[None, :], act), float)
    xi = fit.xi_c.values
    ok = np.isfinite(xi) & np.isfinite(mf) & (mf < int(ds.layer.max()) / 3)
    ratio = xi[ok] / mf[ok]
    if not ok.any():
        return ["xi_c: no point with a finite fit and mean-field ξ_c < L/3"]
    q = np.percentile(ratio, [25, 50, 75])
    return [
        f"xi_c: {int(ok.sum())} points with mean-field ξ_c < L/3; measured / mean field: "
        f"median {q[1]:.3f} (quartiles {q[0]:.3f}, {q[2]:.3f})",
        f"xi_c: largest measured {np.nanmax(np.where(np.isinf(xi), np.nan, xi)):.1f} layers",
    ]


register("xi_c_map", xi_c_map, xi_c_notes)  # options: pipeline.spec.figures
