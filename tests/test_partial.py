"""A store whose chunks are not all done says so on every result: the summary's first line,
the analysis (its attribute and first line) and the figure's title."""

from __future__ import annotations

import pytest

from pipeline import parse_spec
from pipeline.cli import main
from pipeline.engine.execute import run_chunk
from pipeline.engine.plan import iter_chunk_keys
from pipeline.engine.store import create_or_open_store, ensure_token

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
