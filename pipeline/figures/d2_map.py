"""``d2_map`` (Qu, Wardak & Gong 2022, Fig. 3b, untrained networks): the mean fractal
dimension D_q of the right eigenvectors of the layer Jacobian over (α, σ_w), with both
ordered lines overlaid: the cavity line r_cut = 1 (the authors' code) and the Lévy mean-field
q* = 0.01 line (the text's rule).

D_q is the fit across widths (:func:`pipeline.analysis.multifractal.fit_dq`) when the store
has two or more widths, else the per-width estimate ⟨ln IPR_q⟩ / ((1 − q) ln N) at its width,
seed-averaged; deepest recorded layer, first activation, ``jac_kind`` ``pre`` when stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.analysis.multifractal import fit_dq, per_width_dq
from pipeline.figures.common import pyplot
from pipeline.figures.layout import colour_map, note_missing
from pipeline.figures.registry import register
from pipeline.numerics.cavity import ordered_line_rcut
from pipeline.numerics.levy import ordered_transition_sigma_w

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["d2_field", "d2_map", "d2_notes", "ordered_lines"]

CAVITY_SAMPLES = 20_000
"""Cavity Monte Carlo sample size of the overlaid r_cut = 1 line (seed 0)."""


def d2_field(ds: xr.Dataset, q: float = 2.0) -> tuple[xr.DataArray, str]:
    """(D_q over (alpha, sigma_w), how it was estimated) at the deepest layer."""
    sel: dict[str, Any] = {"q": q}
    if "jac_kind" in ds.dims:
        sel["jac_kind"] = "pre" if "pre" in ds.jac_kind.values else ds.jac_kind.values[0]
    if ds.sizes.get("width", 1) >= 2:
        d = fit_dq(ds)["dq"]
        how = f"fit across N = {', '.join(str(int(n)) for n in ds.width.values)}"
    else:
        d = per_width_dq(ds).isel(width=0).mean("seed")
        how = f"ln IPR_q / ((1 − q) ln N) at N = {int(ds.width.values[0])}"
    d = d.sel(sel).isel(layer=-1)
    if "activation" in d.dims:
        d = d.isel(activation=0)
    return d.transpose("sigma_w", "alpha"), how


def ordered_lines(alphas: np.ndarray, activation: str = "tanh") -> dict[str, np.ndarray]:
    """σ_w of both ordered lines at ``alphas``: ``cavity`` (r_cut = 1) and ``q_star``
    (q* = 0.01), each shape (len(alphas),)."""
    cav = [ordered_line_rcut(a, activation, n_samples=CAVITY_SAMPLES) for a in alphas]
    qs = [ordered_transition_sigma_w(0.0, a, activation) for a in alphas]
    return {"cavity": np.asarray(cav), "q_star": np.asarray(qs)}


def d2_map(ds: xr.Dataset, *, q: float = 2.0) -> Figure:
    """D_q map over (α, σ_w) with the two ordered lines."""
    plt = pyplot()
    d, how = d2_field(ds, q)
    alphas, sws = d.alpha.values, d.sigma_w.values
    fig, ax = plt.subplots(figsize=(6.2, 4.6), constrained_layout=True)
    mesh = ax.pcolormesh(
        alphas, sws, np.ma.masked_invalid(d.values), cmap=colour_map("viridis"), shading="nearest"
    )
    fig.colorbar(mesh, ax=ax, label=f"mean D_{q:g} of the right eigenvectors")
    act = str(ds.activation.values[0]) if "activation" in ds.coords else "tanh"
    lines = ordered_lines(alphas, act)
    ax.plot(alphas, lines["cavity"], "r-", lw=1.5, label="ordered line r_cut = 1 (cavity)")
    ax.plot(alphas, lines["q_star"], "w--", lw=1.2, label="ordered line q* = 0.01 (mean field)")
    ax.set_xlabel("α")
    ax.set_ylabel(r"$\sigma_w = D_w^{1/\alpha}$")
    ax.set_ylim(sws.min(), sws.max())
    ax.legend(fontsize=7, loc="upper right")
    layer = int(ds.layer.values[-1])
    ax.set_title(f"D_{q:g}, layer {layer} Jacobian, {how}", fontsize=8)
    note_missing(fig, [d.values])
    return fig


def d2_notes(ds: xr.Dataset, *, q: float = 2.0, **_: Any) -> list[str]:
    """D_q per α at each σ_w (rounded), and how it was estimated."""
    d, how = d2_field(ds, q)
    out = [f"d2_map: D_{q:g} ({how})"]
    for a in d.alpha.values:
        vals = np.round(d.sel(alpha=a).values, 3).tolist()
        out.append(f"d2_map: alpha = {a:g}: " + ", ".join(map(str, vals)))
    return out


register("d2_map", d2_map, d2_notes)  # options: spec.figures
