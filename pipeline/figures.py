"""Paper figures drawn from a sweep store alone (``sweep figures STORE``).

A workflow's ``figure:`` entry (kept in the store's spec attrs) names a *kind* and its
options; each kind is a small function from the store's ``xarray.Dataset`` to a matplotlib
``Figure``, with the papers' variable names on the axes and the mean-field theory overlaid:

``xi_c_map`` (Schoenholz et al. 2016)
    the correlation depth scale ξ_c measured per (σ_w², σ_b²) point from the decay
    |c_l − c*| ∝ exp(−l/ξ_c) (:func:`fit_xi_c`), beside the mean-field ξ_c contours and the
    critical line χ1 = 1; second panel: measured against mean-field ξ_c.
``phase_cv`` (Qu, Wardak & Gong 2022, Fig. 5)
    the coefficient of variation of neighbour distances on a propagated circle over
    (α, σ_w = D_w^{1/α}) at chosen layers, with the Lévy mean-field ordered line
    (:func:`ordered_line`) and the Gaussian edge of chaos (α, σ_w) = (2, 1); a last panel
    with the finite-depth Lyapunov exponent λ_L when the store has the pair probe.
``effective_rank`` (seed 001, effective-dimension note)
    numerical rank and participation ratio of a batch of m inputs vs layer ℓ in relu nets,
    per width N, against the note's claim m[1 − (1 − 2/π)^ℓ] and its "revival" depths.
``frontier`` (D'Inverno et al. 2025, seed 000)
    the finite-depth Lyapunov exponent λ_L over (σ_w, σ_b) with its sign boundary and the
    mean-field line χ1 = 1; box counts of the boundary with the dimension and 95 % interval.
``trainability_grid`` (Sohl-Dickstein 2024, seed 002)
    one trainability image per (width, activation): sign(score)·log(1 + |score|) on a
    diverging map over (log10 lr_in, log10 lr_out), converged share and boundary dimension.
``eps_panel`` (seed 002, Fig. 4)
    one trainability image per weight perturbation ε, with the share of flipped pixels.

A *zoom store* (``sweep zoom``) is drawn as ``zoom_frames`` (:func:`render_zoom`): the frames
side by side, each with its window and box-counting dimension, and the log N vs log s of
every frame with the Sohl-Dickstein estimator pooled over the sequence.

matplotlib is imported only when drawing (the ``plot`` extra); everything else here (the
fits, the theory lines) is plain NumPy and usable without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.zoom import is_zoom_store

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FIGURE_KINDS",
    "claimed_effective_dimension",
    "draw",
    "effective_rank",
    "eps_panel",
    "figure_notes",
    "fit_xi_c",
    "frontier",
    "frontier_notes",
    "default_out_dir",
    "is_zoom_store",
    "ordered_line",
    "phase_cv",
    "render_store",
    "render_zoom",
    "revival_depths",
    "revival_peaks",
    "signed_log",
    "store_notes",
    "trainability_grid",
    "xi_c_map",
    "zoom_fields",
    "zoom_frames",
    "zoom_notes",
]

# kind -> option names (checked by pipeline.workflow without importing matplotlib)
FIGURE_KINDS: dict[str, tuple[str, ...]] = {
    "xi_c_map": ("fit_from", "theory_points", "xi_levels"),
    "phase_cv": ("layers", "threshold"),
    "effective_rank": ("rho",),
    "frontier": (),
    "trainability_grid": (),
    "eps_panel": (),
}

RHO_NOTE = 0.3634
"""The note's per-layer decay ratio of the rank deficit (seed 001)."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "sweep figures needs matplotlib: install the 'plot' extra "
            "(pip install -e \".[plot]\" or pip install 'phase-sweep[plot]')"
        ) from e
    return plt


# ---------------------------------------------------------------------------------------------
# Selections
# ---------------------------------------------------------------------------------------------


def _first(da: xr.DataArray, keep: Sequence[str]) -> xr.DataArray:
    """Select the first value along every length-1-or-more dim not in ``keep`` except
    ``seed`` (averaged by the callers) and ``layer``."""
    for d in list(da.dims):
        if d not in keep and d not in ("seed", "layer"):
            da = da.isel({d: 0})
    return da


