"""``l_map`` (Qu, Wardak & Gong 2022, Fig. 2b): over an α × σ_w theory grid, the largest
L ≤ 6 for which the cavity Jacobian average J_{f1,L} (f_1(r) = sgn(log r)|log r|^L) exceeds
its value on the ordered line at the same α, with both ordered lines: the cavity line
r_cut = 1 (the authors' code, the reference of ΔJ) and the mean-field q* = 0.01 line.

The map is theory (:func:`pipeline.numerics.cavity_maps.l_map`); its grid is the figure's
options: α from 1 to 2 by ``alpha_step``, σ_w from ``sigma_w_step`` to 3 by
``sigma_w_step``, ``samples`` cavity draws per point (seed 0). The default (0.25, 0.25,
10 000: 5 × 12 points) draws in about a minute; the paper's grid (0.05, 0.05, 100 000:
21 × 60 points) takes ~3 h of one core. The store (a ``jacobian`` sweep) adds its own
points as circles coloured by the empirical largest L, with ΔJ taken against ``j_f1``
interpolated along the store's σ_w axis at the cavity line (points whose α is not on the
theory grid, or whose σ_w axis does not bracket the line, are left out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.figures.common import pyplot
from pipeline.figures.layout import colour_map, note_missing
from pipeline.figures.registry import register
from pipeline.numerics.cavity_maps import MAX_POWER, l_map, largest_power
from pipeline.numerics.levy import ordered_transition_sigma_w

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["empirical_largest", "l_map_figure", "l_map_notes", "theory_grid"]

DEFAULTS = {"alpha_step": 0.25, "sigma_w_step": 0.25, "samples": 10_000}


def theory_grid(alpha_step: float, sigma_w_step: float) -> tuple[np.ndarray, np.ndarray]:
    """(α from 1 to 2 by ``alpha_step``, σ_w from ``sigma_w_step`` to 3 by ``sigma_w_step``)."""
    a = np.round(np.arange(1.0, 2.0 + 1e-9, alpha_step), 10)
    s = np.round(np.arange(sigma_w_step, 3.0 + 1e-9, sigma_w_step), 10)
    return a, s


def _activation(ds: xr.Dataset) -> str:
    return str(ds.activation.values[0]) if "activation" in ds.coords else "tanh"


def _theory(ds: xr.Dataset, alpha_step: float, sigma_w_step: float, samples: int) -> dict:
    a, s = theory_grid(alpha_step, sigma_w_step)
    act = _activation(ds)
    out = l_map(a, s, act, n_samples=samples)
    out["q_star"] = np.array([ordered_transition_sigma_w(0.0, x, act) for x in a])
    return {**out, "alphas": a, "sigma_ws": s, "activation": act}


def empirical_largest(ds: xr.Dataset, line: dict[float, float]) -> xr.DataArray:
    """The empirical largest L over the store's (alpha, sigma_w) (largest width, seed mean,
    deepest layer, ``jac_kind`` pre, first activation): ΔJ = j_f1 − j_f1 linearly
    interpolated along σ_w at ``line[α]`` (the cavity line); NaN where α is not in ``line``
    or the σ_w axis does not bracket it."""
    j = ds["j_f1"]
    sel: dict[str, Any] = {}
    if "jac_kind" in j.dims:
        sel["jac_kind"] = "pre" if "pre" in ds.jac_kind.values else ds.jac_kind.values[0]
    j = j.sel(sel).isel(layer=-1, width=-1)
    if "activation" in j.dims:
        j = j.isel(activation=0)
    j = j.mean("seed").transpose("alpha", "sigma_w", "power")
    sws = j.sigma_w.values
    out = np.full(j.shape[:2], np.nan)
    for i, a in enumerate(j.alpha.values):
        ref = line.get(round(float(a), 10), np.nan)
        if not (sws.min() <= ref <= sws.max()):
            continue
        at = np.array([np.interp(ref, sws, j.values[i, :, p]) for p in range(j.shape[-1])])
        out[i] = largest_power(j.values[i] - at[None, :])
    return xr.DataArray(out, dims=("alpha", "sigma_w"), coords={"alpha": j.alpha,
                        "sigma_w": j.sigma_w})  # fmt: skip


def l_map_figure(
    ds: xr.Dataset,
    *,
    alpha_step: float = DEFAULTS["alpha_step"],
    sigma_w_step: float = DEFAULTS["sigma_w_step"],
    samples: int = DEFAULTS["samples"],
) -> Figure:
    """The L-map with both ordered lines and the store's empirical points."""
    from matplotlib.colors import BoundaryNorm

    plt = pyplot()
    t = _theory(ds, alpha_step, sigma_w_step, int(samples))
    a, s = t["alphas"], t["sigma_ws"]
    cmap = colour_map("viridis").resampled(MAX_POWER + 1)
    norm = BoundaryNorm(np.arange(-0.5, MAX_POWER + 1), cmap.N)
    fig, ax = plt.subplots(figsize=(6.2, 4.6), constrained_layout=True)
    mesh = ax.pcolormesh(a, s, np.ma.masked_invalid(t["largest"].T), cmap=cmap, norm=norm,
                         shading="nearest")  # fmt: skip
    bar = fig.colorbar(mesh, ax=ax, ticks=range(MAX_POWER + 1))
    bar.set_label("largest L ≤ 6 with J_f1,L > J_f1,L on the red line")
    ax.plot(a, t["line"], "r-", lw=1.5, label="ordered line r_cut = 1 (cavity)")
    ax.plot(a, t["q_star"], "w--", lw=1.2, label="ordered line q* = 0.01 (mean field)")
    drawn = [t["largest"]]
    if "j_f1" in ds:
        emp = empirical_largest(ds, dict(zip(np.round(a, 10), t["line"], strict=True)))
        aa, ss = np.meshgrid(emp.alpha.values, emp.sigma_w.values, indexing="ij")
        inside = (ss >= s.min()) & (ss <= s.max()) & (aa >= a.min()) & (aa <= a.max())
        if inside.any():
            ax.scatter(aa[inside], ss[inside], c=emp.values[inside], cmap=cmap, norm=norm, s=36,
                       edgecolors="w", linewidths=0.8, label="empirical (store)")  # fmt: skip
    ax.set_xlabel("α")
    ax.set_ylabel(r"$\sigma_w = D_w^{1/\alpha}$")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(
        f"Jacobian averages vs the ordered line, {t['activation']}, cavity {int(samples)} "
        f"samples, grid {alpha_step:g} × {sigma_w_step:g}",
        fontsize=8,
    )
    note_missing(fig, drawn)
    return fig


