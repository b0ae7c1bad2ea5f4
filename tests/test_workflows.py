"""Workflow files (scales, figure) and `sweep figures`: every workflow loads at every scale,
the paper workflows run at smoke scale and render a PNG with labelled axes and content."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from pipeline import open_sweep, parse_spec, read_spec, run_sweep
from pipeline.experiments.propagation.spec import gpu_hours
from pipeline.experiments.trainability.spec import signed_log
from pipeline.run.progress import format_duration
from pipeline.spec import SpecError
from pipeline.spec.workflow import load_workflow, workflow_scales

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
PAPER_WORKFLOWS = {
    "schoenholz2016_xi_c": "xi_c_map",
    "qu2022_phase_cv": "phase_cv",
    "effective_rank_relu": "effective_rank",
    "dinverno2025_erf_frontier": "frontier",
    "sohl_dickstein2024_trainability": "trainability_grid",
    "sohl_dickstein2024_eps": "eps_panel",
    "sohl_dickstein2024_zoom": "trainability_grid",
}
ZOOM_WORKFLOWS = ("dinverno2025_erf_frontier", "sohl_dickstein2024_zoom")
OTHER_WORKFLOWS = {"quickstart": "frontier", "trainability_tanh_w8": "trainability_grid"}
FIGURE_OF = {**PAPER_WORKFLOWS, **OTHER_WORKFLOWS}
SMOKE_RUN = sorted((set(PAPER_WORKFLOWS) - set(ZOOM_WORKFLOWS[1:])) | set(OTHER_WORKFLOWS))


def sweep(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd
    )


def sweep_here(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI's ``main`` in this process (what ``sweep`` runs, without a new interpreter's
    imports and with this process's caches: the mean-field roots a figure shares with the
    in-process draw before it); ``sweep`` above keeps the console-script path tested."""
    import contextlib
    import io

    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(["sweep", *args], rc, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yaml")), ids=lambda p: p.stem)
@pytest.mark.slow
def test_every_workflow_loads_at_every_scale(path):
    base = load_workflow(path)
    assert base.scale is None
    stores = [base.store]
    for scale in workflow_scales(path):
        spec = load_workflow(path, scale)
        assert spec.scale == scale
        assert spec.to_dict()["scale"] == scale
        assert parse_spec(spec.to_dict()).differences(spec) == []
        stores.append(spec.store)
    # each scale writes its own store: running one scale after another is never refused
    assert len(set(stores)) == len(stores), stores


@pytest.mark.parametrize("name", sorted(PAPER_WORKFLOWS))
def test_paper_workflows_declare_smoke_and_paper(name):
    path = WORKFLOWS / f"{name}.yaml"
    assert {"smoke", "paper"} <= set(workflow_scales(path))
    assert load_workflow(path, "paper").figure["kind"] == PAPER_WORKFLOWS[name]


def test_scale_overrides_merge_deeply(tmp_path):
    raw = {
        "axes": {"width": [64], "sigma_w": {"linspace": [0.5, 2.0], "count": 8}},
        "depth": 10,
        "probes": {"pair": {"q0": 1.0}, "circle": {"K": 16}},
        "scales": {"tiny": {"axes": {"sigma_w": [1.0, 2.0]}, "probes": {"circle": {"K": 4}}}},
    }
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(raw))
    spec = load_workflow(tmp_path / "w.yaml", "tiny")
    assert spec.axis("sigma_w").values == (1.0, 2.0)  # a range replaced by a list, whole
    assert spec.axis("width").values == (64,)  # untouched
    assert spec.params.probes.circle.K == 4 and spec.params.probes.pair is not None
    assert load_workflow(tmp_path / "w.yaml").axis("sigma_w").values[0] == 0.5


def test_qu2022_paper_scale_is_their_fig5():
    spec = load_workflow(WORKFLOWS / "qu2022_phase_cv.yaml", "paper")
    alpha, sw = spec.axis("alpha").values, spec.axis("sigma_w").values
    assert len(alpha) == 21 and np.allclose(np.diff(alpha), 0.05) and alpha[0] == 1.0
    assert len(sw) == 60 and np.allclose(np.diff(sw), 0.05) and math.isclose(sw[0], 0.05)
    assert spec.axis("width").values == (1000,) and len(spec.axis("seed")) == 50
    assert spec.params.depth == 50 and spec.params.probes.circle.K == 1000
    assert {15, 25, 35} <= set(spec.params.record_layers)


