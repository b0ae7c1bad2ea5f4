"""Analysis stages: Lévy mean field, regime maps / critical lines, boundary dimensions."""

from __future__ import annotations

import math
import sys
import tracemalloc
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from pipeline import rng, theory
from pipeline.analysis import (
    boundary_mask,
    box_counting_dimension,
    box_counts,
    box_counts_lazy,
    dimension_from_counts,
    measured_critical_line,
    regime_area,
    regime_maps,
    sohl_dickstein_dimension,
    uncertainty_exponent,
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

sys.path.insert(0, str(Path(__file__).parent))
from _shapes import disk, koch_snowflake, quadratic_koch, tilted_line  # noqa: E402

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


# ----------------------------------------------------------------------- fractal dimensions

LOG4_3 = math.log(4) / math.log(3)


@pytest.fixture(scope="module")
def shapes() -> dict[str, tuple[np.ndarray, float]]:
    return {
        "disk": (disk(), 1.0),
        "line": (tilted_line(), 1.0),
        "quadratic_koch": (quadratic_koch(5, 1), 1.5),
        "koch_snowflake": (koch_snowflake(7, 1500), LOG4_3),
    }


@pytest.mark.parametrize("name", ["disk", "line", "quadratic_koch", "koch_snowflake"])
def test_box_counting_dimension_of_known_shapes(shapes, name):
    f, truth = shapes[name]
    est = box_counting_dimension(f)
    assert abs(est.estimate - truth) < 0.05, (est.estimate, est.fit_scales)
    assert est.interval[0] <= truth <= est.interval[1], est.interval
    x, y = est.loglog()
    assert x.size == est.scales.size and np.all(np.diff(y) <= 0)


@pytest.mark.parametrize("name", ["disk", "line", "quadratic_koch", "koch_snowflake"])
def test_uncertainty_exponent_of_known_shapes(shapes, name):
    f, truth = shapes[name]
    est = uncertainty_exponent(f)
    assert abs(est.estimate - truth) < 0.1, est.estimate


def test_uncertainty_exponent_of_a_callable_field():
    def g(x, y):  # a circle of radius 1: D = 1
        return 1.0 - np.hypot(x, y)

    est = uncertainty_exponent(g, eps=np.geomspace(1e-4, 1e-2, 6), bounds=(-2, 2, -2, 2))
    assert abs(est.estimate - 1.0) < 0.1


def test_sohl_dickstein_estimator_pools_frames(shapes):
    f, truth = shapes["quadratic_koch"]
    h = f.shape[0]
    frames = [f, f[: h // 2, : h // 2], f[h // 4 : 3 * h // 4, h // 4 : 3 * h // 4]]
    est = sohl_dickstein_dimension(frames)
    assert est.method == "sohl-dickstein-2024"
    assert abs(est.estimate - truth) < 0.1
    assert est.extra["local_slopes"].size > 9


def test_sohl_dickstein_estimator_on_smooth_frames_and_its_size_limit():
    """Circles (D = 1) at 512 px: within 0.05, interval covering 1. Frames under 160 px
    (the largest box a quarter of the side, a factor 4 above the 10 px smallest) are refused
    instead of pooling the 0-slopes of counts that are 1 at any boundary."""
    y, x = np.mgrid[-1:1:512j, -1:1:512j]
    circles = [0.7 - np.hypot(x - 0.1 * k, y) for k in range(3)]
    est = sohl_dickstein_dimension(circles)
    assert abs(est.estimate - 1.0) < 0.05 and est.interval[0] <= 1.0 <= est.interval[1]
    assert est.scales.max() <= 512 // 4
    with pytest.raises(ValueError, match="must be >= 160 px"):
        sohl_dickstein_dimension([c[::4, ::4] for c in circles])  # 128 px


def test_boundary_mask_and_nan():
    f = np.array([[1.0, 1.0, -1.0], [1.0, np.nan, -1.0], [1.0, 1.0, 1.0]])
    assert not boundary_mask(f).any()  # every 2×2 neighbourhood touches the NaN
    f[1, 1] = 1.0
    np.testing.assert_array_equal(boundary_mask(f), [[False, True], [False, True]])
    with pytest.raises(ValueError, match="too small"):
        box_counting_dimension(np.ones((64, 64)))


def test_box_counts_lazy_over_a_chunked_zarr_field(tmp_path):
    """8192 × 8192 float32 field (256 MiB) written chunk-wise, counted chunk by chunk."""
    n, c = 8192, 1024

    def gen(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        y, x = np.mgrid[r0:r1, c0:c1].astype(np.float32)
        return (
            np.sin(x / 97.0) + np.sin(y / 61.0) + 0.5 * np.sin((x + 2 * y) / 13.0) - 0.2
        ).astype(np.float32)

    lazy = da.map_blocks(gen, dtype=np.float32, chunks=((c,) * (n // c), (c,) * (n // c)))
    da.to_zarr(lazy, str(tmp_path / "f.zarr"), overwrite=True)
    z = zarr.open_array(str(tmp_path / "f.zarr"), mode="r")
    tracemalloc.start()
    try:
        sizes, counts = box_counts_lazy(da.from_zarr(z))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    chunk_bytes = c * c * 4
    assert peak < 12 * chunk_bytes, peak / 2**20  # ~24 MiB measured; the field is 256 MiB
    full = z[...]
    s2, n2 = box_counts(boundary_mask(full), sizes.astype(int))
    np.testing.assert_array_equal(counts, n2)
    assert dimension_from_counts(sizes, counts).estimate == pytest.approx(
        dimension_from_counts(s2, n2).estimate
    )
    with pytest.raises(ValueError, match="do not divide"):
        box_counts_lazy(da.from_zarr(z), sizes=[3])


@pytest.mark.slow
def test_box_counting_of_a_zarr_field_over_4_gib_in_bounded_memory(tmp_path):
    """A 34816 × 34816 float32 field (4.5 GiB; ±1 values, so it is small on disk), generated
    and counted chunk by chunk, with peak traced memory under 1.5 GiB; its dimension over
    the common scales equals the in-memory estimate on a 16× downsampled copy."""
    n, c, k = 17 * 2048, 2048, 16

    def gen(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        y = np.arange(r0, r1, dtype=np.float32)[:, None]
        x = np.arange(c0, c1, dtype=np.float32)[None, :]
        f = np.sin(x / 1500.0) + np.sin(y / 900.0) + 0.5 * np.sin((x + 2 * y) / 400.0) - 0.2
        return np.where(f > 0, np.float32(1), np.float32(-1))

    lazy = da.map_blocks(gen, dtype=np.float32, chunks=((c,) * (n // c), (c,) * (n // c)))
    assert lazy.nbytes > 4.5 * 2**30
    tracemalloc.start()
    try:
        da.to_zarr(lazy, str(tmp_path / "big.zarr"), overwrite=True)
        z = zarr.open_array(str(tmp_path / "big.zarr"), mode="r")
        sizes, counts = box_counts_lazy(da.from_zarr(z), sizes=[k * 2**j for j in range(8)])
        small = z[::k, ::k]  # the downsampled copy (read chunk by chunk by zarr)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * 2**30, peak / 2**20
    s_small, n_small = box_counts(boundary_mask(small), (sizes // k).astype(int))
    full = dimension_from_counts(sizes, counts, fit_range=(0, len(sizes) - 1))
    down = dimension_from_counts(s_small, n_small, fit_range=(0, len(sizes) - 1))
    assert full.estimate == pytest.approx(down.estimate, abs=0.02)
    # a smooth but wiggly curve: D is 1 below its curvature scale, a little more across it
    assert 1.0 <= full.estimate < 1.25, full.estimate
