"""A store whose chunks are not all done says so on every result: the summary's first line,
the analysis (its attribute and first line) and the figure's title."""

from __future__ import annotations

import pytest

from pipeline import parse_spec
from pipeline.cli import main
from pipeline.run.execute import run_chunk
from pipeline.store.grid import iter_chunk_keys
from pipeline.store.sweep import create_or_open_store, ensure_token

# 16 × 16 points of (σ_w, σ_b) in 4 chunks: enough for the boundary report to run
SPEC = {
    "name": "partial-test",
    "experiment": "propagation",
    "axes": {
        "width": [16],
        "alpha": [2.0],
        "seed": {"start": 0, "count": 1},
        "activation": ["tanh"],
        "sigma_w": {"linspace": [0.5, 2.5], "count": 16},
        "sigma_b": {"linspace": [0.0, 1.0], "count": 16},
    },
    "depth": 6,
    "probes": {"pair": {"q0": 1.0, "c0": 0.5}},
    "chunks": {"sigma_w": 8, "sigma_b": 8},
    "figure": {"kind": "frontier"},
}


def make_store(path, n_done: int) -> str:
    """The store of SPEC with its first ``n_done`` chunks computed (no cluster: run_chunk)."""
    spec = parse_spec(SPEC)
    create_or_open_store(spec, path)
    ensure_token(path)
    for key in list(iter_chunk_keys(spec))[:n_done]:
        run_chunk(spec, str(path), key)
    return str(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("partial")
    return make_store(base / "half.zarr", 2), make_store(base / "full.zarr", 4)


def test_summary_says_partial_on_stdout(stores, capsys):
    half, full = stores
    assert main(["summary", half]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("partial: 2/4 chunks (the missing ones read as NaN")
    assert main(["summary", full]) == 0
    assert "partial" not in capsys.readouterr().out


def test_analysis_says_partial_in_its_text_and_attrs(stores, capsys):
    import xarray as xr

    half, full = stores
    assert main(["analyze", half]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("partial: 2/4 chunks")
    assert xr.open_zarr(half, group="analysis").attrs["partial"] == "partial: 2/4 chunks"
    assert main(["analyze", full, "--no-write"]) == 0
    assert "partial" not in capsys.readouterr().out


def test_figure_title_says_partial(stores):
    pytest.importorskip("matplotlib")
    from pipeline.figures.render import store_figure

    half, full = stores
    fig, _ = store_figure(half)
    title = fig._suptitle.get_text()
    assert "partial: 2/4 chunks; missing chunks are grey" in title
    fig, _ = store_figure(full)
    assert fig._suptitle is None or "partial" not in fig._suptitle.get_text()


def test_signed_norm_centres_zero_and_scales_each_side_by_its_own_percentile():
    pytest.importorskip("matplotlib")
    import numpy as np

    from pipeline.figures.common import clip_to_norm, signed_norm

    # an ordered side down to -4 and a chaotic side up to 0.5 (λ_L's usual asymmetry)
    lam = np.concatenate([-np.linspace(0, 4, 101), np.linspace(0, 0.5, 51), [np.nan, -np.inf]])
    norm = signed_norm(lam, q=98)
    neg = np.linspace(0, 4, 101)[1:]
    assert norm.vmin == pytest.approx(-np.percentile(neg, 98))
    assert norm.vmax == pytest.approx(np.percentile(np.linspace(0, 0.5, 51)[1:], 98))
    assert float(norm(0.0)) == pytest.approx(0.5)  # 0 is the middle colour
    # the chaotic side's largest values get the full red, not a quarter of it
    assert float(norm(norm.vmax)) == pytest.approx(1.0) and float(norm(0.25)) > 0.7
    clipped = clip_to_norm(np.array([np.inf, -np.inf, np.nan, 0.1]), norm)
    np.testing.assert_array_equal(clipped[[0, 1, 3]], [norm.vmax, norm.vmin, 0.1])
    assert np.isnan(clipped[2])
    one_sided = signed_norm(np.array([-1.0, -2.0, -3.0]))  # symmetric then
    assert one_sided.vmin == -one_sided.vmax


def test_frontier_map_uses_the_centred_norm(stores):
    pytest.importorskip("matplotlib")
    import numpy as np

    from pipeline.figures.render import store_figure

    _, full = stores
    fig, _ = store_figure(full)
    mesh = fig.axes[0].collections[0]
    lam = mesh.get_array().compressed()
    assert mesh.norm.vmin < 0 < mesh.norm.vmax
    assert mesh.norm.vmax == pytest.approx(np.percentile(lam[lam > 0], 98), rel=0.05)
