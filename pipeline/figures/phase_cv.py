"""``phase_cv`` (Qu, Wardak & Gong 2022, Fig. 5): CV of a propagated circle over (α, σ_w).

The coefficient of variation of neighbour distances on a propagated circle over
(α, σ_w = D_w^{1/α}) at chosen layers, with the Lévy mean-field ordered line
(:func:`ordered_line`) and the Gaussian edge of chaos (α, σ_w) = (2, 1); a last panel with
the finite-depth Lyapunov exponent λ_L when the store has the pair probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.figures.common import clip_to_norm, first_values, pyplot, signed_norm, widest
from pipeline.figures.layout import colour_map, note_missing
from pipeline.figures.registry import register
from pipeline.numerics.levy import ordered_transition_sigma_w
from pipeline.run.analyze import stored_experiment

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ordered_line", "phase_cv", "phase_cv_notes"]


def ordered_line(
    alphas: Sequence[float] | np.ndarray,
    activation: str = "tanh",
    *,
    sigma_b: float = 0.0,
    threshold: float = 0.01,
) -> np.ndarray:
    """The Lévy mean-field ordered transition σ_w(α), where q* reaches ``threshold``, per α
    (:func:`pipeline.numerics.levy.ordered_transition_sigma_w` in closed form); NaN where
    σ_b^α ≥ threshold."""
    return np.asarray(
        [
            ordered_transition_sigma_w(sigma_b, float(a), activation, threshold=threshold)
            for a in np.asarray(alphas, np.float64).ravel()
        ]
    )


def _nearest_layers(ds: xr.Dataset, wanted: Sequence[int]) -> list[int]:
    have = np.asarray(ds.layer.values)
    return sorted({int(have[np.argmin(np.abs(have - w))]) for w in wanted})


def phase_cv(
    ds: xr.Dataset, *, layers: Sequence[int] = (15, 25, 35), threshold: float = 0.01
) -> Figure:
    """CV maps over (α, σ_w) at ``layers`` with the Lévy ordered line; λ_L if present."""
    plt = pyplot()
    ds = widest(ds)
    cv = first_values(ds.cv, ("alpha", "sigma_w")).mean("seed")
    cv = cv.transpose("alpha", "sigma_w", "layer")
    alpha = np.asarray(ds.alpha.values, np.float64)
    sw = np.asarray(ds.sigma_w.values, np.float64)
    act = str(ds.activation.values.ravel()[0])
    shown = _nearest_layers(ds, layers)
    exp = stored_experiment(ds)
    has_lyap = exp.has_critical_regime(ds)  # λ_L, the experiment's signed field, is there
    npan = len(shown) + has_lyap
    fig, axes = plt.subplots(
        1, npan, figsize=(3.9 * npan, 4.0), constrained_layout=True, squeeze=False
    )
    axes = axes[0]
    a_line = np.linspace(alpha.min(), alpha.max(), 21) if alpha.size > 1 else alpha
    line = ordered_line(a_line, act, threshold=threshold)
    drawn_cv = cv.sel(layer=shown).values
    finite = drawn_cv[np.isfinite(drawn_cv)]
    # robust: the 99th percentile, so a few huge CVs do not flatten the rest of the map
    vmax = float(np.percentile(finite, 99)) if finite.size and np.percentile(finite, 99) > 0 else 1
    n = int(ds.width.values) if "width" in ds.coords else "?"

    def overlay(ax: Any) -> None:
        ax.plot(a_line, line, "r-", lw=1.5, label=f"Lévy MF ordered line (q* = {threshold:g})")
        ax.plot([2.0], [1.0], "w*", ms=10, mec="k", label="edge of chaos (2, 1)")
        ax.set_xlabel("tail index α")
        ax.set_ylabel("weight scale σ_w = D_w^(1/α)")
        ax.set_ylim(sw.min(), sw.max())

    for ax, layer in zip(axes, shown, strict=False):
        mesh = ax.pcolormesh(
            alpha,
            sw,
            cv.sel(layer=layer).values.T,
            shading="nearest",
            cmap=colour_map("magma"),
            vmin=0,
            vmax=vmax,
        )
        fig.colorbar(mesh, ax=ax, label="CV of Δh(θ) at layer l")
        overlay(ax)
        ax.set_title(f"layer l = {layer}", fontsize=9)
    axes[0].legend(loc="upper left", fontsize=7)
    drawn = [cv.sel(layer=layer).values for layer in shown]
    if has_lyap:
        ax = axes[-1]
        last = int(ds.layer.values.max())
        lam = first_values(exp.signed_field(None, ds), ("alpha", "sigma_w")).mean("seed")
        lam = lam.transpose("alpha", "sigma_w").values
        norm = signed_norm(lam)  # 0 in the middle, each side to its own 98th percentile
        shown = clip_to_norm(lam, norm)
        mesh = ax.pcolormesh(
            alpha, sw, shown.T, shading="nearest", cmap=colour_map("RdBu_r"), norm=norm
        )
        fig.colorbar(mesh, ax=ax, label=f"{exp.display_label}, L = {last}")
        if alpha.size > 1 and sw.size > 1 and np.nanmin(lam) < 0 < np.nanmax(lam):
            ax.contour(alpha, sw, shown.T, levels=[0.0], colors="k", linewidths=1)
        overlay(ax)
        ax.set_title("finite-depth Lyapunov exponent\n(black: λ_L = 0)", fontsize=9)
        drawn.append(lam)
    note_missing(fig, drawn)
    fig.suptitle(f"{act}, N = {n}, σ_b = 0, mean over {ds.sizes.get('seed', 1)} seeds", fontsize=10)
    return fig


def phase_cv_notes(ds: xr.Dataset, *, layers: Sequence[int] = (15, 25, 35), **_: Any) -> list[str]:
    """Where the CV peaks at each drawn layer, and the Lévy ordered line per α."""
    ds1 = widest(ds)
    cv = first_values(ds1.cv, ("alpha", "sigma_w")).mean("seed")
    out = []
    for layer in _nearest_layers(ds1, layers):
        c = cv.sel(layer=layer)
        i = np.unravel_index(int(np.nanargmax(c.values)), c.shape)
        a, s = (
            float(c.alpha[i[c.dims.index("alpha")]]),
            float(c.sigma_w[i[c.dims.index("sigma_w")]]),
        )
        out.append(f"cv: layer {layer}: max {float(c.max()):.3f} at α = {a:g}, σ_w = {s:g}")
    alphas = np.asarray(ds1.alpha.values)
    line = ordered_line(alphas, str(ds1.activation.values.ravel()[0]))
    pairs = ", ".join(f"{a:g}: {v:.3f}" for a, v in zip(alphas, line, strict=True))
    out.append(f"cv: Lévy ordered line σ_w(α) = {pairs}")
    return out


register("phase_cv", phase_cv, phase_cv_notes)  # options: pipeline.spec.figures
