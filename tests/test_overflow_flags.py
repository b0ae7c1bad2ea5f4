"""Networks whose pre-activations overflow the compute dtype: ``nonfinite_layer`` is the
first layer at which λ is NaN (any row of the point, not only h_a and the tangent), the regime
maps give no class from that layer on (``c``, ``cv`` as ``lyapunov``), ``sweep run`` and
``sweep analyze`` print no overflow warnings, and summaries tell close axis values apart."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from pipeline import open_sweep, parse_spec, run_sweep
from pipeline.cli import main as sweep


def quiet(msg: str) -> None:
    pass


def _run(client, tmp_path, name: str, **fields) -> object:
    spec = {"experiment": "propagation", "record_layers": "all", **fields}
    store = tmp_path / f"{name}.zarr"
    run_sweep(parse_spec(spec), store, client=client, progress=False, log=quiet)
    return open_sweep(store).load()


def _first_nan_layer(lam) -> np.ndarray:
    """Per point: the first recorded layer where λ is NaN, 0 where none is."""
    nan = lam.isnull()
    first = lam["layer"].values[nan.argmax("layer").values]
    return np.where(nan.any("layer").values, first, 0)


@pytest.mark.parametrize("architecture", [None, "dense"])
@pytest.mark.slow
def test_the_nonfinite_flag_is_the_first_layer_where_lyapunov_is_nan(
    client, tmp_path, architecture
):
    extra = {} if architecture is None else {"architecture": architecture}
    ds = _run(client, tmp_path, "relu", depth=30, dtype="float32", **extra, axes={
        "width": [8, 64, 256], "alpha": [1.0], "seed": [0, 1, 2], "activation": ["relu"],
        "sigma_w": [1e2, 1e3, 3e3], "sigma_b": [0.0, 1.0]})  # fmt: skip
    flag = ds["nonfinite_layer"].values
    assert (flag > 0).sum() >= 40  # most of these networks overflow within 30 layers
    np.testing.assert_array_equal(flag, _first_nan_layer(ds["lyapunov"]))
    # the network: width 64, seed 0, σ_w = 1e3 (h_b overflowed one layer before h_a)
    one = ds.sel(width=64, seed=0, sigma_w=1e3, sigma_b=0.0).squeeze()
    f = int(one["nonfinite_layer"])
    assert np.isfinite(one["lyapunov"].sel(layer=f - 1)) and np.isnan(one["lyapunov"].sel(layer=f))


def test_no_regime_where_every_seed_overflowed(client, tmp_path):
    """float32 tanh with σ_b = 1e30: q = ∞ at every layer, c is what ∞/∞ arithmetic leaves;
    every map is NaN there, and only there."""
    from pipeline.analysis.regimes import regime_maps

    ds = _run(client, tmp_path, "tanh", depth=6, dtype="float32", axes={
        "width": [32], "alpha": [1.0], "seed": [0, 1], "activation": ["tanh"],
        "sigma_w": [0.5, 1.5], "sigma_b": [0.5, 1e30]},
        probes={"pair": {"q0": 1.0, "c0": 0.5}, "circle": {"K": 8}})  # fmt: skip
    big = ds.sel(sigma_b=1e30)
    assert (big["nonfinite_layer"] == 1).all()
    maps = regime_maps(ds)
    for name in ("regime_lyapunov", "regime_c", "regime_cv"):
        assert maps[name].sel(sigma_b=1e30).isnull().all(), name
        assert maps[name].sel(sigma_b=0.5).notnull().all(), name


@pytest.mark.slow
def test_run_and_analyze_print_no_warnings_and_tell_close_values_apart(tmp_path, capfd):
    """An overflowing float32 store: no RuntimeWarning (or any other warning) on stderr from
    the driver or its workers; α = 1.999999 and 2 are two rows, σ_b = 1e30 is printed short."""
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "experiment": "propagation", "store": str(tmp_path / "s.zarr"), "depth": 6,
        "dtype": "float32", "record_layers": "all",
        "axes": {"width": [16], "alpha": [1.999999, 2.0], "seed": [0], "activation": ["tanh"],
                 "sigma_w": [0.5, 1.5], "sigma_b": [0.5, 1e30]},
        "probes": {"pair": {"q0": 1.0, "c0": 0.5}, "circle": {"K": 8}}}))  # fmt: skip
    assert sweep(["run", str(tmp_path / "s.yaml"), "--workers", "1", "--no-progress"]) == 0
    out, err = capfd.readouterr()
    assert "Warning" not in err, err
    rows = [ln.split() for ln in out.splitlines() if ln.strip().startswith("16 ")]
    assert sorted({r[1] for r in rows}) == ["1.999999", "2.000000"], out
    assert {r[3] for r in rows} == {"0.500", "1e+30"}, out
    assert sweep(["analyze", str(tmp_path / "s.zarr")]) == 0
    out, err = capfd.readouterr()
    assert "Warning" not in err and "warn" not in err, err
    rows = [ln.split() for ln in out.splitlines() if ln.strip().startswith("16 ")]
    assert {r[1] for r in rows} == {"1.999999", "2.000000"}, out


def test_a_collapsed_circle_is_named_not_silent(client, tmp_path, capsys):
    """float64, linear, σ_b = 1e30: the circle's neighbour distances round to 0 beside the
    bias, so cv = 0/0 = NaN with no overflow; the summary says so, and only there."""
    from pipeline.experiments.propagation.summary import cv_notes, format_summary

    ds = _run(client, tmp_path, "linear", depth=4, dtype="float64", axes={
        "width": [16], "seed": [0], "activation": ["linear"],
        "sigma_w": [1.0], "sigma_b": [0.5, 1e30]},
        probes={"pair": {"q0": 1.0, "c0": 0.5}, "circle": {"K": 8}})  # fmt: skip
    assert (ds["nonfinite_layer"] == 0).all()
    assert ds["cv"].sel(sigma_b=1e30).isnull().all()
    assert np.isfinite(ds["cv"].sel(sigma_b=0.5)).all()
    notes = cv_notes(ds)
    assert len(notes) == 1 and "4 (network, layer) cells of 1 networks" in notes[0]
    assert "collapsed" in format_summary(ds)
    assert cv_notes(ds.sel(sigma_b=[0.5])) == []
