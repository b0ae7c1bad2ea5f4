"""Lévy mean-field theory of heavy-tailed random networks (Qu, Wardak & Gong 2022, Eq. 5).

Convention (docs/conventions.md §2.1): ``Wᵢⱼ = σ_w (2N)^(−1/α) Zᵢⱼ``, ``bᵢ = σ_b 2^(−1/α) ζᵢ``,
Z, ζ standard symmetric α-stable S_α(1) (characteristic function exp(−|t|^α)); ``S_α(γ)`` is
γ·S_α(1). Qu et al.'s ``D_w``, ``D_b`` are our ``σ_w^α``, ``σ_b^α``.

Derivation. Given the previous layer, ``hᵢ = Σⱼ Wᵢⱼ φ(hⱼ) + bᵢ`` is a sum of independent
S_α variables, and a sum of S_α(cⱼ) is S_α((Σⱼ |cⱼ|^α)^{1/α}) (multiply the characteristic
functions: Π exp(−|cⱼ t|^α) = exp(−Σ|cⱼ|^α |t|^α)). With ``cⱼ = σ_w (2N)^(−1/α) φ(hⱼ)`` and
the bias scale ``σ_b 2^(−1/α)``::

    γ^α = σ_w^α (1/2N) Σⱼ |φ(hⱼ)|^α + σ_b^α / 2  →  σ_w^α E|φ(h)|^α / 2 + σ_b^α / 2   (N → ∞)

with ``h ~ S_α(γ_prev)`` (law of large numbers over j; E|φ(h)|^α is finite for bounded φ,
infinite for relu/linear when α < 2 because E|X|^α = ∞). In Qu et al.'s variable
``q = 2 γ^α`` (so ``h ~ S_α((q/2)^{1/α})``) this is their Eq. 5::

    q' = σ_w^α E|φ(h)|^α + σ_b^α,   h ~ S_α((q/2)^{1/α})                   (:func:`levy_q_map`)

At α = 2, S_2(γ) = N(0, 2γ²), so q = 2γ² is the variance of h and the map is the Gaussian
length map ``σ_w² E[φ(√q z)²] + σ_b²`` of :mod:`pipeline.theory` (delegated to it exactly).

Numerics: E g(γX) for X ~ S_α(1) is an integral over the two uniforms of the
Chambers–Mallows–Stuck sampler (:func:`pipeline.rng.stable_from_uniforms`, the sampler the
networks are drawn with), ``E g(X) = ∫∫ g(X(u1, u2)) du1 du2`` on the unit square, by tensor
Gauss–Legendre (10 nodes per panel) on panels graded geometrically towards the edges (where
X → 0 or ±∞). X is odd in u1 − ½, so only u1 > ½ is integrated, with g symmetrised.
Relative error ≲ 1e-7 (α = 2 against the Gaussian quadrature; α in [0.7, 2] against a finer
rule), ~1e5 nodes per α, cached.

Ordered transition (Qu et al., Fig. 2b red line): the σ_w at which the stable fixed point q*
reached from q0 = 1 becomes non-negligible. Exact criterion used here: the smallest σ_w with
``q*(σ_w) ≥ threshold`` (default 0.01), in closed form (q = threshold a fixed point) or by
Brent's method on ``q*(σ_w) − threshold`` (q* increases with σ_w). It exists only where
``σ_b^α < threshold`` (q* ≥ σ_b^α always); elsewhere NaN. At σ_b = 0 and α < 2, q = 0 is
always unstable (the slope of the map at 0 is infinite because E|X|^α = ∞), so q* > 0 for
every σ_w > 0 and the line is where q* crosses the threshold; at α = 2 (tanh) it tends to the
edge of chaos σ_w = 1 as threshold → 0 (q* ≈ (σ_w² − 1)/2 just above it, so threshold 0.01
gives σ_w ≈ 1.01).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from pipeline.errors import PipelineError
from pipeline.numerics import theory
from pipeline.numerics.activations import Activation, as_activation
from pipeline.numerics.fixed_point import increasing_map_fixed_point
from pipeline.numerics.rng import stable_from_uniforms

__all__ = [
    "levy_expect",
    "levy_q_map",
    "levy_q_star",
    "levy_scale",
    "levy_scale_star",
    "ordered_transition_line",
    "ordered_transition_sigma_w",
]

FloatOrArray = float | NDArray[np.float64]

_NODES = 10
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_NODES)
_LEVELS = 16
"""Geometric grading levels towards each edge of the unit square (panels down to 2^-17)."""


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not (0.0 < a <= 2.0):
        raise PipelineError(f"alpha: got {alpha!r}; allowed: a tail index in (0, 2]")
    return a


def _graded_rule(a: float, b: float, levels: int) -> tuple[NDArray, NDArray]:
    """Gauss–Legendre on [a, b] with panels graded geometrically towards both ends."""
    frac = 2.0 ** -np.arange(levels, 0, -1.0)  # 2^-levels … 1/2
    unit = np.concatenate([[0.0], frac / 2, 1.0 - frac[::-1] / 2, [1.0]])
    breaks = a + (b - a) * np.unique(unit)
    lo, hi = breaks[:-1], breaks[1:]
    x = (0.5 * (lo + hi))[:, None] + (0.5 * (hi - lo))[:, None] * _GL_X
    w = (0.5 * (hi - lo))[:, None] * _GL_W
    return x.ravel(), w.ravel()


@lru_cache(maxsize=32)
def _stable_nodes(alpha: float) -> tuple[NDArray, NDArray]:
    """Nodes X ≥ 0 (flattened) and weights for E g(X) = Σ w (g(X) + g(−X)) / 2, X ~ S_α(1)."""
    u1, w1 = _graded_rule(0.5, 1.0, _LEVELS)
    u2, w2 = _graded_rule(0.0, 1.0, _LEVELS)
    x = _general_cms(u1[:, None], u2[None, :], alpha).ravel()
    w = (2.0 * w1[:, None] * w2[None, :]).ravel()  # u1 on (½, 1) carries half the mass
    keep = w > 0
    x, w = x[keep], w[keep]
    x.flags.writeable = False
    w.flags.writeable = False
    return x, w


def _general_cms(u1: NDArray, u2: NDArray, alpha: float) -> NDArray:
    # pipeline.rng's sampler; at α = 2 it is the exact Gaussian special case 2 sin V √W.
    return np.abs(stable_from_uniforms(u1, u2, alpha))


def _expect_stable(act: Activation, gamma: NDArray, alpha: float) -> NDArray:
    """E|φ(γX)|^α for X ~ S_α(1), by the CMS quadrature (any α, including 2)."""
    x, w = _stable_nodes(alpha)
    g = np.asarray(gamma, np.float64)
    out = np.empty(g.shape)
    flat, fo = g.reshape(-1), out.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        for i, gi in enumerate(flat):
            if not math.isfinite(gi):
                fo[i] = math.nan
                continue
            h = gi * x
            vals = 0.5 * (np.abs(act.phi(h, np)) ** alpha + np.abs(act.phi(-h, np)) ** alpha)
            fo[i] = float(vals @ w)
    return out


def levy_expect(
    gamma: ArrayLike, alpha: float, activation: str | Activation, *, quadrature: bool = False
) -> FloatOrArray:
    """``E|φ(h)|^α`` for ``h ~ S_α(γ)`` (scale γ ≥ 0), vectorised over ``gamma``.

    ``inf`` for relu/linear when α < 2 (E|X|^α diverges). At α = 2 the Gaussian quadrature of
    :mod:`pipeline.theory` is used (h ~ N(0, 2γ²)) unless ``quadrature=True`` forces the
    stable (CMS) quadrature, which is what every α < 2 uses.
    """
    a = _check_alpha(alpha)
    act = as_activation(activation)
    g = np.asarray(gamma, np.float64)
    if np.any(g < 0):
        raise PipelineError(f"gamma: got {float(g[g < 0].reshape(-1)[0])!r}; allowed: a scale >= 0")
    if a == 2.0 and not quadrature:
        q = 2.0 * g * g
        out = np.asarray(theory.q_map(q, 1.0, 0.0, act), np.float64)
    elif act.homogeneous and a < 2.0:
        out = np.where(g == 0.0, 0.0, np.inf)
    else:
        out = _expect_stable(act, g, a)
    return float(out) if out.ndim == 0 else out


def levy_scale(q: ArrayLike, alpha: float) -> FloatOrArray:
    """Scale γ = (q/2)^{1/α} of the pre-activations ``h ~ S_α(γ)`` for Qu et al.'s ``q``."""
    a = _check_alpha(alpha)
    out = (np.asarray(q, np.float64) / 2.0) ** (1.0 / a)
    return float(out) if out.ndim == 0 else out