@pytest.mark.slow
def test_unknown_scale_and_figure_are_one_line_errors(tmp_path):
    with pytest.raises(SpecError, match=r"unknown scale 'huge' \(allowed: smoke, paper\)"):
        load_workflow(WORKFLOWS / "qu2022_phase_cv.yaml", "huge")
    out = sweep("plan", str(WORKFLOWS / "qu2022_phase_cv.yaml"), "--scale", "huge", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "unknown scale 'huge' (allowed: smoke, paper)" in out.stderr
    raw = yaml.safe_load((WORKFLOWS / "qu2022_phase_cv.yaml").read_text())
    raw["figure"] = {"kind": "phase_cvv"}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="figure.kind.*allowed: xi_c_map, phase_cv"):
        load_workflow(tmp_path / "w.yaml")


@pytest.mark.slow
def test_plan_paper_prints_flops_and_gpu_hours(tmp_path):
    path = WORKFLOWS / "qu2022_phase_cv.yaml"
    out = sweep("plan", str(path), "--scale", "paper", "--no-timing", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "time (estimate)" not in out.stdout
    # 21 α × 60 σ_w × 50 seeds, 1000 + 3 rows per point, N = 1000, L = 50
    flops = 2 * 1000**2 * (21 * 60 * 50) * 1003 * 50
    assert f"FLOPs             {flops:.3e}" in out.stdout
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("GPU time")][0]
    assert f" {format_duration(gpu_hours(flops) * 3600)} on one H100" in line
    assert "0.7 x 60 TFLOP/s float32" in line
    assert not (tmp_path / "qu2022_phase_cv_paper.zarr").exists()


def test_figure_and_scale_kept_in_store_attrs_but_not_compared():
    spec = load_workflow(WORKFLOWS / "effective_rank_relu.yaml", "smoke")
    d = spec.to_dict()
    assert d["figure"] == {"kind": "effective_rank"} and d["scale"] == "smoke"
    plain = dict(d)
    del plain["figure"], plain["scale"]
    assert parse_spec(plain).differences(spec) == []


# ---- smoke runs and figures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_stores(client, tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    stores = {}
    for name in SMOKE_RUN:
        spec = load_workflow(WORKFLOWS / f"{name}.yaml", "smoke")
        report = run_sweep(
            spec,
            root / f"{name}.zarr",
            client=client,
            progress=False,
            backend="numpy",
            log=lambda msg: None,
        )
        assert not report.failed
        stores[name] = root / f"{name}.zarr"
    return stores


EXPECTED_LABELS = {
    "xi_c_map": ("σ_w²", "σ_b²", "ξ_c"),
    "phase_cv": ("α", "σ_w", "CV"),
    "effective_rank": ("layer ℓ", "rank", "participation ratio"),
    "frontier": ("σ_w", "σ_b", "λ_L", "log f(ε)", "log ε"),
    "trainability_grid": ("lr_in", "lr_out", "sign(score)·log(1 + |score|)"),
    "eps_panel": ("lr_in", "lr_out", "sign(score)"),
}


def check_png(png, min_bytes=30_000):
    """A rendered figure: big enough, of a sensible shape, not blank, with colour content."""
    import matplotlib.image as mpimg

    assert png.stat().st_size > min_bytes
    assert png.with_suffix(".pdf").stat().st_size > 5_000
    img = mpimg.imread(png)
    h, w = img.shape[:2]
    assert 400 <= h <= 2000 and 500 <= w <= 4000, img.shape
    rgb = img[..., :3]
    assert rgb.std() > 0.05  # not a blank page
    # distinct colours, each packed into one integer (np.unique over rows took ~3 s a figure);
    # 8 bits a channel is what the PNG holds, and a coarser one could only merge colours
    q = np.rint(rgb * 255).astype(np.uint32)
    colours = np.unique((q[..., 0] << 16) | (q[..., 1] << 8) | q[..., 2])
    assert len(colours) > 50  # colour maps, lines, text


