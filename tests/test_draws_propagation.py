"""Draws files (spec field ``draws: {file: PATH}``): the pipeline computes D'Inverno et al.
(2025)'s layer map on their own draws; the torch generator reproduces their draws; bad files are
one-line errors; another file's content is another spec.

The reference is a NumPy transcription of the authors' loop (their ``Network.forward`` and
``propagation_test``): s⁰ = x, hˡ = σ_w W_l sˡ⁻¹ + σ_b W_bias bsˡ, sˡ = erf(hˡ)/√N (dense),
err = Σ_i (s₁ᴸ − s₂ᴸ)_i². ``tests/data/dinverno2025_dense_seed0_N100_L1000_slice.npz`` holds a
slice of their seed-0 dense network (N = 100, depth 1000, torch 2.13): x1, x2, the bias basis,
the first 4 layers' weights and bias directions and the last layer's (``*_last``).
"""

from __future__ import annotations

import contextlib
import io
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.special import erf

from pipeline import parse_spec
from pipeline.errors import SpecError
from pipeline.experiments import get_experiment
from pipeline.experiments.propagation.draws import content_hash

DATA = Path(__file__).resolve().parent / "data"
SLICE = DATA / "dinverno2025_dense_seed0_N100_L1000_slice.npz"
ANCHOR_SHA256 = "84c1370dad5e996eb43d732e6c3c35eca0766b87af38f8a15c11465164968935"
"""content_hash of the authors' full seed-0 dense network (N = 100, depth 1000, float32)."""
SLICE_SHA256 = "734aabe7669cf1c17b881c34bf3d951ae213d1b780219622b1c531f84927e914"
DEEPEST_DENSE = ((2.168, 2.193), (2.0375, 2.0625))
"""Their dense zoom 3 (σ_w, σ_b) window."""
THRESHOLDS = (1e-5, 1e-3)


def _slice() -> dict[str, np.ndarray]:
    with np.load(SLICE) as z:
        return {k: z[k] for k in z.files}


def _first_layers(depth: int) -> dict[str, np.ndarray]:
    """The slice's first ``depth`` (<= 4) layers as a draws file's arrays."""
    s = _slice()
    return {
        "x1": s["x1"],
        "x2": s["x2"],
        "bias_basis": s["bias_basis"],
        "bias_directions": s["bias_directions"][:depth],
        "weights": s["weights"][:depth],
    }


def their_errs(arrays, sw, sb, arch="dense", tying="per_layer"):
    """The authors' loop in NumPy float64 for P points (sw[p], sb[p]): err at every layer,
    (depth, P). conv: torch's circular 'same' cross-correlation with weight w/√N; struct:
    F D₂ F D₁ with √2 erf(Re h); dense: erf(h)/√N."""
    x = np.stack([arrays["x1"], arrays["x2"]]).astype(np.float64)
    n = x.shape[1]
    bias = (
        arrays["bias_directions"].astype(np.float64) @ arrays["bias_basis"].astype(np.float64).T
    )  # row l: W_bias bs_l
    key = {"dense": "weights", "conv": "kernels", "struct": "diagonals"}[arch]
    ops = arrays[key]
    sw = np.asarray(sw, np.float64)[:, None, None]
    sb = np.asarray(sb, np.float64)[:, None, None]
    s = np.broadcast_to(x, (sw.shape[0], 2, n)).copy()
    out = []
    for layer in range(bias.shape[0]):
        a = ops[0 if tying == "shared" else layer]
        if arch == "dense":
            wx = s @ a.astype(np.float64).T
        elif arch == "conv":
            w = a.astype(np.float64) / math.sqrt(n)
            p = (n - 1) // 2
            idx = (np.arange(n)[:, None] + np.arange(n)[None, :] - p) % n  # [i, k]
            wx = np.einsum("k,...ik->...i", w, s[..., idx])
        else:
            d = a.astype(np.complex128)
            wx = np.fft.fft(d[1] * np.fft.fft(d[0] * s, norm="ortho"), norm="ortho")
        h = sw * wx + sb * bias[layer]
        if arch == "struct":
            s = math.sqrt(2) * erf(h.real)
        elif arch == "dense":
            s = erf(h) / math.sqrt(n)
        else:
            s = erf(h)
        out.append(((s[:, 0] - s[:, 1]) ** 2).sum(-1))
    return np.asarray(out)


