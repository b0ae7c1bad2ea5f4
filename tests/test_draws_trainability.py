"""Sohl-Dickstein (2024) in its own setting: the notebook's draws, variants and windows.

The shipped draws files (workflows/draws/) are what ``sweep draws sohl-dickstein2024`` writes:
the notebook's own JAX draws from PRNGKey(0). The reference here is an independent NumPy
transcription of the notebook's ``train_step`` (its ``net``, ``loss`` and hand-derived
gradients of them, vectorised over points with einsum), not the pipeline's code.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cli import main
from pipeline.errors import PipelineError, SpecError
from pipeline.experiments import get_experiment
from pipeline.experiments.trainability.reference import score_trajectory, train_points
from pipeline.spec.sweep import parse_spec
from pipeline.spec.workflow import load_workflow

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
DRAWS = WORKFLOWS / "draws"
SHA256 = {  # the notebook's draws (JAX 0.4.23, PRNGKey(0)): the generator reproduces these bytes
    "sohl_dickstein2024_w16_draws.npz": (
        "7b10c3ac665eae7722808271069434943f6d1ca60f202b904edfff6ad4b33c1c"
    ),
    "sohl_dickstein2024_w16_linear_draws.npz": (
        "2ec25890b826db6ae14e251178d167a11ff0bedf9c14eb6fbfa08c43731afa6e"
    ),
    "sohl_dickstein2024_w16_single_datapoint_draws.npz": (
        "2fe2abb0ff431885645b0fd96efa446275e10513cf9cad021d099c6ac7e113dc"
    ),
}
PANELS = ("tanh_full", "relu_full", "linear_full", "tanh_single", "tanh_minibatch", "tanh_offset")


# ---- the notebook, transcribed ---------------------------------------------------------------
def notebook_losses(
    w0: np.ndarray,
    w1: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    nonlinearity: str,
    h0: np.ndarray,
    h1: np.ndarray,
    steps: int,
    *,
    phase_space: str = "lr_vs_lr",
    minibatch_idx: np.ndarray | None = None,
) -> np.ndarray:
    """The notebook's ``train`` for P points (hparams (h0[p], h1[p])): losses (P, steps).

    lr_vs_lr: layer 0 learns at h0, layer 1 at h1. paraminit_vs_lr: before each step
    ``t += hparams[0]`` on layer 0 (kept: it accumulates), both layers learn at h1."""
    p = len(h0)
    W0 = np.repeat(w0[None], p, 0)
    W1 = np.repeat(w1[None], p, 0)
    s0 = math.sqrt(w0.shape[0])  # W.shape[0] of each layer: the width
    s1 = math.sqrt(w1.shape[0])
    r2 = math.sqrt(2.0)

    def forward(W0, W1, X):  # noqa: N803 - the notebook's names
        z1 = np.einsum("bi,pij->pbj", X, W0) / s0
        if nonlinearity == "tanh":
            a = np.tanh(z1 * r2)
            da = r2 * (1.0 - a * a)
        elif nonlinearity == "relu":
            a = np.maximum(z1, 0.0) * r2
            da = np.where(z1 > 0, r2, 0.0)
        else:
            a, da = z1, np.ones_like(z1)
        z2 = np.einsum("pbj,pjk->pbk", a, W1) / s1
        return a, da, z2 / s1

    losses = np.empty((p, steps))
    with np.errstate(all="ignore"):
        for t in range(steps):
            if phase_space == "paraminit_vs_lr":
                W0 = W0 + h0[:, None, None]
                lr0 = lr1 = h1
            else:
                lr0, lr1 = h0, h1
            _, _, f = forward(W0, W1, x)
            losses[:, t] = np.mean((f - y[None]) ** 2, axis=(1, 2))
            xb, yb = (x, y) if minibatch_idx is None else (x[minibatch_idx[t]], y[minibatch_idx[t]])
            a, da, f = forward(W0, W1, xb)
            df = 2.0 * (f - yb[None]) / f[0].size
            dz2 = df / s1
            g1 = np.einsum("pbj,pbk->pjk", a, dz2) / s1
            dz1 = np.einsum("pbk,pjk->pbj", dz2, W1) / s1 * da
            g0 = np.einsum("bi,pbj->pij", xb, dz1) / s0
            W0 = W0 - lr0[:, None, None] * g0
            W1 = W1 - lr1[:, None, None] * g1
    return losses


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _draws(name: str) -> dict[str, np.ndarray]:
    return _load(DRAWS / name)


def _crop(spec, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n × n points at the centre of the spec's plane (log10 coordinates), as two
    flat arrays (a, b) over the outer product."""
    a_name, b_name = spec.params.plane
    va, vb = (np.asarray(spec.axis(k).values) for k in (a_name, b_name))
    ia, ib = (len(va) - n) // 2, (len(vb) - n) // 2
    ga, gb = np.meshgrid(va[ia : ia + n], vb[ib : ib + n], indexing="ij")
    return ga.ravel(), gb.ravel()