def check_layout(fig):
    """What every figure must hold at the size it is written: no text reaching outside the
    figure, a colour bar for every colour-mapped image, the missing-data grey on each."""
    from pipeline.figures.layout import (
        clipped_texts,
        mappables_without_colourbar,
        mappables_without_missing_colour,
    )

    assert clipped_texts(fig) == []
    assert mappables_without_colourbar(fig) == []
    assert mappables_without_missing_colour(fig) == []


@pytest.mark.parametrize("name", SMOKE_RUN)
@pytest.mark.slow
def test_smoke_run_renders_figure(name, smoke_stores, tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    from pipeline import figures

    store = smoke_stores[name]
    spec = read_spec(store)
    assert spec.scale == "smoke" and spec.figure["kind"] == FIGURE_OF[name]

    fig, stem = figures.store_figure(store)  # as `sweep figures` writes it, at its size
    assert stem == spec.figure["kind"]
    labels = " ".join(f"{ax.get_xlabel()} {ax.get_ylabel()} {ax.get_title()}" for ax in fig.axes)
    for want in EXPECTED_LABELS[spec.figure["kind"]]:
        assert want in labels, (want, labels)
    data_axes = [ax for ax in fig.axes if ax.get_xlabel() and ax.get_ylabel()]
    assert all(ax.has_data() for ax in data_axes)
    check_layout(fig)
    plt.close(fig)

    out = sweep_here("figures", str(store), "-o", str(tmp_path / "fig"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    check_png(tmp_path / "fig" / f"{spec.figure['kind']}.png")


@pytest.mark.slow
def test_missing_data_has_its_own_colour_and_a_legend_entry(smoke_stores):
    plt = pytest.importorskip("matplotlib.pyplot")
    import matplotlib.colors as mc

    from pipeline import figures
    from pipeline.figures.layout import MISSING_COLOUR, MISSING_LABEL
    from pipeline.figures.render import finish

    # a chunk not computed reads as NaN: drawn grey (not RdBu's white, λ_L = 0), and named
    ds = open_sweep(smoke_stores["dinverno2025_erf_frontier"]).load()
    ds["lyapunov"][..., :10, :12, :] = np.nan
    fig = finish(figures.draw(ds, {"kind": "frontier"}))
    legend_texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert legend_texts == [MISSING_LABEL]
    mesh = fig.axes[0].collections[0]
    assert np.ma.getmaskarray(mesh.get_array()).sum() == 10 * 12
    bad = mesh.get_cmap().get_bad()
    assert mc.same_color(bad, MISSING_COLOUR)
    # a grey no colour of the map has (RdBu's middle is near white)
    rgb = mesh.get_cmap()(np.linspace(0, 1, 256))[:, :3]
    assert np.min(np.linalg.norm(rgb - np.asarray(bad[:3]), axis=1)) > 0.1
    check_layout(fig)
    plt.close(fig)
    # a complete store has no such entry
    fig = finish(figures.draw(open_sweep(smoke_stores["dinverno2025_erf_frontier"]),
                              {"kind": "frontier"}))  # fmt: skip
    assert fig.legends == []
    plt.close(fig)


@pytest.mark.slow
def test_figures_kind_on_the_command_line(smoke_stores, tmp_path):
    pytest.importorskip("matplotlib")
    store = smoke_stores["quickstart"]
    out = sweep("figures", str(store), "--kind", "frontier", "-o", str(tmp_path / "f"),
                cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    check_png(tmp_path / "f" / "frontier.png", min_bytes=20_000)
    bad = [
        (["--kind", "frontir"], "error: --kind: unknown value 'frontir'; did you mean 'frontier'?"),
        (["--kind", "phase_cv", "--option", "layers=[1, x]"], "error: --option layers[1]: "),
        (["--kind", "frontier", "--option", "layers=3"], "error: --option layers: unknown key"),
        (["--option", "layers=3"], "error: --option: give the figure's --kind too"),
        (["--kind", "phase_cv", "--option", "layers"], "error: --option: 'layers' is not NAME="),
    ]
    for args, message in bad:  # in this process: the flags fail before anything is drawn
        out = sweep_here("figures", str(store), *args, "-o", str(tmp_path / "g"), cwd=tmp_path)
        assert out.returncode == 2 and out.stderr.startswith(message), (args, out.stderr)
        assert out.stderr.count("\n") == 1
    assert not (tmp_path / "g").exists()


@pytest.mark.slow
def test_smoke_numbers_agree_with_theory(smoke_stores):
    from pipeline import figures, theory

    # ξ_c: measured within 25 % of mean field where mean field is well inside the depth
    ds = open_sweep(smoke_stores["schoenholz2016_xi_c"])
    fit = figures.xi_c.fit_xi_c(ds, fit_from=3)
    sw2, sb2 = fit.sigma_w2.values, fit.sigma_b2.values
    mf = np.asarray(theory.xi_c(np.sqrt(sw2)[:, None], np.sqrt(sb2)[None, :], "tanh"))
    ok = np.isfinite(fit.xi_c.values) & (mf < 10)
    assert ok.sum() >= 10
    assert abs(np.median(fit.xi_c.values[ok] / mf[ok]) - 1) < 0.25

    # relu batch: full numerical rank at layer 1 (the note claims 1 − (1 − 2/π) ≈ 0.64 m)
    ds = open_sweep(smoke_stores["effective_rank_relu"])
    m = ds.attrs["sweep_spec"]["probes"]["batch"]["m"]
    assert float(ds.eff_rank.sel(layer=1).min()) == m
    pr = ds.participation_ratio.mean("seed").squeeze().values  # (width, layer)
    assert (pr[:, -1] < 0.5 * pr[:, 0]).all()  # decays with depth ...
    assert figures.effective_rank.revival_peaks(ds) == {
        32: [],
        128: [],
    }  # ... without significant revivals


def test_ordered_line_matches_levy_root_search():
    from pipeline.figures.phase_cv import ordered_line
    from pipeline.numerics.levy import ordered_transition_sigma_w

    assert ordered_line([2.0])[0] == pytest.approx(
        ordered_transition_sigma_w(0.0, 2.0, "tanh"), rel=1e-7
    )


def test_figures_without_figure_is_an_error(client, tmp_path):
    spec = parse_spec({"axes": {"width": [8], "sigma_w": [1.0]}, "depth": 2})
    run_sweep(spec, tmp_path / "s.zarr", client=client, progress=False, log=lambda m: None)
    out = sweep("figures", "s.zarr", cwd=tmp_path)
    assert out.returncode == 2 and "declares no figure; give one: sweep figures" in out.stderr
    assert "--kind KIND (one of xi_c_map, phase_cv" in out.stderr


# ---- seeds 000 and 002: zoom stores, numbers, the notebook ------------------------------------


@pytest.fixture(scope="module")
def zoom_stores(client, tmp_path_factory):
    from pipeline.run.zoom import run_zoom

    root = tmp_path_factory.mktemp("zoom")
    stores = {}
    for name in ZOOM_WORKFLOWS:
        spec = load_workflow(WORKFLOWS / f"{name}.yaml", "smoke")
        frames = run_zoom(
            spec,
            3,
            root / f"{name}_zoom.zarr",
            client=client,
            progress=False,
            backend="numpy",
            log=lambda msg: None,
        )
        assert [f.index for f in frames] == [0, 1, 2]
        stores[name] = root / f"{name}_zoom.zarr"
    return stores


@pytest.mark.parametrize("name", ZOOM_WORKFLOWS)
@pytest.mark.slow
def test_zoom_store_renders_frames_with_dimensions(name, zoom_stores, tmp_path):
    pytest.importorskip("matplotlib")
    from pipeline import figures
    from pipeline.store.zoom import is_zoom_store, open_zoom

    store = zoom_stores[name]
    assert is_zoom_store(store) and not is_zoom_store(store / "frame_000")
    frames = open_zoom(store)
    fig, stem = figures.zoom_figure(store)
    titles = [ax.get_title() for ax in fig.axes]
    assert stem == "zoom_frames" and sum(t.startswith("frame ") for t in titles) == 3
    assert any("Sohl-Dickstein pooled" in t for t in titles)
    assert "3 frames, each window 1/2 of the previous, around the boundary" in (fig.get_suptitle())
    check_layout(fig)  # every frame has its colour bar
    fig.clf()

    out = sweep_here("figures", str(store), "-o", str(tmp_path / "z"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    check_png(tmp_path / "z" / "zoom_frames.png")
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("zoom: frame")]
    assert len(lines) == 3, out.stdout
    assert all("(directional uncertainty exponent)" in ln and "D = " in ln for ln in lines), (
        out.stdout
    )
    # one interval per boundary: the figure's frame titles print the numbers the lines print
    values = [re.search(r"D = [0-9.]+ \[[0-9.]+, [0-9.]+\]", ln).group(0) for ln in lines]
    assert [v in t for v, t in zip(values, [t for t in titles if t.startswith("frame ")],
                                   strict=True)] == [True] * 3  # fmt: skip
    # each window is half the previous one, centred on the previous frame's boundary
    a = "sigma_w" if name.startswith("dinverno") else "lr_in"
    widths = [float(f[a][-1] - f[a][0]) for f in frames]
    assert widths[1] == pytest.approx(widths[0] / 2) and widths[2] == pytest.approx(widths[0] / 4)
    # a single frame is an ordinary store drawn with the base workflow's figure
    out = sweep_here("figures", str(store / "frame_001"), "-o", str(tmp_path / "f1"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "f1" / f"{PAPER_WORKFLOWS[name]}.png").exists()


@pytest.mark.slow
def test_seed_000_and_002_smoke_numbers(smoke_stores):
    from pipeline import theory

    # erf frontier: the boundary lies on the chaotic side of the mean-field line χ1 = 1
    # (finite width and depth), within a fraction of σ_w. At σ_w = 0 the tangent vector is
    # zero: λ_L = −∞ (ordered), with nothing flagged in nonfinite_layer.
    ds = open_sweep(smoke_stores["dinverno2025_erf_frontier"])
    lam = ds.lyapunov.isel(layer=-1).squeeze().transpose("sigma_w", "sigma_b").values
    assert np.isneginf(lam[0]).all() and (lam[1] < 0).all() and (lam[-1, :10] > 0).all()
    assert int(ds.nonfinite_layer.max()) == 0
    first = ds.sigma_w.values[np.argmax(lam > 0, axis=0)]
    mf = theory.critical_line(ds.sigma_b.values, "erf")
    assert 0 < np.median(first - mf) < 0.6
    assert theory.critical_line([0.0], "erf")[0] == pytest.approx(math.sqrt(math.pi) / 2)

    # trainability: one store, eight images; classes are the score's sign
    ds = open_sweep(smoke_stores["sohl_dickstein2024_trainability"])
    assert dict(ds.score.sizes) == {
        "width": 2,
        "depth": 1,
        "activation": 4,
        "eps": 1,
        "seed": 1,
        "lr_in": 20,
        "lr_out": 20,
    }
    conv = ds.converged.squeeze()
    assert ((ds.score.squeeze() < 0) == (conv > 0)).all()
    share = conv.mean(("lr_in", "lr_out")).values
    assert ((share > 0.15) & (share < 0.85)).all()  # every image holds both classes

    # ε panel: ε = 0 is the unperturbed image; perturbations change the scores
    ds = open_sweep(smoke_stores["sohl_dickstein2024_eps"])
    s = ds.score.squeeze().values  # (eps, lr_in, lr_out)
    assert list(ds.eps.values) == [0.0, 1e-5, 1e-3, 1e-2, 1e-1]
    assert all(not np.array_equal(s[0], s[k]) for k in range(1, 5))
    assert signed_log(np.array([-np.e + 1, 0.0, 1.0]))[[0, 1]] == pytest.approx([-1, 0])


@pytest.mark.slow
def test_notebook_runs_from_its_own_folder(smoke_stores, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path = WORKFLOWS / "notebooks" / "analysis.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "clear outputs"
    # a clone where the README's smoke run wrote the store in the repository root; Jupyter
    # runs the notebook in workflows/notebooks/, and SWEEP_STORE is not set
    here = tmp_path / "clone" / "workflows" / "notebooks"
    here.mkdir(parents=True)
    (tmp_path / "clone" / "dinverno2025_erf_frontier_smoke.zarr").symlink_to(
        smoke_stores["dinverno2025_erf_frontier"]
    )
    monkeypatch.delenv("SWEEP_STORE", raising=False)
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(here)}}
    ).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert str(tmp_path / "clone" / "dinverno2025_erf_frontier_smoke.zarr") in text
    assert "box-counting dimension" in text and "ordered" in text
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 2  # the regime map and the log N vs log s plot


def test_points_with_some_nonfinite_seeds_are_noted():
    from pipeline.figures.render import _partial_seed_notes

    flag = np.array([[0, 0, 3], [0, 0, 0], [2, 2, 2]]).T  # (seed, point): one point partial
    ds = xr.Dataset({"nonfinite_layer": (("seed", "p"), flag)})
    (note,) = _partial_seed_notes(ds)
    assert note.startswith("note: 1 grid point(s) have non-finite values in some of their 3 seeds")
    assert _partial_seed_notes(ds.isel(p=[1, 2])) == []  # all or none: nothing to note


def test_layout_checks_catch_clipped_text_and_a_missing_colour_bar():
    plt = pytest.importorskip("matplotlib.pyplot")
    from pipeline.figures.layout import (
        clipped_texts,
        colour_map,
        fit_texts,
        mappables_without_colourbar,
        mappables_without_missing_colour,
    )

    # the single-image trainability figure as it was: 645 px wide, a 90-character title
    title = "trainability after 40 steps of gradient descent, depth L = 2, dataset full"
    fig, ax = plt.subplots(figsize=(4.3, 3.5), dpi=150, constrained_layout=True)
    mesh = ax.pcolormesh(np.arange(12.0).reshape(3, 4), cmap="RdBu_r")
    fig.suptitle(title, fontsize=10)
    assert clipped_texts(fig) == [title]
    assert mappables_without_colourbar(fig) == [mesh]
    assert mappables_without_missing_colour(fig) == [mesh]
    fit_texts(fig)
    assert clipped_texts(fig) == []
    assert fig._suptitle.get_text().replace("\n", " ") == title  # wrapped, not cut
    mesh.set_cmap(colour_map("RdBu_r"))
    fig.colorbar(mesh, ax=ax, label="a label " * 12)  # longer than the figure is tall
    assert mappables_without_colourbar(fig) == [] and mappables_without_missing_colour(fig) == []
    assert len(clipped_texts(fig)) == 1
    assert clipped_texts(fit_texts(fig)) == []
    plt.close(fig)


# ---- CF conventions of every store kind --------------------------------------------------------


def check_cf(ds, where):
    """CF 1.10 on one dataset: Conventions and history; a long_name on every variable and
    coordinate; units that UDUNITS (cf_xarray's parser) reads, none on strings, none but
    flag_values / flag_meanings (one meaning per value) on class variables."""
    from cf_xarray.units import units as udunits

    assert ds.attrs.get("Conventions") == "CF-1.10", where
    assert ds.attrs.get("history"), where
    for name, var in ds.variables.items():
        attrs = var.attrs
        assert attrs.get("long_name"), (where, name)
        if "flag_values" in attrs:
            meanings = attrs["flag_meanings"].split()
            assert len(meanings) == len(attrs["flag_values"]) and "units" not in attrs
        elif var.dtype.kind in "OUT":  # strings
            assert "units" not in attrs, (where, name, attrs)
        else:
            assert "units" in attrs, (where, name)
            udunits.parse_units(attrs["units"])  # raises for a unit UDUNITS does not know


@pytest.mark.slow
def test_every_store_kind_is_cf_conventional(smoke_stores, zoom_stores, tmp_path):
    pytest.importorskip("cf_xarray")
    import warnings

    from pipeline.analysis.regimes import CHAOTIC, ORDERED
    from pipeline.run.analyze import analyze

    prop = open_sweep(smoke_stores["qu2022_phase_cv"])  # pair and circle probes, α < 2
    train = open_sweep(smoke_stores["trainability_tanh_w8"])
    check_cf(prop, "propagation")
    check_cf(open_sweep(smoke_stores["effective_rank_relu"]), "propagation, batch probe")
    check_cf(train, "trainability")
    # cf_xarray reads the classes by name
    assert bool(((train.converged.cf == "converged") == (train.converged == 1)).all())
    for name, ds in (("propagation", prop), ("trainability", train)):
        analyze(ds).to_zarr(tmp_path / f"{name}.zarr", mode="w", consolidated=False)
        an = xr.open_zarr(tmp_path / f"{name}.zarr", consolidated=False)
        check_cf(an, f"analysis of {name}")
        for flag, yes in (
            ("disagree", "disagree"),
            ("drifting", "drifting"),
            ("cutoff_limited", "cutoff_limited"),
            ("noise", "noise_dominated"),
        ):
            v = an[f"boundary_dimension_{flag}"]
            assert bool(((v.cf == yes) == (v == 1)).all()), (name, flag)
    regimes = an = xr.open_zarr(tmp_path / "propagation.zarr", consolidated=False).regime_lyapunov
    assert bool(((regimes.cf == "ordered") == (regimes == ORDERED)).all())
    assert bool(((regimes.cf == "chaotic") == (regimes == CHAOTIC)).all())
    for root in zoom_stores.values():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "consolidated metadata not found" fallback
            tree = xr.open_datatree(root, engine="zarr")
        assert sorted(tree.children) == ["frame_000", "frame_001", "frame_002"]
        check_cf(tree.to_dataset(), "zoom root")
        for node in tree.children.values():
            check_cf(node.to_dataset(), f"zoom {node.name}")


@pytest.mark.slow
def test_analyze_a_trainability_store_and_the_levy_line_in_summaries(smoke_stores, tmp_path):
    from pipeline.analysis import boundary_dimension
    from pipeline.analysis.report import format_analysis
    from pipeline.experiments.propagation.summary import format_summary, lyapunov_crossings
    from pipeline.numerics.levy import ordered_transition_sigma_w
    from pipeline.numerics.theory import critical_sigma_w
    from pipeline.run.analyze import analyze

    # boundary dimensions make sense for the trainability plane too: one per image
    ds = open_sweep(smoke_stores["sohl_dickstein2024_trainability"])
    an = analyze(ds)
    flags = (
        "needed_side", "disagree", "drifting", "cutoff_limited", "noise", "frontier", "report",
    )  # fmt: skip
    assert set(an.data_vars) == {
        "boundary_dimension", "boundary_dimension_low", "boundary_dimension_high",
        *(f"boundary_dimension_{f}" for f in flags),
    }  # fmt: skip
    bd = an.boundary_dimension
    assert bd.sizes == {"width": 2, "depth": 1, "activation": 4, "eps": 1, "seed": 1}
    text = format_analysis(an)
    for w in ds.width.values:
        for act in ds.activation.values:
            img = ds.score.sel(width=w, activation=act).squeeze().transpose("lr_in", "lr_out")
            want = boundary_dimension(img.values)  # the report every command prints
            got = an.sel(width=w, activation=act).squeeze()
            assert str(got.boundary_dimension_report.values) == want.text()
            assert want.text() in text
            if want.estimate is None:
                assert np.isnan(float(got.boundary_dimension))
                continue
            assert float(got.boundary_dimension) == pytest.approx(want.estimate.estimate)
            assert float(got.boundary_dimension_low) == pytest.approx(want.estimate.interval[0])
            assert int(got.boundary_dimension_needed_side) == (
                want.needed_side if want.too_small else 0
            )
            assert int(got.boundary_dimension_disagree) == bool(want.disagreeing)
            assert int(got.boundary_dimension_drifting) == want.drifting
            assert int(got.boundary_dimension_noise) == want.noise_dominated
            assert int(got.boundary_dimension_cutoff_limited) == want.cutoff_limited
    assert "Critical line" not in text and "Dimension of the class boundary" in text
    out = sweep("analyze", str(smoke_stores["trainability_tanh_w8"]), "--no-write", cwd=tmp_path)
    assert out.returncode == 0 and "width=8 depth=2 activation=tanh" in out.stdout, out.stderr

    # sweep run / summary give α < 2 the Lévy ordered line, as analyze does
    ds = open_sweep(smoke_stores["qu2022_phase_cv"])
    rows = lyapunov_crossings(ds)
    assert {r["alpha"] for r in rows} == {1.0, 1.5, 2.0}
    for r in rows:
        want = (
            critical_sigma_w(0.0, "tanh")
            if r["alpha"] == 2.0
            else ordered_transition_sigma_w(0.0, r["alpha"], "tanh")
        )
        assert r["sigma_w_theory"] == pytest.approx(float(want), rel=1e-9)
    assert "Lévy ordered transition q* = 0.01 for α < 2" in format_summary(ds)


@pytest.mark.slow
def test_frontier_without_a_box_counting_fit_is_the_map_alone(smoke_stores):
    plt = pytest.importorskip("matplotlib.pyplot")
    from pipeline import figures
    from pipeline.figures.common import dimension
    from pipeline.figures.frontier import lyapunov_plane
    from pipeline.figures.render import finish

    ds = open_sweep(smoke_stores["quickstart"]).isel(sigma_b=slice(0, 4))  # a 41 × 4 grid
    assert dimension(lyapunov_plane(ds)[0]).estimate is None
    fig = finish(figures.draw(ds, {"kind": "frontier"}))
    (ax,) = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]  # no empty second panel
    assert "no boundary-dimension fit on this 41 × 4 grid" in ax.get_xlabel().replace("\n", " ")
    check_layout(fig)
    plt.close(fig)


def test_deep_window_axes_are_drawn_relative_to_their_centre():
    """A window 7.7e-7 decades wide about 1.12 (Sohl-Dickstein's tanh panel) is drawn as
    (value − centre) / 1e-7 with the centre in the label, so no offset text is needed; a
    wide axis is drawn as it is."""
    from pipeline.figures.common import relative_axis

    v = np.linspace(1.1238438794349184, 1.1238446543208616, 64)
    x, label = relative_axis(v, "log10 lr_in")
    assert label == "log10 lr_in\n(value − 1.1238443) / 1e-7"
    np.testing.assert_allclose(x * 1e-7 + 1.1238443, v, rtol=0, atol=1e-15)
    assert -4.5 < x.min() < -3.5 and 3 < x.max() < 4
    # a window 1.3e-12 wide: the centre to 12 decimals, ticks within a few units of it
    deep = np.linspace(2.2412214093301, 2.2412214093314, 16)
    x, label = relative_axis(deep, "y")
    assert label == "y\n(value − 2.241221409331) / 1e-12" and np.abs(x).max() < 1.5
    wide = np.linspace(-3.0, 6.0, 9)
    same, same_label = relative_axis(wide, "log10 lr_in")
    assert same_label == "log10 lr_in" and np.array_equal(same, wide)


def test_zoom_figure_title_says_how_the_windows_follow():
    """A zoom out (widest first, one centre) and a zoom in (halving, moving centres) are
    told apart from the frames' coordinates; a window 1e-7 wide keeps its centre."""
    import xarray as xr

    from pipeline.figures.zoom import _sequence_title

    def frame(c: tuple[float, float], w: float) -> xr.Dataset:
        return xr.Dataset(coords={
            "x": np.linspace(c[0] - w / 2, c[0] + w / 2, 8),
            "y": np.linspace(c[1] - w / 2, c[1] + w / 2, 8),
        })  # fmt: skip

    out = [frame((1.1238443, 2.3018), 6.5 / 2**k) for k in range(24)]
    t = _sequence_title(out, "x", "y", "score")
    assert "24 frames, each window 1/2 of the previous, widths grown about" in t
    zin = [frame((0.1 * k, -0.05 * k), 4.0 / 2**k) for k in range(3)]
    assert "each window 1/2 of the previous, around the boundary" in _sequence_title(
        zin, "x", "y", "score"
    )
