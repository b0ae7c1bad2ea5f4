"""Per-point observables of propagated probe vectors, on any array module (NumPy or CuPy).

One implementation serves the NumPy reference and the CuPy backend of the propagation
experiment; ``xp`` is the array namespace of the inputs. Sums run in float64 whatever the
compute dtype.

* :func:`circle_cv` — Eq. 11 of Qu, Wardak & Gong (2022): the coefficient of
  variation ``std_k Δ_k / mean_k Δ_k`` of the distances ``Δ_k = |h(θ_{k+1}) − h(θ_k)|``
  between neighbouring points of a propagated circle (cyclic in k).
* :func:`rank_and_participation` — numerical rank and participation ratio
  ``(Σσᵢ²)² / Σσᵢ⁴`` of a batch matrix (m × N) from its singular values.

:data:`ROW_OBSERVABLES` registers them with the probe whose rows they read; adding an
observable of the circle or batch rows is one entry there (and its long name and units in the
propagation experiment's ``VARIABLE_DOCS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ROW_OBSERVABLES", "RowObservable", "circle_cv", "rank_and_participation"]


def circle_cv(hc: Any, xp: Any = np) -> Any:
    """CV of neighbour distances on propagated circles.

    ``hc``: (P, K, N) — P points, the K circle rows of each, width N (any float dtype).
    Returns (P,) float64: ``std_k Δ_k / mean_k Δ_k`` with ``Δ_k = |hc[:, k+1] − hc[:, k]|``
    (k + 1 taken mod K), distances accumulated in float64.
    """
    delta = xp.roll(hc, -1, axis=1) - hc
    dn = xp.sqrt(xp.einsum("pkn,pkn->pk", delta, delta, dtype=np.float64))
    return dn.std(axis=1) / dn.mean(axis=1)


def rank_and_participation(xb: Any, tol_dtype: np.dtype, xp: Any = np) -> tuple[Any, Any]:
    """Numerical rank and participation ratio of P batch matrices.

    ``xb``: (P, m, N) float64 (post-activations of the m batch rows of each point).
    ``tol_dtype``: the compute dtype, whose machine epsilon sets the rank threshold
    ``σ_max · max(m, N) · eps`` (as ``numpy.linalg.matrix_rank``). Points with a non-finite
    entry get NaN for both. Returns two (P,) float64 arrays.
    """
    p, m, n = xb.shape
    ok = xp.isfinite(xb).all(axis=(1, 2))
    rank = xp.full(p, np.nan)
    pr = xp.full(p, np.nan)
    idx = xp.nonzero(ok)[0]
    if int(idx.size):
        s = xp.linalg.svd(xb[idx], compute_uv=False)  # (p_ok, m) descending
        tol = s[:, :1] * max(m, n) * np.finfo(tol_dtype).eps
        rank[idx] = (s > tol).sum(axis=1)
        s2 = s * s
        pr[idx] = s2.sum(axis=1) ** 2 / (s2 * s2).sum(axis=1)
    return rank, pr


@dataclass(frozen=True)
class RowObservable:
    """Observables computed from the rows of one probe at a recorded layer.

    ``names``: the variables it gives; ``probe``: whose rows (``circle``, ``batch``);
    ``source``: ``"h"`` (pre-activations) or ``"x"`` (post-activations φ(h)); ``compute(block,
    dtype, xp)``: block (P, R, N) of the P points' R rows, ``dtype`` the compute dtype, returns
    one (P,) float64 array per name.
    """

    names: tuple[str, ...]
    probe: str
    source: str
    compute: Callable[[Any, np.dtype, Any], tuple[Any, ...]]


ROW_OBSERVABLES: tuple[RowObservable, ...] = (
    RowObservable(("cv",), "circle", "h", lambda b, dt, xp: (circle_cv(b, xp),)),
    RowObservable(
        ("eff_rank", "participation_ratio"),
        "batch",
        "x",
        lambda b, dt, xp: rank_and_participation(b.astype(np.float64), dt, xp),
    ),
)
"""Every row observable of the propagation experiment; the NumPy and CuPy loops compute each
one whose probe a sweep has, at every recorded layer."""