def _ours(spec, ga, gb, backend="numpy", threads=1):
    exp = get_experiment("trainability")
    coords = {ax.name: np.asarray(ax.values) for ax in spec.axes}
    a_name, b_name = spec.params.plane
    coords[a_name], coords[b_name] = ga, gb
    return exp.compute_points(spec, coords, backend=backend, threads=threads)


# ---- the files ---------------------------------------------------------------------------------
def test_shipped_draws_are_the_notebooks():
    for name, sha in SHA256.items():
        assert hashlib.sha256((DRAWS / name).read_bytes()).hexdigest() == sha
    full = _draws("sohl_dickstein2024_w16_draws.npz")
    assert full["W0"].shape == (16, 16) and full["X"].shape == (272, 16)
    assert full["minibatch_idx_500"].shape == (500, 16)
    # every panel draws its weights first from PRNGKey(0): the same network, other data
    linear = _draws("sohl_dickstein2024_w16_linear_draws.npz")
    assert np.array_equal(full["W0"], linear["W0"]) and np.array_equal(full["W1"], linear["W1"])
    assert not np.array_equal(full["minibatch_idx_500"], full["minibatch_idx_1000"][:500])


@pytest.mark.slow
def test_generator_reproduces_the_files_bit_for_bit(tmp_path):
    """JAX 0.4.23 (the notebook's era) writes the shipped files byte for byte; a newer JAX
    (threefry_partitionable off) the same arrays but for a few normals 1 ulp apart."""
    jax = pytest.importorskip("jax", reason="the draws generator needs JAX (the draws-jax extra)")
    from pipeline.draws.sohl_dickstein import write_all

    for p in write_all(tmp_path):
        if jax.__version__ == "0.4.23":
            assert hashlib.sha256(p.read_bytes()).hexdigest() == SHA256[p.name], p.name
            continue
        got, want = _load(p), _draws(p.name)
        assert sorted(got) == sorted(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
            if want[k].dtype.kind == "i":
                assert np.array_equal(got[k], want[k]), k
            else:
                ulps = np.abs(got[k].view(np.int64) - want[k].view(np.int64))
                assert ulps.max() <= 1 and np.count_nonzero(ulps) <= 3, (k, ulps.max())


def test_draws_load_into_the_problem():
    spec = load_workflow(WORKFLOWS / "sohl_dickstein2024_tanh_minibatch.yaml")
    exp = get_experiment("trainability")
    net = {"width": 16, "depth": 2, "seed": 0, "eps": 0.0}
    pr = exp._problem(spec, net)
    d = _draws("sohl_dickstein2024_w16_draws.npz")
    assert np.array_equal(pr.weights[0], d["W0"]) and np.array_equal(pr.weights[1], d["W1"])
    assert np.array_equal(pr.x, d["X"]) and np.array_equal(pr.y, d["Y"])
    assert np.array_equal(pr.minibatch_indices(500), d["minibatch_idx_500"])
    assert np.array_equal(pr.minibatch_indices(1000), d["minibatch_idx_1000"])
    with pytest.raises(PipelineError, match="minibatch_idx_700"):
        pr.minibatch_indices(700)


# ---- the pipeline computes the notebook's function on the notebook's network -------------------
@pytest.mark.parametrize(
    "panel,name,act,kw",
    [
        ("tanh_full", "sohl_dickstein2024_w16_draws.npz", "tanh", {}),
        ("relu_full", "sohl_dickstein2024_w16_draws.npz", "relu", {}),
        ("linear_full", "sohl_dickstein2024_w16_linear_draws.npz", "identity", {}),
        ("tanh_single", "sohl_dickstein2024_w16_single_datapoint_draws.npz", "tanh", {}),
        ("tanh_minibatch", "sohl_dickstein2024_w16_draws.npz", "tanh", {"mb": True}),
        ("tanh_offset", "sohl_dickstein2024_w16_draws.npz", "tanh", {"offset": True}),
    ],
)
def test_trajectories_match_the_notebook(panel, name, act, kw):
    """Losses on 3 × 3 points of each panel's final window (the minibatch panel with its
    500-step table) against the transcription: relative 1e-10 over the first 12 steps (a
    wrong gradient, scale or learning rate shows from step 1). The
    windows sit on the boundary, where training is chaotic: rounding differences (einsum
    against matmul) grow ~10x every ~10 steps, so later steps are compared as classes on a
    larger crop (the 16² test)."""
    spec = load_workflow(WORKFLOWS / f"sohl_dickstein2024_{panel}.yaml")
    d = _draws(name)
    steps = 500 if kw.get("mb") else 120
    ga, gb = _crop(spec, 3)
    if kw.get("offset"):
        h0, h1, ps = 10.0**ga, 10.0**gb, "paraminit_vs_lr"
    else:
        h0, h1, ps = 10.0**ga, 10.0**gb, "lr_vs_lr"
    mb = d["minibatch_idx_500"] if kw.get("mb") else None
    ref = notebook_losses(
        d["W0"], d["W1"], d["X"], d["Y"], act, h0, h1, steps, phase_space=ps, minibatch_idx=mb
    )
    one = {k: v for k, v in spec.to_dict().items()}
    one["steps"] = steps
    s1 = parse_spec(one)
    from pipeline.experiments.trainability.reference import train_losses

    exp = get_experiment("trainability")
    pr = exp._problem(s1, {"width": 16, "depth": 2, "seed": 0, "eps": 0.0})
    lr_in, lr_out, off = (h1, h1, h0) if kw.get("offset") else (h0, h1, None)
    ours = train_losses(
        pr, act, lr_in, lr_out, off, steps=steps, offset_every_step=bool(kw.get("offset"))
    )
    ref, ours = ref[:, :12], ours[:, :12]
    ok = np.isfinite(ref) & (ref < 1e6 * ref[:, :1])  # diverged points: overflow, compared below
    assert ok[:, :5].all()
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-10)
    assert np.array_equal(np.isfinite(ours), np.isfinite(ref))


