"""``jacobian_density`` (Qu, Wardak & Gong 2022, Fig. 2a): the density of the eigenvalue
moduli of the layer Jacobian, the cavity theory (Eqs. 7–8) against a ``jacobian`` store's
empirical ``log_abs_hist``, one panel per α and one colour per σ_w.

Drawn per unit log10|λ| (the store's bins): the empirical share per bin over its width
(largest width, seed mean, deepest recorded layer, ``jac_kind`` ``pre`` when stored, first
activation) as markers; the theory ∫ 2π r ρ(r) dr over the same bins
(:func:`pipeline.numerics.cavity_maps.cavity_log_bin_shares`, ``samples`` cavity draws,
seed 0) as a line. The store's end bins also hold everything beyond them; they are left out
of the comparison in the notes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.figures.common import pyplot
from pipeline.figures.registry import register
from pipeline.numerics.cavity_maps import cavity_log_bin_shares

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["density_curves", "jacobian_density", "jacobian_density_notes"]

DEFAULT_SAMPLES = 20_000
"""Cavity Monte Carlo sample size of the theory lines (about 1 s per curve)."""

MAX_PANELS = 4


def _empirical(ds: xr.Dataset) -> xr.DataArray:
    """Share per log10|λ| bin over (alpha, sigma_w, log_bin) at the store's largest width."""
    h = ds["log_abs_hist"]
    sel: dict[str, Any] = {}
    if "jac_kind" in h.dims:
        sel["jac_kind"] = "pre" if "pre" in ds.jac_kind.values else ds.jac_kind.values[0]
    h = h.sel(sel).isel(layer=-1, width=-1)
    if "activation" in h.dims:
        h = h.isel(activation=0)
    return h.mean("seed").transpose("alpha", "sigma_w", "log_bin")


def _edges(centres: np.ndarray) -> np.ndarray:
    w = float(np.diff(centres).mean()) if centres.size > 1 else 1.0
    return np.concatenate([centres - w / 2, centres[-1:] + w / 2])


def density_curves(ds: xr.Dataset, samples: int = DEFAULT_SAMPLES) -> dict[str, Any]:
    """The figure's numbers: ``centres`` (K,) of log10|λ|, ``empirical`` and ``theory``
    (A, S, K) shares per bin, ``alphas`` (A,), ``sigma_ws`` (S,), ``activation``."""
    emp = _empirical(ds)
    centres = emp.log_bin.values
    edges = _edges(centres)
    act = str(ds.activation.values[0]) if "activation" in ds.coords else "tanh"
    alphas, sws = emp.alpha.values[:MAX_PANELS], emp.sigma_w.values
    theory = np.array(
        [[cavity_log_bin_shares(a, s, edges, act, n_samples=samples) for s in sws] for a in alphas]
    )
    return {"centres": centres, "edges": edges, "empirical": emp.values[: len(alphas)],
            "theory": theory, "alphas": alphas, "sigma_ws": sws, "activation": act}  # fmt: skip


def jacobian_density(ds: xr.Dataset, *, samples: int = DEFAULT_SAMPLES) -> Figure:
    """One panel per α (up to 4): density of log10|λ|, cavity lines and empirical markers."""
    plt = pyplot()
    c = density_curves(ds, samples)
    width = np.diff(c["edges"])
    n = len(c["alphas"])
    fig, axes = plt.subplots(
        1, n, figsize=(3.4 * n + 0.6, 3.6), constrained_layout=True, squeeze=False, sharey=True
    )
    colours = plt.get_cmap("tab10").colors
    for i, (ax, a) in enumerate(zip(axes[0], c["alphas"], strict=True)):
        for k, s in enumerate(c["sigma_ws"]):
            col = colours[k % len(colours)]
            ax.plot(c["centres"], c["theory"][i, k] / width, "-", color=col, lw=1.3,
                    label=f"σ_w = {s:g} cavity")  # fmt: skip
            ax.plot(c["centres"], c["empirical"][i, k] / width, "o", color=col, ms=2.5,
                    label=f"σ_w = {s:g} empirical")  # fmt: skip
        ax.set_xlabel("log10 |λ|")
        ax.set_title(f"α = {a:g}", fontsize=9)
        if i == 0:
            ax.set_ylabel("density of log10 |λ|")
    axes[0][-1].legend(fontsize=6, loc="upper left")
    layer = int(ds.layer.values[-1])
    fig.suptitle(
        f"Eigenvalue moduli of the layer-{layer} Jacobian, N = {int(ds.width.values[-1])}, "
        f"{c['activation']}: cavity ({samples} samples) vs empirical",
        fontsize=8,
    )
    return fig


def jacobian_density_notes(
    ds: xr.Dataset, *, samples: int = DEFAULT_SAMPLES, **_: Any
) -> list[str]:
    """Per (α, σ_w): Σ |empirical − cavity| share over the interior bins, and the cavity
    mass inside the bins."""
    c = density_curves(ds, samples)
    out = ["jacobian_density: L1 distance of the bin shares (interior bins), cavity mass"]
    for i, a in enumerate(c["alphas"]):
        for k, s in enumerate(c["sigma_ws"]):
            e, t = c["empirical"][i, k, 1:-1], c["theory"][i, k, 1:-1]
            mass = float(c["theory"][i, k].sum())
            out.append(
                f"jacobian_density: alpha = {a:g}, sigma_w = {s:g}: L1 "
                f"{float(np.abs(e - t).sum()):.3f}, cavity mass {mass:.3f}"
            )
    return out


register("jacobian_density", jacobian_density, jacobian_density_notes)  # options: spec.figures
