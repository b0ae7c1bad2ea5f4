"""``sweep analyze`` on a jacobian store: D_q fitted across the width axis with a jackknife
over seeds, stored in the ``analysis`` group and printed (the experiment's analysis hook)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml

from pipeline.cli import main

RAW = {
    "name": "jac-analyze",
    "experiment": "jacobian",
    "axes": {
        "width": [16, 32],
        "alpha": [1.5, 2.0],
        "seed": [0, 1, 2],
        "activation": ["tanh"],
        "sigma_w": [1.0, 2.0],
    },
    "depth": 3,
    "record_layers": [2, 3],
    "jac_kinds": ["pre", "post"],
    "q": [0.5, 2.0],
    "dtype": "float64",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jac")
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump({**RAW, "store": str(tmp / "s.zarr")}))
    assert main(["run", str(path), "--no-progress", "--no-summary", "--workers", "1"]) == 0
    return tmp / "s.zarr"


def _reference(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """D_q and its jackknife error by hand: polyfit per seed subset, dims
    (alpha, activation, sigma_w, layer, jac_kind, q)."""
    m = (
        ds["mean_log_ipr"]
        .transpose("seed", "alpha", "activation", "sigma_w", "layer", "jac_kind", "q", "width")
        .values
    )
    lnn = np.log(ds["width"].values.astype(float))
    scale = 1.0 - ds["q"].values

    def slope(y):  # y (..., width)
        flat = y.reshape(-1, y.shape[-1])
        return np.array([np.polyfit(lnn, row, 1)[0] for row in flat]).reshape(y.shape[:-1])

    dq = slope(m.mean(0)) / scale
    loo = np.stack([slope(np.delete(m, i, 0).mean(0)) / scale for i in range(m.shape[0])])
    n = m.shape[0]
    se = np.sqrt((n - 1) / n * ((loo - loo.mean(0)) ** 2).sum(0))
    return dq, se


@pytest.mark.slow  # a module fixture runs a 24-point sweep (~7 s on 2 cores)
def test_analyze_fits_dq_across_widths_with_a_seed_jackknife(store, capsys):
    assert main(["analyze", str(store)]) == 0
    out = capsys.readouterr().out
    assert "D_q from <ln IPR_q> against ln N (N = 16 32), jackknife over 3 seeds" in out
    assert "written: group 'analysis'" in out
    an = xr.open_zarr(store, group="analysis").load()
    ds = xr.open_zarr(store).load()
    assert an["dq"].dims == ("alpha", "activation", "sigma_w", "layer", "jac_kind", "q")
    assert an["dq"].shape == (2, 1, 2, 2, 2, 2)
    dq, se = _reference(ds)
    np.testing.assert_allclose(an["dq"].values, dq, rtol=1e-9)
    np.testing.assert_allclose(an["dq_se"].values, se, rtol=1e-9, atol=1e-12)
    assert np.all(se > 0)  # three different seeds: a real spread
    # per-N value at the largest width: seed mean of <ln IPR_q> / ((1 - q) ln 32)
    pn = ds["mean_log_ipr"].sel(width=32).mean("seed") / ((1 - ds.q) * np.log(32))
    np.testing.assert_allclose(
        an["dq_largest_width"].values, pn.transpose(*an["dq"].dims).values, rtol=1e-9
    )
    # D_2 lies in (0, 1] up to the small-N scatter, and α = 2 is the more extended
    d2 = an["dq"].sel(q=2.0, jac_kind="pre", layer=3, activation="tanh")
    assert float(d2.sel(alpha=2.0).mean()) > float(d2.sel(alpha=1.5).mean())
    assert an["dq"].attrs["units"] == "1" and an["dq"].attrs["seeds"] == 3
    # one printed line per (alpha, activation, sigma_w, layer, jac_kind, q)
    rows = [ln for ln in out.splitlines() if ln.startswith("  ") and "tanh" in ln]
    assert len(rows) == an["dq"].size
    assert "Boundary dimension" not in out  # no class boundary in a jacobian store


def test_analyze_one_width_is_a_one_line_error(tmp_path, capsys):
    raw = {
        **RAW,
        "axes": {**RAW["axes"], "width": [16], "seed": [0], "alpha": [2.0], "sigma_w": [1.0]},
        "store": str(tmp_path / "o.zarr"),
    }
    (tmp_path / "o.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", str(tmp_path / "o.yaml"), "--no-progress", "--no-summary"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "o.zarr")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: width:"), err
