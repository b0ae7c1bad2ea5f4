"""Gaussian mean-field theory of signal propagation (Poole et al. 2016; Schoenholz et al. 2017).

Pure computation on NumPy/SciPy, for any activation of :mod:`pipeline.activations`.

Conventions (docs/conventions.md §1, §3; α = 2): ``sigma_w`` and ``sigma_b`` are *scales* (standard
deviations), not variances: ``W ~ N(0, σ_w²/N)``, ``b ~ N(0, σ_b²)``; the papers' σ_w², σ_b²
are our ``sigma_w**2``, ``sigma_b**2``. ``q`` is the mean square pre-activation
``q = mean_i (h_i)²`` and ``c`` the correlation of two inputs' pre-activations. ``z, z1, z2``
are independent standard normals and ``E`` is the expectation over them.

* length map   ``q_{l+1} = σ_w² E[φ(√q z)²] + σ_b²``                         (:func:`q_map`)
* correlation  ``c_{l+1} = (σ_w² E[φ(u1) φ(u2)] + σ_b²) / q``, with ``u1 = √q z1``,
  ``u2 = √q (c z1 + √(1−c²) z2)``, at fixed ``q`` (normally ``q*``)          (:func:`c_map`)
* ``χ1 = σ_w² E[φ'(√q* z)²]`` — the slope of the c map at ``c = 1`` and the mean squared
  singular value of one layer's Jacobian; χ1 = 1 is the order-to-chaos line (:func:`chi1`)
* ``χ_c = σ_w² E[φ'(u1) φ'(u2)]`` at ``(q*, c*)`` — the slope of the c map at ``c*``
* ``ξ_q = −1/log(χ1 + σ_w² E[φ''(√q* z) φ(√q* z)])`` (Schoenholz eq. 5; the argument is the
  slope of the q map at q*) and ``ξ_c = −1/log χ_c`` (eq. 9): the depth scales over which
  ``q`` and ``c`` relax to their fixed points.

Numerics: expectations are composite Gauss–Legendre rules on panels that are graded
geometrically towards the points where an activation may have a kink or a sharp feature
(``h = 0``, i.e. ``z = 0`` in one dimension, and the two lines ``u1 = 0``, ``u2 = 0`` in the
plane, handled in polar coordinates), so piecewise-smooth activations (relu) are integrated to
round-off and smooth ones (tanh, erf) stay accurate for large ``q`` where φ(√q z) is nearly a
step. Errors are ≲1e-13 against the closed forms for relu, linear and erf (see the tests);
probabilists' Gauss–Hermite (``hermegauss``), the classic choice, is not: with 200 nodes
tanh's χ1 is off by 3e-7 at q = 4 and 5e-3 at q = 25, relu's χ1/σ_w² by 0.04 at 201 nodes,
and NumPy's weights overflow to NaN at 400 nodes. A 1-D expectation uses a few hundred nodes, a 2-D
one ~1e5 (a few ms).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from pipeline.errors import PipelineError
from pipeline.numerics.activations import Activation, as_activation
from pipeline.numerics.fixed_point import increasing_map_fixed_point

__all__ = [
    "c_map",
    "c_star",
    "chi1",
    "chi_c",
    "critical_line",
    "critical_sigma_w",
    "lyapunov",
    "q_map",
    "q_star",
    "xi_c",
    "xi_q",
]

FloatOrArray = float | NDArray[np.float64]
ActivationLike = str | Activation

# ---------------------------------------------------------------------------------------------
# Quadrature rules
# ---------------------------------------------------------------------------------------------

_NODES_PER_PANEL = 12
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_NODES_PER_PANEL)
_Z_MAX = 10.0
"""Integrals are cut at |z| = 10 (and r = 10 in the plane): the Gaussian mass beyond is <1e-22."""
_EXTRA_LEVELS = 4
_MAX_LEVELS = 40
_CHUNK = 4096
"""Elements per block in vectorised 1-D expectations (bounds the nodes × elements temporary)."""


def _panel_rule(breaks: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Nodes and weights of Gauss–Legendre on each panel [breaks[i], breaks[i+1]] (∫ dx)."""
    a, b = breaks[:-1], breaks[1:]
    half = 0.5 * (b - a)
    mid = 0.5 * (a + b)
    x = mid[:, None] + half[:, None] * _GL_X
    w = half[:, None] * _GL_W
    return x.ravel(), w.ravel()