def test_offset_every_step_differs_from_offset_at_init():
    d = _draws("sohl_dickstein2024_w16_draws.npz")
    h0 = np.array([0.196061828])
    h1 = np.array([39.0254608])
    ref = notebook_losses(
        d["W0"], d["W1"], d["X"], d["Y"], "tanh", h0, h1, 30, phase_space="paraminit_vs_lr"
    )
    spec = load_workflow(WORKFLOWS / "sohl_dickstein2024_tanh_offset.yaml")
    net = {"width": 16, "depth": 2, "seed": 0, "eps": 0.0}
    pr = get_experiment("trainability")._problem(spec, net)
    from pipeline.experiments.trainability.reference import train_losses

    every = train_losses(pr, "tanh", h1, h1, h0, steps=30, offset_every_step=True)
    once = train_losses(pr, "tanh", h1, h1, h0, steps=30, offset_every_step=False)
    np.testing.assert_allclose(every, ref, rtol=1e-9)
    assert every[0, 0] == once[0, 0]  # the first step sees W0 + offset in both
    assert abs(every[0, 5] - once[0, 5]) > 1e-6 * abs(once[0, 5])


# ---- classes on the final windows --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("panel", ["tanh_full", "relu_full"])
def test_16x16_crop_classes_at_500_steps_on_every_backend(panel):
    """A 16² crop of the tanh and ReLU final windows at 500 steps: the NumPy path's classes
    are the notebook's (the transcription, on every fourth point of the crop), and every
    other CPU backend present gives the same classes."""
    spec = load_workflow(WORKFLOWS / f"sohl_dickstein2024_{panel}.yaml")
    spec = parse_spec({**spec.to_dict(), "steps": 500})
    d = _draws("sohl_dickstein2024_w16_draws.npz")
    ga, gb = _crop(spec, 16)
    ours = _ours(spec, ga, gb, threads=2)["converged"]  # the numbers do not depend on threads
    assert 0.05 < ours.mean() < 0.95, "the crop holds both classes (the boundary)"
    sub = np.arange(0, 256, 4)
    ref = notebook_losses(
        d["W0"], d["W1"], d["X"], d["Y"], panel.split("_")[0], 10.0 ** ga[sub], 10.0 ** gb[sub], 500
    )
    _, conv_ref, _ = score_trajectory(ref)
    assert np.mean(ours[sub] == conv_ref) >= 0.98
    for backend in ("numba",):
        try:
            fast = _ours(spec, ga, gb, backend=backend)["converged"]
        except PipelineError as e:  # not installed here
            assert "unavailable" in str(e) or "unknown value" in str(e)
            continue
        assert np.mean(fast == ours) >= 0.99


