"""Cavity theory of the layer-Jacobian spectrum of heavy-tailed networks (Qu, Wardak & Gong
2022, Eqs. 7–8), by Monte Carlo over the cavity variables.

Convention (docs/conventions.md §2.1): weights ``Wᵢⱼ = σ_w (2N)^(−1/α) Zᵢⱼ``, Z standard
symmetric α-stable; Qu et al.'s ``D_w`` is ``σ_w^α``. The layer Jacobian at the fixed point is
``W D`` with ``D = diag φ'(h)``, h ~ S_α(γ*) (γ* from :func:`pipeline.numerics.levy.
levy_scale_star`, σ_b = 0 here as in the paper's Fig. 2). Its eigenvalue density in the
complex plane depends on ``r = |z|`` only:

    1 = ⟨ (A / (r² + A y² S'))^{α/2} ⟩                  (Eq. 8, solved for y*(r) ≥ 0)
    ρ(r) = (y*² − 2 r² y* ∂_{r²}y*) / π · ⟨ A S' / (r² + A y*² S')² ⟩   (Eq. 7)

with ``A = χ² S``, ``χ = σ_w φ'(h)``, and S, S' independent, totally skewed (positive)
stable variables of index α/2 with Laplace transform ``E e^{−tS} = exp(−K t^{α/2})``,
``K = Γ(1+α) / (2 Γ(1+α/2))`` (the authors' ``S(α/2, 1, 0, (c_α / 4 c_{α/2})^{2/α})``,
``c_a = Γ(1+a) sin(πa/2)/π``, written as a Laplace transform). At α = 2, S = S' = 1 and Eq. 8
is the Gaussian (circular-law) equation. ``ρ`` is a density per unit area of the complex
plane: the share of eigenvalues with modulus in [r, r + dr] is ``2π r ρ(r) dr``.

At r = 0, Eq. 8 gives ``y*(0)^α = ⟨S'^{−α/2}⟩ = 2 / Γ(1+α)`` for every χ (the constant
:func:`y_star_zero`). The *characteristic radius* ``r_cut`` is where ``y*(r_cut) = frac·y*(0)``
(frac = 0.01: the density beyond it is exponentially small); at α = 2 it is the spectral
radius √⟨χ²⟩ up to O(frac²).

Monte Carlo: the cavity averages ⟨·⟩ are sample means over ``n_samples`` triples
(S, S', h) drawn with NumPy's PCG64 generator from ``seed`` (defaults 100 000 and 0, the
authors' sample size): S by Kanter's representation, h by the Chambers–Mallows–Stuck sampler
of :mod:`pipeline.numerics.rng`. Every function takes the same samples for the same
(α, σ_w, activation, n_samples, seed), so y*, ρ and r_cut are smooth in r and σ_w (common
random numbers) and a root in σ_w is well defined. The Monte Carlo error of ρ is ~0.5 % at
10⁵ samples for α ≥ 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from pipeline.errors import PipelineError
from pipeline.numerics.activations import as_activation
from pipeline.numerics.levy import levy_scale_star
from pipeline.numerics.rng import stable_from_uniforms

__all__ = [
    "CavitySamples",
    "cavity_density",
    "cavity_jacobian_average",
    "cavity_r_cut",
    "cavity_samples",
    "cavity_y_star",
    "f1_power",
    "ordered_line_rcut",
    "positive_stable",
    "y_star_zero",
]

DEFAULT_SAMPLES = 100_000
"""Cavity Monte Carlo sample size (the authors' ``nSamples``)."""

Y_FRACTION = 0.01
"""``y*(r_cut) = Y_FRACTION · y*(0)`` defines the characteristic radius (the authors' value)."""

R_STEP = 0.01
"""Radial step Δr of the Jacobian averages (the authors' ``δr``): r = Δr, 2Δr, … ≤ r_cut."""


def y_star_zero(alpha: float) -> float:
    """``y*(0) = (2 / Γ(1+α))^{1/α}``: Eq. 8 at r = 0 for any χ (1 at α = 2)."""
    a = _check_alpha(alpha)
    return (2.0 / math.gamma(1.0 + a)) ** (1.0 / a)


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not (0.0 < a <= 2.0):
        raise PipelineError(f"alpha: got {alpha!r}; allowed: a tail index in (0, 2]")
    return a


def positive_stable(a: float, size: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Positive stable draws of index ``a`` in (0, 1], Laplace transform ``exp(−t^a)``.

    Kanter's representation: with V ~ U(0, π), E ~ Exp(1),
    ``X = sin(aV) / sin(V)^{1/a} · (sin((1−a)V) / E)^{(1−a)/a}``; ``a = 1`` gives X = 1.
    Shape ``(size,)``, float64.
    """
    if not (0.0 < a <= 1.0):
        raise PipelineError(f"a: got {a!r}; allowed: a stable index in (0, 1]")
    if a == 1.0:
        return np.ones(size)
    v = rng.uniform(0.0, math.pi, size)
    e = rng.exponential(1.0, size)
    return (np.sin(a * v) / np.sin(v) ** (1.0 / a)) * (np.sin((1.0 - a) * v) / e) ** ((1.0 - a) / a)


@dataclass(frozen=True)
class CavitySamples:
    """The cavity Monte Carlo sample of one (α, σ_w, activation): arrays of shape (n,).

    ``a = χ² S`` and ``s2 = S'`` (what Eqs. 7–8 read), ``chi = σ_w φ'(h)``; ``gamma`` is the
    fixed-point scale γ* of h (h ~ S_α(γ*)).
    """

    alpha: float
    sigma_w: float
    gamma: float
    chi: NDArray[np.float64]
    a: NDArray[np.float64]
    s2: NDArray[np.float64]


@lru_cache(maxsize=8)
def _base_draws(
    alpha: float, n_samples: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(S, S', X): the σ_w-independent draws (X ~ S_α(1) symmetric), read-only."""
    rng = np.random.Generator(np.random.PCG64(seed))
    k = math.gamma(1.0 + alpha) / (2.0 * math.gamma(1.0 + alpha / 2.0))
    scale = k ** (2.0 / alpha)
    s = scale * positive_stable(alpha / 2.0, n_samples, rng)
    s2 = scale * positive_stable(alpha / 2.0, n_samples, rng)
    u = rng.random((2, n_samples))
    x = stable_from_uniforms(u[0], u[1], alpha)
    for arr in (s, s2, x):
        arr.flags.writeable = False
    return s, s2, x


def cavity_samples(
    alpha: float,
    sigma_w: float,
    activation: str = "tanh",
    *,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    gamma: float | None = None,
) -> CavitySamples:
    """The cavity sample at (α, σ_w) with σ_b = 0: χ = σ_w φ'(γ* X), S, S' (see module doc).

    ``gamma`` overrides the fixed-point scale γ* (default :func:`levy_scale_star`).
    """
    a = _check_alpha(alpha)
    sw = float(sigma_w)
    if not sw > 0:
        raise PipelineError(f"sigma_w: got {sigma_w!r}; allowed: a scale > 0")
    if int(n_samples) < 100:
        raise PipelineError(f"n_samples: got {n_samples!r}; allowed: an integer >= 100")
    act = as_activation(activation)
    g = float(levy_scale_star(sw, 0.0, a, act)) if gamma is None else float(gamma)
    s, s2, x = _base_draws(a, int(n_samples), int(seed))
    with np.errstate(over="ignore", under="ignore"):
        chi = sw * np.asarray(act.dphi(g * x, np), np.float64)
    return CavitySamples(a, sw, g, chi, chi * chi * s, s2)


def _eq8_terms(cs: CavitySamples, r2: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    """F(y) − 1 and ∂F/∂y per row of ``r2``/``y`` (shape (m, 1)) over the sample."""
    h = cs.alpha / 2.0
    den = r2 + cs.a * (y * y) * cs.s2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(cs.a > 0, (cs.a / den) ** h, 0.0)
        f = t.mean(axis=1) - 1.0
        dfy = (-cs.alpha * y[:, 0]) * np.where(cs.a > 0, t * cs.a * cs.s2 / den, 0.0).mean(axis=1)
    return f, dfy


def cavity_y_star(cs: CavitySamples, r: ArrayLike, *, iters: int = 60) -> NDArray[np.float64]:
    """y*(r) ≥ 0 solving Eq. 8 on the sample ``cs``, for each modulus in ``r`` (any shape).

    0 where no positive root exists (r beyond the support: ⟨(A/r²)^{α/2}⟩ ≤ 1). Safeguarded
    Newton in y on the bracket [0, y*(0)] (the map decreases in y), to ~1e-13 relative.
    """
    rr = np.asarray(r, np.float64)
    flat = rr.reshape(-1)
    out = np.empty(flat.shape)
    y0 = float(np.mean(cs.s2 ** (-cs.alpha / 2.0))) ** (1.0 / cs.alpha)
    for start in range(0, flat.size, 16):
        r2 = (flat[start : start + 16] ** 2)[:, None]
        m = r2.shape[0]
        lo, hi = np.zeros(m), np.full(m, y0 * (1 + 1e-12))
        f0, _ = _eq8_terms(cs, r2, lo[:, None])
        y = 0.5 * hi
        for _ in range(iters):
            f, dfy = _eq8_terms(cs, r2, y[:, None])
            lo = np.where(f > 0, y, lo)
            hi = np.where(f > 0, hi, y)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = y - f / dfy
            ok = np.isfinite(step) & (step > lo) & (step < hi)
            y_new = np.where(ok, step, 0.5 * (lo + hi))
            if np.all(np.abs(y_new - y) <= 1e-14 * np.maximum(y, 1e-300)):
                y = y_new
                break
            y = y_new
        out[start : start + m] = np.where(f0 <= 0, 0.0, y)
    return out.reshape(rr.shape)


def cavity_density(cs: CavitySamples, r: ArrayLike) -> NDArray[np.float64]:
    """ρ(r) of Eq. 7 (per unit area of the complex plane) at the moduli ``r`` (any shape)."""
    rr = np.asarray(r, np.float64)
    y = cavity_y_star(cs, rr).reshape(-1, 1)
    r2 = (rr.reshape(-1) ** 2)[:, None]
    h = cs.alpha / 2.0
    den = r2 + cs.a * (y * y) * cs.s2
    with np.errstate(divide="ignore", invalid="ignore"):
        ah = np.where(cs.a > 0, cs.a**h, 0.0)
        dfr2 = -h * (ah / den ** (h + 1.0)).mean(axis=1)
        dfy = -h * (ah * cs.a * 2.0 * y * cs.s2 / den ** (h + 1.0)).mean(axis=1)
        dy = np.where(y[:, 0] > 0, -dfr2 / dfy, 0.0)  # ∂y*/∂(r²)
        avg = (cs.a * cs.s2 / den**2).mean(axis=1)
    yy = y[:, 0]
    rho = np.where(yy > 0, (yy * yy - 2.0 * r2[:, 0] * yy * dy) / math.pi * avg, 0.0)
    return rho.reshape(rr.shape)


def _rcut_residual(cs: CavitySamples, r: float, y: float) -> float:
    f, _ = _eq8_terms(cs, np.array([[r * r]]), np.array([[y]]))
    return float(f[0])


def cavity_r_cut(cs: CavitySamples, *, frac: float = Y_FRACTION) -> float:
    """The characteristic radius: the r with y*(r) = ``frac`` · y*(0) (Brent's method in r;
    Eq. 8 at fixed y decreases in r). y*(0) is the closed form :func:`y_star_zero`."""
    y = frac * y_star_zero(cs.alpha)
    lo, hi = 1e-6, 1.0
    if _rcut_residual(cs, lo, y) <= 0:
        return 0.0
    while _rcut_residual(cs, hi, y) > 0:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    return float(brentq(lambda r: _rcut_residual(cs, r, y), lo, hi, xtol=1e-12, rtol=1e-12))


def f1_power(r: ArrayLike, power: int) -> NDArray[np.float64]:
    """``f_1(r) = sgn(log r) |log r|^L`` (L = ``power``; L = 1 is log r), shape of ``r``."""
    lr = np.log(np.asarray(r, np.float64))
    return np.sign(lr) * np.abs(lr) ** int(power)


def cavity_jacobian_average(
    cs: CavitySamples,
    powers: ArrayLike = (1, 2, 3, 4, 5, 6),
    *,
    frac: float = Y_FRACTION,
    dr: float = R_STEP,
) -> tuple[NDArray[np.float64], float]:
    """Jacobian averages ``J_{f1,L} = Σ_r f_1(r) 2π r ρ(r) Δr`` over r = Δr, 2Δr, … ≤ r_cut
    (Eq. 10 as the authors sum it: not renormalised, eigenvalues below Δr left out).

    Returns (J per power L, shape (len(powers),); r_cut)."""
    rc = cavity_r_cut(cs, frac=frac)
    pw = np.atleast_1d(np.asarray(powers, int))
    if not math.isfinite(rc) or rc < dr:
        return np.full(pw.shape, 0.0 if rc < dr else math.nan), rc
    r = dr * np.arange(1, int(math.floor(rc / dr + 1e-9)) + 1)
    w = 2.0 * math.pi * r * cavity_density(cs, r) * dr
    return np.array([float(f1_power(r, p) @ w) for p in pw]), rc


def ordered_line_rcut(
    alpha: float,
    activation: str = "tanh",
    *,
    radius: float = 1.0,
    frac: float = Y_FRACTION,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    bracket: tuple[float, float] = (0.2, 3.0),
) -> float:
    """The ordered line as in the authors' code: the σ_w (a scale) at which the cavity
    characteristic radius equals ``radius`` (1), i.e. Eq. 8 holds at r = 1 with
    y = frac · y*(0). Brent's method in σ_w with common random numbers; σ_b = 0.

    Compare :func:`pipeline.numerics.levy.ordered_transition_sigma_w` (the text's q* = 0.01
    rule), a different line. NaN when the bracket holds no crossing.

    At α = 2, r_cut < √⟨χ²⟩ = √χ₁ ≤ 1 (χ₁ touches 1 only at the edge of
    chaos), so r_cut = 1 has no root and the line is its limit, the edge of chaos
    σ_w = 1/φ'(0) (the authors' code sets 1 for tanh).
    """
    a = _check_alpha(alpha)
    if a == 2.0:
        return 1.0 / float(as_activation(activation).dphi(np.zeros(1), np)[0])
    y = frac * y_star_zero(a)

    def g(sw: float) -> float:
        cs = cavity_samples(a, sw, activation, n_samples=n_samples, seed=seed)
        return _rcut_residual(cs, radius, y)

    lo, hi = bracket
    glo, ghi = g(lo), g(hi)
    if not (glo < 0.0 < ghi):
        return math.nan
    return float(brentq(g, lo, hi, xtol=1e-6, rtol=1e-8))
