"""Trainability experiment: gradients, whole trajectories vs an independent loop, scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.experiments import get_experiment
from pipeline.experiments.trainability.reference import (
    loss_and_grads,
    make_problem,
    n_params,
    score_trajectory,
    train_points,
)
from pipeline.spec import SpecError, parse_spec
from pipeline.store.grid import chunk_coords, iter_chunk_keys


@pytest.mark.parametrize("activation", ["tanh", "relu", "identity", "sigmoid"])
@pytest.mark.parametrize("depth", [2, 3])
def test_gradients_match_finite_differences(activation, depth):
    pr = make_problem(5, depth, 3, 0.1, "full")
    rng = np.random.default_rng(0)
    weights = [np.stack([w, w + 0.3 * rng.standard_normal(w.shape)]) for w in pr.weights]
    loss, grads = loss_and_grads(weights, pr.x, pr.y, activation)
    h = 1e-6
    for k, w in enumerate(weights):
        for _ in range(6):
            p = int(rng.integers(2))
            i, j = (int(rng.integers(s)) for s in w.shape[1:])
            plus = [v.copy() for v in weights]
            minus = [v.copy() for v in weights]
            plus[k][p, i, j] += h
            minus[k][p, i, j] -= h
            fd = (
                loss_and_grads(plus, pr.x, pr.y, activation)[0][p]
                - loss_and_grads(minus, pr.x, pr.y, activation)[0][p]
            ) / (2 * h)
            if activation == "relu" and abs(fd - grads[k][p, i, j]) > 1e-5:
                continue  # a kink between the two evaluations
            assert fd == pytest.approx(grads[k][p, i, j], rel=1e-5, abs=1e-8), (k, p, i, j)
    assert loss.shape == (2,)


def _reference_trajectory(problem, act, lr_in, lr_out, offset, steps):
    """Plain per-point gradient descent, written independently of the trainability reference."""
    phis = {
        "tanh": (
            lambda z: math.tanh(math.sqrt(2) * z),
            lambda z: math.sqrt(2) * (1 - math.tanh(math.sqrt(2) * z) ** 2),
        ),
        "relu": (lambda z: math.sqrt(2) * max(z, 0.0), lambda z: math.sqrt(2) * (z > 0)),
    }
    phi, dphi = np.vectorize(phis[act][0]), np.vectorize(phis[act][1])
    w1 = problem.weights[0].copy() + offset
    w2 = problem.weights[1].copy()
    x, y = problem.x, problem.y
    n, b = x.shape[1], x.shape[0]
    losses = []
    for _ in range(steps):
        if not np.isfinite(w1).all() or not np.isfinite(w2).all():
            losses.append(np.nan)  # diverged: the score treats it as 1e6
            continue
        g1 = np.zeros_like(w1)
        g2 = np.zeros_like(w2)
        total = 0.0
        for i in range(b):  # one data point at a time
            z1 = x[i] @ w1 / math.sqrt(n)
            a1 = phi(z1)
            f = (a1 @ w2)[0] / n
            err = f - y[i, 0]
            total += err * err
            df = 2 * err / b
            g2 += np.outer(a1, [df / n])
            dz1 = (w2[:, 0] * df / n) * dphi(z1)
            g1 += np.outer(x[i], dz1) / math.sqrt(n)
        losses.append(total / b)
        w1 = w1 - lr_in * g1
        w2 = w2 - lr_out * g2
    return np.array(losses)


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_whole_trajectories_match_an_independent_per_point_loop(act):
    pr = make_problem(4, 2, 1, 0.0, "full")
    assert pr.x.shape == (n_params(4, 2), 4) == (20, 4)
    lr_in = np.array([0.5, 30.0, 2.0])
    lr_out = np.array([0.1, 0.7, 60.0])
    offset = np.array([0.0, 0.0, 0.2])
    res = train_points(
        pr, act, lr_in, lr_out, offset, steps=30, keep_trajectory=True, points_per_tile=2
    )
    for p in range(3):
        with np.errstate(all="ignore"):
            ref = _reference_trajectory(pr, act, lr_in[p], lr_out[p], offset[p], 30)
        score, conv, v = score_trajectory(ref[None])
        np.testing.assert_allclose(res["loss"][p], v[0], rtol=1e-9, atol=1e-12)
        assert res["converged"][p] == int(conv[0])
        assert res["score"][p] == pytest.approx(score[0], rel=1e-9)


def test_score_rules():
    v = np.array(
        [
            [2.0, 1.0, 0.5, 0.25],  # converging: -Σ v/v0
            [1.0, 10.0, np.inf, np.nan],  # diverging: non-finite -> 1e6, +Σ 1/v
            [1.0, 1e9, 1.0, 1.0],  # clipped at 1e6, mean of last 20 (all 4) > 1
        ]
    )
    score, conv, vn = score_trajectory(v)
    assert conv.tolist() == [True, False, False]
    assert score[0] == pytest.approx(-(1 + 0.5 + 0.25 + 0.125))
    assert score[1] == pytest.approx(1 + 0.1 + 1e-6 + 1e-6)
    assert vn[2, 1] == 1e6 and score[2] == pytest.approx(1 + 1e-6 + 1 + 1)


def test_minibatch_uses_the_same_indices_everywhere_and_full_batch_loss():
    pr = make_problem(4, 2, 0, 0.0, "minibatch")
    assert (pr.minibatch(5) == pr.minibatch(5)).all() and len(pr.minibatch(5)) == 16
    assert not (pr.minibatch(5) == pr.minibatch(6)).all()
    res = train_points(pr, "tanh", np.array([0.0]), np.array([0.0]), steps=3, keep_trajectory=True)
    np.testing.assert_array_equal(res["loss"][0], [1.0, 1.0, 1.0])  # lr 0: loss unchanged
    full = make_problem(4, 2, 0, 0.0, "full")
    np.testing.assert_array_equal(full.x, pr.x)


SPEC = {
    "experiment": "trainability",
    "axes": {
        "width": [4],
        "lr_in": {"linspace": [-1, 3], "count": 6},
        "lr_out": {"linspace": [-1, 3], "count": 5},
    },
    "steps": 25,
}


def test_chunks_are_bit_identical_to_the_whole_plane_and_both_classes_appear():
    exp = get_experiment("trainability")
    whole = parse_spec(SPEC)
    assert whole.dtype == "float64" and whole.dims[-2:] == ("lr_in", "lr_out")
    ref = exp.compute_chunk(whole, chunk_coords(whole, next(iter_chunk_keys(whole))))
    split = parse_spec({**SPEC, "chunks": {"lr_in": 4, "lr_out": 2}})
    got = {k: np.zeros_like(v) for k, v in ref.items()}
    from pipeline.store.grid import chunk_slices

    for key in iter_chunk_keys(split):
        part = exp.compute_chunk(split, chunk_coords(split, key))
        for k in got:
            got[k][chunk_slices(split, key)] = part[k]
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    assert (ref["score"] < 0).any() and (ref["score"] > 0).any()
    assert ((ref["score"] < 0) == (ref["converged"] == 1)).all()


def test_offset_mode_axes_and_errors():
    spec = parse_spec(
        {
            "experiment": "trainability",
            "mode": "offset_vs_lr",
            "axes": {"offset": [0.0, 1.0], "lr": [-1.0, 0.0]},
            "steps": 3,
        }
    )
    assert spec.dims == ("width", "depth", "activation", "eps", "seed", "offset", "lr")
    out = get_experiment("trainability").compute_chunk(
        spec, chunk_coords(spec, next(iter_chunk_keys(spec)))
    )
    assert out["score"].shape == (1, 1, 1, 1, 1, 2, 2)
    with pytest.raises(SpecError, match="'axes.lr_in': unknown key"):
        parse_spec(
            {
                "experiment": "trainability",
                "mode": "offset_vs_lr",
                "axes": {"lr_in": [0.0], "offset": [0.0], "lr": [0.0]},
            }
        )
    with pytest.raises(SpecError, match="spec field 'dataset': unknown value 'half'"):
        parse_spec({**SPEC, "dataset": "half"})
    with pytest.raises(SpecError, match="spec field 'axes.activation': unknown value 'erf'"):
        parse_spec({**SPEC, "axes": {**SPEC["axes"], "activation": ["erf"]}})
