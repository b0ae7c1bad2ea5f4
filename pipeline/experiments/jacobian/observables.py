"""The observables of one layer Jacobian of one network (the ``jacobian`` experiment's
variables at one grid point, layer and kind), from :mod:`pipeline.numerics.jacobian`.

Eigenvector statistics use the eigenvectors with |λ| ≥ LAMBDA_MIN only; the shares, quantiles,
spectral radius and histogram use all N eigenvalues. ``LAMBDA_CLASSES`` are the |λ| classes
of the per-class IPR averages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.numerics.jacobian import (
    LAMBDA_MIN,
    f1_average,
    ipr,
    layer_spectrum,
    log_abs_det,
    log_dphi,
)

__all__ = ["LAMBDA_CLASSES", "POWERS", "JacobianSettings", "layer_observables"]

LAMBDA_CLASSES = ((LAMBDA_MIN, 0.1), (0.1, 1.0), (1.0, np.inf))
"""|λ| classes [low, high) of ``mean_log_ipr_class`` and ``class_share``."""

POWERS = (1, 2, 3, 4, 5, 6)
"""The powers L of the f_1 averages (Fig. 2b colours L ≤ 6)."""


@dataclass(frozen=True)
class JacobianSettings:
    """What is summarised: IPR exponents ``q``, |λ| quantile levels, and the log10|λ|
    histogram's bin edges (the end bins also count everything beyond them)."""

    q: tuple[float, ...]
    quantiles: tuple[float, ...]
    hist_edges: tuple[float, ...]


def layer_observables(
    w: NDArray,
    h: NDArray,
    activation: str,
    kind: str,
    log_det_w: float,
    settings: JacobianSettings,
    *,
    xp: Any = np,
) -> dict[str, NDArray | float]:
    """Every variable of one layer Jacobian: ``w`` the (N, N) weight matrix the kind uses
    (Wˡ⁺¹ for ``pre``, Wˡ for ``post``), ``h`` the (N,) pre-activations hˡ, ``log_det_w`` =
    ln|det w|. Returns scalars and arrays shaped (quantile,), (power,), (log_bin,), (q,),
    (lam_class,), (lam_class, q)."""
    n = h.size
    d = np.exp(log_dphi(activation, h))
    spec = layer_spectrum(xp.asarray(w) if xp is not np else w, xp.asarray(d), kind, xp=xp)
    r = np.abs(spec.lam)
    rk = r[spec.kept]
    iprs = ipr(spec.vectors, settings.q)  # (q, K)
    with np.errstate(divide="ignore"):
        log_iprs = np.log(iprs)
    edges = np.asarray(settings.hist_edges)
    with np.errstate(divide="ignore"):
        lr10 = np.clip(np.log10(r), edges[0], edges[-1])
    hist = np.histogram(lr10, bins=edges)[0] / n
    n_cls, n_q = len(LAMBDA_CLASSES), len(settings.q)
    cls_log, cls_share = np.full((n_cls, n_q), np.nan), np.zeros(n_cls)
    for c, (lo, hi) in enumerate(LAMBDA_CLASSES):
        sel = (rk >= lo) & (rk < hi)
        cls_share[c] = sel.sum() / n
        if sel.any():
            cls_log[c] = log_iprs[:, sel].mean(axis=1)
    k = rk.size
    return {
        "spectral_radius": float(r.max()),
        "abs_quantile": np.quantile(r, settings.quantiles),
        "share_above_one": float(np.mean(r > 1.0)),
        "share_below_min": float(np.mean(r < LAMBDA_MIN)),
        "j_id": float(rk.sum() / n),
        "j_log": log_abs_det(log_det_w, log_dphi(activation, h)),
        "j_f1": f1_average(spec.lam, POWERS),
        "log_abs_hist": hist,
        "mean_log_ipr": log_iprs.mean(axis=1) if k else np.full(n_q, np.nan),
        "mean_ipr": iprs.mean(axis=1) if k else np.full(n_q, np.nan),
        "mean_log_ipr_class": cls_log,
        "class_share": cls_share,
        "residual": spec.residual,
    }
