"""The trainability and zoom notebooks execute from their own folder on tiny stores built
here (each in a few seconds), and print the numbers the pipeline gives for the same store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import parse_spec
from pipeline.analysis.fractal.boundary import boundary_dimension
from pipeline.run.execute import run_chunk
from pipeline.store.grid import iter_chunk_keys
from pipeline.store.sweep import create_or_open_store, ensure_token, open_sweep

NOTEBOOKS = Path(__file__).resolve().parent.parent / "workflows" / "notebooks"

# the smoke plane of workflows/trainability_tanh_w8.yaml, smaller and fewer steps
TRAIN = {
    "name": "notebook-trainability",
    "experiment": "trainability",
    "axes": {
        "width": [8],
        "depth": [2],
        "activation": ["tanh"],
        "lr_in": {"linspace": [-3, 6], "count": 24},
        "lr_out": {"linspace": [-3, 6], "count": 24},
    },
    "steps": 20,
    "dataset": "full",
    "chunks": {"lr_in": 12, "lr_out": 24},
    "dtype": "float64",
}


def execute(name: str, where: Path, images: int) -> str:
    """Run the notebook ``name`` with ``where`` as its folder (it must draw ``images``
    figures); all its text output."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "clear outputs"
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(where)}}
    ).execute()
    drawn = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs
        if "image/png" in o.get("data", {})
    ]  # fmt: skip
    assert len(drawn) == images
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_trainability_notebook(tmp_path, monkeypatch):
    root = tmp_path / "clone"
    here = root / "workflows" / "notebooks"
    here.mkdir(parents=True)
    store = root / "trainability_tanh_w8_smoke.zarr"
    spec = parse_spec(TRAIN)
    create_or_open_store(spec, store)
    ensure_token(store)
    for key in iter_chunk_keys(spec):  # no cluster needed: 2 chunks
        run_chunk(spec, str(store), key)
    monkeypatch.delenv("SWEEP_STORE", raising=False)
    text = execute("trainability.ipynb", here, images=1)
    ds = open_sweep(store)
    ds = ds.isel({d: 0 for d in ds.score.dims if d not in ("lr_in", "lr_out")}).load()
    share = float(ds.converged.mean())
    assert 0.05 < share < 0.95  # both classes: a boundary to measure
    assert str(store) in text
    assert f"576/576 points computed; converged share {share:.3f}" in text
    rep = boundary_dimension(ds.score.transpose("lr_in", "lr_out").values)
    assert f"boundary dimension: {rep.text()}" in text and f"estimator: {rep.method}" in text
    # the store's figure: "D" is the dimension only, the depth is L
    from pipeline.figures.render import draw

    fig = draw(open_sweep(store), {"kind": "trainability_grid"})
    title = fig._suptitle.get_text()
    assert "depth L = 2 layers" in title and "D: boundary dimension" in title
    assert "depth D" not in title


@pytest.mark.slow
def test_zoom_notebook(tmp_path, monkeypatch, client):
    from pipeline.run.zoom import run_zoom

    root = tmp_path / "clone"
    here = root / "workflows" / "notebooks"
    here.mkdir(parents=True)
    store = root / "sohl_dickstein2024_zoom_smoke.zarr"
    spec = parse_spec({**TRAIN, "axes": {**TRAIN["axes"], "seed": [0]}})
    run_zoom(spec, 2, store, client=client, progress=False, log=lambda m: None)
    monkeypatch.delenv("SWEEP_STORE", raising=False)
    text = execute("zoom.ipynb", here, images=2)
    assert "2 frame(s): ['frame_000', 'frame_001']" in text
    f1 = open_sweep(store / "frame_001")
    width = float(f1.lr_in[-1] - f1.lr_in[0])
    assert width == pytest.approx(9 / 2, rel=0.1)  # each frame half as wide
    assert f"frame 1: lr_in {float(f1.lr_in[0]):.4g}..{float(f1.lr_in[-1]):.4g}" in text
    score = f1.score.squeeze().transpose("lr_in", "lr_out").values
    assert np.isfinite(score).all()
    rep = boundary_dimension(score)
    assert f"frame 1 ({rep.method}): {rep.text()}" in text
    # a zoom store with a chunk un-marked says so on its summary (chunks of every frame)
    from pipeline.store.grid import chunk_counts
    from pipeline.store.markers import unmark
    from pipeline.store.partial import partial_label
    from pipeline.store.sweep import read_spec, read_token

    assert partial_label(store) is None
    frame = store / "frame_001"
    unmark(frame, chunk_counts(read_spec(frame)), read_token(frame), [1])
    assert partial_label(store) == "partial: 3/4 chunks"
