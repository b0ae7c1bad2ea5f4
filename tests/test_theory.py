"""Gaussian mean-field theory (pipeline.theory) against closed forms and independent integrals.

Closed forms used (u1, u2 jointly Gaussian, variance q, correlation c, θ = arccos c):
relu  E[φ(u1)φ(u2)] = q (sin θ + (π − θ) c) / 2π,  E[φ'(u1)φ'(u2)] = (π − θ) / 2π
erf   E[φ(u1)φ(u2)] = (2/π) arcsin(2qc / (1 + 2q)),  E[φ'(u1)φ'(u2)] = (4/π) / √((1+2q)² − 4q²c²)
(Williams 1997 for erf; the arc-cosine kernel of Cho & Saul 2009 for relu).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize

from pipeline import theory
from pipeline.numerics.activations import get_activation
from pipeline.numerics.theory import (
    c_map,
    c_star,
    chi1,
    chi_c,
    critical_line,
    critical_sigma_w,
    lyapunov,
    q_map,
    q_star,
    xi_c,
    xi_q,
)

SB_005 = math.sqrt(0.05)  # Schoenholz et al.'s σ_b² = 0.05, as a scale


def gauss_quad(f, q: float) -> float:
    """E[f(√q z)] by adaptive quadrature (scipy.integrate.quad), split at z = 0."""
    s = math.sqrt(q)

    def g(z: float) -> float:
        return f(s * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    pts = [min(1.0 / s, 5.0), min(3.0 / s, 8.0)] if s > 0 else None
    left = integrate.quad(
        g, -12, 0, epsabs=1e-15, epsrel=1e-13, limit=500, points=[-p for p in pts] if pts else None
    )[0]
    right = integrate.quad(g, 0, 12, epsabs=1e-15, epsrel=1e-13, limit=500, points=pts)[0]
    return left + right


# ---------------------------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [1e-4, 0.3, 1.0, 17.0, 1e4, math.inf])
def test_relu_chi1_is_half_sigma_w_squared_for_any_q(q):
    for sw in (0.5, 1.0, math.sqrt(2.0), 3.0):
        assert chi1(sw, 0.2, "relu", q=q) == pytest.approx(sw * sw / 2, rel=1e-13)


def test_relu_q_map_and_q_star_closed_form():
    q = np.array([0.0, 1e-3, 0.5, 2.0, 40.0])
    for sw, sb in [(0.7, 0.0), (1.3, 0.1), (2.0, 1.5)]:
        np.testing.assert_allclose(q_map(q, sw, sb, "relu"), sw**2 * q / 2 + sb**2, rtol=1e-13)
    assert q_star(1.2, 0.3, "relu") == pytest.approx(0.09 / (1 - 0.72), rel=1e-12)
    assert q_star(1.2, 0.0, "relu") == 0.0  # trivial fixed point
    assert q_star(1.5, 0.1, "relu") == math.inf  # σ_w² > 2: q diverges
    assert q_star(math.sqrt(2.0), 0.1, "relu") == math.inf  # critical, σ_b > 0: linear growth
    assert q_star(math.sqrt(2.0), 0.0, "relu", q0=3.0) == pytest.approx(3.0)  # neutral


@pytest.mark.parametrize("sigma_b", [0.0, 0.05, 0.3, 1.0, 3.0])
def test_relu_and_linear_critical_sigma_w(sigma_b):
    assert critical_sigma_w(sigma_b, "relu") == pytest.approx(math.sqrt(2.0), rel=1e-13)
    assert critical_sigma_w(sigma_b, "linear") == pytest.approx(1.0, rel=1e-13)


@pytest.mark.parametrize("q", [1e-3, 1.0, 7.0])
@pytest.mark.parametrize("c", [-1.0, -0.7, 0.0, 0.4, 0.95, 0.999999, 1.0])
def test_relu_c_map_and_chi_c_arc_cosine_kernel(q, c):
    sw, sb = 1.1, 0.4
    th = math.acos(c)
    e_phiphi = q * (math.sin(th) + (math.pi - th) * c) / (2 * math.pi)
    assert c_map(c, q, sw, sb, "relu") == pytest.approx((sw**2 * e_phiphi + sb**2) / q, abs=1e-13)
    assert chi_c(sw, sb, "relu", q=q, c=c) == pytest.approx(
        sw**2 * (math.pi - th) / (2 * math.pi), abs=1e-13
    )


def test_linear_closed_forms():
    q = np.array([0.0, 0.1, 1.0, 5.0])
    np.testing.assert_allclose(q_map(q, 0.8, 0.3, "linear"), 0.64 * q + 0.09, rtol=1e-13)
    np.testing.assert_allclose(chi1([0.5, 0.8, 1.3], 0.3, "linear"), [0.25, 0.64, 1.69], rtol=1e-13)
    assert q_star(0.8, 0.3, "linear") == pytest.approx(0.09 / (1 - 0.64), rel=1e-12)
    # E[u1 u2] = q c: the c map is affine.
    assert c_map(0.3, 2.0, 0.8, 0.3, "linear") == pytest.approx((0.64 * 2.0 * 0.3 + 0.09) / 2.0)


@pytest.mark.parametrize("q", [1e-3, 0.4, 3.0, 25.0, 900.0])
def test_erf_closed_forms(q):
    sw, sb = 1.2, 0.3
    assert q_map(q, sw, sb, "erf") == pytest.approx(
        sw**2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + sb**2, rel=1e-13
    )
    assert chi1(sw, sb, "erf", q=q) == pytest.approx(
        sw**2 * 4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-13
    )
    for c in (-0.9, 0.0, 0.5, 0.99, 0.99999):
        phiphi = 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q))
        dd = 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - 4 * q * q * c * c)
        assert c_map(c, q, sw, sb, "erf") == pytest.approx((sw**2 * phiphi + sb**2) / q, rel=1e-12)
        assert chi_c(sw, sb, "erf", q=q, c=c) == pytest.approx(sw**2 * dd, rel=1e-12)


def test_erf_c_star_matches_closed_form_map():
    sw, sb = 2.0, 0.3  # chaotic
    qs = q_star(sw, sb, "erf")

    def g(c: float) -> float:
        return (sw**2 * 2 / math.pi * math.asin(2 * qs * c / (1 + 2 * qs)) + sb**2) / qs - c

    ref = optimize.brentq(g, 0.0, 0.999, xtol=1e-15)
    assert c_star(sw, sb, "erf") == pytest.approx(ref, abs=1e-12)
    assert ref < 0.99


def test_tanh_critical_at_sigma_w_one_when_sigma_b_zero():
    assert critical_sigma_w(0.0, "tanh") == pytest.approx(1.0, abs=1e-12)
    assert q_star(1.0, 0.0, "tanh") == 0.0
    assert chi1(1.0, 0.0, "tanh") == pytest.approx(1.0, abs=1e-14)
    # Ordered side: q* = 0 and χ1 = σ_w² φ'(0)²; chaotic side: q* > 0 and χ1 > 1.
    assert q_star(0.9, 0.0, "tanh") == 0.0
    assert chi1(0.9, 0.0, "tanh") == pytest.approx(0.81, rel=1e-13)
    assert q_star(1.1, 0.0, "tanh") > 0.1
    assert chi1(1.1, 0.0, "tanh") > 1.0


def test_erf_critical_at_sqrt_pi_over_two_when_sigma_b_zero():
    assert critical_sigma_w(0.0, "erf") == pytest.approx(math.sqrt(math.pi) / 2, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# tanh against independent integrals
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [1e-3, 0.5, 2.0, 9.0, 100.0, 1e4])
def test_tanh_expectations_against_scipy_quad(q):
    sw, sb = 1.3, 0.2
    assert q_map(q, sw, sb, "tanh") == pytest.approx(
        sw**2 * gauss_quad(lambda u: math.tanh(u) ** 2, q) + sb**2, rel=1e-10, abs=1e-12
    )
    assert chi1(sw, sb, "tanh", q=q) == pytest.approx(
        sw**2 * gauss_quad(lambda u: (1 - math.tanh(u) ** 2) ** 2, q), rel=1e-10, abs=1e-12
    )


def test_tanh_q_map_broadcasts_like_scalars():
    q = np.array([[0.1], [1.0], [4.0]])
    sw = np.array([0.5, 1.5])
    out = q_map(q, sw, 0.2, "tanh")
    assert out.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            # Same up to round-off (an array gets the rule resolved for its largest q).
            scalar = q_map(float(q[i, 0]), float(sw[j]), 0.2, "tanh")
            assert out[i, j] == pytest.approx(scalar, rel=1e-14)
    chis = chi1(np.array([1.0, 1.5, 2.0]), np.array([[0.1], [0.5]]), "tanh")
    assert chis.shape == (2, 3)
    assert chis[1, 2] == pytest.approx(chi1(2.0, 0.5, "tanh"), rel=1e-14)


def test_tanh_c_map_against_monte_carlo():
    """A 2-D check independent of the quadrature: 4M correlated Gaussian pairs."""
    rng = np.random.default_rng(20170101)
    q, c, sw, sb = 2.0, 0.6, 1.5, 0.3
    z1, z2 = rng.standard_normal((2, 4_000_000))
    u1 = math.sqrt(q) * z1
    u2 = math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
    prod = np.tanh(u1) * np.tanh(u2)
    mc = (sw**2 * prod.mean() + sb**2) / q
    err = 4 * sw**2 * prod.std() / math.sqrt(prod.size) / q
    assert abs(c_map(c, q, sw, sb, "tanh") - mc) < err


@pytest.mark.parametrize("sw2", [1.5, 2.5, 4.0])
def test_tanh_q_star_is_the_limit_of_the_iteration(sw2):
    sw = math.sqrt(sw2)
    qs = q_star(sw, SB_005, "tanh")
    assert q_map(qs, sw, SB_005, "tanh") == pytest.approx(qs, rel=1e-13)
    q = 1.0
    for _ in range(300):
        q = q_map(q, sw, SB_005, "tanh")
    assert q == pytest.approx(qs, rel=1e-10)
    # Starting far above gives the same fixed point (unique for tanh when σ_b > 0).
    assert q_star(sw, SB_005, "tanh", q0=50.0) == pytest.approx(qs, rel=1e-12)


def test_xi_q_is_minus_inverse_log_of_the_q_map_slope():
    for act, sw, sb in [("tanh", 1.3, 0.3), ("erf", 1.0, 0.2), ("tanh", 2.0, 0.5)]:
        qs = q_star(sw, sb, act)
        h = 1e-4 * qs
        slope = (q_map(qs + h, sw, sb, act) - q_map(qs - h, sw, sb, act)) / (2 * h)
        assert xi_q(sw, sb, act) == pytest.approx(-1 / math.log(slope), rel=1e-7)
    assert xi_q(math.sqrt(3.0), 0.1, "relu") != xi_q(math.sqrt(3.0), 0.1, "relu")  # q* = ∞: nan
    assert xi_q(1.0, 0.1, "relu") == pytest.approx(-1 / math.log(0.5), rel=1e-13)


# ---------------------------------------------------------------------------------------------
# Correlation map, phases, depth scales
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "sw"),
    [("tanh", 0.8), ("tanh", 1.25), ("tanh", 2.0), ("erf", 0.8), ("erf", 2.0), ("relu", 1.2)],
)
def test_c_equals_one_is_a_fixed_point_at_q_star(act, sw):
    sb = 0.3
    qs = q_star(sw, sb, act)
    assert c_map(1.0, qs, sw, sb, act) == pytest.approx(1.0, abs=1e-13)
    assert c_map(1.0, 2 * qs, sw, sb, act) != pytest.approx(1.0, abs=1e-3)  # only at q*


def test_ordered_phase_c_star_is_one_and_stable():
    sw, sb = math.sqrt(1.5), SB_005
    x = chi1(sw, sb, "tanh")
    assert x < 1
    assert c_star(sw, sb, "tanh") == 1.0
    assert chi_c(sw, sb, "tanh") == pytest.approx(x, rel=1e-14)
    qs = q_star(sw, sb, "tanh")
    # Slope of the c map at c = 1 is χ1 < 1, and points below 1 move up towards it.
    eps = 1e-4
    slope = (1.0 - c_map(1 - eps, qs, sw, sb, "tanh")) / eps
    assert slope == pytest.approx(x, rel=1e-3)
    for c in (0.0, 0.5, 0.9):
        assert c < c_map(c, qs, sw, sb, "tanh") < 1.0


@pytest.mark.parametrize("sw2", [2.5, 4.0])
def test_chaotic_phase_c_star_below_one_and_stable(sw2):
    sw, sb = math.sqrt(sw2), SB_005
    qs = q_star(sw, sb, "tanh")
    cs = c_star(sw, sb, "tanh")
    x1 = chi1(sw, sb, "tanh")
    xc = chi_c(sw, sb, "tanh")
    assert x1 > 1
    assert 0 < cs < 0.9
    assert c_map(cs, qs, sw, sb, "tanh") == pytest.approx(cs, abs=1e-12)
    h = 1e-5
    slope = (c_map(cs + h, qs, sw, sb, "tanh") - c_map(cs - h, qs, sw, sb, "tanh")) / (2 * h)
    assert slope == pytest.approx(xc, rel=1e-6)
    assert xc < 1
    assert xi_c(sw, sb, "tanh") == pytest.approx(-1 / math.log(xc), rel=1e-13)
    # Iterating the c map from 0.99 lands on c*.
    c = 0.99
    for _ in range(400):
        c = c_map(c, qs, sw, sb, "tanh")
        if abs(c - cs) < 1e-11:
            break
    assert c == pytest.approx(cs, abs=1e-9)


def test_tanh_sigma_b_zero_chaotic_c_star_is_zero():
    assert c_star(2.0, 0.0, "tanh") == 0.0
    qs = q_star(2.0, 0.0, "tanh")
    for c in (0.1, 0.5, 0.9, 0.99):
        assert c_map(c, qs, 2.0, 0.0, "tanh") < c


def test_schoenholz_critical_point_tanh_sigma_b2_005():
    """Schoenholz et al. 2017 (Figs. 1, 5, 6; σ_b² = 0.05): the critical point is σ_w² ≈ 1.76."""
    sw_c = critical_sigma_w(SB_005, "tanh")
    assert sw_c**2 == pytest.approx(1.7609546, abs=1e-6)
    assert round(sw_c**2, 2) == 1.76

    # Independent check by scipy.integrate.quad and plain fixed-point iteration of q.
    def e(f, q):
        return integrate.quad(
            lambda z: f(math.sqrt(q) * z) * math.exp(-z * z / 2),
            -12,
            12,
            epsabs=1e-14,
            epsrel=1e-13,
            limit=200,
        )[0] / math.sqrt(2 * math.pi)

    sw2, q = sw_c**2, 1.0
    for _ in range(200):
        q_new = sw2 * e(lambda u: math.tanh(u) ** 2, q) + 0.05
        if abs(q_new - q) < 1e-15:
            break
        q = q_new
    chi = sw2 * e(lambda u: (1 - math.tanh(u) ** 2) ** 2, q_new)
    assert chi == pytest.approx(1.0, abs=1e-9)


def test_xi_c_diverges_at_the_critical_line():
    sw_c = critical_sigma_w(SB_005, "tanh")
    below = sw_c * np.array([0.7, 0.85, 0.95, 0.99, 0.999, 0.9999])
    xs = np.asarray(xi_c(below, SB_005, "tanh"))
    assert np.all(np.diff(xs) > 0)
    assert xs[-1] > 1e4
    # ... and from the chaotic side too.
    above = sw_c * np.array([1.3, 1.1, 1.01, 1.001])
    xa = np.asarray(xi_c(above, SB_005, "tanh"))
    assert np.all(np.diff(xa) > 0)
    assert xa[-1] > 1e3
    # In the ordered phase ξ_c = −1/log χ1.
    assert xs[2] == pytest.approx(-1 / math.log(chi1(below[2], SB_005, "tanh")), rel=1e-13)
    assert xi_c(sw_c, SB_005, "tanh") > 1e10


def test_tanh_critical_sigma_w_increases_with_sigma_b():
    sb = np.sqrt([0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0])
    line = critical_line(sb, "tanh")
    assert line.shape == sb.shape
    assert np.all(np.diff(line) > 0)
    for s, w in zip(sb, line, strict=True):
        assert chi1(w, s, "tanh") == pytest.approx(1.0, abs=1e-10)
    assert line[2] == critical_sigma_w(float(sb[2]), "tanh")


def test_lyapunov_is_half_log_chi1():
    assert lyapunov(1.0, 0.1, "relu") == pytest.approx(0.5 * math.log(0.5), rel=1e-13)
    assert lyapunov(2.0, 0.1, "relu") == pytest.approx(0.5 * math.log(2.0), rel=1e-13)
    sw = np.array([0.8, 1.3, 2.0])
    np.testing.assert_allclose(
        lyapunov(sw, 0.2, "tanh"), 0.5 * np.log(chi1(sw, 0.2, "tanh")), rtol=1e-14
    )
    assert abs(lyapunov(critical_sigma_w(0.2, "tanh"), 0.2, "tanh")) < 1e-12


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="sigma_w"):
        q_map(1.0, -1.0, 0.0, "tanh")
    with pytest.raises(ValueError, match="sigma_b"):
        q_star(1.0, np.array([0.1, np.nan]), "tanh")
    with pytest.raises(ValueError, match=r"c: got 1\.5"):
        c_map(1.5, 1.0, 1.0, 0.0, "tanh")
    with pytest.raises(ValueError, match="activation"):
        chi1(1.0, 0.0, "softplus")
    with pytest.raises(TypeError, match="activation"):
        chi1(1.0, 0.0, 3)
    with pytest.raises(ValueError, match="bracket"):
        critical_sigma_w(0.1, "tanh", bracket=(0.1, 0.5))


def test_accepts_activation_objects():
    act = get_activation("tanh")
    assert chi1(1.3, 0.2, act) == chi1(1.3, 0.2, "tanh")


def test_quadrature_rule_integrates_gaussian_moments():
    z, w = theory._gauss_rule(8)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    assert (w * z**2).sum() == pytest.approx(1.0, abs=1e-14)
    assert (w * z**4).sum() == pytest.approx(3.0, abs=1e-13)
    assert (w * np.maximum(z, 0)).sum() == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-15)