def l_map_notes(
    ds: xr.Dataset,
    *,
    alpha_step: float = DEFAULTS["alpha_step"],
    sigma_w_step: float = DEFAULTS["sigma_w_step"],
    samples: int = DEFAULTS["samples"],
    **_: Any,
) -> list[str]:
    """Both ordered lines and the largest L per α (along σ_w), and ΔJ_log nearest σ_w 1.5."""
    t = _theory(ds, alpha_step, sigma_w_step, int(samples))
    k = int(np.argmin(np.abs(t["sigma_ws"] - 1.5)))
    out = [f"l_map: cavity {int(samples)} samples, grid {alpha_step:g} × {sigma_w_step:g}"]
    for i, a in enumerate(t["alphas"]):
        ls = ",".join("-" if np.isnan(v) else str(int(v)) for v in t["largest"][i])
        out.append(
            f"l_map: alpha = {a:g}: line r_cut=1 {t['line'][i]:.3f}, q*=0.01 "
            f"{t['q_star'][i]:.3f}; dJ_log(sigma_w = {t['sigma_ws'][k]:g}) "
            f"{t['delta'][i, k, 0]:.3f}; largest L along sigma_w: {ls}"
        )
    return out


register("l_map", l_map_figure, l_map_notes)  # options: spec.figures
