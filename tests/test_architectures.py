"""Propagation architectures (dense | struct | conv), weight tying and the divergence probe
against closed forms: unitary and circulant operators, a plain NumPy reference of the layer
map, exact linear theory at σ_b = 0 and the mean-field crossing σ_w = √π/2 with its derived
finite-N tolerance, chunking independence and the spec's one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import digamma, erf

from pipeline.errors import SpecError
from pipeline.experiments import get_experiment
from pipeline.experiments.propagation import network as network_mod
from pipeline.experiments.propagation.architectures import (
    ARCHITECTURES,
    WEIGHT_TYING,
    Network,
    bias_matrix,
    draw_bias,
    draw_operator,
)
from pipeline.experiments.propagation.network import propagate_architecture
from pipeline.experiments.propagation.probes import (
    DivergenceProbe,
    PairProbe,
    Probes,
    divergence_inputs,
    probe_inputs,
)
from pipeline.experiments.propagation.reference import propagate_network
from pipeline.spec import parse_spec

SQRT_PI_2 = math.sqrt(math.pi) / 2  # erf at σ_b = 0: σ_w φ'(0) = 1 at σ_w = √π/2


def test_struct_operator_is_unitary_and_norm_preserving():
    """A = F D₂ F D₁ with the orthonormal DFT: Aᴴ A = I, so |A y| = |y| before φ, and Re A y
    carries half the squared norm on average (the √2 of the output map)."""
    op = draw_operator(Network("struct"), 3, 5, 64, 2.0, "float64")
    m = op.matrix()
    np.testing.assert_allclose(m.conj().T @ m, np.eye(64), atol=1e-12)
    y = np.random.default_rng(0).standard_normal((500, 64))
    z = op.apply(y)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), np.linalg.norm(y, axis=1), rtol=1e-12)
    share = np.mean(np.sum(z.real**2, 1) / np.sum(y**2, 1))
    assert abs(share - 0.5) < 4 * 0.5 / math.sqrt(64 * 500)  # Beta(N/2, N/2)-like spread


def test_conv_operator_equals_dense_circulant():
    """The FFT convolution is C y with C_ij = c_((i − j) mod N), c the drawn kernel."""
    op = draw_operator(Network("conv"), 3, 2, 50, 2.0, "float64")
    c = op.arrays["c"]
    n = len(c)
    idx = (np.arange(n)[:, None] - np.arange(n)[None, :]) % n
    circ = c[idx]
    y = np.random.default_rng(1).standard_normal((7, n))
    np.testing.assert_allclose(op.apply(y), y @ circ.T, atol=1e-12)
    assert abs(np.var(c) * n - 1) < 0.5  # entries N(0, 1/N)


def test_dense_operator_is_the_default_networks_weight_draw():
    """Dense draws are those of the fused reference: W = (2N)^(−1/2) Z (variance σ_w²/N)."""
    from pipeline.numerics import rng

    op = draw_operator(Network(), 11, 4, 32, 2.0, "float64")
    z = rng.stable_block(11, rng.STREAMS["weight"], 4, 0, 32, 0, 32, 2.0)
    np.testing.assert_array_equal(op.arrays["w_t"], (z / 8.0).T)


def _manual(network, seed, n, sw, sb, depth, x_rows):
    """The layer map written out with dense matrices: z = σ_w M_l y + σ_b b_l, y = out(z)."""
    b_mat = bias_matrix(seed, n)
    y = x_rows.astype(np.complex128 if network.complex_state else np.float64)
    for layer in range(1, depth + 1):
        m = draw_operator(network, seed, layer, n, 2.0, "float64").matrix()
        b = draw_bias(network, seed, layer, n, 2.0, b_mat)
        z = sw * (y @ m.T) + sb * b
        y = math.sqrt(2) * erf(z.real) if network.complex_state else erf(z.real)
    return y


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("tying", WEIGHT_TYING)
def test_divergence_err_matches_a_plain_numpy_reference(arch, tying):
    """err at L = 6 for two (σ_w, σ_b) points against the layer map with explicit matrices,
    the projected bias law and the authors' input/err scalings."""
    net = Network(arch, tying, "projected")
    n, seed, depth = 24, 5, 6
    probe = DivergenceProbe()
    sw, sb = np.array([0.7, 2.2]), np.array([0.3, 2.05])
    (res,) = propagate_architecture(
        n, 2.0, seed, [("erf", sw, sb)], depth=depth, record_layers=[3, depth],
        probes=Probes(divergence=probe), network=net, dtype="float64",
    )  # fmt: skip
    x = divergence_inputs(seed, n, probe) * net.input_scale(n)
    for i in range(2):
        y = _manual(net, seed, n, sw[i], sb[i], depth, x)
        err = np.sum((y[0] - y[1]).real ** 2) * net.err_weight(n)
        assert res["err"][i, 1] == pytest.approx(err, rel=1e-10)


