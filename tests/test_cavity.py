"""The cavity theory of the layer-Jacobian spectrum (pipeline.numerics.cavity) against closed
forms (the circular law at α = 2, moments of the positive stable law) and Qu, Wardak & Gong's
Fig. 2b red line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.numerics import cavity as C


def test_positive_stable_moments_and_laplace():
    # Laplace transform exp(-t^a) and E X^{-a} = 1/Γ(1+a) (∫ t^{a-1} e^{-t^a} dt / Γ(a)).
    rng = np.random.Generator(np.random.PCG64(3))
    a = 0.6
    x = C.positive_stable(a, 400_000, rng)
    assert np.all(x > 0)
    for t in (0.5, 1.0, 3.0):
        assert np.mean(np.exp(-t * x)) == pytest.approx(math.exp(-(t**a)), abs=3e-3)
    assert np.mean(x ** (-a)) == pytest.approx(1.0 / math.gamma(1.0 + a), rel=5e-3)


def test_y_star_zero_is_the_sample_limit():
    for alpha in (1.0, 1.5):
        cs = C.cavity_samples(alpha, 1.0, n_samples=200_000)
        assert np.mean(cs.s2 ** (-alpha / 2)) ** (1 / alpha) == pytest.approx(
            C.y_star_zero(alpha), rel=5e-3
        )
        # Eq. 8 at r = 0 is solved by <S'^(-α/2)>^(1/α) over the sites with chi > 0, for any chi
        y0 = np.mean(np.where(cs.a > 0, cs.s2 ** (-alpha / 2), 0.0)) ** (1 / alpha)
        assert C.cavity_y_star(cs, 0.0) == pytest.approx(y0, rel=1e-12)
    assert C.y_star_zero(2.0) == pytest.approx(1.0)


def test_circular_law_at_alpha_two():
    # gamma = 0: chi = sigma_w phi'(0) = sigma_w for every sample, S = S' = 1: the disc of
    # radius sigma_w with density 1/(pi sigma_w^2), y* = sqrt(1 - r^2/sigma_w^2).
    sw = 1.3
    cs = C.cavity_samples(2.0, sw, n_samples=1000, gamma=0.0)
    r = np.array([0.1, 0.6, 1.2, 1.4])
    y = C.cavity_y_star(cs, r)
    np.testing.assert_allclose(y, np.sqrt(np.clip(1 - (r / sw) ** 2, 0, None)), atol=1e-10)
    rho = C.cavity_density(cs, r)
    np.testing.assert_allclose(rho, [1 / (math.pi * sw**2)] * 3 + [0.0], rtol=1e-9)
    assert C.cavity_r_cut(cs) == pytest.approx(sw * math.sqrt(1 - 0.01**2), rel=1e-9)
    # J_log over r = 0.01 .. r_cut: the Riemann sum of ∫ 2 r log(r) / sw² dr, 0 < r < sw
    j, _ = C.cavity_jacobian_average(C.cavity_samples(2.0, 1.0, n_samples=1000, gamma=0.0), (1,))
    assert j[0] == pytest.approx(-0.5, abs=2e-3)


def test_density_is_normalised():
    # the share of eigenvalues Σ 2π r ρ(r) Δr over every r is 1 (heavy-tailed: far out)
    cs = C.cavity_samples(1.5, 1.5, n_samples=20_000)
    r = np.concatenate([np.linspace(1e-3, 3, 300), np.geomspace(3.0, 1e3, 150)[1:]])
    rho = C.cavity_density(cs, r)
    mass = np.trapezoid(2 * math.pi * r * rho, r)
    assert mass == pytest.approx(1.0, abs=0.02)


def test_ordered_line_alpha_two_is_edge_of_chaos():
    assert C.ordered_line_rcut(2.0, "tanh") == pytest.approx(1.0)
    assert C.ordered_line_rcut(2.0, "erf") == pytest.approx(math.sqrt(math.pi) / 2)
    # and r_cut of the Gaussian network there is 1 up to the O(frac^2) offset
    cs = C.cavity_samples(2.0, 1.0, n_samples=1000, gamma=0.0)
    assert C.cavity_r_cut(cs) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("alpha", "paper"),
    [(1.0, 0.474), (1.2, 0.514), (1.4, 0.569), (1.6, 0.645), (1.8, 0.76), (2.0, 1.00)],
)
def test_red_line_against_the_paper(alpha, paper):
    # Fig. 2b red line of Qu, Wardak & Gong (2022), read off the figure to ±0.03
    assert C.ordered_line_rcut(alpha, "tanh") == pytest.approx(paper, abs=0.03)


def test_bad_input():
    with pytest.raises(PipelineError, match="alpha"):
        C.cavity_samples(2.5, 1.0)
    with pytest.raises(PipelineError, match="sigma_w"):
        C.cavity_samples(1.5, 0.0)
    with pytest.raises(PipelineError, match="n_samples"):
        C.cavity_samples(1.5, 1.0, n_samples=10)