def test_steps_list_scores_each_step_count_as_its_own_run():
    """``steps: [a, b]``: the a-step score of the b-step run is the a-step run's score,
    bit for bit (NumPy path, keyed minibatch and full batch)."""
    base = {
        "experiment": "trainability",
        "axes": {
            "width": [4],
            "lr_in": {"linspace": [-1, 1.5], "count": 5},
            "lr_out": {"linspace": [-1, 1.5], "count": 4},
        },
        "dtype": "float64",
    }
    exp = get_experiment("trainability")
    for dataset in ("full", "minibatch"):
        both = parse_spec({**base, "steps": [40, 25], "dataset": dataset})
        assert both.params.score_steps == (25, 40) and both.params.steps == 40
        coords = {ax.name: np.asarray(ax.values) for ax in both.axes}
        got = exp.compute_chunk(both, coords)
        for i, t in enumerate((25, 40)):
            one = parse_spec({**base, "steps": t, "dataset": dataset})
            want = exp.compute_chunk(one, coords)
            for k in ("score", "converged", "final_loss"):
                np.testing.assert_array_equal(got[k][..., i], want[k])


def test_minibatch_tables_give_each_step_count_its_own_sequence():
    """The notebook's minibatch rows depend on the step count: a [500, 1000] run scores the
    500-step image with minibatch_idx_500, not with the first 500 rows of the 1000 table."""
    spec = load_workflow(WORKFLOWS / "sohl_dickstein2024_tanh_minibatch.yaml")
    exp = get_experiment("trainability")
    pr = exp._problem(spec, {"width": 16, "depth": 2, "seed": 0, "eps": 0.0})
    lr = np.array([1.0])
    res = train_points(pr, "tanh", lr, lr, steps=1000, score_steps=(500, 1000))
    from pipeline.experiments.trainability.reference import train_losses

    l500 = train_losses(pr, "tanh", lr, lr, steps=500)
    s500, _, _ = score_trajectory(l500)
    assert res["score"][0, 0] == s500[0]
    l1000 = train_losses(pr, "tanh", lr, lr, steps=1000)
    s_prefix, _, _ = score_trajectory(l1000[:, :500])
    assert s_prefix[0] != s500[0]


