"""Layer-Jacobian spectra (pipeline.numerics.jacobian and the jacobian experiment's network and
observables) against closed forms at α = 2 and invariants at α = 1."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import digamma

from pipeline.errors import PipelineError
from pipeline.experiments.jacobian import network as net
from pipeline.experiments.jacobian.observables import JacobianSettings, layer_observables
from pipeline.numerics import theory
from pipeline.numerics.jacobian import ipr, layer_spectrum, log_abs_det, log_dphi

N, DEPTH, SW = 784, 12, 1.5
SETTINGS = JacobianSettings((2.0,), (0.5,), tuple(np.linspace(-3, 3, 61)))


def _deep_layer(seed: int, alpha: float, sw: float = SW, n: int = N, depth: int = DEPTH):
    """(W^{depth+1}, h^depth, ln|det W^{depth+1}|) of one network."""
    z = net.weight_draws(seed, n, alpha, depth + 1)
    h = net.preactivations(z, net.input_vector(seed, n), alpha, sw, "tanh", depth)
    c = net.weight_scale(n, alpha, sw)
    ld = n * math.log(c) + net.log_abs_det_z(seed, n, alpha, depth + 1, depth + 1)
    return c * z[depth], h[-1], ld


@pytest.fixture(scope="module")
def gaussian_layers():
    return [_deep_layer(seed, 2.0) for seed in range(3)]


def test_spectral_radius_is_sqrt_chi1(gaussian_layers):
    # sqrt(chi_1) = 1.067 at sigma_w = 1.5 (tanh, sigma_b = 0). At N = 784 the radius of one
    # network differs from it by the sample mean of phi'^2 over N units (±2 %, measured) and
    # the real-Ginibre edge overshoot (~+2 %): the mean over 3 networks is within 5 %.
    root_chi1 = math.sqrt(theory.chi1(SW, 0.0, "tanh"))
    assert root_chi1 == pytest.approx(1.067, abs=5e-4)
    radii = []
    for w, h, ld in gaussian_layers:
        o = layer_observables(w, h, "tanh", "pre", ld, SETTINGS)
        radii.append(o["spectral_radius"])
        assert o["share_above_one"] > 0.03  # a disc of radius > 1 (not uniform: D varies)
    assert np.mean(radii) == pytest.approx(root_chi1, rel=0.05)


def test_j_log_closed_form(gaussian_layers):
    # (1/N) ln|det W| for W = sigma_w G / sqrt(N), G real Ginibre: ln sigma_w - ln(N)/2
    # + (1/2N) sum_k (psi(k/2) + ln 2) (exact mean; sd ~ 0.002 at N = 784); then
    # J_log -> ln sigma_w - 1/2 + E ln phi'(h*), h* ~ N(0, q*).
    n = N
    ginibre = (
        0.5 * np.sum(digamma(np.arange(1, n + 1) / 2) + math.log(2)) - 0.5 * n * math.log(n)
    ) / n
    q = theory.q_star(SW, 0.0, "tanh")
    x, wq = np.polynomial.hermite_e.hermegauss(80)
    e_log = float((wq / wq.sum()) @ log_dphi("tanh", math.sqrt(q) * x))
    closed = math.log(SW) - 0.5 + e_log
    vals = []
    for w, h, ld in gaussian_layers:
        o = layer_observables(w, h, "tanh", "pre", ld, SETTINGS)
        lphi = float(np.mean(log_dphi("tanh", h)))
        assert o["j_log"] - lphi == pytest.approx(math.log(SW) + ginibre, abs=0.01)
        vals.append(o["j_log"])
    # sd of the sample mean of ln phi'(h) over N units ~ 0.02 per network: 3 networks, 3 sd
    assert np.mean(vals) == pytest.approx(closed, abs=0.04)


def test_slogdet_equals_eigenvalue_sum_where_reliable(gaussian_layers):
    w, h, ld = gaussian_layers[0]
    d = np.exp(log_dphi("tanh", h))
    spec = layer_spectrum(w, d, "pre")
    assert np.min(np.abs(spec.lam)) > 1e-3  # no tiny eigenvalues: the sum is reliable
    assert np.mean(np.log(np.abs(spec.lam))) == pytest.approx(
        log_abs_det(ld, log_dphi("tanh", h)), abs=1e-9
    )


@pytest.mark.parametrize("kind", ["pre", "post"])
def test_residuals_at_alpha_one(kind):
    n, depth = 300, 6
    z = net.weight_draws(1, n, 1.0, depth + 1)
    h = net.preactivations(z, net.input_vector(1, n), 1.0, 1.5, "tanh", depth)
    c = net.weight_scale(n, 1.0, 1.5)
    w = c * z[depth] if kind == "pre" else c * z[depth - 1]
    d = np.exp(log_dphi("tanh", h[-1]))
    assert d.min() < 1e-30  # phi' spans many decades: the trap is there
    spec = layer_spectrum(w, d, kind)
    assert spec.kept.sum() > 10
    assert spec.residual < 1e-6
    # and the eigenvalues are those of the Jacobian itself: its trace
    j = w * d[None, :] if kind == "pre" else d[:, None] * w
    assert spec.lam.sum().real == pytest.approx(np.trace(j), abs=1e-8 * np.abs(j).sum())


def test_pre_and_post_share_no_spectrum_but_keep_their_residual():
    # W^{l+1} D^l and D^l W^l differ (different W); each is exact for its own product
    rng = np.random.default_rng(0)
    w = rng.normal(size=(50, 50)) / math.sqrt(50)
    d = rng.uniform(0.1, 1.0, 50)
    pre, post = layer_spectrum(w, d, "pre"), layer_spectrum(w, d, "post")
    # same W: W D and D W are similar, so the eigenvalues agree
    np.testing.assert_allclose(np.sort_complex(pre.lam), np.sort_complex(post.lam), atol=1e-10)
    assert pre.residual < 1e-12 and post.residual < 1e-12
    with pytest.raises(PipelineError, match="jac_kind"):
        layer_spectrum(w, d, "mid")


def test_ipr_closed_forms():
    n = 64
    v = np.zeros((n, 3), complex)
    v[0, 0] = 3.0  # localised: IPR_q = 1
    v[:, 1] = 1j  # delocalised: IPR_q = N^(1-q)
    v[: n // 4, 2] = 1.0  # on a quarter: (N/4)^(1-q)
    out = ipr(v, (0.5, 2.0, 3.0))
    for i, q in enumerate((0.5, 2.0, 3.0)):
        np.testing.assert_allclose(out[i], [1.0, n ** (1 - q), (n / 4) ** (1 - q)], rtol=1e-12)


def test_log_dphi_matches_and_does_not_underflow():
    h = np.array([-3.0, 0.0, 0.5, 10.0])
    np.testing.assert_allclose(np.exp(log_dphi("tanh", h)), 1 / np.cosh(h) ** 2, rtol=1e-12)
    assert log_dphi("tanh", np.array([1000.0]))[0] == pytest.approx(2 * math.log(2) - 2000)
    assert log_dphi("erf", np.array([30.0]))[0] == pytest.approx(
        math.log(2 / math.sqrt(math.pi)) - 900
    )
