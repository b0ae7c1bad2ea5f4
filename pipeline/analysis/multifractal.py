"""Fractal dimensions D_q of the Jacobian eigenvectors from a ``jacobian`` store: the fit of
⟨ln IPR_q⟩ against ln N across the ``width`` axis, with a jackknife over seeds.

``IPR_q ~ N^{(1−q) D_q}`` (Qu, Wardak & Gong 2022, Eq. 9), so ``⟨ln IPR_q⟩ = (1 − q) D_q ln N
+ c``: the slope of a least-squares line through the seed-averaged ``mean_log_ipr`` at the
stored widths, divided by 1 − q. The per-width estimate ``⟨ln IPR_q⟩ / ((1 − q) ln N)`` (the
paper's) carries the offset c / ln N (at α = 2 it reads ~0.85 at N ~ 10³, not 1). Jackknife:
the fit repeated with each seed left out; standard error ``√((n−1)/n Σ (θ₍ᵢ₎ − θ̄)²)``.
Works on the dataset alone (no experiment, no engine); :func:`dq_analysis` is what
``sweep analyze`` stores for a jacobian store (through the experiment's ``extra_analysis``
hook) and :func:`format_dq` what it prints.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.errors import PipelineError

__all__ = ["dq_analysis", "fit_dq", "format_dq", "per_width_dq"]


def per_width_dq(ds: xr.Dataset) -> xr.DataArray:
    """``⟨ln IPR_q⟩ / ((1 − q) ln N)`` at each grid point (the paper's per-N D_q), dims of
    ``mean_log_ipr``."""
    if "mean_log_ipr" not in ds:
        raise PipelineError("store: no 'mean_log_ipr' variable (a jacobian store is needed)")
    m = ds["mean_log_ipr"]
    return m / ((1.0 - m["q"]) * np.log(m["width"].astype(float)))


def _slope(y: np.ndarray, lnn: np.ndarray) -> np.ndarray:
    """Least-squares slope of y (…, width) against lnn (width,), NaN-free rows only."""
    x = lnn - lnn.mean()
    return np.tensordot(y - y.mean(axis=-1, keepdims=True), x, axes=([-1], [0])) / (x @ x)


def fit_dq(ds: xr.Dataset) -> xr.Dataset:
    """D_q by the fit across ``width`` (≥ 2 widths), its jackknife standard error over
    ``seed`` (≥ 2 seeds) and the largest-width per-N estimate, as a Dataset with the dims of
    ``mean_log_ipr`` less ``width`` and ``seed``: ``dq``, ``dq_se``, ``dq_largest_width``."""
    if "mean_log_ipr" not in ds:
        raise PipelineError("store: no 'mean_log_ipr' variable (a jacobian store is needed)")
    m = ds["mean_log_ipr"].load()
    if m.sizes.get("width", 0) < 2:
        raise PipelineError("width: a D_q fit needs at least 2 widths on the width axis")
    n_seed = m.sizes.get("seed", 1)
    lnn = np.log(m["width"].values.astype(float))
    m = m.transpose("seed", ..., "width")
    one_minus_q = (1.0 - m["q"]).transpose(*[d for d in m.dims if d == "q"])
    full = m.mean("seed")
    dims = full.dims[:-1]
    qpos = dims.index("q")
    shape_q = [1] * len(dims)
    shape_q[qpos] = -1
    scale = one_minus_q.values.reshape(shape_q)
    dq = _slope(full.values, lnn) / scale
    if n_seed >= 2:
        vals = m.values
        loo = np.stack(
            [_slope(np.delete(vals, i, axis=0).mean(axis=0), lnn) / scale for i in range(n_seed)]
        )
        se = np.sqrt((n_seed - 1) / n_seed * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))
    else:
        se = np.full(dq.shape, np.nan)
    coords = {d: full[d] for d in dims if d in full.coords}
    largest = per_width_dq(ds).isel(width=-1).mean("seed").drop_vars("width")
    return xr.Dataset(
        {
            "dq": (dims, dq, {"long_name": "D_q from the fit of <ln IPR_q> against ln N"}),
            "dq_se": (dims, se, {"long_name": "jackknife standard error of dq over seeds"}),
            "dq_largest_width": largest.transpose(*dims).assign_attrs(
                long_name="<ln IPR_q> / ((1 - q) ln N) at the largest width"
            ),
        },
        coords=coords,
    )


def dq_analysis(ds: xr.Dataset) -> xr.Dataset:
    """:func:`fit_dq` with CF attributes for the store's ``analysis`` group: ``dq``,
    ``dq_se`` (NaN with one seed), ``dq_largest_width``, dims of ``mean_log_ipr`` less
    ``width`` and ``seed`` (alpha, activation, sigma_w, layer, jac_kind, q); the widths
    and the seed count are attributes of ``dq``."""
    out = fit_dq(ds)
    widths = " ".join(str(int(n)) for n in ds["width"].values)
    n_seed = int(ds.sizes.get("seed", 1))
    for name in out.data_vars:
        out[name].attrs["units"] = "1"
    out["dq"].attrs.update(
        method="least-squares slope of the seed-mean <ln IPR_q> against ln N, / (1 - q)",
        widths=widths,
        seeds=n_seed,
    )
    out["dq_se"].attrs["method"] = "jackknife over seeds (each seed left out once)"
    return out


def format_dq(an: xr.Dataset) -> list[str]:
    """The text table of :func:`dq_analysis`'s variables in an analysis dataset ``an``: one
    line per (alpha, activation, sigma_w, layer, jac_kind, q) with D_q ± its jackknife
    standard error and the largest-width per-N value."""
    dq = an["dq"]
    lines = [
        f"D_q from <ln IPR_q> against ln N (N = {dq.attrs.get('widths', '?')}), "
        f"jackknife over {dq.attrs.get('seeds', '?')} seeds; per-N value at the largest N"
    ]
    keys = [d for d in dq.dims if d != "q"] + ["q"]
    lines.append("  " + " ".join(f"{k:>8}" for k in keys) + f" {'D_q':>7} {'± se':>7} {'per-N':>7}")
    flat = an[["dq", "dq_se", "dq_largest_width"]].to_dataframe().reset_index()
    for _, r in flat.iterrows():
        cells = " ".join(
            f"{r[k]:>8.4g}" if isinstance(r[k], float) else f"{str(r[k]):>8}" for k in keys
        )
        lines.append(f"  {cells} {r['dq']:>7.3f} {r['dq_se']:>7.3f} {r['dq_largest_width']:>7.3f}")
    return lines