def levy_q_map(
    q: ArrayLike,
    sigma_w: ArrayLike,
    sigma_b: ArrayLike,
    alpha: float,
    activation: str | Activation,
) -> FloatOrArray:
    """One layer of the Lévy length map ``q' = σ_w^α E|φ(h)|^α + σ_b^α``, h ~ S_α((q/2)^{1/α}).

    ``q = 2γ^α`` (Qu et al.'s variable; the variance of h at α = 2); ``sigma_w``, ``sigma_b``
    are scales (our convention, not D_w = σ_w^α). At α = 2 this is exactly
    :func:`pipeline.theory.q_map`. Broadcasts.
    """
    a = _check_alpha(alpha)
    act = as_activation(activation)
    if a == 2.0:
        return theory.q_map(q, sigma_w, sigma_b, act)
    qq, sw, sb = np.broadcast_arrays(
        np.asarray(q, np.float64), np.asarray(sigma_w, np.float64), np.asarray(sigma_b, np.float64)
    )
    for name, v in (("q", qq), ("sigma_w", sw), ("sigma_b", sb)):
        if np.any(~(v >= 0)):
            raise PipelineError(
                f"{name}: got {float(v[~(v >= 0)].reshape(-1)[0])!r}; allowed: >= 0"
            )
    e = np.asarray(levy_expect(levy_scale(qq, a), a, act), np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where(sw == 0.0, 0.0, sw**a * e) + sb**a
    return float(out) if out.ndim == 0 else out


def _q_star_scalar(act: Activation, sw: float, sb: float, alpha: float, q0: float) -> float:
    if alpha == 2.0:
        return float(theory.q_star(sw, sb, act, q0))
    if act.homogeneous:
        return 0.0 if sw == 0.0 else math.inf

    # rtol 1e-12: the quadrature of the map is good to ~1e-7, no point in more. q* can be
    # tiny but positive for α < 2 (q = 0 is unstable there), so the floor is 1e-300.
    return increasing_map_fixed_point(
        lambda q: float(levy_q_map(q, sw, sb, alpha, act)), q0, rtol=1e-12, q_floor=1e-300
    )


def levy_q_star(
    sigma_w: ArrayLike,
    sigma_b: ArrayLike,
    alpha: float,
    activation: str | Activation,
    q0: float = 1.0,
) -> FloatOrArray:
    """Fixed point q* of :func:`levy_q_map` reached from ``q0`` (bracketing + Brent).

    The map increases with q, so iterating from q0 moves monotonically to the nearest fixed
    point on that side, which is the one returned. ``inf`` for relu/linear at α < 2.
    Equal to :func:`pipeline.theory.q_star` at α = 2. Broadcasts (a loop).
    """
    a = _check_alpha(alpha)
    act = as_activation(activation)
    sw, sb = np.broadcast_arrays(np.asarray(sigma_w, np.float64), np.asarray(sigma_b, np.float64))
    out = np.empty(sw.shape)
    for idx in np.ndindex(sw.shape):
        out[idx] = _q_star_scalar(act, float(sw[idx]), float(sb[idx]), a, float(q0))
    return float(out) if out.ndim == 0 else out


def levy_scale_star(
    sigma_w: ArrayLike, sigma_b: ArrayLike, alpha: float, activation: str | Activation
) -> FloatOrArray:
    """Scale γ* = (q*/2)^{1/α} of the pre-activations at the fixed point: h ~ S_α(γ*)."""
    return levy_scale(levy_q_star(sigma_w, sigma_b, alpha, activation), alpha)


def ordered_transition_sigma_w(
    sigma_b: float,
    alpha: float,
    activation: str | Activation,
    *,
    threshold: float = 0.01,
    bracket: tuple[float, float] = (1e-3, 20.0),
    method: str = "closed",
) -> float:
    """The σ_w (a scale) of the ordered transition: the smallest σ_w with q* ≥ ``threshold``.

    ``method="closed"`` (default): q = threshold is a fixed point of Eq. 5 exactly when
    ``σ_w^α E|φ(h)|^α + σ_b^α = threshold`` with h ~ S_α((threshold/2)^{1/α}), so
    ``σ_w = ((threshold − σ_b^α) / E|φ(h)|^α)^{1/α}``: one expectation instead of a root
    search over fixed points (~5 ms instead of ~10 s per α). It equals the definition above
    when the map has a single positive fixed point that grows with σ_w (bounded odd φ such as
    tanh and erf). ``method="root"``: Brent's method on q*(σ_w) − threshold with q* iterated
    from q0 = 1, within ``bracket`` (for activations where that assumption may fail).
    NaN where ``sigma_b**alpha >= threshold`` (no ordered phase by this criterion), where the
    expectation is infinite (relu/linear at α < 2), or where the bracket holds no crossing.
    """
    a = _check_alpha(alpha)
    act = as_activation(activation)
    sb = float(sigma_b)
    if sb < 0:
        raise PipelineError(f"sigma_b: got {sigma_b!r}; allowed: a scale >= 0")
    if method not in ("closed", "root"):
        raise PipelineError(f"method: unknown value {method!r} (allowed: closed, root)")
    if sb**a >= threshold:
        return math.nan
    if method == "closed":
        e = float(levy_expect((threshold / 2.0) ** (1.0 / a), a, act))
        if not (math.isfinite(e) and e > 0):
            return math.nan
        return ((threshold - sb**a) / e) ** (1.0 / a)

    def f(sw: float) -> float:
        return _q_star_scalar(act, sw, sb, a, 1.0) - threshold

    lo, hi = bracket
    flo, fhi = f(lo), f(hi)
    if not (flo < 0.0 < fhi):
        return math.nan
    return float(brentq(f, lo, hi, xtol=1e-8, rtol=1e-8))


def ordered_transition_line(
    sigma_b_values: ArrayLike,
    alpha_values: ArrayLike,
    activation: str | Activation,
    *,
    threshold: float = 0.01,
) -> NDArray[np.float64]:
    """:func:`ordered_transition_sigma_w` on the grid (len(alpha_values), len(sigma_b_values))."""
    sbs = np.atleast_1d(np.asarray(sigma_b_values, np.float64))
    als = np.atleast_1d(np.asarray(alpha_values, np.float64))
    out = np.empty((als.size, sbs.size))
    for i, a in enumerate(als):
        for j, b in enumerate(sbs):
            out[i, j] = ordered_transition_sigma_w(b, a, activation, threshold=threshold)
    return out