def _sigma_axis(ds: xr.Dataset, base: str) -> tuple[str, np.ndarray]:
    """(dim name, variances) of the weight (``base='w'``) or bias axis."""
    sq = f"sigma_{base}2"
    if sq in ds.dims:
        return sq, np.asarray(ds[sq].values, np.float64)
    return f"sigma_{base}", np.asarray(ds[f"sigma_{base}"].values, np.float64) ** 2


def _widest(ds: xr.Dataset) -> xr.Dataset:
    return ds.sel(width=int(ds.width.max())) if "width" in ds.dims else ds


# ---------------------------------------------------------------------------------------------
# Schoenholz et al. 2016: the depth scale ξ_c
# ---------------------------------------------------------------------------------------------


def fit_xi_c(ds: xr.Dataset, *, fit_from: int = 1, c_star: np.ndarray | None = None) -> xr.Dataset:
    """Measured ξ_c over the (σ_w, σ_b) plane of the widest network, α = 2.

    Per point, c_l is averaged over seeds and ``d_l = |c̄_l − c*|`` with c* from
    :func:`pipeline.theory.c_star` (or ``c_star``, shape (n_w, n_b)). The fit is least
    squares of log d_l on l over the layers ``l >= fit_from`` up to the first one where
    d_l falls below a floor: ``100·eps`` of the dtype where c* = 1 (the pair merges
    deterministically), ``4/√(N·seeds)`` where c* < 1 (finite-N fluctuations of c̄ around
    c*); ``ξ_c = −1/slope``. Fewer than 3 usable layers,
    or no decay: NaN. Returns ``xi_c`` and ``n_fit`` (layers used) over the two σ dims.
    """
    from pipeline import theory

    ds = _widest(ds)
    if "alpha" in ds.dims:
        ds = ds.sel(alpha=2.0) if 2.0 in ds.alpha.values else ds.isel(alpha=-1)
    sw_dim, sw2 = _sigma_axis(ds, "w")
    sb_dim, sb2 = _sigma_axis(ds, "b")
    c = _first(ds.c, (sw_dim, sb_dim)).transpose("seed", sw_dim, sb_dim, "layer")
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
    from matplotlib.colors import LogNorm

    from pipeline import theory

    plt = _pyplot()
    fit = fit_xi_c(ds, fit_from=fit_from)
    sw_dim, sw2 = _sigma_axis(fit, "w")
    sb_dim, sb2 = _sigma_axis(fit, "b")
    act = str(ds.activation.values.ravel()[0]) if "activation" in ds.coords else "tanh"
    depth = int(ds.layer.values.max())
    xi = np.asarray(fit.xi_c.values, np.float64)
    shown = np.clip(np.where(np.isinf(xi), 10 * depth, xi), 0.5, 10 * depth)

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    norm = LogNorm(vmin=max(0.5, np.nanmin(shown)), vmax=max(1.0, np.nanmax(shown)))
    mesh = ax.pcolormesh(sw2, sb2, shown.T, shading="nearest", norm=norm, cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="measured ξ_c (layers)")
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
    ax.legend(loc="upper left", fontsize=8)

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


# ---------------------------------------------------------------------------------------------
# Qu, Wardak & Gong 2022: CV of a propagated circle over (α, σ_w)
# ---------------------------------------------------------------------------------------------


