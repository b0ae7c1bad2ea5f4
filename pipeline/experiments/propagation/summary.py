"""The summary of a propagation store: where λ_L changes sign vs mean-field theory.

For every (width, α, activation, σ_b) line of the grid, the measured order-to-chaos
transition is the σ_w at which the seed-averaged finite-depth Lyapunov exponent λ_L (the
``lyapunov`` variable at the deepest recorded layer) crosses zero, by linear interpolation
along σ_w; the mean-field value is the σ_w with χ1 = 1 at α = 2 and the Lévy ordered
transition (q* = 0.01) for α < 2, as in ``sweep analyze``
(:func:`pipeline.analysis.regimes.theory_sigma_w`).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from pipeline.analysis.labels import distinct_labels
from pipeline.analysis.regimes import theory_sigma_w, zero_crossings

__all__ = ["format_summary", "lyapunov_crossings"]


def lyapunov_crossings(ds: xr.Dataset) -> list[dict]:
    """One row per (width, alpha, activation, σ_b): measured and mean-field critical σ_w.

    Needs the ``lyapunov`` variable (pair probe). σ values are scales (a ``sigma_w2`` axis
    is converted with a square root). Rows hold ``sigma_w_measured`` (first zero crossing
    along σ_w, NaN if none) and ``sigma_w_theory`` (χ1 = 1 at α = 2, the Lévy ordered
    transition for α < 2; NaN where there is none).
    """

    sw_dim = "sigma_w2" if "sigma_w2" in ds.dims else "sigma_w"
    sb_dim = "sigma_b2" if "sigma_b2" in ds.dims else "sigma_b"
    lam = ds["lyapunov"].isel(layer=-1).mean("seed", skipna=False).load()
    sw = np.asarray(ds[sw_dim].values, float)
    sw = np.sqrt(sw) if sw_dim.endswith("2") else sw
    rows = []
    for width in lam["width"].values:
        for alpha in lam["alpha"].values:
            for act in lam["activation"].values:
                for sb_val in lam[sb_dim].values:
                    sb = math.sqrt(sb_val) if sb_dim.endswith("2") else float(sb_val)
                    y = lam.sel(
                        {"width": width, "alpha": alpha, "activation": act, sb_dim: sb_val}
                    ).values
                    cross = zero_crossings(sw, y)
                    theory = theory_sigma_w(float(alpha), str(act), sb)
                    rows.append(
                        {
                            "width": int(width),
                            "alpha": float(alpha),
                            "activation": str(act),
                            "sigma_b": sb,
                            "sigma_w_measured": cross[0] if cross else np.nan,
                            "sigma_w_theory": theory,
                        }
                    )
    return rows


def flag_notes(ds: xr.Dataset, last: xr.DataArray) -> list[str]:
    """One line per kind of point that is not a plain number, with its count (networks =
    grid points × seeds): λ_L = −∞ (ordered: σ_w = 0 or every ReLU unit dead), overflow
    (``nonfinite_layer``: λ_L is NaN, never ordered), underflow of the tangent
    (``underflow_layer``: tanh/erf saturated, λ_L is NaN, never ordered)."""
    notes = []
    n_dead = int(np.isneginf(last).sum())
    if n_dead:
        notes.append(
            f"{n_dead} of {last.size} networks have λ_L = −∞: the tangent vector vanished "
            "exactly (σ_w = 0, or every ReLU unit dead); they are ordered"
        )
    nf = ds.get("nonfinite_layer")
    if nf is not None and int((nf > 0).sum()):
        notes.append(
            f"{int((nf > 0).sum())} of {nf.size} networks overflowed (a pre-activation not "
            "finite in the dtype, see 'nonfinite_layer'): λ_L is NaN there, neither ordered "
            "nor chaotic; the values are kept in the store"
        )
    uf = ds.get("underflow_layer")
    if uf is not None and int((uf > 0).sum()):
        notes.append(
            f"{int((uf > 0).sum())} of {uf.size} networks saturated (the tangent underflowed "
            "to 0 although φ' > 0, see 'underflow_layer'): λ_L is NaN there, neither ordered "
            "nor chaotic; float64 or a smaller σ_w resolves them"
        )
    return notes


def cv_notes(ds: xr.Dataset) -> list[str]:
    """A line when ``cv`` is NaN at networks that never overflowed: every neighbour distance
    on the propagated circle is 0 in the dtype (the circle collapsed to one point, e.g. next
    to a huge bias), so std/mean is 0/0. Not an overflow, and not a measured 0."""
    cv = ds.get("cv")
    if cv is None:
        return []
    nan = cv.isnull()
    nf = ds.get("nonfinite_layer")
    if nf is not None:
        nan = nan & (nf == 0)
    cells = int(nan.sum())
    if not cells:
        return []
    nets = int(nan.any("layer").sum()) if "layer" in nan.dims else cells
    return [
        f"cv is undefined (NaN) at {cells} (network, layer) cells of {nets} networks that did "
        "not overflow: every neighbour distance on the propagated circle is 0 in the dtype "
        "(the circle collapsed to one point), so std/mean is 0/0; these cells get no regime"
    ]


def format_summary(ds: xr.Dataset) -> str:
    """The table ``sweep run`` and ``sweep summary`` print for a propagation store."""
    if "lyapunov" not in ds:
        notes = [f"note: {text}" for text in cv_notes(ds)]
        return "\n".join(["(no pair probe in this store: no Lyapunov summary)", *notes])
    depth = int(ds["layer"].values[-1])
    lines = [
        f"Order-to-chaos transition: σ_w where λ_L (L = {depth}, mean over "
        f"{ds.sizes['seed']} seed(s)) changes sign, vs mean field (χ1 = 1 at α = 2, the "
        "Lévy ordered transition q* = 0.01 for α < 2)",
        f"{'width':>6} {'alpha':>5} {'act':>6} {'σ_b':>7} {'σ_w measured':>13} "
        f"{'σ_w theory':>11} {'diff':>8}",
    ]
    rows = list(lyapunov_crossings(ds))
    alphas = distinct_labels((r["alpha"] for r in rows), 2)
    biases = distinct_labels((r["sigma_b"] for r in rows), 3)
    for r in rows:
        diff = r["sigma_w_measured"] - r["sigma_w_theory"]
        fmt = lambda v: "      —" if not np.isfinite(v) else f"{v:7.3f}"  # noqa: E731
        lines.append(
            f"{r['width']:>6} {alphas[float(r['alpha'])]:>5} {r['activation']:>6} "
            f"{biases[float(r['sigma_b'])]:>7} "
            f"{fmt(r['sigma_w_measured']):>13} {fmt(r['sigma_w_theory']):>11} {fmt(diff):>8}"
        )
    last = ds["lyapunov"].isel(layer=-1)
    lines += [f"note: {text}" for text in (*flag_notes(ds, last), *cv_notes(ds))]
    return "\n".join(lines)
