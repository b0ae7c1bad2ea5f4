"""The propagation experiment against Gaussian mean-field theory and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import theory
from pipeline.experiments.propagation.probes import BatchProbe, CircleProbe, PairProbe, Probes
from pipeline.experiments.propagation.reference import propagate_network
from pipeline.spec import parse_spec


def run_grid(
    activation, sw, sb, *, width, depth, seeds, probes=None, dtype="float64", alpha=2.0, threads=2
):
    """Observables stacked over seeds: dict name -> (seeds, points, layers)."""
    probes = probes or Probes(pair=PairProbe(q0=1.0, c0=0.5))
    out: dict[str, list] = {}
    for seed in seeds:
        (res,) = propagate_network(
            width,
            alpha,
            seed,
            [(activation, np.asarray(sw, float), np.asarray(sb, float))],
            depth=depth,
            record_layers=range(1, depth + 1),
            probes=probes,
            dtype=dtype,
            threads=threads,
        )
        for k, v in res.items():
            out.setdefault(k, []).append(v)
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.slow
def test_tanh_lyapunov_and_q_match_mean_field():
    """Mean-field check (docs/conventions.md §2.4): N = 1024, L = 40, 8 seeds, σ_b² = 0.05,
    three σ_w² across the line."""
    sw2 = np.array([1.5, 2.5, 4.0])
    sb2 = 0.05
    res = run_grid(
        "tanh",
        np.sqrt(sw2),
        np.full(3, np.sqrt(sb2)),
        width=1024,
        depth=40,
        seeds=range(8),
        dtype="float32",
    )
    lam = res["lyap_growth"][:, :, 10:40].mean(axis=(0, 2))
    q = res["q"][:, :, 30:40].mean(axis=(0, 2))
    for i, s2 in enumerate(sw2):
        sw, sb = np.sqrt(s2), np.sqrt(sb2)
        lam_mf = 0.5 * np.log(theory.chi1(sw, sb, "tanh"))
        q_mf = theory.q_star(sw, sb, "tanh")
        assert abs(lam[i] - lam_mf) < 0.01, (s2, lam[i], lam_mf)
        assert abs(q[i] / q_mf - 1) < 0.03, (s2, q[i], q_mf)
    assert (res["nonfinite_layer"] == 0).all()


@pytest.mark.slow
def test_relu_critical_at_sigma_w2_2():
    sw2 = np.array([1.5, 2.0, 2.5])
    res = run_grid("relu", np.sqrt(sw2), np.zeros(3), width=1024, depth=30, seeds=range(3))
    lam = res["lyapunov"][:, :, -1].mean(axis=0)
    assert abs(lam[1]) < 0.01, lam
    assert lam[0] < -0.05 and lam[2] > 0.05, lam
    # and the mean-field values ½ ln(σ_w²/2) on either side
    np.testing.assert_allclose(lam[[0, 2]], 0.5 * np.log(sw2[[0, 2]] / 2), atol=0.02)


def test_linear_q_map_is_exact_in_expectation_and_c_preserved_at_sigma_b_0():
    # linear φ: q^l = σ_w² q^(l-1) + σ_b² in expectation; with σ_b = 0 the angle is
    # preserved in expectation too (c^l ≈ c0).
    res = run_grid("linear", [1.2, 0.9], [0.3, 0.0], width=1024, depth=3, seeds=range(16))
    q = res["q"].mean(axis=0)
    expected = [1.0]
    for _ in range(3):
        expected.append(1.44 * expected[-1] + 0.09)
    np.testing.assert_allclose(q[0], expected[1:], rtol=0.06)  # ~3 sd of the seed mean
    np.testing.assert_allclose(res["c"][:, 1].mean(axis=0), 0.5, atol=0.05)


@pytest.mark.slow
def test_tanh_correlation_converges_to_c_star():
    sw, sb = np.sqrt(2.5), np.sqrt(0.05)
    res = run_grid("tanh", [sw], [sb], width=1024, depth=40, seeds=range(4))
    c = res["c"][:, 0, 30:].mean()
    q_star = theory.q_star(sw, sb, "tanh")
    assert abs(c - theory.c_star(sw, sb, "tanh")) < 0.02, (c, q_star)


def test_circle_and_batch_observables_at_layer_one():
    probes = Probes(circle=CircleProbe(K=16), batch=BatchProbe(m=6))
    res = run_grid("linear", [1.0], [0.0], width=1024, depth=2, seeds=[0], probes=probes)
    # a linear Gaussian layer nearly preserves distances: equal spacing → cv = O(N^-1/2)
    assert res["cv"][0, 0, 0] < 0.06
    # m random inputs stay linearly independent; PR of near-orthogonal rows is near m
    assert (res["eff_rank"][0, 0] == 6).all()
    assert res["participation_ratio"][0, 0, 0] > 0.85 * 6
    # relu at large depth and strong order loses rank in the effective (PR) sense
    res2 = run_grid("relu", [1.0], [1.0], width=256, depth=20, seeds=[0], probes=probes)
    assert res2["participation_ratio"][0, 0, -1] < res2["participation_ratio"][0, 0, 0]


def test_nonfinite_values_are_kept_and_flagged():
    # Heavy tails (α = 0.5) in float32 with a huge σ_w overflow; relu explodes.
    (res,) = propagate_network(
        64,
        0.5,
        0,
        [("relu", np.array([1.0, 1e6]), np.array([0.0, 0.0]))],
        depth=10,
        record_layers=range(1, 11),
        probes=Probes(pair=PairProbe()),
        dtype="float32",
    )
    flag = res["nonfinite_layer"]
    assert flag[1] > 0
    assert not np.isfinite(res["q"][1, flag[1] - 1 :]).all()  # kept, not dropped
    assert np.isfinite(res["q"][1, : flag[1] - 1]).all()
    assert flag[0] == 0 and np.isfinite(res["q"][0]).all()


def test_vanished_tangent_gives_minus_infinite_lyapunov_not_nan():
    """At σ_w = 0 every layer is the constant σ_b ζ: the Jacobian is 0, so log|δh| = −∞ at
    every layer and λ_L = −∞ (the ordered side), with finite pre-activations (no flag)."""
    res = run_grid("tanh", [0.0, 1.0], [0.3, 0.3], width=64, depth=6, seeds=[0])
    lam, growth = res["lyapunov"][0], res["lyap_growth"][0]
    assert np.isneginf(lam[0]).all() and np.isneginf(growth[0]).all()
    assert np.isfinite(lam[1]).all()
    assert (res["nonfinite_layer"][0] == 0).all()
    assert np.allclose(res["c"][0, 0], 1.0)  # both inputs map to the same σ_b ζ
    assert np.isfinite(res["q"][0]).all()


def test_results_do_not_depend_on_threads_or_neighbours():
    sw = np.linspace(0.5, 2.5, 50)
    sb = np.full(50, 0.2)
    kw = dict(
        depth=6,
        record_layers=range(1, 7),
        probes=Probes(pair=PairProbe(), circle=CircleProbe(K=5)),
        dtype="float32",
        points_per_tile=50,
    )
    (a,) = propagate_network(100, 1.5, 7, [("tanh", sw, sb)], threads=1, **kw)
    (b,) = propagate_network(100, 1.5, 7, [("tanh", sw[17:18], sb[17:18])], threads=2, **kw)
    c = propagate_network(
        100, 1.5, 7, [("erf", sw[:3], sb[:3]), ("tanh", sw[10:30], sb[10:30])], threads=2, **kw
    )
    for k in a:
        np.testing.assert_array_equal(a[k][17:18], b[k])
        np.testing.assert_array_equal(a[k][10:30], c[1][k])


def test_compute_chunk_shapes_and_squared_axes():
    from pipeline.experiments import get_experiment

    spec = parse_spec(
        {
            "axes": {
                "width": [32],
                "sigma_w2": [1.0, 4.0],
                "sigma_b2": [0.0, 0.04, 0.09],
                "activation": ["tanh", "relu"],
            },
            "depth": 4,
            "record_layers": [2, 4],
            "probes": {"pair": {}},
        }
    )
    coords = {a.name: np.asarray(a.values) for a in spec.axes}
    out = get_experiment("propagation").compute_chunk(spec, coords)
    assert out["q"].shape == (1, 1, 1, 2, 2, 3, 2)
    assert out["nonfinite_layer"].shape == (1, 1, 1, 2, 2, 3)
    (direct,) = propagate_network(
        32,
        2.0,
        0,
        [("relu", np.array([2.0]), np.array([0.3]))],
        depth=4,
        record_layers=[2, 4],
        probes=Probes(pair=PairProbe()),
    )
    np.testing.assert_array_equal(out["q"][0, 0, 0, 1, 1, 2], direct["q"][0])