def test_default_network_matches_the_fused_reference():
    """Dense, per-layer, iid: the generic path computes the fused reference's numbers."""
    sw, sb = np.linspace(0.5, 3, 12), np.full(12, 0.4)
    kw = dict(depth=8, record_layers=range(1, 9), probes=Probes(pair=PairProbe()), dtype="float64")
    (a,) = propagate_network(40, 2.0, 3, [("tanh", sw, sb)], **kw)
    (b,) = propagate_architecture(40, 2.0, 3, [("tanh", sw, sb)], network=Network(), **kw)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tying", WEIGHT_TYING)
def test_weight_tied_networks_draw_one_operator(tying, monkeypatch):
    """A shared network draws its operator once (key 1) and reuses it at every layer; a
    per-layer one draws L, keyed by layer."""
    keys = []
    real = network_mod.draw_operator

    def counting(net, seed, layer, *a, **k):
        keys.append(net.operator_key(layer))
        return real(net, seed, layer, *a, **k)

    monkeypatch.setattr(network_mod, "draw_operator", counting)
    propagate_architecture(
        16, 2.0, 0, [("erf", np.array([1.0]), np.array([0.5]))], depth=7, record_layers=[7],
        probes=Probes(divergence=DivergenceProbe()), network=Network("struct", tying),
    )  # fmt: skip
    assert keys == ([1] if tying == "shared" else list(range(1, 8)))


def _linear_growth(net, seed, n, depth, t):
    """(1/L) log |Q_L t| of the linearised chain at z = 0 with unit σ_w φ'(0): v ↦ M_l v
    (struct: v ↦ √2 A_l Re v, the first v real). Exact λ_L − log(σ_w φ'(0))."""
    v = t.astype(np.complex128)
    total = 0.0
    for layer in range(1, depth + 1):
        m = draw_operator(net, seed, layer, n, 2.0, "float64").matrix()
        w = math.sqrt(2) * v.real if net.complex_state else v.real
        v = m @ w
        nv = np.linalg.norm(v)
        total += math.log(nv)
        v = v / nv
    return total / depth


def _crossing(sw, lam):
    """σ_w where λ_L first turns positive, interpolated in log σ_w (λ is linear in it there)."""
    i = int(np.argmax(lam > 0))
    assert i > 0 and lam[i - 1] <= 0
    a, b = math.log(sw[i - 1]), math.log(sw[i])
    return math.exp(a + (b - a) * (-lam[i - 1]) / (lam[i] - lam[i - 1]))


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("tying", WEIGHT_TYING)
@pytest.mark.slow
def test_lambda_crossing_at_sigma_b_0_matches_linear_theory_and_mean_field(arch, tying):
    """erf at σ_b = 0 with tiny inputs (q0 = 1e-30) is linear near the crossing, so
    λ_L = log(σ_w φ'(0)) + g with g from the drawn operators (:func:`_linear_growth`): the
    crossing is σ* = e^(−g)/φ'(0), to float64 accuracy.

    Mean field (N → ∞): σ* = √π/2 for every architecture (each operator keeps E|A v|² =
    |v|²; struct loses half in Re and gets it back from its √2). Finite N, per-layer dense:
    |G v|²/N ~ χ²_N/N per layer, so g has mean ½(ψ(N/2) + ln(2/N)) and s.d. 1/√(2NL);
    struct: 2|Re A v|²/|A v|² ~ 2 Beta(N/2, N/2), mean ½(ln 2 + ψ(N/2) − ψ(N)). Conv
    layers are circulants, which commute: λ_L → max over Fourier modes of a random walk with
    steps ½ ln Exp(1) (mean −γ/2), so its crossing sits between √π/2 and √π/2·e^(γ/2)."""
    n, depth, seed = 64, 200, 2
    net = Network(arch, tying)
    sw = np.geomspace(0.3, 1.6, 121)
    (res,) = propagate_architecture(
        n, 2.0, seed, [("erf", sw, np.zeros_like(sw))], depth=depth, record_layers=[depth],
        probes=Probes(pair=PairProbe(q0=1e-30, c0=0.0)), network=net, dtype="float64",
    )  # fmt: skip
    measured = _crossing(sw, res["lyapunov"][:, 0])
    t = probe_inputs(seed, n, Probes(pair=PairProbe(q0=1e-30, c0=0.0)))[2]
    g = _linear_growth(net, seed, n, depth, t)
    assert measured == pytest.approx(SQRT_PI_2 * math.exp(-g), rel=1e-6)
    if tying == "shared":
        return
    if arch == "conv":
        assert SQRT_PI_2 < measured < SQRT_PI_2 * math.exp(np.euler_gamma / 2)
        return
    if arch == "dense":
        mean_g = 0.5 * (digamma(n / 2) + math.log(2 / n))
    else:
        mean_g = 0.5 * (math.log(2) + digamma(n / 2) - digamma(n))
    tol = 4 / math.sqrt(2 * n * depth)  # 4 s.d. of g (struct's Beta spread is smaller)
    assert abs(math.log(measured / SQRT_PI_2) + mean_g) < tol


