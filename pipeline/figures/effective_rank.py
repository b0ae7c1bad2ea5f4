"""``effective_rank`` (the effective-dimension note): rank of a batch vs depth in relu nets.

Numerical rank and participation ratio of a batch of m inputs vs layer ℓ, per width N, against
the note's claim m[1 − (1 − 2/π)^ℓ] and its "revival" depths.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.figures.common import first_values, pyplot
from pipeline.figures.registry import register

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "RHO_NOTE",
    "claimed_effective_dimension",
    "effective_rank",
    "effective_rank_notes",
    "revival_depths",
    "revival_peaks",
]

RHO_NOTE = 0.3634
"""The note's per-layer decay ratio of the rank deficit (the effective-dimension note)."""


def claimed_effective_dimension(m: int, layers: np.ndarray) -> np.ndarray:
    """The note's claim: expected effective dimension ``m[1 − (1 − 2/π)^ℓ]``."""
    return m * (1.0 - (1.0 - 2.0 / math.pi) ** np.asarray(layers, np.float64))


def revival_depths(max_layer: int, rho: float = RHO_NOTE) -> np.ndarray:
    """The note's revival depths ℓ*_k ≈ (k + ½)π / log(1/ρ) up to ``max_layer``."""
    step = math.pi / math.log(1.0 / rho)
    k = np.arange(0, int(max_layer / step) + 2)
    out = (k + 0.5) * step
    return out[out <= max_layer]


def _batch_m(ds: xr.Dataset) -> int:
    spec = ds.attrs.get("sweep_spec", {})
    return int(spec.get("probes", {}).get("batch", {}).get("m", 0)) or int(
        np.nanmax(ds.eff_rank.values)
    )


def _batch_curves(ds: xr.Dataset, var: str) -> xr.DataArray:
    """(width, seed, layer) curves of ``var`` at the first α, activation, σ_w, σ_b."""
    da = first_values(ds[var], ("width",))
    return da.transpose("width", "seed", "layer")


def revival_peaks(ds: xr.Dataset, var: str = "participation_ratio") -> dict[int, list[int]]:
    """Per width: interior layers where the seed-mean of ``var`` is a local maximum that
    stands above both neighbours by more than two standard errors (a "revival")."""
    da = _batch_curves(ds, var)
    out: dict[int, list[int]] = {}
    layers = np.asarray(ds.layer.values)
    for n in da.width.values:
        v = np.asarray(da.sel(width=n).values, np.float64)  # (seed, layer)
        mean = np.nanmean(v, axis=0)
        sem = np.nanstd(v, axis=0) / math.sqrt(max(1, v.shape[0]))
        peaks = []
        for i in range(1, len(layers) - 1):
            margin = 2.0 * math.hypot(sem[i], max(sem[i - 1], sem[i + 1]))
            if mean[i] - max(mean[i - 1], mean[i + 1]) > max(margin, 1e-12):
                peaks.append(int(layers[i]))
        out[int(n)] = peaks
    return out


def effective_rank(ds: xr.Dataset, *, rho: float = RHO_NOTE) -> Figure:
    """Numerical rank / m and participation ratio / m vs layer, per width, against the
    note's m[1 − (1 − 2/π)^ℓ] and revival depths."""
    plt = pyplot()
    m = _batch_m(ds)
    layers = np.asarray(ds.layer.values, np.float64)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colours = plt.cm.viridis(np.linspace(0.1, 0.85, ds.sizes.get("width", 1)))
    for ax, var, label in (
        (ax1, "eff_rank", "numerical rank / m"),
        (ax2, "participation_ratio", "participation ratio (Σσ²)²/Σσ⁴ / m"),
    ):
        da = _batch_curves(ds, var) / m
        for colour, n in zip(colours, da.width.values, strict=True):
            v = da.sel(width=n)
            mean, std = v.mean("seed").values, v.std("seed").values
            ax.plot(layers, mean, "-o", ms=2.5, color=colour, label=f"measured, N = {int(n)}")
            ax.fill_between(layers, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        ax.plot(
            layers,
            claimed_effective_dimension(m, layers) / m,
            "k--",
            lw=1.2,
            label="claimed m[1 − (1 − 2/π)^ℓ] / m",
        )
        for i, lstar in enumerate(revival_depths(int(layers.max()), rho)):
            ax.axvline(
                lstar,
                color="gray",
                ls=":",
                lw=0.8,
                label="claimed revival depths ℓ*" if i == 0 else None,
            )
        ax.set_xlabel("layer ℓ")
        ax.set_ylabel(label)
        ax.set_xlim(0, layers.max() + 0.5)
    ax1.set_ylim(0, 1.08)
    ax2.set_yscale("log")
    ax1.legend(fontsize=7, loc="lower right")
    ax1.set_title(f"relu, batch of m = {m} inputs, mean ± std over seeds", fontsize=9)
    ax2.set_title("participation ratio of the batch's singular values", fontsize=9)
    return fig


def effective_rank_notes(ds: xr.Dataset, **_: Any) -> list[str]:
    """Rank/m and PR/m at a few layers per width, the claim, and significant revival peaks."""
    m = _batch_m(ds)
    rank = _batch_curves(ds, "eff_rank").mean("seed")
    pr = _batch_curves(ds, "participation_ratio").mean("seed")
    out = []
    for n in rank.width.values:
        r, p = rank.sel(width=n).values, pr.sel(width=n).values
        ls = np.asarray(ds.layer.values)
        pick = [i for i, v in enumerate(ls) if v in (1, 2, 5, 10, int(ls.max()))]
        out.append(
            f"effective_rank: N = {int(n)}, m = {m}: rank/m "
            + ", ".join(f"l{ls[i]}={r[i] / m:.3f}" for i in pick)
            + "; PR/m "
            + ", ".join(f"l{ls[i]}={p[i] / m:.3f}" for i in pick)
        )
    claim = claimed_effective_dimension(m, np.array([1, 2, 5])) / m
    out.append(f"effective_rank: claimed rank/m at l1, l2, l5: {np.round(claim, 3).tolist()}")
    out.append(f"effective_rank: significant PR revival peaks: {revival_peaks(ds)}")
    out.append(f"effective_rank: significant rank revival peaks: {revival_peaks(ds, 'eff_rank')}")
    return out


register("effective_rank", effective_rank, effective_rank_notes)  # options: spec.figures
