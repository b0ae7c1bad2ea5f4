"""The compiled CPU backend (``numba``) against the NumPy reference, under its contract
(docs/conventions.md): the same draws, values within stated relative bounds, the same class
at ≥ 99.9 % of the points, and a point's numbers independent of its chunk and thread count.

Without Numba the backend's tests skip with the reason; the resolution tests run either way.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pipeline.errors import BackendError
from pipeline.experiments import get_experiment
from pipeline.experiments.propagation.architectures import Network
from pipeline.experiments.propagation.network import propagate_architecture
from pipeline.experiments.propagation.probes import (
    BatchProbe,
    CircleProbe,
    DivergenceProbe,
    PairProbe,
    Probes,
)
from pipeline.experiments.propagation.reference import propagate_network as propagate_numpy
from pipeline.experiments.trainability import reference as train_ref
from pipeline.gpu import backend
from pipeline.spec import parse_spec

WHY_NO_NUMBA = backend.numba_unavailable_reason()
needs_numba = pytest.mark.skipif(
    WHY_NO_NUMBA is not None, reason=f"no compiled CPU backend: {WHY_NO_NUMBA}"
)

TRAIN_ACTS = tuple(train_ref.TRAIN_ACTIVATIONS)
PROP_ACTS = ("erf", "tanh", "relu", "linear")
DTYPES = ("float64", "float32")


# ---------------------------------------------------------------- resolution (with or without)


def test_numba_backend_resolution_without_numba(monkeypatch):
    """Numba missing: ``numba`` is a one-line error naming the extra, ``auto`` is ``numpy``."""
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    backend.numba_unavailable_reason.cache_clear()
    try:
        with pytest.raises(BackendError, match=r"'numba' is unavailable here: .*'cpu' extra") as e:
            backend.resolve_backend("numba")
        assert "\n" not in str(e.value)
        if backend.cupy_unavailable_reason() is not None:
            assert backend.resolve_backend("auto") == "numpy"
    finally:
        backend.numba_unavailable_reason.cache_clear()


@needs_numba
def test_numba_backend_resolution_and_provenance():
    import numba

    assert backend.resolve_backend("numba") == "numba"
    if backend.cupy_unavailable_reason() is not None:  # no GPU: auto is the compiled backend
        assert backend.resolve_backend("auto") == "numba"
    info = backend.backend_info("numba")
    assert info["backend"] == "numba" and info["numba_version"] == numba.__version__


# ---------------------------------------------------------------- trainability


def _plane(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """An lr plane across the convergence boundary (log10 lr from -1.5 to 0.5)."""
    a, b = np.meshgrid(np.linspace(-1.5, 0.5, n), np.linspace(-1.5, 0.5, n), indexing="ij")
    return 10.0 ** a.ravel(), 10.0 ** b.ravel()


def _train(backend_name, problem, act, lr_in, lr_out, offset=None, **kw):
    return train_ref.train_losses(problem, act, lr_in, lr_out, offset, backend=backend_name, **kw)


def _same_class(a: np.ndarray, b: np.ndarray) -> float:
    """Share of points whose score has the same sign (both NaN counts as equal)."""
    sa, sb = np.sign(a), np.sign(b)
    return float(np.mean((sa == sb) | (np.isnan(sa) & np.isnan(sb))))


@pytest.mark.slow
@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", TRAIN_ACTS)
def test_trainability_plane_matches_numpy(act, dtype):
    """Full batch, depth 2 and 3 (the generic hidden-layer path): the losses of the first steps
    within the dtype's rounding, the classes of the plane equal."""
    lr_in, lr_out = _plane()
    rtol = 1e-12 if dtype == "float64" else 2e-5
    for depth in (2, 3):
        problem = train_ref.make_problem(8, depth, 3, 0.0, "full")
        got = _train("numba", problem, act, lr_in, lr_out, steps=24, dtype=dtype)
        want = _train("numpy", problem, act, lr_in, lr_out, steps=24, dtype=dtype)
        assert got.shape == want.shape == (len(lr_in), 24) and got.dtype == np.float64
        np.testing.assert_allclose(got[:, :4], want[:, :4], rtol=rtol)
        s_got, _, _ = train_ref.score_trajectory(got)
        s_want, _, _ = train_ref.score_trajectory(want)
        assert _same_class(s_got, s_want) >= 0.999


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_trainability_minibatch_and_offsets_match_numpy(dtype):
    """Minibatch gradients (the loss on the full batch), the offset at initialisation and the
    notebook's every-step offset."""
    rtol = 1e-12 if dtype == "float64" else 2e-5
    lr_in, lr_out = _plane(4)
    offset = np.linspace(-0.6, 0.6, len(lr_in))
    mini = train_ref.make_problem(8, 2, 5, 0.1, "minibatch")
    full = train_ref.make_problem(8, 2, 5, 0.0, "full")
    for problem, every in ((mini, False), (full, False), (full, True)):
        kw = dict(steps=16, dtype=dtype, offset_every_step=every)
        got = _train("numba", problem, "tanh", lr_in, lr_out, offset, **kw)
        want = _train("numpy", problem, "tanh", lr_in, lr_out, offset, **kw)
        np.testing.assert_allclose(got[:, :4], want[:, :4], rtol=rtol)
        assert _same_class(train_ref.score_trajectory(got)[0], train_ref.score_trajectory(want)[0])


