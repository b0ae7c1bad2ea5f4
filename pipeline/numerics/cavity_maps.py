"""Cavity-theory maps behind Qu, Wardak & Gong (2022) Fig. 2: the eigenvalue-modulus
density binned like the ``jacobian`` experiment's ``log_abs_hist`` (Fig. 2a) and the L-map
of Jacobian averages relative to the ordered line (Fig. 2b).

Both are plain NumPy over :mod:`pipeline.numerics.cavity` (its Monte Carlo: ``n_samples``
cavity triples from PCG64 ``seed``). Cost: one (α, σ_w) point of the L-map is one cavity
sample and ~r_cut / 0.01 density evaluations: ~0.3 s at 2 000 samples, ~0.8 s at 10 000,
~4 s at 20 000 and ~8 s at 10⁵ (the authors' size) on one core here; the ordered line adds
~6–8 s per α (a root in σ_w). The paper's grid (α 1.00–2.00 by 0.05 × σ_w 0.05–3.00 by 0.05,
1 260 points, 10⁵ samples) is therefore ~3 h of one core.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.numerics.cavity import (
    DEFAULT_SAMPLES,
    cavity_density,
    cavity_jacobian_average,
    cavity_samples,
    ordered_line_rcut,
)

__all__ = ["MAX_POWER", "cavity_log_bin_shares", "l_map", "largest_power"]

MAX_POWER = 6
"""The cut-off of Fig. 2b: powers L = 1 … 6 of f_1(r) = sgn(log r) |log r|^L."""


def cavity_log_bin_shares(
    alpha: float,
    sigma_w: float,
    edges: ArrayLike,
    activation: str = "tanh",
    *,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    sub: int = 8,
) -> NDArray[np.float64]:
    """Share of the eigenvalues whose log10|λ| lies in each bin of ``edges`` (K + 1 edges,
    increasing; returns shape (K,)): ∫ 2π r ρ(r) dr over the bin, by the midpoint rule on
    ``sub`` points per bin in u = log10 r (dr = r ln 10 du). Unlike the experiment's
    ``log_abs_hist`` the end bins hold only their own range (no mass beyond)."""
    e = np.asarray(edges, np.float64)
    k = e.size - 1
    frac = (np.arange(sub) + 0.5) / sub
    u = e[:-1, None] + (e[1:] - e[:-1])[:, None] * frac[None, :]  # (K, sub)
    r = 10.0**u
    cs = cavity_samples(alpha, sigma_w, activation, n_samples=n_samples, seed=seed)
    rho = cavity_density(cs, r)
    du = ((e[1:] - e[:-1]) / sub)[:, None]
    return (2.0 * math.pi * r * r * math.log(10.0) * rho * du).sum(axis=1).reshape(k)


def largest_power(delta: NDArray[np.float64]) -> NDArray[np.float64]:
    """The largest L (1 … len of the last axis) with ``delta[..., L−1] > 0``; 0 where none,
    NaN where any is NaN. ``delta`` shape (..., powers); returns shape (...)."""
    d = np.asarray(delta, np.float64)
    pos = d > 0
    idx = np.arange(1, d.shape[-1] + 1)
    out = np.max(np.where(pos, idx, 0), axis=-1).astype(np.float64)
    return np.where(np.isnan(d).any(axis=-1), np.nan, out)


def l_map(
    alphas: ArrayLike,
    sigma_ws: ArrayLike,
    activation: str = "tanh",
    *,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> dict[str, NDArray[np.float64]]:
    """Fig. 2b's theory over the grid ``alphas`` (A,) × ``sigma_ws`` (S,), σ_b = 0.

    Returns ``j`` (A, S, 6): J_{f1,L} (:func:`~pipeline.numerics.cavity.
    cavity_jacobian_average`, L = 1 … 6); ``line`` (A,): σ_w of the cavity ordered line
    r_cut = 1 (:func:`~pipeline.numerics.cavity.ordered_line_rcut`); ``j_line`` (A, 6): J on
    it; ``delta`` (A, S, 6) = j − j_line; ``largest`` (A, S): the largest L ≤ 6 with
    ΔJ > 0 (0: none; NaN where J is not finite). One Monte Carlo sample per (α, σ_w) from
    ``seed`` (common random numbers across σ_w)."""
    a = np.asarray(alphas, np.float64).reshape(-1)
    s = np.asarray(sigma_ws, np.float64).reshape(-1)
    powers = np.arange(1, MAX_POWER + 1)
    j = np.full((a.size, s.size, MAX_POWER), np.nan)
    line = np.full(a.size, np.nan)
    j_line = np.full((a.size, MAX_POWER), np.nan)

    def jf(al: float, sw: float) -> NDArray[np.float64]:
        cs = cavity_samples(al, sw, activation, n_samples=n_samples, seed=seed)
        return cavity_jacobian_average(cs, powers)[0]

    for i, al in enumerate(a):
        line[i] = ordered_line_rcut(al, activation, n_samples=n_samples, seed=seed)
        if math.isfinite(line[i]):
            j_line[i] = jf(al, line[i])
        for k, sw in enumerate(s):
            j[i, k] = jf(al, sw)
    delta = j - j_line[:, None, :]
    return {"j": j, "line": line, "j_line": j_line, "delta": delta,
            "largest": largest_power(delta)}  # fmt: skip