# ---- spec errors and identity ------------------------------------------------------------------
def _spec_with(tmp_path, arrays=None, raw_bytes=None, **over):
    f = tmp_path / "d.npz"
    if raw_bytes is not None:
        f.write_bytes(raw_bytes)
    elif arrays is not None:
        np.savez(f, **arrays)
    raw = yaml.safe_load((WORKFLOWS / "sohl_dickstein2024_tanh_full.yaml").read_text())
    raw.pop("scales")
    raw["draws"] = {"file": "d.npz"}
    raw["store"] = str(tmp_path / "out.zarr")
    raw["axes"]["lr_in"]["count"] = raw["axes"]["lr_out"]["count"] = 4
    raw["chunks"] = {"lr_in": 4, "lr_out": 4}
    raw.update(over)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path / "s.yaml"


def _good():
    return _draws("sohl_dickstein2024_w16_draws.npz")


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing_key", "has no array 'Y'"),
        ("wrong_shape", "array 'W0' (initial weights of layer 0) has shape (16, 8)"),
        ("nan", "array 'X' (inputs, full data set) has 1 non-finite values"),
        ("not_npz", "is not a readable .npz"),
        ("absent", "does not exist"),
        ("object", "is not a readable .npz"),
        ("too_deep", "W2"),
    ],
)
def test_bad_draws_files_are_one_line_errors(tmp_path, capsys, case, message):
    g = _good()
    kw: dict = {}
    if case == "missing_key":
        g.pop("Y")
    elif case == "wrong_shape":
        g["W0"] = g["W0"][:, :8]
    elif case == "nan":
        g["X"] = g["X"].copy()
        g["X"][3, 4] = np.nan
    elif case == "too_deep":
        g["W2"] = g["W1"]
    if case == "not_npz":
        kw["raw_bytes"] = b"width,depth\n16,2\n"
    elif case == "object":
        (tmp_path / "d.npz").unlink(missing_ok=True)
        np.savez(tmp_path / "d.npz", W0=np.array([object()], dtype=object))
        kw["raw_bytes"] = (tmp_path / "d.npz").read_bytes()
    elif case != "absent":
        kw["arrays"] = g
    path = _spec_with(tmp_path, **kw)
    if case == "absent":
        (tmp_path / "d.npz").unlink(missing_ok=True)
    rc = main(["run", str(path), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: spec field 'draws.file'"), err
    assert message in err[0]
    assert not (tmp_path / "out.zarr").exists()


def test_draws_need_one_width_depth_and_seed(tmp_path):
    path = _spec_with(tmp_path, arrays=_good())
    raw = yaml.safe_load(path.read_text())
    raw["axes"]["seed"] = [0, 1]
    with pytest.raises(SpecError, match="axes.seed"):
        parse_spec({**raw, "draws": {"file": str(tmp_path / "d.npz")}})


def test_the_files_hash_is_the_identity_not_its_path(tmp_path):
    path = _spec_with(tmp_path, arrays=_good())
    a = load_workflow(path)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(tmp_path / "d.npz", moved / "d.npz")
    b = parse_spec({**a.to_dict(), "draws": {"file": str(moved / "d.npz")}})
    assert a.differences(b) == []
    other = _good()
    other["Y"] = other["Y"] + 1.0
    np.savez(moved / "d.npz", **other)
    c = parse_spec({**a.to_dict(), "draws": {"file": str(moved / "d.npz")}})
    assert c.differences(a) == ["draws.sha256"]
    # a stored spec is not re-read until its arrays are needed, then its hash must hold
    stored = parse_spec(a.to_dict())
    np.savez(tmp_path / "d.npz", **other)
    with pytest.raises(SpecError, match="now holds other draws"):
        get_experiment("trainability")._problem(
            parse_spec({**stored.to_dict(), "steps": [500, 1000]}),
            {"width": 16, "depth": 2, "seed": 0, "eps": 0.0},
        )


def test_the_store_refuses_another_draws_file(tmp_path, capsys):
    path = _spec_with(tmp_path, arrays=_good(), steps=3)
    assert main(["run", str(path), "--no-progress", "--workers", "1"]) == 0
    other = _good()
    other["Y"] = -other["Y"]
    np.savez(tmp_path / "d.npz", **other)
    capsys.readouterr()
    assert main(["run", str(path), "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "draws.sha256" in err


@pytest.mark.slow
def test_refined_steps_list_resolves_the_boundary_of_every_step_count(tmp_path):
    """Refinement classifies a point by every step count's sign (mixed: no class), so a
    refined [20, 60]-step store has the full run's classes in both images."""
    import xarray as xr

    raw = {
        "experiment": "trainability",
        "axes": {
            "width": [6],
            "lr_in": {"linspace": [-1.5, 2.5], "count": 48},
            "lr_out": {"linspace": [-1.5, 2.5], "count": 48},
        },
        "steps": [20, 60],
        "chunks": {"lr_in": 24, "lr_out": 24},
        "dtype": "float64",
    }
    for name, extra in (("full", {}), ("refined", {"refine": {"coarse": 8, "audit": 0.05}})):
        (tmp_path / f"{name}.yaml").write_text(
            yaml.safe_dump({**raw, **extra, "store": str(tmp_path / f"{name}.zarr")})
        )
        assert (
            main(
                [
                    "run",
                    str(tmp_path / f"{name}.yaml"),
                    "--no-progress",
                    "--no-summary",
                    "--workers",
                    "1",
                ]
            )
            == 0
        )
    full = xr.open_zarr(tmp_path / "full.zarr").score.load()
    ref = xr.open_zarr(tmp_path / "refined.zarr")
    assert ref.computed.values.mean() < 0.9
    for i in range(2):
        a = np.sign(full.isel(steps=i).values)
        b = np.sign(ref.score.load().isel(steps=i).values)
        assert (a > 0).any() and (a < 0).any()
        assert np.mean(a == b) >= 0.998, i
    # the two step counts differ somewhere, so a single-image class would miss a boundary
    assert not np.array_equal(np.sign(full.isel(steps=0)), np.sign(full.isel(steps=1)))


def test_the_refinement_class_of_several_step_counts_sees_every_boundary():
    """Two images whose boundaries lie far apart (a circle at 500 steps, a line at 1000):
    the planner fed the combined class fills both images exactly; fed the last image's sign
    only, it misses the first image's boundary."""
    from pipeline.run.refine_plan import Refiner, codes_of
    from pipeline.spec.refine import RefineSpec

    n = 128
    y, x = np.mgrid[0:n, 0:n] / n
    img500 = np.where((x - 0.3) ** 2 + (y - 0.6) ** 2 < 0.04, -5.0, 5.0)
    img1000 = np.where(x < 0.7, -5.0, 5.0)
    score = np.stack([img500.ravel(), img1000.ravel()], axis=1)
    spec = parse_spec(
        {
            "experiment": "trainability",
            "steps": [500, 1000],
            "axes": {
                "width": [4],
                "lr_in": {"linspace": [0, 1], "count": 4},
                "lr_out": {"linspace": [0, 1], "count": 4},
            },
        }
    )
    exp = get_experiment("trainability")

    def plan(classes):
        codes = codes_of(classes).reshape(n, n)
        r = Refiner((n, n), RefineSpec(16, 4, 1, 0.0, 0))
        while len((rnd := r.next_round()).points):
            r.absorb(codes.ravel()[rnd.points])
        return r.fill_source().ravel()

    src = plan(exp.pixel_class(spec, {"score": score}))
    for img in (img500, img1000):
        np.testing.assert_array_equal(img.ravel()[src], img.ravel())
    naive = plan(np.sign(score[:, 1]))
    assert not np.array_equal(img500.ravel()[naive], img500.ravel())


def test_sweep_draws_without_jax_is_one_line(tmp_path, capsys, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_jax(name, *a, **k):
        if name == "jax" or name.startswith("jax."):
            raise ImportError("no jax here")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_jax)
    assert main(["draws", "sohl-dickstein2024", "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "draws-jax" in err[0]
    assert main(["draws", "sohl-dickstein2024", "--width", "0"]) == 2
