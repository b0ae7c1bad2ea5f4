"""Qu, Wardak & Gong (2022) Figs. 2a, 2b and 3b from a small jacobian store: the cavity
bin shares against the closed form, the cavity density against the empirical moduli, the
L-map's logic, and the figure checks (clipped text, colour bars, missing-data grey)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from pipeline.cli import main
from pipeline.numerics.cavity import cavity_samples
from pipeline.numerics.cavity_maps import cavity_log_bin_shares, l_map, largest_power
from pipeline.store.sweep import open_sweep

SW = [0.5, 1.0, 1.5, 2.5]
RAW = {
    "name": "jac-figures",
    "experiment": "jacobian",
    "axes": {
        "width": [64, 128],
        "alpha": [1.2, 2.0],
        "seed": [0, 1, 2],
        "activation": ["tanh"],
        "sigma_w": SW,
    },
    "depth": 5,
    "record_layers": [5],
    "q": [2.0],
    "dtype": "float64",
    "hist": {"low": -3.0, "high": 1.0, "bins": 20},
    "figure": {"kind": "jacobian_density", "samples": 4000},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jacfig")
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump({**RAW, "store": str(tmp / "s.zarr")}))
    assert main(["run", str(path), "--no-progress", "--no-summary"]) == 0
    return tmp / "s.zarr"


def check_layout(fig):
    """Every figure at its written size: no clipped text, a colour bar per colour-mapped
    image, the missing-data grey on each (as tests/test_workflows.py checks the others)."""
    from pipeline.figures.layout import (
        clipped_texts,
        mappables_without_colourbar,
        mappables_without_missing_colour,
    )

    assert clipped_texts(fig) == []
    assert mappables_without_colourbar(fig) == []
    assert mappables_without_missing_colour(fig) == []


def test_bin_shares_are_the_circular_law_at_alpha_2():
    """α = 2, σ_w = 0.8 < 1 (tanh): the fixed point is h = 0, χ = σ_w for every unit, and the
    density is the circular law 1 / (π σ_w²) on the disc of radius σ_w: a bin [a, b] of
    log10 r holds (min(b, σ_w)² − min(a, σ_w)²) / σ_w²."""
    edges = np.linspace(-2.0, 0.5, 26)
    assert np.ptp(cavity_samples(2.0, 0.8, n_samples=1000).chi) == 0.0
    got = cavity_log_bin_shares(2.0, 0.8, edges, n_samples=1000, sub=64)
    lo, hi = (np.minimum(10.0**e, 0.8) for e in (edges[:-1], edges[1:]))
    want = (hi**2 - lo**2) / 0.64
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert got.sum() == pytest.approx(1.0 - 1e-4 / 0.64, abs=3e-3)


def test_largest_power():
    d = np.array([[1.0, -1, 2, -1, -1, -1], [-1.0] * 6, [1.0, np.nan, 1, 1, 1, 1]])
    np.testing.assert_array_equal(largest_power(d)[:2], [3.0, 0.0])
    assert np.isnan(largest_power(d)[2])


@pytest.mark.slow
def test_density_figure_matches_the_empirical_moduli(store):
    plt = pytest.importorskip("matplotlib.pyplot")
    from pipeline.figures import store_figure, store_notes
    from pipeline.figures.jacobian_density import density_curves

    ds = open_sweep(store)
    c = density_curves(ds, 4000)
    e, t = c["empirical"][..., 1:-1], c["theory"][..., 1:-1]
    l1 = np.abs(e[:, :, None] - t[:, None, :]).sum(-1)  # (alpha, emp sigma_w, theory sigma_w)
    # each empirical histogram is closest to the theory at its own σ_w
    for i in range(l1.shape[0]):
        assert np.all(np.argmin(l1[i], axis=1) == np.arange(len(SW))), l1[i]
    diag = np.array([np.diag(m) for m in l1])
    assert diag.max() < 0.3, diag
    fig, stem = store_figure(store)
    assert stem == "jacobian_density"
    assert [ax.get_title() for ax in fig.axes] == ["α = 1.2", "α = 2"]
    check_layout(fig)
    plt.close(fig)
    notes = store_notes(store)
    assert len([n for n in notes if "L1" in n]) == 1 + 2 * len(SW)


@pytest.fixture(scope="module")
def small_map():
    return l_map([1.0, 1.5, 2.0], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0], n_samples=5000)


@pytest.mark.slow
def test_l_map_against_its_definition(small_map):
    m = small_map
    # ΔJ is J minus J on the cavity line; the α = 2 line is σ_w = 1 (tanh), a grid point
    assert m["line"][2] == 1.0
    np.testing.assert_allclose(m["delta"][2, 1], 0.0, atol=1e-12)
    # Gaussian networks: J_f1 is largest on the edge of chaos for every L (no extended regime)
    np.testing.assert_array_equal(m["largest"][2], 0.0)
    # heavy tails: at α = 1, σ_w = 1.5 even J_log exceeds its value on the line (paper 0.731,
    # 0.754 with 10⁵ cavity samples; 5 000 samples move it by < 0.1)
    assert m["delta"][0, 2, 0] == pytest.approx(0.754, abs=0.1)
    assert m["largest"][0, 2] >= 1
    np.testing.assert_array_equal(m["largest"], largest_power(m["delta"]))
    # the lines are inside the grid and increase with α
    assert np.all(np.diff(m["line"]) > 0) and 0.4 < m["line"][0] < 0.6


@pytest.mark.slow
def test_l_map_and_d2_map_figures_pass_the_checks(store, small_map):
    plt = pytest.importorskip("matplotlib.pyplot")
    from pipeline.figures import draw, figure_notes
    from pipeline.figures.l_map import empirical_largest
    from pipeline.figures.render import finish

    ds = open_sweep(store).load()
    opts = {"kind": "l_map", "alpha_step": 0.5, "sigma_w_step": 0.5, "samples": 5000}
    fig = finish(draw(ds, opts))
    check_layout(fig)
    ax = fig.axes[0]
    mesh = ax.collections[0]
    np.testing.assert_array_equal(
        np.asarray(mesh.get_array()).reshape(6, 3).T, small_map["largest"]
    )
    assert {ln.get_label() for ln in ax.lines} == {
        "ordered line r_cut = 1 (cavity)",
        "ordered line q* = 0.01 (mean field)",
    }
    plt.close(fig)
    notes = figure_notes(ds, opts)
    assert notes[1].startswith("l_map: alpha = 1: line r_cut=1 ")
    # empirical: at α = 2 the store's σ_w = 1 is on the line, and no point beats it
    emp = empirical_largest(ds, {1.0: small_map["line"][0], 2.0: 1.0})
    np.testing.assert_array_equal(emp.sel(alpha=2.0).values, 0.0)
    assert np.isnan(emp.sel(alpha=1.2).values).all()  # no theory line at α = 1.2 given
    # d2_map on the same store (two widths: the fit), with a hole: grey and a legend entry
    ds["mean_log_ipr"][{"alpha": 0, "sigma_w": 0}] = np.nan
    fig = finish(draw(ds, {"kind": "d2_map", "q": 2.0}))
    check_layout(fig)
    assert np.ma.getmaskarray(fig.axes[0].collections[0].get_array()).sum() == 1
    assert [t.get_text() for leg in fig.legends for t in leg.get_texts()] == [
        "no data (chunk not computed, or not a number)"
    ]
    plt.close(fig)


def test_figure_options_are_checked():
    from pipeline.errors import SpecError
    from pipeline.spec.figures import check_figure_entry

    with pytest.raises(SpecError, match="figure.alpha_step"):
        check_figure_entry({"kind": "l_map", "alpha_step": 0})
    with pytest.raises(SpecError, match="figure.samples"):
        check_figure_entry({"kind": "jacobian_density", "samples": 10})
