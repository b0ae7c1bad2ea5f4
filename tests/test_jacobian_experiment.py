"""The jacobian experiment plug-in (spec, chunks) and the D_q fit across widths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from pipeline.analysis.multifractal import fit_dq, per_width_dq
from pipeline.errors import SpecError
from pipeline.experiments import get_experiment
from pipeline.experiments.jacobian import network as net
from pipeline.experiments.jacobian.observables import layer_observables
from pipeline.spec.sweep import parse_spec

RAW = {
    "name": "t",
    "experiment": "jacobian",
    "store": "t.zarr",
    "axes": {
        "width": [24],
        "alpha": [1.2, 2.0],
        "seed": [0, 1],
        "activation": ["tanh"],
        "sigma_w": [0.8, 1.5],
    },
    "depth": 4,
    "record_layers": [3, 4],
    "jac_kinds": ["pre", "post"],
    "q": [0.5, 2.0],
}


def _coords(spec):
    return {a.name: np.asarray(a.values) for a in spec.axes}


def test_chunk_matches_the_direct_computation_and_chunking():
    spec = parse_spec(RAW)
    exp = get_experiment("jacobian")
    coords = _coords(spec)
    full = exp.compute_chunk(spec, coords)
    assert full["j_f1"].shape == (1, 2, 2, 1, 2, 2, 2, 6)
    assert full["mean_log_ipr_class"].shape == (1, 2, 2, 1, 2, 2, 2, 3, 2)
    # one point in its own chunk gives the same numbers (quenched draws, no chunk state)
    one = {k: v[-1:] for k, v in coords.items()}
    single = exp.compute_chunk(spec, one)
    for k, v in single.items():
        np.testing.assert_array_equal(v[0, 0, 0, 0, 0], full[k][0, -1, -1, 0, -1], err_msg=k)
    # and equal to the observables of the network built by hand: alpha 2, seed 1, sw 1.5,
    # layer 4, post = D^4 W^4
    z = net.weight_draws(1, 24, 2.0, 5)
    h = net.preactivations(z, net.input_vector(1, 24), 2.0, 1.5, "tanh", 4)
    c = net.weight_scale(24, 2.0, 1.5)
    ld = np.linalg.slogdet(c * z[3])[1]
    o = layer_observables(c * z[3], h[3], "tanh", "post", ld, spec.params.settings)
    assert full["j_log"][0, 1, 1, 0, 1, 1, 1] == pytest.approx(o["j_log"], abs=1e-12)
    np.testing.assert_allclose(full["mean_ipr"][0, 1, 1, 0, 1, 1, 1], o["mean_ipr"], rtol=1e-12)
    assert np.nanmax(full["residual"]) < 1e-9


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("q", [1.0], "q"), ("jac_kinds", ["mid"], "jac_kinds"), ("record_layers", [5], "record")],
)
def test_bad_params(key, value, match):
    with pytest.raises(SpecError, match=match):
        parse_spec({**RAW, key: value})


def _synthetic(dq: float, noise: float) -> xr.Dataset:
    widths = np.array([64, 128, 256, 512])
    seeds = np.arange(20)
    q = np.array([0.5, 2.0])
    rng = np.random.default_rng(0)
    vals = (1 - q)[None, :, None] * dq * np.log(widths)[None, None, :] + 0.3
    vals = vals + noise * rng.normal(size=(seeds.size, 1, widths.size))
    da = xr.DataArray(
        vals.transpose(2, 0, 1),
        dims=("width", "seed", "q"),
        coords={"width": widths, "seed": seeds, "q": q},
    )
    return xr.Dataset({"mean_log_ipr": da})


def test_dq_fit_recovers_the_exponent_and_its_error():
    exact = fit_dq(_synthetic(0.7, 0.0))
    np.testing.assert_allclose(exact["dq"].values, 0.7, atol=1e-12)
    np.testing.assert_allclose(exact["dq_se"].values, 0.0, atol=1e-12)
    # the per-width estimate carries the offset 0.3 / ((1 - q) ln N)
    pw = per_width_dq(_synthetic(0.7, 0.0)).isel(width=-1, seed=0)
    np.testing.assert_allclose(pw.values, 0.7 + 0.3 / ((1 - pw.q.values) * math.log(512)))
    noisy = fit_dq(_synthetic(0.7, 0.05))
    # the slope's standard error: noise / sqrt(seeds) / sqrt(Σ (ln N - mean)²) / |1 - q|
    x = np.log([64, 128, 256, 512])
    se = 0.05 / math.sqrt(20) / math.sqrt(np.sum((x - x.mean()) ** 2)) / np.abs(1 - noisy.q.values)
    np.testing.assert_allclose(noisy["dq_se"].values, se, rtol=0.4)
    assert np.all(np.abs(noisy["dq"].values - 0.7) < 4 * se)


def test_cost_counts_geev_at_the_chunks_own_width():
    """The plan's chunk cost averages N³ over the widths (its sum over chunks is exact); the
    cost that calibration credits a timed chunk with is that of its own width, so the
    measured rate is not inflated by mean(N³) / N_first³."""
    raw = {**RAW, "axes": {**RAW["axes"], "width": [16, 64]}}
    spec = parse_spec(raw)
    exp = get_experiment("jacobian")
    coords = _coords(spec)
    per_width = [exp.cost_at(spec, {**coords, "width": np.array([n])}) for n in (16, 64)]
    shape = tuple(1 if a.name == "width" else len(a) for a in spec.axes)
    assert sum(per_width) == pytest.approx(2 * exp.chunk_cost(spec, shape)["flops"], rel=1e-12)
    # one spec with width 16 alone: the same count; eig dominates: 25 N³ per point/layer/kind
    alone = parse_spec({**RAW, "axes": {**RAW["axes"], "width": [16]}})
    assert per_width[0] == pytest.approx(exp.chunk_cost(alone, shape)["flops"], rel=1e-12)
    eigs = 2 * 2 * 2 * 2 * 2  # alpha, seed, sigma_w, layers, kinds
    assert per_width[1] > eigs * 25 * 64**3 and per_width[1] < 1.2 * eigs * 25 * 64**3