@needs_numba
@pytest.mark.parametrize(("width", "depth"), [(7, 1), (5, 3), (6, 4), (9, 2)])
def test_trainability_odd_shapes_match_numpy(width, depth):
    """Widths that are not multiples of the kernel's 4 × 4 register blocks (the remainder
    loops), depth 1 (no hidden layer) and depth 4 (two hidden-to-hidden layers), batches of
    every size: the first losses within 1e-12 of NumPy, every activation."""
    problem = train_ref.make_problem(width, depth, 2, 0.0, "full")
    lr_in = np.array([0.05, 0.3, 1.0, 3.0, 0.01])
    lr_out = lr_in[::-1].copy()
    for act in TRAIN_ACTS:
        kw = dict(steps=6, dtype="float64")
        got = _train("numba", problem, act, lr_in, lr_out, **kw)
        want = _train("numpy", problem, act, lr_in, lr_out, **kw)
        np.testing.assert_allclose(got[:, :4], want[:, :4], rtol=1e-12)


@needs_numba
def test_trainability_points_do_not_depend_on_chunk_or_threads():
    """A point's losses are bit-identical alone, in another order, among other points, with
    another thread count."""
    problem = train_ref.make_problem(8, 2, 1, 0.0, "full")
    lr_in, lr_out = _plane(5)  # 25 points, split unevenly between two threads
    full = _train("numba", problem, "tanh", lr_in, lr_out, steps=12, dtype="float64", threads=2)
    perm = np.random.default_rng(0).permutation(len(lr_in))[:11]
    part = _train("numba", problem, "tanh", lr_in[perm], lr_out[perm], steps=12, dtype="float64")
    np.testing.assert_array_equal(part, full[perm])
    one = _train("numba", problem, "tanh", lr_in[7:8], lr_out[7:8], steps=12, dtype="float64")
    np.testing.assert_array_equal(one, full[7:8])


@needs_numba
def test_trainability_experiment_numba_backend():
    """The experiment's chunk on ``numba`` against ``numpy``: same classes, scores close."""
    spec = parse_spec(
        {
            "experiment": "trainability",
            "axes": {
                "width": [8],
                "lr_in": {"linspace": [-1.5, 0.5], "count": 5},
                "lr_out": {"linspace": [-1.5, 0.5], "count": 4},
            },
            "steps": 20,
        }
    )
    exp = get_experiment("trainability")
    coords = {a.name: a.values for a in spec.axes}
    got = exp.compute_chunk(spec, coords, backend="numba", threads=2)
    want = exp.compute_chunk(spec, coords, backend="numpy")
    assert _same_class(got["score"], want["score"]) >= 0.999
    np.testing.assert_array_equal(got["converged"], want["converged"])
    ok = want["converged"] == 1  # converged scores are sums of losses: well conditioned
    np.testing.assert_allclose(got["score"][ok], want["score"][ok], rtol=1e-9)