def ordered_line(
    alphas: Sequence[float] | np.ndarray,
    activation: str = "tanh",
    *,
    sigma_b: float = 0.0,
    threshold: float = 0.01,
) -> np.ndarray:
    """The Lévy mean-field ordered transition σ_w(α): where q* reaches ``threshold``.

    Same criterion as :func:`pipeline.analysis.levy.ordered_transition_sigma_w`, solved in
    closed form: q = threshold is a fixed point of Eq. 5 when
    ``σ_w^α E|φ(h)|^α + σ_b^α = threshold`` with h ~ S_α((threshold/2)^{1/α}), so
    ``σ_w = ((threshold − σ_b^α) / E|φ(h)|^α)^{1/α}`` (one expectation per α instead of a
    root search over fixed points; equal to 1e-8 for tanh, whose Eq. 5 has one positive fixed
    point). NaN where σ_b^α ≥ threshold.
    """
    from pipeline.analysis.levy import levy_expect

    out = []
    for a in np.asarray(alphas, np.float64).ravel():
        rest = threshold - sigma_b**a
        if rest <= 0:
            out.append(math.nan)
            continue
        e = float(levy_expect((threshold / 2.0) ** (1.0 / a), float(a), activation))
        out.append((rest / e) ** (1.0 / a))
    return np.asarray(out)


def _nearest_layers(ds: xr.Dataset, wanted: Sequence[int]) -> list[int]:
    have = np.asarray(ds.layer.values)
    return sorted({int(have[np.argmin(np.abs(have - w))]) for w in wanted})