def _spec(**extra):
    raw = {
        "axes": {
            "width": [20],
            "activation": ["erf"],
            "sigma_w": {"linspace": [0.5, 3.0], "count": 6},
            "sigma_b": {"linspace": [0.0, 2.0], "count": 5},
        },
        "depth": 5,
        "record_layers": [2, 5],
        "probes": {"pair": {}, "divergence": {}},
        **extra,
    }
    return parse_spec(raw)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_chunks_give_the_same_numbers_as_the_whole_grid(arch):
    """A point's numbers do not depend on the chunk it is computed in (bit for bit)."""
    spec = _spec(architecture=arch, weight_tying="shared", bias="projected")
    exp = get_experiment("propagation")
    coords = {a.name: np.asarray(a.values) for a in spec.axes}
    whole = exp.compute_chunk(spec, coords, threads=2)
    part = dict(coords, sigma_w=coords["sigma_w"][2:5], sigma_b=coords["sigma_b"][1:2])
    sub = exp.compute_chunk(spec, part)
    for k in ("err", "lyapunov", "q", "nonfinite_layer"):
        np.testing.assert_array_equal(sub[k], whole[k][:, :, :, :, 2:5, 1:2])


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"architecture": "cnn"}, "architecture", ("'cnn'", "dense, struct, conv")),
        ({"weight_tying": "tied"}, "weight_tying", ("'tied'", "per_layer, shared")),
        ({"bias": "fixed"}, "bias", ("'fixed'", "iid, projected")),
        ({"probes": {"divergence": {"inputs": "x"}}}, "probes.divergence.inputs",
         ("'x'", "independent, sensitivity")),
        ({"architecture": "struct", "axes": {"width": [8], "alpha": [1.5], "sigma_w": [1.0]}},
         "axes.alpha", ("1.5", "only 2")),
    ],
)  # fmt: skip
def test_bad_network_fields_are_one_line_errors(extra, field, words):
    raw = {"axes": {"width": [8], "sigma_w": [1.0]}, "depth": 2, **extra}
    with pytest.raises(SpecError) as e:
        parse_spec(raw)
    assert e.value.field == field
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_default_network_keeps_the_canonical_spec_of_older_stores():
    """The network fields enter the canonical spec only when not the default (older stores
    resume), and a non-default one differs from the default."""
    base = _spec()
    assert "architecture" not in base.to_dict()
    other = _spec(architecture="conv")
    assert other.to_dict()["architecture"] == "conv"
    assert base.differences(other)


def test_cupy_path_matches_numpy():
    """The same code on CuPy (cupy.fft, cupy.matmul) against NumPy, float64."""
    cp = pytest.importorskip("cupy", reason="CuPy is not installed (no GPU path to check)")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # pragma: no cover - depends on the machine
        pytest.skip(f"no CUDA device: {e}")
    sw, sb = np.linspace(0.5, 3, 9), np.full(9, 1.0)
    for arch in ARCHITECTURES:
        kw = dict(depth=10, record_layers=[10], dtype="float64",
                  probes=Probes(pair=PairProbe(), divergence=DivergenceProbe()),
                  network=Network(arch, "shared", "projected"))  # fmt: skip
        (a,) = propagate_architecture(32, 2.0, 1, [("erf", sw, sb)], **kw)
        (b,) = propagate_architecture(32, 2.0, 1, [("erf", sw, sb)], xp=cp, **kw)
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-9, atol=1e-12)