def _levels(scale: float) -> int:
    """Geometric grading levels resolving a feature of width ~1/scale next to a breakpoint."""
    if not math.isfinite(scale) or scale <= 1.0:
        return _EXTRA_LEVELS
    return min(math.ceil(math.log2(scale)) + _EXTRA_LEVELS, _MAX_LEVELS)


def _graded(levels: int) -> NDArray[np.float64]:
    """Breakpoints on [0, Z_MAX]: 0, 2^-levels, …, 1/2, then unit panels 1, 2, …, Z_MAX."""
    return np.concatenate([[0.0], 2.0 ** -np.arange(levels, 0, -1.0), np.arange(1.0, _Z_MAX + 1.0)])


@lru_cache(maxsize=64)
def _gauss_rule(levels: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rule for E[f(z)], z ~ N(0, 1), with panels graded towards z = 0 from both sides."""
    pos = _graded(levels)
    z, w = _panel_rule(np.concatenate([-pos[:0:-1], pos]))
    w = w * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    z.flags.writeable = False
    w.flags.writeable = False
    return z, w


@lru_cache(maxsize=64)
def _radial_rule(levels: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rule for ∫_0^∞ f(r) r e^{−r²/2} dr, graded towards r = 0."""
    r, w = _panel_rule(_graded(levels))
    w = w * r * np.exp(-0.5 * r * r)
    r.flags.writeable = False
    w.flags.writeable = False
    return r, w


def _angular_rule(
    special: NDArray[np.float64], levels: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rule for (1/2π) ∫_0^{2π} f(θ) dθ, graded towards each of the ``special`` angles."""
    s = np.sort(np.mod(special, 2.0 * math.pi))
    starts = s
    ends = np.append(s[1:], s[0] + 2.0 * math.pi)
    frac = 2.0 ** -np.arange(levels, 0, -1.0)  # 2^-levels … 1/2
    unit = np.concatenate([[0.0], frac, [1.0], 2.0 - frac[::-1], [2.0]])  # graded at 0 and 2
    breaks = starts[:, None] + 0.5 * (ends - starts)[:, None] * unit
    x, w = _panel_rule(breaks.reshape(-1))
    # The flattened breaks join arcs end-to-start (end of arc k == start of arc k+1), so the
    # extra "panels" between arcs have zero width and zero weight.
    return x, w / (2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------------------------

# Integrands, by name: (function of u, degree of homogeneity in u for homogeneous φ).
_ONE_D: dict[str, tuple[Callable[[Activation, Any], Any], int]] = {
    "phi2": (lambda a, u: a.phi(u, np) ** 2, 2),
    "dphi2": (lambda a, u: a.dphi(u, np) ** 2, 0),
    "phi_d2phi": (lambda a, u: a.phi(u, np) * a.d2phi(u, np), 0),
}
_TWO_D: dict[str, tuple[Callable[[Activation, Any], Any], int]] = {
    "phi": (lambda a, u: a.phi(u, np), 1),
    "dphi": (lambda a, u: a.dphi(u, np), 0),
}


def _expect1(act: Activation, which: str, q: NDArray[np.float64]) -> NDArray[np.float64]:
    """E[F(√q z)] for F = ``_ONE_D[which]``, vectorised over the array ``q`` (≥ 0).

    For homogeneous φ the expectation is taken at q = 1 and scaled by q^(degree/2), which is
    exact and also covers q = ∞. For other φ, q = ∞ gives NaN.
    """
    fn, degree = _ONE_D[which]
    q = np.asarray(q, dtype=np.float64)
    if act.homogeneous:
        z, w = _gauss_rule(_levels(1.0))
        e1 = float(fn(act, z) @ w)
        if degree == 0:
            return np.full(q.shape, e1)
        with np.errstate(invalid="ignore"):
            return e1 * q ** (degree // 2)
    out = np.full(q.shape, np.nan)
    flat_q, flat_out = q.reshape(-1), out.reshape(-1)
    finite = np.flatnonzero(np.isfinite(flat_q))
    if finite.size == 0:
        return out
    z, w = _gauss_rule(_levels(math.sqrt(float(flat_q[finite].max()))))
    for start in range(0, finite.size, _CHUNK):
        idx = finite[start : start + _CHUNK]
        u = np.sqrt(flat_q[idx])[:, None] * z
        flat_out[idx] = fn(act, u) @ w
    return out


def _expect2(act: Activation, which: str, c: float, q: float) -> float:
    """E[F(u1) F(u2)] for F = ``_TWO_D[which]``; u1, u2 have variance q and correlation c."""
    fn, degree = _TWO_D[which]
    if act.homogeneous:
        if degree == 0:
            return _expect2(_non_homogeneous(act), which, c, 1.0)
        return q * _expect2(_non_homogeneous(act), which, c, 1.0)
    if not math.isfinite(q):
        return math.nan
    if c == 1.0:  # u1 = u2: use the 1-D rule, so that c_map(1, q) == q_map(q) / q exactly
        return float(_expect1(act, which + "2", np.array(q)))
    s = math.sqrt(max(0.0, (1.0 - c) * (1.0 + c)))
    theta0 = math.atan2(s, c)
    rq = math.sqrt(q)
    r, wr = _radial_rule(_levels(rq))
    half_pi = 0.5 * math.pi
    special = np.array([half_pi, 3 * half_pi, theta0 + half_pi, theta0 + 3 * half_pi])
    th, wt = _angular_rule(special, _levels(rq * _Z_MAX))
    a1 = rq * r[:, None] * np.cos(th)
    a2 = rq * r[:, None] * (c * np.cos(th) + s * np.sin(th))
    return float(wr @ (fn(act, a1) * fn(act, a2)) @ wt)


@lru_cache(maxsize=16)
def _non_homogeneous(act: Activation) -> Activation:
    """The same activation with the homogeneity shortcut off (to evaluate it at q = 1)."""
    return dataclasses.replace(act, homogeneous=False)


# ---------------------------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------------------------


def _nonneg(name: str, value: ArrayLike, *, allow_inf: bool = False) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    ok = (arr >= 0) & (np.isfinite(arr) | allow_inf)
    if not np.all(ok):
        bad = float(arr[~ok].reshape(-1)[0])
        allowed = "a number >= 0" + ("" if allow_inf else ", finite")
        if name.startswith("sigma"):
            allowed += " (a scale, i.e. a standard deviation, not a variance)"
        raise PipelineError(f"{name}: got {bad!r}; allowed: {allowed}")
    return arr


def _corr(value: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all((arr >= -1.0) & (arr <= 1.0)):
        bad = float(arr[~((arr >= -1.0) & (arr <= 1.0))].reshape(-1)[0])
        raise PipelineError(f"c: got {bad!r}; allowed: a correlation in [-1, 1]")
    return arr


def _out(arr: NDArray[np.float64]) -> FloatOrArray:
    return float(arr) if arr.ndim == 0 else arr


def _elementwise(fn: Callable[..., float], *args: NDArray[np.float64]) -> FloatOrArray:
    """Apply a scalar function over the broadcast of ``args`` (a loop; for root finders)."""
    b = np.broadcast_arrays(*args)
    out = np.empty(b[0].shape)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(float(x[idx]) for x in b))
    return _out(out)


# ---------------------------------------------------------------------------------------------
# Length map
# ---------------------------------------------------------------------------------------------


def q_map(
    q: ArrayLike, sigma_w: ArrayLike, sigma_b: ArrayLike, activation: ActivationLike
) -> FloatOrArray:
    """One layer of the length map: ``σ_w² E[φ(√q z)²] + σ_b²``.

    ``q`` is the mean square pre-activation of the previous layer (≥ 0; ∞ is allowed for
    homogeneous φ). ``sigma_w``, ``sigma_b`` are scales (std of √N·W and of b). Arrays
    broadcast against each other; a float comes back when all inputs are scalars.
    """
    act = as_activation(activation)
    q = _nonneg("q", q, allow_inf=True)
    sw = _nonneg("sigma_w", sigma_w)
    sb = _nonneg("sigma_b", sigma_b)
    q, sw, sb = np.broadcast_arrays(q, sw, sb)
    e = _expect1(act, "phi2", q)
    with np.errstate(invalid="ignore"):
        out = np.where(sw == 0.0, 0.0, sw * sw * e) + sb * sb
    return _out(out)


def _q_map_scalar(act: Activation, q: float, sw: float, sb: float) -> float:
    return sw * sw * float(_expect1(act, "phi2", np.array(q))) + sb * sb


@lru_cache(maxsize=4096)
def _q_star_scalar(
    act: Activation, sw: float, sb: float, q0: float, rtol: float, q_max: float
) -> float:
    if act.homogeneous:
        # q_map(q) = a q + σ_b² exactly, with a = σ_w² E[φ(z)²].
        a = sw * sw * float(_expect1(act, "phi2", np.array(1.0)))
        if abs(a - 1.0) <= 1e-12:
            return q0 if sb == 0.0 else math.inf
        if a < 1.0:
            return sb * sb / (1.0 - a)
        return 0.0 if (sb == 0.0 and q0 == 0.0) else math.inf

    # Only with σ_b = 0 (g(0) = σ_b² otherwise) can the downward bracket go on: q → 0, the
    # trivial fixed point. Below ~1e-15 q0 the sign of q_map(q) − q is round-off (≈ −2q² for
    # tanh at σ_w = 1), so stop there.
    return increasing_map_fixed_point(
        lambda q: _q_map_scalar(act, q, sw, sb), q0, rtol=rtol, q_max=q_max, q_floor=1e-15 * q0
    )


def q_star(
    sigma_w: ArrayLike,
    sigma_b: ArrayLike,
    activation: ActivationLike,
    q0: float = 1.0,
    *,
    rtol: float = 1e-14,
    q_max: float = 1e100,
) -> FloatOrArray:
    """Fixed point ``q*`` of :func:`q_map` reached by iterating from ``q0``.

    Returns ``inf`` when q diverges (homogeneous φ with σ_w² E[φ(z)²] ≥ 1 and σ_b > 0, e.g.
    relu with σ_w² > 2) and ``0.0`` for the trivial fixed point (σ_b = 0 and φ(0) = 0 below
    the critical σ_w). The fixed point is located by bracketing and Brent's method rather
    than by iterating (which is slow near criticality), to relative accuracy ``rtol``.
    Broadcasts over ``sigma_w``, ``sigma_b`` (a loop over elements).
    """
    act = as_activation(activation)
    sw = _nonneg("sigma_w", sigma_w)
    sb = _nonneg("sigma_b", sigma_b)
    q0 = float(_nonneg("q0", q0))
    rtol = max(float(rtol), 4.0 * np.finfo(np.float64).eps)
    return _elementwise(lambda w, b: _q_star_scalar(act, w, b, q0, rtol, q_max), sw, sb)


def _q_or_star(
    act: Activation, sw: NDArray[np.float64], sb: NDArray[np.float64], q: ArrayLike | None
) -> NDArray[np.float64]:
    if q is None:
        return np.asarray(q_star(sw, sb, act), dtype=np.float64)
    return _nonneg("q", q, allow_inf=True)


def chi1(
    sigma_w: ArrayLike,
    sigma_b: ArrayLike,
    activation: ActivationLike,
    q: ArrayLike | None = None,
) -> FloatOrArray:
    """``χ1 = σ_w² E[φ'(√q z)²]``, at ``q = q*(σ_w, σ_b)`` unless ``q`` is given.

    χ1 < 1: ordered phase (c* = 1 stable); χ1 > 1: chaotic. For homogeneous φ it does not
    depend on q (relu: σ_w²/2, linear: σ_w²), also where q* = ∞. Broadcasts.
    """
    act = as_activation(activation)
    sw = _nonneg("sigma_w", sigma_w)
    sb = _nonneg("sigma_b", sigma_b)
    qq = _q_or_star(act, sw, sb, q)
    sw, qq = np.broadcast_arrays(sw, qq)
    return _out(sw * sw * _expect1(act, "dphi2", qq))


def lyapunov(sigma_w: ArrayLike, sigma_b: ArrayLike, activation: ActivationLike) -> FloatOrArray:
    """``½ ln χ1`` at q*: the large-N, large-depth limit of the finite-depth Lyapunov exponent
    λ_L (mean over layers of ``log(|δhˡ| / |δhˡ⁻¹|)``, docs/conventions.md §2.4) at the fixed
    point."""
    with np.errstate(divide="ignore"):
        return _out(0.5 * np.log(np.asarray(chi1(sigma_w, sigma_b, activation))))


def _xi(rate: NDArray[np.float64]) -> NDArray[np.float64]:
    """−1/log(rate) for 0 ≤ rate < 1; ∞ where rate ≥ 1 (no exponential relaxation)."""
    rate = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -1.0 / np.log(rate)
    return np.where(rate >= 1.0, np.inf, out)


def xi_q(sigma_w: ArrayLike, sigma_b: ArrayLike, activation: ActivationLike) -> FloatOrArray:
    """Depth scale of the length: ``ξ_q = −1/log(χ1 + σ_w² E[φ''(√q* z) φ(√q* z)])``.

    The argument is the slope of the q map at q* (Gaussian integration by parts), so
    ``q_l − q* ∝ exp(−l/ξ_q)`` (Schoenholz et al. 2017, eq. 5). ``inf`` where that slope is
    ≥ 1 (marginal points, e.g. tanh at σ_b = 0, σ_w = 1); ``nan`` where q* = ∞. Broadcasts.
    """
    act = as_activation(activation)
    sw = _nonneg("sigma_w", sigma_w)
    sb = _nonneg("sigma_b", sigma_b)
    qs = np.asarray(q_star(sw, sb, act), dtype=np.float64)
    sw, qs = np.broadcast_arrays(sw, qs)
    slope = sw * sw * (_expect1(act, "dphi2", qs) + _expect1(act, "phi_d2phi", qs))
    return _out(np.where(np.isinf(qs), np.nan, _xi(slope)))


# ---------------------------------------------------------------------------------------------
# Correlation map
# ---------------------------------------------------------------------------------------------


def _c_map_scalar(act: Activation, c: float, q: float, sw: float, sb: float) -> float:
    if q == 0.0:
        return math.nan
    bias = 0.0 if math.isinf(q) else sb * sb / q
    if math.isinf(q):  # homogeneous φ only: E[φ(u1)φ(u2)] / q is independent of q
        return sw * sw * _expect2(act, "phi", c, 1.0) + bias
    return (sw * sw * _expect2(act, "phi", c, q) + sb * sb) / q


def c_map(
    c: ArrayLike,
    q: ArrayLike,
    sigma_w: ArrayLike,
    sigma_b: ArrayLike,
    activation: ActivationLike,
) -> FloatOrArray:
    """One layer of the correlation map at fixed length ``q``:
    ``(σ_w² E[φ(u1) φ(u2)] + σ_b²) / q`` with ``u1 = √q z1``, ``u2 = √q (c z1 + √(1−c²) z2)``.

    At ``q = q*`` the point ``c = 1`` is a fixed point and the slope there is χ1. ``q = 0``
    gives NaN (no signal); ``q = ∞`` (homogeneous φ only) is the limit σ_b²/q → 0. 2-D
    quadrature in polar coordinates; broadcasts by looping over elements.
    """
    act = as_activation(activation)
    cc = _corr(c)
    qq = _nonneg("q", q, allow_inf=True)
    sw = _nonneg("sigma_w", sigma_w)
    sb = _nonneg("sigma_b", sigma_b)
    return _elementwise(lambda *a: _c_map_scalar(act, *a), cc, qq, sw, sb)


@lru_cache(maxsize=4096)
def _c_star_scalar(act: Activation, sw: float, sb: float) -> float:
    # memoised: ξ_c, χ_c and c* over one grid (as a figure draws them) share these roots
    qs = _q_star_scalar(act, sw, sb, 1.0, 4.0 * np.finfo(np.float64).eps, 1e100)
    if qs == 0.0:
        return math.nan  # the signal vanishes; c is 0/0
    if math.isinf(qs):
        # Homogeneous φ in its exploding phase: with σ_b²/q → 0 the map is σ_w² E[φ(u1)φ(u2)]
        # / q normalised by the growing q, whose correlations approach 1 as a power law.
        return 1.0 if act.homogeneous else math.nan
    chi = sw * sw * float(_expect1(act, "dphi2", np.array(qs)))
    if chi <= 1.0:
        return 1.0  # slope of the c map at c = 1 is χ1: c = 1 is the stable fixed point

    def g(c: float) -> float:
        return _c_map_scalar(act, c, qs, sw, sb) - c

    # Chaotic: c = 1 repels, so g < 0 just below 1; g(0) = (σ_w² E[φ]² + σ_b²)/q* ≥ 0.
    for delta in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12):
        if g(1.0 - delta) < 0.0:
            break
    else:
        return 1.0  # χ1 within round-off of 1: c* = 1 is marginal
    g0 = g(0.0)
    if g0 <= 1e-15:  # σ_b = 0 and odd φ: c* = 0
        return 0.0
    return float(brentq(g, 0.0, 1.0 - delta, xtol=1e-15, rtol=4 * np.finfo(np.float64).eps))


def c_star(sigma_w: ArrayLike, sigma_b: ArrayLike, activation: ActivationLike) -> FloatOrArray:
    """Stable fixed point ``c*`` of :func:`c_map` at ``q = q*``.

    1 in the ordered phase (χ1 ≤ 1); in the chaotic phase the root of ``c_map(c) = c`` in
    [0, 1) (0 for σ_b = 0 and odd φ). ``nan`` where q* = 0 (the signal vanishes); 1 for
    homogeneous φ where q* = ∞ (correlations then approach 1 as a power of depth).
    Broadcasts by looping.
    """
    act = as_activation(activation)
    sw = _nonneg("sigma_w", sigma_w)
    sb = _nonneg("sigma_b", sigma_b)
    return _elementwise(lambda w, b: _c_star_scalar(act, w, b), sw, sb)


def _chi_c_scalar(act: Activation, sw: float, sb: float, q: float | None, c: float | None) -> float:
    if q is None:
        q = _q_star_scalar(act, sw, sb, 1.0, 4.0 * np.finfo(np.float64).eps, 1e100)
    if c is None:
        c = _c_star_scalar(act, sw, sb)
    if math.isnan(c) or (math.isinf(q) and not act.homogeneous):
        return math.nan
    return sw * sw * _expect2(act, "dphi", c, 1.0 if math.isinf(q) else q)


def chi_c(
    sigma_w: ArrayLike,
    sigma_b: ArrayLike,
    activation: ActivationLike,
    *,
    q: ArrayLike | None = None,
    c: ArrayLike | None = None,
) -> FloatOrArray:
    """``χ_c = σ_w² E[φ'(u1) φ'(u2)]``, the slope of the c map, at ``(q*, c*)`` by default.

    Equal to χ1 where c* = 1 (ordered phase). Give ``q`` and/or ``c`` to evaluate it
    elsewhere. Broadcasts by looping.
    """
    act = as_activation(activation)
    sw = _nonneg("sigma_w", sigma_w)
    sb = _nonneg("sigma_b", sigma_b)
    args = [sw, sb]
    if q is not None:
        args.append(_nonneg("q", q, allow_inf=True))
    if c is not None:
        args.append(_corr(c))

    def one(w: float, b: float, *rest: float) -> float:
        it = iter(rest)
        qq = next(it) if q is not None else None
        cc = next(it) if c is not None else None
        return _chi_c_scalar(act, w, b, qq, cc)

    return _elementwise(one, *args)


def xi_c(sigma_w: ArrayLike, sigma_b: ArrayLike, activation: ActivationLike) -> FloatOrArray:
    """Depth scale of correlations: ``ξ_c = −1/log χ_c`` at (q*, c*) (Schoenholz eq. 9).

    Diverges on the critical line (χ1 = 1 with c* = 1); in the ordered phase it equals
    −1/log χ1. ``inf`` where χ_c ≥ 1 (no exponential relaxation, e.g. relu with q* = ∞);
    ``nan`` where c* is undefined. Broadcasts by looping.
    """
    return _out(_xi(np.asarray(chi_c(sigma_w, sigma_b, activation))))


# ---------------------------------------------------------------------------------------------
# Critical line
# ---------------------------------------------------------------------------------------------


def critical_sigma_w(
    sigma_b: float,
    activation: ActivationLike,
    bracket: tuple[float, float] = (0.1, 10.0),
    *,
    xtol: float = 1e-13,
) -> float:
    """The weight scale σ_w at which ``χ1(q*) = 1`` for the bias scale ``sigma_b``.

    Brent's method on ``χ1(σ_w, σ_b) − 1`` over ``bracket`` (σ_w values, scales). For
    homogeneous φ, χ1 does not depend on q and the answer, ``1/√E[φ'(z)²]`` (relu √2,
    linear 1), does not depend on σ_b. Raises ``ValueError`` when ``bracket`` holds no
    sign change.
    """
    act = as_activation(activation)
    sb = float(_nonneg("sigma_b", sigma_b))
    if act.homogeneous:
        return 1.0 / math.sqrt(float(_expect1(act, "dphi2", np.array(1.0))))
    lo, hi = (float(x) for x in bracket)
    if not 0.0 <= lo < hi:
        raise PipelineError(f"bracket: got {bracket!r}; allowed: 0 <= lo < hi (sigma_w scales)")

    def f(sw: float) -> float:
        q = _q_star_scalar(act, sw, sb, 1.0, 4.0 * np.finfo(np.float64).eps, 1e100)
        return sw * sw * float(_expect1(act, "dphi2", np.array(q))) - 1.0

    flo, fhi = f(lo), f(hi)
    if flo < 0.0 < fhi and sb == 0.0:
        # With σ_b = 0 and φ(0) = 0, q* = 0 (so χ1 = σ_w² φ'(0)²) up to σ_w = 1/|φ'(0)|,
        # where q* leaves 0; beyond it χ1 − 1 grows only quadratically (tanh: ≈ 1.3 ε² at
        # σ_w = 1 + ε), which would limit Brent's method to ~1e-8. Return that point exactly.
        zero = np.zeros(1)
        slope0 = float(act.dphi(zero, np)[0])
        if float(act.phi(zero, np)[0]) == 0.0 and slope0 != 0.0:
            s0 = 1.0 / abs(slope0)
            if lo < s0 < hi and abs(f(s0)) <= 1e-13:
                return s0
    if flo * fhi > 0.0:
        raise PipelineError(
            f"bracket: chi1 - 1 has the same sign at sigma_w = {lo} ({flo:+.3g}) and {hi} "
            f"({fhi:+.3g}) for activation {act.name!r}, sigma_b = {sb}; widen the bracket"
        )
    return float(brentq(f, lo, hi, xtol=xtol, rtol=4 * np.finfo(np.float64).eps))


def critical_line(
    sigma_b_values: ArrayLike,
    activation: ActivationLike,
    bracket: tuple[float, float] = (0.1, 10.0),
) -> NDArray[np.float64]:
    """:func:`critical_sigma_w` for each σ_b of ``sigma_b_values`` (array of the same shape)."""
    sb = _nonneg("sigma_b", sigma_b_values)
    out = np.empty(sb.shape)
    for idx in np.ndindex(sb.shape):
        out[idx] = critical_sigma_w(float(sb[idx]), activation, bracket)
    return out