def _spec(file, depth, sw, sb, *, arch="dense", tying="per_layer", width=100, **extra):
    raw = {
        "axes": {
            "width": [width],
            "activation": ["erf"],
            "sigma_w": {"linspace": list(sw), "count": extra.pop("count", 16)},
            "sigma_b": {"linspace": list(sb), "count": extra.pop("count_b", 16)},
        },
        "depth": depth,
        "record_layers": "last",
        "architecture": arch,
        "weight_tying": tying,
        "bias": "projected",
        "probes": {"divergence": extra.pop("divergence", {})},
        "draws": {"file": str(file)},
        "dtype": extra.pop("dtype", "float64"),
        **extra,
    }
    return parse_spec(raw)


def _compute(spec):
    coords = {a.name: np.asarray(a.values) for a in spec.axes}
    out = get_experiment("propagation").compute_chunk(spec, coords)
    sw, sb = np.meshgrid(coords["sigma_w"], coords["sigma_b"], indexing="ij")
    return {k: v[0, 0, 0, 0, ..., -1] for k, v in out.items() if v.ndim > 6}, sw, sb


def test_slice_of_their_network_gives_their_err_and_classes(tmp_path):
    """Their first 4 layers as a depth-4 network, 16² of their full view [0, 4]² (at depth
    4 their deepest window is all chaotic): err equals the transcription of their loop
    (float64), so the classes at t = 1e-5, 1e-3 do, and err_mean (mean_last 2) is the mean
    of the last 2 layers' err."""
    arrays = _first_layers(4)
    f = tmp_path / "d.npz"
    np.savez(f, **arrays)
    spec = _spec(f, 4, (0.0, 4.0), (0.0, 4.0), divergence={"mean_last": 2})
    got, sw, sb = _compute(spec)
    ref = their_errs(arrays, sw.ravel(), sb.ravel())
    np.testing.assert_allclose(got["err"].ravel(), ref[-1], rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(got["err_mean"].ravel(), ref[-2:].mean(0), rtol=1e-10)
    for t in THRESHOLDS:  # both classes present at each threshold
        assert ref[-1].min() < t < ref[-1].max()
    for t in THRESHOLDS:
        np.testing.assert_array_equal(got["err"].ravel() > t, ref[-1] > t)


def test_keyed_draws_unchanged_without_a_file():
    """The seed-keyed network (no draws file) keeps its numbers: the projected dense network
    equals the NumPy transcription of the documented keyed draws."""
    from pipeline.experiments.propagation.architectures import bias_matrix
    from pipeline.experiments.propagation.probes import DivergenceProbe, divergence_inputs
    from pipeline.numerics import rng

    n, depth = 12, 5
    raw = {
        "axes": {"width": [n], "activation": ["erf"], "sigma_w": [1.5, 3.0], "sigma_b": [0.5]},
        "depth": depth,
        "record_layers": "last",
        "bias": "projected",
        "probes": {"divergence": {}},
        "dtype": "float64",
    }
    spec = parse_spec(raw)
    got, sw, sb = _compute(spec)
    ws = [
        rng.stable_block(0, rng.STREAMS["weight"], layer, 0, n, 0, n, 2.0) / math.sqrt(2.0)
        for layer in range(1, depth + 1)
    ]
    dirs = [rng.normal_block(0, rng.STREAMS["bias"], la, 0, n, 0, 1)[:, 0] for la in range(1, 6)]
    x = divergence_inputs(0, n, DivergenceProbe())
    arrays = {
        "x1": x[0],
        "x2": x[1],
        "bias_basis": bias_matrix(0, n),
        "bias_directions": np.stack([d / np.linalg.norm(d) for d in dirs]),
        "weights": np.stack(ws),
    }
    ref = their_errs(arrays, sw.ravel(), sb.ravel())
    np.testing.assert_allclose(got["err"].ravel(), ref[-1], rtol=1e-10)


# ---- the generator (torch) ------------------------------------------------------------------


def test_generator_reproduces_their_dense_network_bit_for_bit():
    pytest.importorskip("torch", reason="torch not installed (extra draws-torch)")
    from pipeline.experiments.propagation.draws_torch import draw_dinverno

    a = draw_dinverno("dense", 100, 1000, 0)
    assert content_hash(a) == ANCHOR_SHA256
    s = _slice()
    for k in ("x1", "x2", "bias_basis"):
        assert a[k].dtype == np.float32 and a[k].tobytes() == s[k].tobytes(), k
    assert a["weights"][:4].tobytes() == s["weights"].tobytes()
    assert a["bias_directions"][:4].tobytes() == s["bias_directions"].tobytes()
    assert a["weights"][-1].tobytes() == s["weights_last"].tobytes()
    assert a["bias_directions"][-1].tobytes() == s["bias_directions_last"].tobytes()


def test_the_checked_in_slice_is_their_draws_as_recorded():
    """Without torch the slice is the record: its content hash and first values are pinned
    (read from the authors' full file when the slice was cut), and it is drawn as they draw:
    unit-norm inputs and bias directions in float32."""
    s = _slice()
    assert content_hash(s) == SLICE_SHA256
    assert s["x1"][:3].view(np.uint32).tolist() == [3165976279, 1044824331, 1010036389]
    assert s["weights"][0, 0, :3].view(np.uint32).tolist() == [1060184584, 3210687169, 1061085412]
    norms = np.linalg.norm(s["bias_directions"].astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)
    for k in ("x1", "x2"):
        assert np.linalg.norm(s[k].astype(np.float64)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("arch", ["conv", "struct", "dense"])
@pytest.mark.parametrize("tying", ["per_layer", "shared"])
def test_generated_networks_run_their_map(tmp_path, arch, tying):
    """Each architecture and tying, drawn by the generator, run by the pipeline: err equals
    their loop with torch's own operators (Conv1d, torch.fft) at depth 6, N = 12."""
    torch = pytest.importorskip("torch", reason="torch not installed (extra draws-torch)")
    from pipeline.experiments.propagation.draws_torch import draw_dinverno, write_draws

    n, depth = 12, 6
    arrays = draw_dinverno(arch, n, depth, 3, tying)
    f = tmp_path / "g.npz"
    write_draws(arrays, f)
    spec = _spec(f, depth, (0.5, 3.0), (0.2, 2.5), arch=arch, tying=tying, width=n, count=4)
    got, sw, sb = _compute(spec)

    # their operators, applied by torch in float64
    key = {"dense": "weights", "conv": "kernels", "struct": "diagonals"}[arch]

    def apply(layer, s):
        a = torch.tensor(arrays[key][0 if tying == "shared" else layer])
        if arch == "dense":
            return s @ a.double().T
        if arch == "conv":
            conv = torch.nn.Conv1d(1, 1, n, padding="same", padding_mode="circular", bias=False)
            conv = conv.double()
            conv.weight.data = a.double()[None, None] / math.sqrt(n)
            with torch.no_grad():
                return conv(s[:, None])[:, 0]
        d = a.to(torch.complex128)
        v = torch.fft.fft(d[0] * s, norm="ortho")
        return torch.fft.fft(d[1] * v, norm="ortho")

    bias = (
        torch.tensor(arrays["bias_directions"]).double()
        @ torch.tensor(arrays["bias_basis"]).double().T
    )
    x = torch.tensor(np.stack([arrays["x1"], arrays["x2"]])).double()
    for (i, j), w in np.ndenumerate(sw):
        s = x.clone()
        for layer in range(depth):
            h = float(w) * apply(layer, s) + float(sb[i, j]) * bias[layer]
            s = math.sqrt(2) * torch.erf(h.real) if arch == "struct" else torch.erf(h)
            if arch == "dense":
                s = s / math.sqrt(n)
        ref = float(((s[0] - s[1]) ** 2).sum())
        assert got["err"][i, j] == pytest.approx(ref, rel=1e-9, abs=1e-300)


@pytest.mark.slow
def test_deepest_dense_window_at_depth_1000_gives_their_classes(tmp_path):
    """16² of their deepest dense window on their seed-0 network at depth 1000 (the generator
    draws it; it is their file bit for bit, above), float64 as their code of May 2025: the
    classes at t = 1e-5 and 1e-3 are those of their loop, point for point, and so are the
    values (to rounding, amplified over 1000 layers)."""
    pytest.importorskip("torch", reason="torch not installed (extra draws-torch)")
    from pipeline.experiments.propagation.draws_torch import draw_dinverno, write_draws

    arrays = draw_dinverno("dense", 100, 1000, 0)
    f = tmp_path / "deep.npz"
    write_draws(arrays, f)
    spec = _spec(f, 1000, *DEEPEST_DENSE, divergence={"mean_last": 10})
    got, sw, sb = _compute(spec)
    ref = their_errs(arrays, sw.ravel(), sb.ravel())
    err = got["err"].ravel()
    for t in THRESHOLDS:
        assert 0 < np.mean(ref[-1] > t) < 1  # the window holds both classes at each t
        np.testing.assert_array_equal(err > t, ref[-1] > t)
    np.testing.assert_allclose(err, ref[-1], rtol=1e-5)
    np.testing.assert_allclose(got["err_mean"].ravel(), ref[-10:].mean(0), rtol=1e-5)


# ---- bad files and identity -----------------------------------------------------------------


def sweep_here(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI's ``main`` in this process."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(["sweep", *args], rc, out.getvalue(), err.getvalue())


def _write_spec(folder: Path, file: str, **over) -> None:
    raw = {
        "store": "s.zarr",
        "axes": {
            "width": [100],
            "activation": ["erf"],
            "sigma_w": {"linspace": list(DEEPEST_DENSE[0]), "count": 4},
            "sigma_b": {"linspace": list(DEEPEST_DENSE[1]), "count": 4},
        },
        "depth": 2,
        "record_layers": "last",
        "bias": "projected",
        "probes": {"divergence": {}},
        "draws": {"file": file},
    }
    for k, v in over.items():
        if k == "axes":
            raw["axes"].update(v)
        else:
            raw[k] = v
    (folder / "s.yaml").write_text(yaml.safe_dump(raw))


def _bad(tmp_path: Path, name: str, arrays) -> str:
    np.savez(tmp_path / name, **arrays)
    return name


BAD_FILES = {
    "nan": lambda a: {**a, "weights": np.where(np.arange(100) == 3, np.nan, a["weights"])},
    "missing key": lambda a: {k: v for k, v in a.items() if k != "bias_basis"},
    "wrong shape": lambda a: {**a, "weights": a["weights"][:1]},
    "extra key": lambda a: {**a, "kernels": a["x1"]},
    "integer dtype": lambda a: {**a, "x2": np.ones(100, np.int64)},
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_draws_files_are_one_line_errors(tmp_path, case):
    name = _bad(tmp_path, "bad.npz", BAD_FILES[case](_first_layers(2)))
    _write_spec(tmp_path, name)
    for cmd in ("plan", "run"):
        out = (
            sweep_here(cmd, "s.yaml", "--no-progress", cwd=tmp_path)
            if cmd == "run"
            else (sweep_here(cmd, "s.yaml", cwd=tmp_path))
        )
        assert out.returncode == 2, (case, out.stdout)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: spec field 'draws.file'"), lines
        assert "bad.npz" in lines[0]
    assert not (tmp_path / "s.zarr").exists()


def test_missing_and_non_npz_files_and_fixed_axes_are_one_line_errors(tmp_path):
    (tmp_path / "text.npz").write_text("not an archive")
    np.save(tmp_path / "one.npy", np.zeros(3))
    np.savez(tmp_path / "ok.npz", **_first_layers(2))
    cases = [
        ({"file": "nowhere.npz"}, {}, "draws.file", "does not exist"),
        ({"file": "text.npz"}, {}, "draws.file", "not a readable .npz"),
        ({"file": "one.npy"}, {}, "draws.file", "not a readable .npz"),
        ({"file": "ok.npz"}, {"axes": {"width": [100, 50]}}, "axes.width", "only [100]"),
        ({"file": "ok.npz"}, {"axes": {"seed": [0, 1]}}, "axes.seed", "one value or none"),
        ({"file": "ok.npz"}, {"axes": {"alpha": [1.5]}}, "axes.alpha", "only 2"),
        ({"file": "ok.npz"}, {"bias": "iid"}, "bias", "only 'projected'"),
        ({"file": "ok.npz"}, {"depth": 3}, "draws.file", "has shape (2, 100)"),
        ({"file": "ok.npz"}, {"probes": {"pair": {}, "divergence": {}}}, "probes", "only the"),
    ]
    for draws, over, field, words in cases:
        _write_spec(tmp_path, draws["file"], **over)
        out = sweep_here("plan", "s.yaml", cwd=tmp_path)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, (field, out.stderr)
        assert lines[0].startswith(f"error: spec field '{field}'") and words in lines[0], lines
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.slow
def test_relative_path_is_from_the_spec_folder_and_identity_is_the_content(tmp_path):
    """A relative draws.file is read beside the spec, whatever the working folder; the store
    records the content hash; the same content elsewhere resumes the store, other content is
    refused as another spec (exit 2, nothing written)."""
    sub = tmp_path / "specs"
    sub.mkdir()
    arrays = _first_layers(2)
    np.savez(sub / "a.npz", **arrays)
    _write_spec(sub, "a.npz")
    out = sweep_here("run", "specs/s.yaml", "--store", "s.zarr", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    from pipeline import open_sweep, read_spec

    spec = read_spec(tmp_path / "s.zarr")
    assert spec.params.draws.sha256 == content_hash(arrays)
    assert spec.params.draws.path == str(sub / "a.npz")
    before = open_sweep(tmp_path / "s.zarr")["err"].values.copy()

    # the same arrays in another file at another path: the same spec (resumes, complete)
    np.savez(sub / "copy.npz", **arrays)
    _write_spec(sub, "copy.npz")
    out = sweep_here("run", "specs/s.yaml", "--store", "s.zarr", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr

    # other draws: another spec
    other = {**arrays, "x2": arrays["x1"][::-1].copy()}
    np.savez(sub / "b.npz", **other)
    _write_spec(sub, "b.npz")
    out = sweep_here("run", "specs/s.yaml", "--store", "s.zarr", "--no-progress", cwd=tmp_path)
    assert out.returncode == 2
    assert "draws.sha256" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    np.testing.assert_array_equal(open_sweep(tmp_path / "s.zarr")["err"].values, before)


def test_a_store_reads_without_its_draws_and_computing_then_refuses(tmp_path):
    """The canonical spec parses without the file (a store stays readable); loading the
    arrays of a file that changed is a one-line error naming draws.file."""
    arrays = _first_layers(2)
    np.savez(tmp_path / "a.npz", **arrays)
    spec = _spec(tmp_path / "a.npz", 2, *DEEPEST_DENSE, count=2, count_b=2)
    canon = spec.to_dict()
    (tmp_path / "a.npz").unlink()
    again = parse_spec(canon)
    assert again.differences(spec) == []
    np.savez(tmp_path / "a.npz", **{**arrays, "x1": arrays["x2"]})
    with pytest.raises(SpecError, match=r"draws\.file.*now holds other draws"):
        _compute(parse_spec(canon))


def test_mean_last_default_keeps_the_canonical_spec():
    raw = {
        "axes": {"width": [8], "activation": ["erf"], "sigma_w": [1.0], "sigma_b": [0.5]},
        "depth": 3,
        "probes": {"divergence": {}},
    }
    assert "mean_last" not in parse_spec(raw).to_dict()["probes"]["divergence"]
    raw["probes"] = {"divergence": {"mean_last": 4}}
    with pytest.raises(SpecError, match="mean_last"):
        parse_spec(raw)


def test_sweep_draws_writes_a_file_the_spec_runs_and_never_overwrites(tmp_path):
    pytest.importorskip("torch", reason="torch not installed (extra draws-torch)")
    from pipeline.experiments.propagation.draws_torch import draw_dinverno

    args = ("draws", "dinverno2025", "--architecture", "conv", "--weight-tying", "shared")
    out = sweep_here(*args, "--width", "10", "--depth", "3", "-o", "c.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    want = draw_dinverno("conv", 10, 3, 0, "shared")
    assert f"content sha256 {content_hash(want)}" in out.stdout
    with np.load(tmp_path / "c.npz") as z:
        assert content_hash({k: z[k] for k in z.files}) == content_hash(want)
    spec = _spec(tmp_path / "c.npz", 3, (1, 2), (1, 2), arch="conv", tying="shared", width=10)
    assert spec.params.draws.sha256 == content_hash(want)
    before = (tmp_path / "c.npz").read_bytes()
    again = sweep_here(*args, "--width", "10", "--depth", "3", "-o", "c.npz", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
    assert (tmp_path / "c.npz").read_bytes() == before