def test_resume_recomputes_only_the_missing_chunks_and_equals_a_full_run(tmp_path):
    """A struct, weight-tied run whose store lost a chunk's marker resumes to the same
    data as an uninterrupted run (bit for bit); the kept chunks are not recomputed."""
    from distributed import Client, LocalCluster

    from pipeline import open_sweep, run_sweep
    from pipeline.store.grid import chunk_counts, key_to_flat
    from pipeline.store.identity import read_token
    from pipeline.store.markers import unmark
    from pipeline.store.sweep import done_keys

    def chunk_file(store, key):  # the chunk's file of the first variable
        import zarr

        arr = zarr.open_group(store, mode="r")["q"]
        return store / "q" / arr.metadata.encode_chunk_key(key + (0,) * (arr.ndim - len(key)))

    spec = _spec(architecture="struct", weight_tying="shared", bias="projected",
                 chunks={"sigma_w": 2, "sigma_b": 5})  # fmt: skip
    full, part = tmp_path / "full.zarr", tmp_path / "part.zarr"
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster,
        Client(cluster) as client,
    ):
        run_sweep(spec, full, client=client, progress=False)
        run_sweep(spec, part, client=client, progress=False)
        keys = sorted(done_keys(part))
        assert len(keys) == 3
        counts = chunk_counts(spec)
        unmark(part, counts, read_token(part), [key_to_flat(keys[1], counts)])  # as if killed
        kept = {k: chunk_file(part, k).stat().st_mtime_ns for k in keys[::2]}
        run_sweep(spec, part, client=client, progress=False)
    assert {k: chunk_file(part, k).stat().st_mtime_ns for k in kept} == kept
    a, b = open_sweep(full), open_sweep(part)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_boundary_field_without_the_pair_probe_is_the_err_threshold():
    """Divergence probe only: the signed field is ln(err_L / threshold), chaotic ⇔ > 0."""
    import xarray as xr

    spec = _spec(probes={"divergence": {"threshold": 1e-4}}, architecture="conv")
    exp = get_experiment("propagation")
    coords = {a.name: np.asarray(a.values) for a in spec.axes}
    err = exp.compute_chunk(spec, coords)["err"]
    ds = xr.Dataset({"err": (spec.dims + ("layer",), err)})
    field = exp.signed_field(spec, ds).values
    np.testing.assert_allclose(field, np.log(err[..., -1] / 1e-4), rtol=1e-6)
    assert (field > 0).any() and (field <= 0).any()


@pytest.mark.slow
def test_divergence_figure_and_notes_report_both_estimators(tmp_path):
    """The CPU scale of a D'Inverno workflow, shrunk: the `divergence` figure draws and its
    notes give their estimator's maximum and the calibrated estimate of the same err field."""
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    from distributed import Client, LocalCluster

    from pipeline import run_sweep
    from pipeline.analysis.fractal.estimators import dinverno_dimension
    from pipeline.figures import store_figure, store_notes
    from pipeline.spec.workflow import load_workflow

    raw = load_workflow("workflows/dinverno2025_conv_per_layer.yaml").to_dict()
    raw.pop("scale", None)
    raw["axes"]["sigma_w"] = raw["axes"]["sigma_b"] = {"linspace": [0.0, 4.0], "count": 40}
    raw.update(depth=12, record_layers="last", chunks={"sigma_w": 40, "sigma_b": 40})
    spec = parse_spec(raw)
    store = tmp_path / "conv.zarr"
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster,
        Client(cluster) as client,
    ):
        run_sweep(spec, store, client=client, progress=False)
    fig, stem = store_figure(store)
    assert stem == "divergence" and len(fig.axes) >= 2
    notes = store_notes(store)
    from pipeline import open_sweep

    ds = open_sweep(store)
    assert spec.params.probes.divergence.mean_last == 10  # the workflow's May 2025 observable
    # the figure reads the class field's variable: err averaged over the last 10 layers
    err = ds.err_mean.isel(layer=-1).squeeze().transpose("sigma_w", "sigma_b").values
    theirs = dinverno_dimension(np.asarray(err, float), distance=True)
    assert f"D = {theirs.estimate:.3f}" in " ".join(notes)
    assert any("calibrated at t = 0.001" in n for n in notes)