# ---------------------------------------------------------------- propagation

PROBES = Probes(pair=PairProbe(), circle=CircleProbe(K=6), batch=BatchProbe(m=3))


def _sigma_plane(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    sw, sb = np.meshgrid(np.linspace(0.3, 3.5, n), np.linspace(0.0, 1.5, n), indexing="ij")
    return sw.ravel(), sb.ravel()


@pytest.mark.slow
@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_propagation_plane_matches_numpy(dtype):
    """Every activation, the pair, circle and batch probes: observables at layer 3 within the
    dtype's rounding, flags equal, the class (sign of λ at layer 16) equal."""
    from pipeline.experiments.propagation.compiled import propagate_network as propagate_numba

    sw, sb = _sigma_plane()
    groups = [(a, sw, sb) for a in PROP_ACTS]
    kw = dict(depth=16, record_layers=[3, 16], probes=PROBES, dtype=dtype)
    got = propagate_numba(24, 2.0, 7, groups, **kw)
    want = propagate_numpy(24, 2.0, 7, groups, **kw)
    rtol = 1e-11 if dtype == "float64" else 2e-4
    for act, g, w in zip(PROP_ACTS, got, want, strict=True):
        assert set(g) == set(w)
        for k in ("nonfinite_layer", "underflow_layer"):
            np.testing.assert_array_equal(g[k], w[k], err_msg=f"{act} {k}")
        for k in ("q", "c", "lyap_growth", "lyapunov", "cv", "participation_ratio"):
            np.testing.assert_allclose(
                g[k][:, 0], w[k][:, 0], rtol=rtol, atol=rtol, err_msg=f"{act} {k}"
            )
        scale = np.maximum(w["q"][:, 0], 1.0)  # dist vanishes where a and b have merged
        np.testing.assert_allclose(g["dist"][:, 0] / scale, w["dist"][:, 0] / scale, atol=rtol)
        np.testing.assert_array_equal(g["eff_rank"], w["eff_rank"])
        assert _same_class(g["lyapunov"][:, -1], w["lyapunov"][:, -1]) >= 0.999, act


@needs_numba
def test_propagation_points_do_not_depend_on_chunk_or_threads():
    """Bit-identical across tilings of the same tile size, subsets and thread counts."""
    from pipeline.experiments.propagation.compiled import propagate_network as propagate_numba

    sw, sb = _sigma_plane(6)
    kw = dict(depth=10, record_layers=[10], probes=PROBES, dtype="float32", points_per_tile=8)
    full = propagate_numba(16, 1.5, 2, [("erf", sw, sb)], threads=2, **kw)[0]
    idx = np.array([3, 17, 30, 31])
    part = propagate_numba(16, 1.5, 2, [("erf", sw[idx], sb[idx])], **kw)[0]
    for k in full:
        np.testing.assert_array_equal(part[k], full[k][idx], err_msg=k)


@needs_numba
def test_propagation_experiment_numba_backend():
    """The experiment's chunk on ``numba``: same flags and classes as ``numpy``."""
    spec = parse_spec(
        {
            "experiment": "propagation",
            "axes": {
                "width": [16],
                "activation": ["erf", "tanh"],
                "sigma_w": {"linspace": [0.5, 3.0], "count": 5},
                "sigma_b": {"linspace": [0.0, 1.0], "count": 3},
            },
            "depth": 12,
            "record_layers": "last",
        }
    )
    exp = get_experiment("propagation")
    coords = {a.name: a.values for a in spec.axes}
    got = exp.compute_chunk(spec, coords, backend="numba", threads=2)
    want = exp.compute_chunk(spec, coords, backend="numpy")
    np.testing.assert_array_equal(got["nonfinite_layer"], want["nonfinite_layer"])
    assert _same_class(got["lyapunov"], want["lyapunov"]) >= 0.999


# ---------------------------------------------------------------- vectorised float64 erf


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between float64 arrays (finite values)."""
    ia, ib = a.view(np.int64), b.view(np.int64)
    lo = np.int64(-(2**63))
    ia = np.where(ia < 0, lo - ia, ia)
    ib = np.where(ib < 0, lo - ib, ib)
    return np.abs(ia - ib)


@needs_numba
def test_erf64_within_three_ulp_of_the_c_library():
    """vecmath.erf64 on a dense grid of [−7, 7], a geometric grid down to 1e-300 and the
    branch edge |x| = 1: ≤ 3 ulp from ``math.erf`` (SciPy's own erf is also 3 ulp off it),
    on average < 0.5 ulp; NaN, ±inf, ±0 exact."""
    import math

    from numba import njit
    from scipy.special import erf

    from pipeline.numerics.vecmath import erf64

    @njit
    def run(x, out):  # noqa: ANN001, ANN202
        for i in range(x.shape[0]):
            out[i] = erf64(x[i])

    g = np.geomspace(1e-300, 7.0, 20_001)
    edge = np.nextafter(1.0, np.array([0.0, 2.0]))
    x = np.concatenate([np.linspace(-7.0, 7.0, 400_001), g, -g, edge, -edge, [1.0, -1.0]])
    got = np.empty_like(x)
    run(x, got)
    want = np.array([math.erf(v) for v in x])
    u = _ulps(got, want)
    assert u.max() <= 3 and u.mean() < 0.5
    assert _ulps(got, erf(x)).max() <= 4
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0, 30.0])
    out = np.empty_like(special)
    run(special, out)
    assert np.isnan(out[0])
    assert out[1:].tolist() == [1.0, -1.0, 0.0, -0.0, 1.0, 1.0]
    assert np.signbit(out[4])


@needs_numba
def test_float32_erf_pass_is_scipys_float32_erf():
    """The float32 pass's φ = erf (erf64 rounded once, the kernel's own ``_phi_row``) against
    SciPy's float32 erf on a dense grid, normal samples and tiny arguments: equal at ≥ 99.99 %
    (measured: every one), never more than 1 ulp of float32 apart; NaN and ±inf kept."""
    from scipy.special import erf

    from pipeline.experiments.propagation.compiled import _phi_row

    g = np.random.default_rng(5)
    x = np.concatenate(
        [
            np.linspace(-7.0, 7.0, 400_001),
            g.standard_normal(200_000) * 3.0,
            g.standard_normal(50_000) * 1e-3,
            np.nextafter(np.float32(1.0), np.float32([0.0, 2.0])),
            [1.0, -1.0, 0.0, 6.0, -30.0],
        ]
    ).astype(np.float32)
    got = np.empty_like(x)
    _phi_row(x, got, np.float32(1.0), 2, True)
    want = erf(x)
    assert want.dtype == np.float32
    diff = np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))
    assert diff.max() <= 1 and np.mean(diff > 0) <= 1e-4
    special = np.array([np.nan, np.inf, -np.inf], np.float32)
    out = np.empty_like(special)
    _phi_row(special, out, np.float32(1.0), 2, True)
    assert np.isnan(out[0]) and out[1:].tolist() == [1.0, -1.0]


# ---------------------------------------------------------------- architecture path, compiled

DIV_PROBES = Probes(divergence=DivergenceProbe(mean_last=5))


def _divergence_plane(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A (σ_w, σ_b) plane across the erf network's order/chaos edge (err from ~0 to O(1))."""
    sw, sb = np.meshgrid(np.linspace(0.5, 4.0, n), np.linspace(0.0, 3.0, n), indexing="ij")
    return sw.ravel(), sb.ravel()


def _arch(n, alpha, seed, sw, sb, backend, network, probes=DIV_PROBES, **kw):
    return propagate_architecture(
        n, alpha, seed, [("erf", sw, sb)], network=network, probes=probes, backend=backend, **kw
    )[0]


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_divergence_plane_matches_numpy(dtype, monkeypatch):
    """D'Inverno's network (dense, projected bias, divergence probe, erf), depth 50: err at
    layer 3 within the dtype's rounding, err and err_mean at layer 50 give the same class at
    every point (threshold 1e-3), agree where the network is ordered, flags equal."""
    net = Network("dense", "per_layer", "projected")
    sw, sb = _divergence_plane()
    kw = dict(depth=50, record_layers=[3, 50], dtype=dtype)
    from pipeline.experiments.propagation import compiled_network

    calls = []
    step = compiled_network.compiled_step
    monkeypatch.setattr(compiled_network, "compiled_step", lambda *a: calls.append(1) or step(*a))
    got = _arch(40, 2.0, 3, sw, sb, "numba", net, **kw)
    assert len(calls) == 50  # the compiled pass ran (one tile)
    want = _arch(40, 2.0, 3, sw, sb, "numpy", net, **kw)
    assert len(calls) == 50 and set(got) == set(want)
    np.testing.assert_array_equal(got["nonfinite_layer"], want["nonfinite_layer"])
    rtol = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(got["err"][:, 0], want["err"][:, 0], rtol=rtol, atol=1e-300)
    t = DIV_PROBES.divergence.threshold
    for k in ("err", "err_mean"):
        g, w = got[k][:, -1], want[k][:, -1]
        assert 0.1 < np.mean(w > t) < 0.9  # both classes on the plane
        np.testing.assert_array_equal(g > t, w > t, err_msg=k)
        ordered = w < 1e-8
        assert ordered.sum() > 10
        # ordered points: close relative to the rounding floor of err (ulp(y)² N / N)
        floor = 1e-26 if dtype == "float64" else 1e-11
        r = 1e-6 if dtype == "float64" else 0.05
        np.testing.assert_allclose(g[ordered], w[ordered], rtol=r, atol=floor, err_msg=k)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_other_real_architectures_and_row_probes_match_numpy(dtype):
    """conv (FFT operator) and weight-tied dense networks with the circle and batch probes
    beside the divergence probe, every activation the compiled pass has: values at layer 2
    within the dtype's rounding."""
    probes = Probes(circle=CircleProbe(K=6), batch=BatchProbe(m=3), divergence=DivergenceProbe())
    sw, sb = _sigma_plane(4)
    rtol = 1e-11 if dtype == "float64" else 5e-4
    for net in (Network("conv"), Network("dense", "shared", "projected")):
        for act in PROP_ACTS + ("sigmoid",):
            kw = dict(depth=2, record_layers=[2], dtype=dtype, probes=probes)
            groups = [(act, sw, sb)]
            got = propagate_architecture(16, 2.0, 1, groups, network=net, backend="numba", **kw)
            want = propagate_architecture(16, 2.0, 1, groups, network=net, backend="numpy", **kw)
            for k in ("cv", "participation_ratio", "err"):
                np.testing.assert_allclose(
                    got[0][k], want[0][k], rtol=rtol, atol=1e-12, err_msg=f"{net} {act} {k}"
                )


@needs_numba
def test_architecture_points_do_not_depend_on_chunk_or_threads():
    """The compiled pass: bit-identical across subsets and thread counts (fixed tile size)."""
    net = Network("dense", "per_layer", "projected")
    sw, sb = _divergence_plane(6)
    kw = dict(depth=8, record_layers=[8], dtype="float64", points_per_tile=8)
    full = _arch(16, 2.0, 2, sw, sb, "numba", net, threads=2, **kw)
    idx = np.array([3, 17, 30, 35])
    part = _arch(16, 2.0, 2, sw[idx], sb[idx], "numba", net, **kw)
    for k in full:
        np.testing.assert_array_equal(part[k], full[k][idx], err_msg=k)


@needs_numba
def test_draws_file_slice_on_numba_gives_their_err(tmp_path):
    """The authors' first 4 layers (their seed-0 dense network, a draws file) through the
    experiment on ``numba``: err equals the transcription of their loop within 1e-12, so the
    classes at both thresholds do."""
    from test_draws_propagation import THRESHOLDS, _first_layers, _spec, their_errs

    arrays = _first_layers(4)
    f = tmp_path / "d.npz"
    np.savez(f, **arrays)
    spec = _spec(f, 4, (0.0, 4.0), (0.0, 4.0), divergence={"mean_last": 2})
    coords = {a.name: np.asarray(a.values) for a in spec.axes}
    out = get_experiment("propagation").compute_chunk(spec, coords, backend="numba")
    got = {k: v[0, 0, 0, 0, ..., -1].ravel() for k, v in out.items() if v.ndim > 6}
    sw, sb = np.meshgrid(coords["sigma_w"], coords["sigma_b"], indexing="ij")
    ref = their_errs(arrays, sw.ravel(), sb.ravel())
    np.testing.assert_allclose(got["err"], ref[-1], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got["err_mean"], ref[-2:].mean(0), rtol=1e-12)
    for t in THRESHOLDS:
        np.testing.assert_array_equal(got["err"] > t, ref[-1] > t)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_pass_pre_activations_are_numpys(dtype):
    """The compiled pass's h = σ_w·A(y) + σ_b·b is NumPy's bit for bit (two products, one
    sum, no FMA); φ(h) within erf64's 3 ulp (float64) or one float32 rounding of it; err as
    NumPy's Σ (y₁ − y₂)² / N within summation order; the overflow flag set where |h|² is."""
    from scipy.special import erf

    from pipeline.experiments.propagation import compiled_network

    rng = np.random.default_rng(5)
    p, r, n = 5, 2, 37  # a tail after the eight partial sums, a partial point block
    a = (rng.standard_normal((p * r, n)) * 3).astype(dtype)
    sw = rng.uniform(0.5, 3, p * r).astype(dtype)
    sb = rng.uniform(0, 2, p * r).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    a[7, 3] = np.finfo(dtype).max  # point 3 overflows
    with np.errstate(over="ignore"):
        want_h = a * sw[:, None] + sb[:, None] * bias[None, :]
    z, y = a.copy(), np.empty_like(a)
    bad, err = np.empty(p, np.bool_), np.empty(p)
    fmax = float(np.finfo(dtype).max)
    compiled_network._layer(z, y, sw, sb, bias, 2, fmax, r, 0, 1.0 / n, bad, err)
    np.testing.assert_array_equal(z, want_h)
    assert bad.tolist() == [False, False, False, True, False]
    with np.errstate(all="ignore"):
        want_y = erf(want_h.astype(np.float64))
    ok = np.isfinite(want_h)
    if dtype == "float64":
        assert _ulps(y[ok], want_y[ok]).max() <= 3
    else:
        np.testing.assert_allclose(y[ok], want_y[ok], rtol=1.2e-7)
    d = (y[0::2] - y[1::2]).astype(np.float64)
    np.testing.assert_allclose(err[:3], (d * d).sum(-1)[:3] / n, rtol=1e-14)


# ---------------------------------------------------------------- the compiled Philox generator


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_generator_changes_no_number(dtype, monkeypatch):
    """Both numba paths draw each layer's weights and biases through the compiled Philox
    (``philox="numba"``; the probe inputs, drawn once, stay on NumPy's), and their results are
    bit-identical to the same runs on the NumPy generator."""
    from pipeline.experiments.propagation import compiled
    from pipeline.numerics import rng

    asked: list[str] = []
    pick = rng._tile_generator

    def spy(philox: str):  # noqa: ANN202
        asked.append(philox)
        return pick(philox)

    def numpy_only(philox: str):  # noqa: ANN202
        return pick("numpy")

    sw, sb = _sigma_plane(5)
    groups = [("erf", sw, sb), ("tanh", sw, sb)]
    kw = dict(depth=6, record_layers=[3, 6], probes=PROBES, dtype=dtype)
    net = Network("dense", "per_layer", "projected")
    arch = dict(depth=6, record_layers=[6], probes=DIV_PROBES, network=net, dtype=dtype)

    def runs() -> list[list[dict[str, np.ndarray]]]:
        return [
            compiled.propagate_network(20, 1.5, 3, groups, **kw),
            propagate_architecture(20, 2.0, 3, groups, backend="numba", **arch),
        ]

    monkeypatch.setattr(rng, "_tile_generator", spy)
    got = runs()
    assert asked.count("numba") >= 2 * 2 * 6  # two runs, a weight and a bias block per layer
    monkeypatch.setattr(rng, "_tile_generator", numpy_only)
    want = runs()
    for g_run, w_run in zip(got, want, strict=True):
        for g, w in zip(g_run, w_run, strict=True):
            for k in w:
                assert np.array_equal(g[k], w[k], equal_nan=True), k
