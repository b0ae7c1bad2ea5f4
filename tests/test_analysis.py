"""Analysis stages: Lévy mean field, regime maps / critical lines, boundary dimensions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from pipeline import rng, theory
from pipeline.analysis import (
    measured_critical_line,
    regime_area,
    regime_maps,
)
from pipeline.cli import main
from pipeline.experiments.propagation.probes import PairProbe, Probes
from pipeline.experiments.propagation.reference import propagate_network
from pipeline.numerics.levy import (
    levy_expect,
    levy_q_map,
    levy_q_star,
    levy_scale,
    levy_scale_star,
    ordered_transition_sigma_w,
)

# ------------------------------------------------------------------------------ Lévy theory


@pytest.mark.parametrize("act", ["tanh", "erf", "relu"])
def test_levy_map_at_alpha_2_is_the_gaussian_map(act):
    q = np.array([0.01, 0.3, 1.0, 4.0, 25.0])
    for sw, sb in [(0.7, 0.0), (1.3, 0.2), (2.5, 0.6)]:
        assert np.array_equal(levy_q_map(q, sw, sb, 2.0, act), theory.q_map(q, sw, sb, act))
        assert levy_q_star(sw, sb, 2.0, act) == theory.q_star(sw, sb, act)
    # the stable (CMS) quadrature every α < 2 uses agrees with the Gaussian one at α = 2
    gamma = np.sqrt(q / 2)
    gauss = levy_expect(gamma, 2.0, act)
    stable = levy_expect(gamma, 2.0, act, quadrature=True)
    np.testing.assert_allclose(stable, gauss, rtol=1e-7)


def test_levy_expect_matches_monte_carlo_at_alpha_1_2():
    u1, u2 = np.random.default_rng(1).random((2, 2_000_000))
    x = rng.stable_from_uniforms(u1, u2, 1.2)
    for g in (0.1, 0.8, 4.0):
        mc = np.mean(np.abs(np.tanh(g * x)) ** 1.2)
        assert levy_expect(g, 1.2, "tanh") == pytest.approx(mc, rel=5e-3)
    assert levy_expect(0.5, 1.5, "relu") == math.inf  # E|X|^α diverges


@pytest.mark.slow
def test_levy_fixed_point_scale_matches_a_width_4096_network():
    """α = 1.5, tanh, σ_b = 0, σ_w = 1.5: γ of the pre-activations (characteristic-function
    fit) vs the iterated Lévy map and its fixed point, network drawn per docs/conventions.md §2."""
    alpha, sw, n, m, depth = 1.5, 1.5, 4096, 8, 8
    g = rng.normal_block(0, rng.STREAMS["batch"], 0, 0, n, 0, m)
    x = g / np.sqrt((g**2).mean(axis=0, keepdims=True))  # mean square 1
    q = sw**alpha * np.mean(np.abs(x) ** alpha)  # Qu et al.: q¹ = D_w q⁰ (σ_b = 0)
    for layer in range(1, depth + 1):
        z = rng.stable_block(0, rng.STREAMS["weight"], layer, 0, n, 0, n, alpha, threads=2)
        h = (sw * (2 * n) ** (-1 / alpha)) * (z @ x)
        x = np.tanh(h)
        if layer > 1:
            q = levy_q_map(q, sw, 0.0, alpha, "tanh")
        t = 1.0 / np.median(np.abs(h))
        fitted = (-np.log(np.mean(np.cos(t * h)))) ** (1 / alpha) / t
        assert fitted == pytest.approx(levy_scale(q, alpha), rel=0.05), layer
    star = levy_scale_star(sw, 0.0, alpha, "tanh")
    assert fitted == pytest.approx(star, rel=0.10)


@pytest.mark.slow
def test_ordered_transition():
    # α = 2, tanh: q* ≈ (σ_w² − 1)/2 just above σ_w = 1, so q* = 0.01 at σ_w ≈ 1.01
    s2 = ordered_transition_sigma_w(0.0, 2.0, "tanh")
    assert 1.0 < s2 < 1.02
    assert theory.q_star(s2, 0.0, "tanh") == pytest.approx(0.01, rel=1e-6)
    s15 = ordered_transition_sigma_w(0.0, 1.5, "tanh", bracket=(0.5, 1.0), method="root")
    assert levy_q_star(s15, 0.0, 1.5, "tanh") == pytest.approx(0.01, rel=1e-3)
    # the closed form (q = threshold is a fixed point) agrees with the root search
    assert ordered_transition_sigma_w(0.0, 1.5, "tanh") == pytest.approx(s15, rel=1e-6)
    assert ordered_transition_sigma_w(0.0, 2.0, "tanh", method="root") == pytest.approx(
        s2, rel=1e-6
    )
    assert ordered_transition_sigma_w(0.02, 1.5, "erf") == pytest.approx(
        ordered_transition_sigma_w(0.02, 1.5, "erf", bracket=(0.3, 1.5), method="root"),
        rel=1e-6,
    )
    assert s15 < s2  # heavy tails: the signal survives at smaller σ_w
    assert math.isnan(ordered_transition_sigma_w(0.5, 1.5, "tanh"))  # σ_b^α > threshold


# ------------------------------------------------------------------- regimes, critical lines

SW2 = np.linspace(0.5, 3.0, 16)
SB2 = np.linspace(0.0, 0.5, 9)
LAYERS = [10, 20, 30]


@pytest.fixture(scope="module")
def sweep() -> xr.Dataset:
    """N = 1024, α = 2, depth 30, tanh and relu on a 16 × 9 grid of (σ_w², σ_b²), 1 seed."""
    w2, b2 = np.meshgrid(SW2, SB2, indexing="ij")
    groups = [(a, np.sqrt(w2.ravel()), np.sqrt(b2.ravel())) for a in ("tanh", "relu")]
    res = propagate_network(
        1024,
        2.0,
        0,
        groups,
        depth=30,
        record_layers=LAYERS,
        probes=Probes(pair=PairProbe()),
        threads=2,
    )
    shape = (1, 1, 1, 2, SW2.size, SB2.size, len(LAYERS))
    dims = ("width", "alpha", "seed", "activation", "sigma_w2", "sigma_b2", "layer")
    data = {
        k: (dims, np.stack([r[k].reshape(SW2.size, SB2.size, -1) for r in res]).reshape(shape))
        for k in ("lyapunov", "c", "q")
    }
    coords = {
        "width": [1024],
        "alpha": [2.0],
        "seed": [0],
        "activation": ["tanh", "relu"],
        "sigma_w2": SW2,
        "sigma_b2": SB2,
        "layer": LAYERS,
        "sigma_w": ("sigma_w2", np.sqrt(SW2)),
        "sigma_b": ("sigma_b2", np.sqrt(SB2)),
    }
    return xr.Dataset(data, coords=coords, attrs={"title": "test sweep"})


def test_critical_lines_within_two_grid_steps_of_mean_field(sweep):
    cl = measured_critical_line(sweep, burn_in=10).sel(layer=30)
    dev = cl["deviation_steps"].squeeze()
    assert dev.dims == ("activation", "sigma_b2")
    assert np.all(np.isfinite(dev.values))
    assert float(abs(dev).max()) <= 2.0, dev.values
    relu = cl["sigma_w_theory"].sel(activation="relu")
    np.testing.assert_allclose(relu.values, 2.0, rtol=1e-12)  # σ_w² = 2
    tanh0 = float(cl["sigma_w_theory"].sel(activation="tanh", sigma_b2=0.0).squeeze())
    assert tanh0 == pytest.approx(1.0, abs=1e-12)


def test_regime_maps_and_area(sweep):
    maps = regime_maps(sweep, factor=10.0)
    lam = maps["regime_lyapunov"].sel(activation="relu", layer=30).squeeze()
    assert set(np.unique(lam.values)) <= {-1.0, 0.0, 1.0}
    # relu: ordered at small σ_w², chaotic at large, critical around σ_w² = 2 for every σ_b
    assert np.all(lam.isel(sigma_w2=0) == -1) and np.all(lam.isel(sigma_w2=-1) == 1)
    assert np.all(lam.sel(sigma_w2=2.0, method="nearest") == 0)
    area = regime_area(maps["regime_lyapunov"])
    frac = area["fraction"].sel(activation="relu").squeeze()
    # critical band |λ| L ≤ log 10 with λ ≈ ½ ln(σ_w²/2) narrows as L grows
    assert float(frac.sel(layer=10)) > float(frac.sel(layer=30)) > 0
    band = 2.0 * np.exp(np.array([-2, 2]) * math.log(10) / 30)  # σ_w² where |λ| L = log 10
    expected = np.mean((SW2 >= band[0]) & (SW2 <= band[1]))
    assert float(frac.sel(layer=30)) == pytest.approx(expected, abs=1.5 / SW2.size)
    assert "regime_c" in maps


def test_sweep_analyze_writes_group(sweep, tmp_path, capsys):
    store = tmp_path / "s.zarr"
    sweep.to_zarr(store, mode="w", consolidated=False)
    assert main(["analyze", str(store), "--burn-in", "10"]) == 0
    out = capsys.readouterr().out
    assert "Critical line" in out and "Critical regime" in out and "written" in out
    an = xr.open_zarr(store, group="analysis")
    assert {"sigma_w_measured", "sigma_w_theory", "critical_fraction"} <= set(an.data_vars)
    assert an.attrs["burn_in"] == 10 and an.attrs["source_title"] == "test sweep"
    main_ds = xr.open_zarr(store)
    assert "lyapunov" in main_ds and "analysis" not in main_ds.data_vars
    np.testing.assert_array_equal(main_ds["lyapunov"].values, sweep["lyapunov"].values)
    assert main(["analyze", str(tmp_path / "nope.zarr")]) == 2