def phase_cv(
    ds: xr.Dataset, *, layers: Sequence[int] = (15, 25, 35), threshold: float = 0.01
) -> Figure:
    """CV maps over (α, σ_w) at ``layers`` with the Lévy ordered line; λ_L if present."""
    plt = _pyplot()
    ds = _widest(ds)
    cv = _first(ds.cv, ("alpha", "sigma_w")).mean("seed").transpose("alpha", "sigma_w", "layer")
    alpha = np.asarray(ds.alpha.values, np.float64)
    sw = np.asarray(ds.sigma_w.values, np.float64)
    act = str(ds.activation.values.ravel()[0])
    shown = _nearest_layers(ds, layers)
    has_lyap = "lyapunov" in ds
    npan = len(shown) + has_lyap
    fig, axes = plt.subplots(
        1, npan, figsize=(3.9 * npan, 4.0), constrained_layout=True, squeeze=False
    )
    axes = axes[0]
    a_line = np.linspace(alpha.min(), alpha.max(), 21) if alpha.size > 1 else alpha
    line = ordered_line(a_line, act, threshold=threshold)
    vmax = float(np.nanmax(cv.sel(layer=shown).values)) if np.isfinite(cv.values).any() else 1
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
            cmap="magma",
            vmin=0,
            vmax=vmax,
        )
        fig.colorbar(mesh, ax=ax, label="CV of Δh(θ) at layer l")
        overlay(ax)
        ax.set_title(f"layer l = {layer}", fontsize=9)
    axes[0].legend(loc="upper left", fontsize=7)
    if has_lyap:
        ax = axes[-1]
        lam = _first(ds.lyapunov, ("alpha", "sigma_w")).mean("seed")
        last = int(ds.layer.values.max())
        lam = lam.sel(layer=last).transpose("alpha", "sigma_w").values
        lim = _signed_limit(lam)
        shown = _clip_infinite(lam, lim)
        mesh = ax.pcolormesh(
            alpha, sw, shown.T, shading="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim
        )
        fig.colorbar(mesh, ax=ax, label=f"λ_L (nepers per layer), L = {last}")
        if alpha.size > 1 and sw.size > 1 and np.nanmin(lam) < 0 < np.nanmax(lam):
            ax.contour(alpha, sw, shown.T, levels=[0.0], colors="k", linewidths=1)
        overlay(ax)
        ax.set_title("finite-depth Lyapunov exponent (black: λ_L = 0)", fontsize=9)
    fig.suptitle(f"{act}, N = {n}, σ_b = 0, mean over {ds.sizes.get('seed', 1)} seeds", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# Seed 001: effective dimension of a batch vs depth in relu nets
# ---------------------------------------------------------------------------------------------


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
    da = _first(ds[var], ("width",))
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
    plt = _pyplot()
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


# ---------------------------------------------------------------------------------------------
# Signed fields and their boundaries (seeds 000 and 002)
# ---------------------------------------------------------------------------------------------


def signed_log(score: np.ndarray) -> np.ndarray:
    """``sign(s)·log(1 + |s|)``: the trainability score as Sohl-Dickstein (2024) shows it
    (negative = converged, positive = diverged; the magnitude compressed)."""
    s = np.asarray(score, np.float64)
    return np.sign(s) * np.log1p(np.abs(s))


def _dimension(field: np.ndarray) -> Any:
    """Box-counting dimension of a field's sign boundary, or None (too few boundary pixels)."""
    from pipeline.analysis.fractal import box_counting_dimension

    try:
        return box_counting_dimension(field)
    except ValueError:
        return None


def _no_dimension_reason(field: np.ndarray) -> str:
    """Why :func:`_dimension` has no fit for ``field`` (the estimator's own message)."""
    import textwrap

    from pipeline.analysis.fractal import box_counting_dimension

    try:
        box_counting_dimension(field)
    except ValueError as e:
        shape = " × ".join(str(n) for n in np.shape(field))
        return f"no box-counting fit on this {shape} grid:\n" + textwrap.fill(str(e), 50)
    return ""


def _dim_text(d: Any) -> str:
    if d is None:
        return "D n/a"
    return f"D = {d.estimate:.3f} [{d.interval[0]:.3f}, {d.interval[1]:.3f}]"


def _clip_infinite(values: np.ndarray, lim: float) -> np.ndarray:
    """``values`` with ±∞ (e.g. λ_L = −∞ of a vanished tangent) drawn as ±``lim``; NaN stays."""
    return np.where(np.isinf(values), np.sign(values) * lim, values)


def _signed_limit(values: np.ndarray) -> float:
    v = np.abs(values[np.isfinite(values)])
    return float(np.percentile(v, 99)) if v.size and np.percentile(v, 99) > 0 else 1.0


def _train_planes(ds: xr.Dataset) -> tuple[str, str]:
    mode = ds.attrs.get("sweep_spec", {}).get("mode", "lr_vs_lr")
    return ("offset", "lr") if mode == "offset_vs_lr" else ("lr_in", "lr_out")


_PLANE_LABELS = {
    "lr_in": "log10 lr_in (input layer)",
    "lr_out": "log10 lr_out (output layer)",
    "offset": "offset of the input-layer weights",
    "lr": "log10 learning rate (all layers)",
    "sigma_w": "weight scale σ_w",
    "sigma_b": "bias scale σ_b",
    "sigma_w2": "weight variance σ_w²",
    "sigma_b2": "bias variance σ_b²",
}


def _train_image(ds: xr.Dataset, sel: dict[str, Any]) -> tuple[np.ndarray, str, str]:
    """(score over (x, y) as (len x, len y), x name, y name) at ``sel``; other non-plane
    dims at their first value."""
    a, b = _train_planes(ds)
    score = ds.score.sel(sel) if sel else ds.score
    score = _first(score, (a, b))
    if "seed" in score.dims:
        score = score.isel(seed=0)
    return np.asarray(score.transpose(a, b).values, np.float64), a, b


def _show_score(ax: Any, ds: xr.Dataset, score: np.ndarray, a: str, b: str, lim: float) -> Any:
    x = np.asarray(ds[a].values, np.float64)
    y = np.asarray(ds[b].values, np.float64)
    mesh = ax.pcolormesh(
        x, y, signed_log(score).T, shading="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim
    )
    ax.set_xlabel(_PLANE_LABELS[a])
    ax.set_ylabel(_PLANE_LABELS[b])
    return mesh


def trainability_grid(ds: xr.Dataset) -> Figure:
    """Trainability images, one per (width, activation): rows = widths, columns =
    activations; sign(score)·log(1 + |score|) on a diverging map (blue: converged), with the
    converged share and the boundary's box-counting dimension (95 % interval) per image."""
    plt = _pyplot()
    widths = list(ds.width.values) if "width" in ds.dims else [None]
    acts = list(ds.activation.values) if "activation" in ds.dims else [None]
    images = {}
    for n in widths:
        for act in acts:
            sel = {k: v for k, v in (("width", n), ("activation", act)) if v is not None}
            images[(n, act)] = _train_image(ds, sel)
    lim = max(_signed_limit(signed_log(img[0])) for img in images.values())
    nr, nc = len(widths), len(acts)
    fig, axes = plt.subplots(
        nr, nc, figsize=(3.3 * nc + 1.0, 3.1 * nr + 0.4), constrained_layout=True, squeeze=False
    )
    mesh = None
    for i, n in enumerate(widths):
        for j, act in enumerate(acts):
            score, a, b = images[(n, act)]
            ax = axes[i, j]
            mesh = _show_score(ax, ds, score, a, b, lim)
            conv = 100 * np.mean(score[np.isfinite(score)] < 0) if np.isfinite(score).any() else 0
            ax.set_title(
                f"{act}, n = {n}: {conv:.1f} % converged\n{_dim_text(_dimension(score))}",
                fontsize=8,
            )
    fig.colorbar(mesh, ax=axes, label="sign(score)·log(1 + |score|)  (< 0: converged)")
    spec = ds.attrs.get("sweep_spec", {})
    depth = int(ds.depth.values.ravel()[0]) if "depth" in ds.coords else "?"
    fig.suptitle(
        f"trainability after {spec.get('steps', '?')} steps of gradient descent, depth D = "
        f"{depth}, dataset {spec.get('dataset', '?')}",
        fontsize=10,
    )
    return fig


def eps_panel(ds: xr.Dataset) -> Figure:
    """One trainability image per weight perturbation ε (W + ε·N(0, 1)), with the converged
    share, the boundary dimension and the share of pixels whose class differs from ε = 0."""
    plt = _pyplot()
    eps = [float(e) for e in ds.eps.values]
    images = [_train_image(ds, {"eps": e}) for e in eps]
    lim = max(_signed_limit(signed_log(img[0])) for img in images)
    ref = images[eps.index(0.0)][0] if 0.0 in eps else images[0][0]
    fig, axes = plt.subplots(
        1, len(eps), figsize=(3.2 * len(eps) + 1.0, 3.6), constrained_layout=True, squeeze=False
    )
    mesh = None
    for ax, e, (score, a, b) in zip(axes[0], eps, images, strict=True):
        mesh = _show_score(ax, ds, score, a, b, lim)
        changed = 100 * np.mean((score > 0) != (ref > 0))
        ax.set_title(
            f"ε = {e:g}: {100 * np.mean(score < 0):.1f} % converged\n"
            f"{_dim_text(_dimension(score))}; {changed:.1f} % flipped vs ε = 0",
            fontsize=8,
        )
    fig.colorbar(mesh, ax=axes, label="sign(score)·log(1 + |score|)  (< 0: converged)")
    act = str(ds.activation.values.ravel()[0])
    n = int(ds.width.values.ravel()[0])
    fig.suptitle(f"initial weights W + ε·N(0, 1): {act}, width {n}", fontsize=10)
    return fig


def _lyapunov_plane(ds: xr.Dataset) -> tuple[np.ndarray, str, str, int]:
    """λ_L at the deepest recorded layer over (σ_w, σ_b), mean over seeds."""
    from pipeline.analysis.regimes import sigma_dims

    sw, sb = sigma_dims(ds)
    lam = _first(ds.lyapunov, (sw, sb)).isel(layer=-1)
    if "seed" in lam.dims:
        lam = lam.mean("seed")
    return np.asarray(lam.transpose(sw, sb).values, np.float64), sw, sb, int(ds.layer[-1])


def _plot_loglog(ax: Any, d: Any, label: str, colour: Any = None) -> None:
    ls, ln = d.loglog()
    (pts,) = ax.plot(ls, ln, "o", ms=3, color=colour, label=label)
    i, j = d.fit_range
    x = np.log(d.scales[i : j + 1])
    icpt = np.mean(np.log(d.counts[i : j + 1]) - d.slope * x)
    ax.plot(x, icpt + d.slope * x, "-", lw=1, color=pts.get_color())


def frontier(ds: xr.Dataset) -> Figure:
    """The finite-width order/chaos frontier (seed 000): λ_L over (σ_w, σ_b) with the
    boundary λ_L = 0 and the mean-field line χ1 = 1; second panel: box counts of the
    boundary, log N vs log s, with the fitted dimension and its 95 % interval."""
    from pipeline import theory

    plt = _pyplot()
    ds = _widest(ds)
    lam, sw, sb, depth = _lyapunov_plane(ds)
    x = np.asarray(ds[sw].values, np.float64)
    y = np.asarray(ds[sb].values, np.float64)
    act = str(ds.activation.values.ravel()[0])
    lim = _signed_limit(lam)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    shown = _clip_infinite(lam, lim)
    mesh = ax.pcolormesh(
        x, y, shown.T, shading="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim, rasterized=True
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
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    ax.set_xlabel(_PLANE_LABELS[sw])
    ax.set_ylabel(_PLANE_LABELS[sb])
    n = int(ds.width.values.ravel()[0]) if "width" in ds.coords else "?"
    ax.set_title(f"{act}, N = {n}, L = {depth}: black = boundary λ_L = 0", fontsize=9)
    d = _dimension(lam)
    if d is not None:
        _plot_loglog(ax2, d, "boundary boxes N(s)")
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, _no_dimension_reason(lam), ha="center", va="center", fontsize=8,
                 transform=ax2.transAxes)  # fmt: skip
        ax2.set_xticks([])
        ax2.set_yticks([])
    ax2.set_xlabel("log s (box size, pixels)")
    ax2.set_ylabel("log N(s) (boxes on the boundary)")
    ax2.set_title(f"box counting: {_dim_text(d)} (95 % interval)", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Zoom stores (`sweep zoom`): frames side by side
# ---------------------------------------------------------------------------------------------


def zoom_fields(frames: Sequence[xr.Dataset]) -> list[np.ndarray]:
    """Each frame's signed field (trainability score; propagation deepest λ_L) over its plane."""
    from pipeline.spec import parse_spec
    from pipeline.zoom import signed_field

    return [
        np.asarray(signed_field(parse_spec(f.attrs["sweep_spec"]), f).values, np.float64)
        for f in frames
    ]


def zoom_frames(frames: Sequence[xr.Dataset], *, max_frames: int = 6) -> Figure:
    """Up to ``max_frames`` frames of a zoom sequence side by side (axes in the frame's own
    coordinates, so each panel shows its window), each with its box-counting dimension and
    95 % interval; a last panel with every frame's log N vs log s and the Sohl-Dickstein
    (2024) estimator pooled over all frames."""
    from pipeline.spec import parse_spec
    from pipeline.zoom import frame_dimensions, plane_axes

    plt = _pyplot()
    if not frames:
        raise ValueError("zoom store: no complete frame to draw")
    fields = zoom_fields(frames)
    dims, pooled = frame_dimensions(fields)
    spec = parse_spec(frames[0].attrs["sweep_spec"])
    a, b = plane_axes(spec)
    train = spec.experiment == "trainability"
    shown = list(range(len(frames)))
    if len(shown) > max_frames:  # first, last and evenly spaced between
        shown = sorted(set(np.linspace(0, len(frames) - 1, max_frames).round().astype(int)))
    npan = len(shown) + 1
    fig, axes = plt.subplots(1, npan, figsize=(3.1 * npan, 3.6), constrained_layout=True)
    for ax, k in zip(axes[:-1], shown, strict=True):
        f = fields[k]
        x = np.asarray(frames[k][a].values, np.float64)
        y = np.asarray(frames[k][b].values, np.float64)
        v = signed_log(f) if train else f
        lim = _signed_limit(v)
        v = np.where(np.isneginf(v), -lim, v)
        ax.pcolormesh(x, y, v.T, shading="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_xlabel(_PLANE_LABELS.get(a, a))
        ax.set_ylabel(_PLANE_LABELS.get(b, b), fontsize=7)
        ax.tick_params(labelsize=6)
        width = x[-1] - x[0]
        ax.set_title(f"frame {k}: width {width:.3g}\n{_dim_text(dims[k])}", fontsize=8)
    ax = axes[-1]
    colours = plt.cm.viridis(np.linspace(0.05, 0.9, len(frames)))
    for k, d in enumerate(dims):
        if d is not None:
            _plot_loglog(ax, d, f"frame {k}", colours[k])
    ax.set_xlabel("log s (box size, pixels)")
    ax.set_ylabel("log N(s) (boxes on the boundary)")
    ax.legend(fontsize=6)
    ax.set_title(f"Sohl-Dickstein pooled:\n{_dim_text(pooled)}", fontsize=8)
    what = "sign of the trainability score" if train else "sign of λ_L at the deepest layer"
    fig.suptitle(f"zoom into the boundary ({what}); each window half the previous", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# Drawing a store
# ---------------------------------------------------------------------------------------------

_DRAW: dict[str, Callable[..., Figure]] = {
    "xi_c_map": xi_c_map,
    "phase_cv": phase_cv,
    "effective_rank": effective_rank,
    "frontier": frontier,
    "trainability_grid": trainability_grid,
    "eps_panel": eps_panel,
}


def draw(ds: xr.Dataset, figure: dict[str, Any]) -> Figure:
    """The matplotlib Figure of a ``figure:`` entry (``{"kind": ..., **options}``)."""
    opts = dict(figure)
    kind = opts.pop("kind")
    if kind not in _DRAW:
        raise ValueError(f"figure.kind: unknown value {kind!r} (allowed: {', '.join(_DRAW)})")
    return _DRAW[kind](ds, **opts)


def figure_notes(ds: xr.Dataset, figure: dict[str, Any]) -> list[str]:
    """A few numbers behind the figure, for the terminal; and a note where some (not all)
    seeds of a grid point are non-finite (the figures' seed means skip NaN)."""
    return _kind_notes(ds, figure) + _partial_seed_notes(ds)


def _partial_seed_notes(ds: xr.Dataset) -> list[str]:
    flag = ds.get("nonfinite_layer")
    if flag is None or "seed" not in flag.dims or ds.sizes["seed"] < 2:
        return []
    bad = (flag > 0).sum("seed")
    some = int(((bad > 0) & (bad < ds.sizes["seed"])).sum())
    if not some:
        return []
    return [
        f"note: {some} grid point(s) have non-finite values in some of their "
        f"{ds.sizes['seed']} seeds (nonfinite_layer > 0); the figures' seed means skip NaN "
        "there (±∞ is kept)"
    ]


def _kind_notes(ds: xr.Dataset, figure: dict[str, Any]) -> list[str]:
    kind = figure["kind"]
    if kind == "xi_c_map":
        from pipeline import theory

        fit = fit_xi_c(ds, fit_from=figure.get("fit_from", 1))
        _, sw2 = _sigma_axis(fit, "w")
        _, sb2 = _sigma_axis(fit, "b")
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
    if kind == "phase_cv":
        ds1 = _widest(ds)
        cv = _first(ds1.cv, ("alpha", "sigma_w")).mean("seed")
        out = []
        for layer in _nearest_layers(ds1, figure.get("layers", (15, 25, 35))):
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
    if kind == "effective_rank":
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
        out.append(
            f"effective_rank: significant rank revival peaks: {revival_peaks(ds, 'eff_rank')}"
        )
        return out
    if kind == "frontier":
        return frontier_notes(ds)
    if kind in ("trainability_grid", "eps_panel"):
        a, b = _train_planes(ds)
        score = ds.score
        extra = [d for d in score.dims if d not in (a, b) and score.sizes[d] > 1]
        out = []
        for idx in np.ndindex(*[score.sizes[d] for d in extra]):
            sel = {d: score[d].values[i] for d, i in zip(extra, idx, strict=True)}
            img, _, _ = _train_image(ds, sel)
            where = ", ".join(f"{d}={v}" for d, v in sel.items()) or "image"
            out.append(
                f"{kind}: {where}: converged {100 * np.mean(img < 0):.1f} %, boundary "
                f"box-counting {_dim_text(_dimension(img))} ({img.shape[0]}x{img.shape[1]})"
            )
        return out
    return []


def frontier_notes(ds: xr.Dataset) -> list[str]:
    """Boundary dimension, ordered share, and where λ_L first turns positive along σ_w per
    σ_b against the mean-field χ1 = 1 line (the median offset, in σ_w units)."""
    from pipeline import theory

    ds = _widest(ds)
    lam, sw, sb, depth = _lyapunov_plane(ds)
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
        f"{100 * np.mean(lam <= 0):.1f} %, boundary box-counting {_dim_text(_dimension(lam))}",
        f"frontier: first λ_L > 0 along {sw} minus mean-field χ1 = 1: median "
        f"{np.nanmedian(off):+.3f}, range [{np.nanmin(off):+.3f}, {np.nanmax(off):+.3f}]"
        f" over {int(np.isfinite(off).sum())} {sb} values",
    ]


def zoom_notes(frames: Sequence[xr.Dataset]) -> list[str]:
    """Per frame: window and box-counting dimension; then the pooled estimator."""
    from pipeline.zoom import zoom_lines

    return [f"zoom: {line}" for line in zoom_lines(list(frames))]


def store_notes(store: str | Path) -> list[str]:
    """:func:`figure_notes` of a sweep store, or :func:`zoom_notes` of a zoom store."""
    from pipeline.store import open_sweep, read_spec

    if is_zoom_store(store):
        from pipeline.zoom import open_zoom

        return zoom_notes(open_zoom(store))
    return figure_notes(open_sweep(store), dict(read_spec(store).figure or {}))


def _save(fig: Any, base: Path, kind: str, title: str) -> list[Path]:
    plt = _pyplot()
    if title:  # a figure-level x label: constrained layout keeps it clear of the axes
        fig.supxlabel(title, x=0.995, ha="right", fontsize=7, color="gray")
    base.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = base / f"{kind}.{ext}"
        fig.savefig(p, dpi=150)
        paths.append(p)
    plt.close(fig)
    return paths


def default_out_dir(store: str | Path) -> Path:
    """``STORE-figures`` beside the store; for a zoom frame ``Z.zarr/frame_002`` it is
    ``Z-frame_002-figures`` beside the zoom store (never a folder inside a Zarr store)."""
    p = Path(str(store).rstrip("/"))
    if (p.parent / "zarr.json").exists():
        return p.parent.parent / f"{p.parent.name.removesuffix('.zarr')}-{p.name}-figures"
    return Path(f"{p}-figures")


def render_zoom(store: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw a zoom store as ``zoom_frames.png|pdf`` (:func:`zoom_frames`: its frames side
    by side with their dimensions), whatever figure its base spec declares; that one is drawn
    per frame: ``sweep figures STORE/frame_000``."""
    import zarr

    from pipeline.zoom import ZOOM_ATTR, open_zoom

    _pyplot()
    info = zarr.open_group(str(store), mode="r").attrs[ZOOM_ATTR]
    base_spec = info.get("base_spec", {})
    fig = zoom_frames(open_zoom(store))
    name = str(base_spec.get("name", ""))
    scale = base_spec.get("scale")
    title = f"{name} zoom" + (f" ({scale} scale)" if scale else "")
    base = Path(out_dir) if out_dir is not None else default_out_dir(store)
    return _save(fig, base, "zoom_frames", title)


def render_store(store: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw the figure a store's spec declares to ``out_dir`` (PNG and PDF); return paths.

    A zoom store (``sweep zoom``) is drawn by :func:`render_zoom`. ``out_dir`` defaults to
    :func:`default_out_dir`. Raises ``ValueError`` when
    the store declares no figure, ``ImportError`` (naming the ``plot`` extra) without
    matplotlib.
    """
    from pipeline.store import open_sweep, read_spec

    if is_zoom_store(store):
        return render_zoom(store, out_dir)
    spec = read_spec(store)
    if spec.figure is None:
        raise ValueError(
            f"store {str(store)!r}: its spec declares no 'figure' (add one to the workflow file)"
        )
    _pyplot()
    ds = open_sweep(store)
    fig = draw(ds, dict(spec.figure))
    title = spec.name + (f" ({spec.scale} scale)" if spec.scale else "")
    base = Path(out_dir) if out_dir is not None else default_out_dir(store)
    return _save(fig, base, spec.figure["kind"], title)
