"""When the boundary report cannot be trusted, it says so: the noise check (a boundary that
fills the plane, with the frontier separated from the noise), drift from the trend of the
local slopes across the fit range, and box counting disagreeing beyond the combined
uncertainty. The battery of these fields at 2048²–4096² is
``benchmarks/fractal_battery_trust.py`` (BENCHMARKS.md, "Boundary report")."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import xarray as xr

from pipeline.analysis.fractal.battery import BATTERY, TRUST_BATTERY
from pipeline.analysis.fractal.battery.noisy import noise
from pipeline.analysis.fractal.battery.surfaces import fbm_surface
from pipeline.analysis.fractal.boundary import (
    TREND_MIN,
    BoundaryDimension,
    boundary_dimension,
    range_trend,
)
from pipeline.analysis.fractal.estimate import DimensionEstimate
from pipeline.analysis.fractal.estimators import cutoff_bound, default_dimension
from pipeline.analysis.fractal.noise import (
    NOISE_DIMENSION,
    noise_check,
    octave_dimensions,
    small_cluster_share,
)
from pipeline.analysis.report import _boundary_dimensions

NOISY = [f.name for f in TRUST_BATTERY.values() if f.noisy]
CLEAN = [f.name for f in (BATTERY | TRUST_BATTERY).values() if not f.noisy]


# ------------------------------------------------------------------------- generators


def test_noise_has_its_density_and_correlation_length():
    rng = np.random.default_rng(0)
    iid = noise((512, 512), 0.0, 0.3, rng)
    assert abs(iid.mean() - 0.3) < 0.005
    # i.i.d.: neighbours independent; correlated over 4 px: neighbours mostly agree
    agree_iid = np.mean(iid[:, 1:] == iid[:, :-1])
    assert abs(agree_iid - (0.3**2 + 0.7**2)) < 0.01
    cor = noise((512, 512), 4.0, 0.5, rng)
    assert np.mean(cor[:, 1:] == cor[:, :-1]) > 0.85


def test_fbm_surface_increments_scale_with_hurst():
    """The structure function of the synthesised surface grows as r^(2H) (H = 0.7: log-log
    slope between 8 and 32 px within 0.15 of 1.4)."""
    s = fbm_surface(1024, 0.7, np.random.default_rng(1)).astype(np.float64)
    d = [np.mean((s[:, r:] - s[:, :-r]) ** 2) for r in (8, 32)]
    assert abs(math.log(d[1] / d[0]) / math.log(4) - 1.4) < 0.15


# ------------------------------------------------------------------------ noise check


def test_octave_dimensions_of_exact_power_laws():
    s = np.array([1, 2, 3, 4, 6, 8, 11, 16, 23, 32], np.float64)
    lo, d = octave_dimensions(s, 1e6 * s**-1.7, side=1024)
    assert lo.tolist() == [1, 2, 3, 4, 6, 8, 11, 16] and np.allclose(d, 1.7)


def test_small_cluster_share_counts_specks():
    pos = np.zeros((64, 64), bool)
    pos[:, 32:] = True  # a straight frontier: no specks
    assert small_cluster_share(pos) == 0.0
    pos[10, 10] = pos[20, 5] = True  # two isolated pixels on the clean side
    share = small_cluster_share(pos)
    # their 2 x 5 boundary pixels (each speck and its 4 neighbours) of 64 x 2 + 10
    assert share == pytest.approx(10 / (128 + 10))


@pytest.mark.parametrize("name", NOISY)
def test_noise_flag_fires_beside_noise_and_separates_the_frontier(name):
    """A smooth frontier (D = 1) with one side pixel noise: the boundary fills the plane over
    an octave, and the frontier of the noise region reads 1 within 0.1 at 512² (1024² for
    noise correlated over 3–4 px: at 512² its plateau, from ~4 correlation lengths to 1/16
    of the frame, is under an octave and its local dimension tops out at 1.90–1.92)."""
    n = 1024 if TRUST_BATTERY[name].name in ("noisy_corr3", "noisy_corr4") else 512
    for seed in (0, 1):
        c = noise_check(TRUST_BATTERY[name].render(n, seed))
        assert c.noisy and c.dims.max() >= NOISE_DIMENSION, (seed, c.dims)
        assert c.frontier is not None and abs(c.frontier.estimate - 1.0) < 0.1, c.text()
        assert 0.25 < c.region_share < 0.75  # the noisy side, 1/2 ± the curve's swing


@pytest.mark.parametrize("name", CLEAN)
def test_noise_flag_silent_on_clean_battery_fields(name):
    c = noise_check((BATTERY | TRUST_BATTERY)[name].render(512, 0), frontier=False)
    assert not c.noisy, (name, c.dims)
    assert c.dims.max() < NOISE_DIMENSION - 0.02  # with room to spare


def test_report_says_noise_dominated_and_sweep_analyze_stores_the_flag():
    """The report's text and figure title carry the flag; the analysis stores
    boundary_dimension_noise (int8, CF flags) and the separated frontier, per image."""
    noisy = TRUST_BATTERY["noisy_iid"].render(256, 3).astype(np.float32) - 0.5
    clean = BATTERY["koch_snowflake"].render(256, 3).astype(np.float32) - 0.5
    r = boundary_dimension(noisy)
    assert r.noise_dominated and "noise-dominated" in r.text() and "noise-dominated" in r.short()
    assert "frontier with the noise separated: D = " in r.text()
    assert not boundary_dimension(clean).noise_dominated
    da = xr.DataArray(np.stack([noisy, clean]), dims=("layer", "y", "x"), coords={"layer": [0, 1]})
    ds = _boundary_dimensions(da, "y", "x", "test")
    v = ds["boundary_dimension_noise"]
    assert v.dtype == np.int8 and v.values.tolist() == [1, 0]
    assert v.attrs["flag_meanings"] == "clean noise_dominated"
    fr = ds["boundary_dimension_frontier"].values
    assert abs(fr[0] - 1.0) < 0.15 and np.isnan(fr[1])


# ------------------------------------------------------------- drift and disagreement


def _est(d: float, hw: float, method: str = "box-counting", **kw: object) -> DimensionEstimate:
    return DimensionEstimate(
        estimate=d,
        interval=(d - hw, d + hw),
        scales=np.array([1.0]),
        counts=np.array([1.0]),
        fit_range=(0, 0),
        method=method,
        **kw,  # type: ignore[arg-type]
    )


def test_box_counting_disagrees_beyond_the_combined_uncertainty():
    """Default 1.50 ± 0.03 and box counting 1.56 ± 0.04: the intervals overlap, but the
    difference 0.06 exceeds hypot(0.03, 0.04) = 0.05; at 1.54 it does not. The other
    estimators keep the overlap rule."""
    e = _est(1.50, 0.03, "directional-uncertainty")
    far = BoundaryDimension((1024, 1024), e, others={"box-counting": _est(1.56, 0.04)})
    near = BoundaryDimension((1024, 1024), e, others={"box-counting": _est(1.54, 0.04)})
    ue = BoundaryDimension(
        (1024, 1024), e, others={"uncertainty-exponent": _est(1.56, 0.04, "uncertainty-exponent")}
    )
    assert far.disagreeing == ["box-counting"]
    assert near.disagreeing == [] and ue.disagreeing == []


def _counts(local: callable, sizes: np.ndarray) -> np.ndarray:
    """Box counts whose local dimension at log-size x is ``local(x)``."""
    x = np.log(sizes)
    logn = -np.concatenate([[0.0], np.cumsum(np.diff(x) * local(0.5 * (x[1:] + x[:-1])))])
    return np.exp(logn + 20)


def test_drift_from_the_trend_of_the_local_slopes():
    """Box counts whose local dimension rises by 0.15 across the fit range (4–64 px) are
    drifting although the coarse-grid estimates agree; a pure power law is not; the trend is
    the upper half's fit minus the lower half's."""
    s = np.unique(np.round(2.0 ** np.arange(0, 8.01, 0.25)))
    i, j = int(np.flatnonzero(s == 4)[0]), int(np.flatnonzero(s == 64)[0])
    span = math.log(16)

    def make(counts: np.ndarray) -> BoundaryDimension:
        e = DimensionEstimate(1.6, (1.58, 1.62), s, counts, (i, j), "box-counting")
        return BoundaryDimension((1024, 1024), e, resolutions=((256, e), (512, e), (1024, e)))

    rising = make(_counts(lambda x: 1.5 + 0.15 * (x - math.log(4)) / span, s))
    assert rising.trend == pytest.approx(0.075, abs=0.01)  # half the rise, halves' centres
    assert rising.trending and rising.drifting
    assert "local slopes move by +0.07" in rising.text()
    flat = make(_counts(lambda x: 1.6 + 0 * x, s))
    assert abs(flat.trend) < 1e-9 and not flat.trending and not flat.drifting
    small = make(_counts(lambda x: 1.5 + 0.06 * (x - math.log(4)) / span, s))
    assert abs(small.trend) < TREND_MIN and not small.drifting


def test_range_trend_reads_uncertainty_exponents_as_two_minus_slope():
    """For a flip fraction f ∝ ε^(2 − D) the trend has the sign of D's change too."""
    s = np.unique(np.round(2.0 ** np.arange(0, 8.01, 0.25)))
    i, j = int(np.flatnonzero(s == 4)[0]), int(np.flatnonzero(s == 64)[0])
    # f = ε^γ with γ falling from 0.5 to 0.3: D rising from 1.5 to 1.7
    span = math.log(16)
    f = 1.0 / _counts(lambda x: 0.5 - 0.2 * (x - math.log(4)) / span, s)
    e = DimensionEstimate(1.6, (1.5, 1.7), s, f, (i, j), "directional-uncertainty")
    assert range_trend(e) == pytest.approx(0.1, abs=0.01)


# ----------------------------------------------------------------- pixel-scale cutoff


def _shifts_and_range(top: int) -> tuple[np.ndarray, int, int]:
    e = np.unique(np.round(2.0 ** np.arange(0, 8.01, 0.25)))
    return e, int(np.flatnonzero(e == 4)[0]), int(np.flatnonzero(e == top)[0])


@pytest.mark.parametrize("gamma", [0.15, 0.3, 0.5, 0.74])
@pytest.mark.parametrize("missing", [0.1, 0.4, 0.7])
def test_cutoff_bound_holds_the_bias_of_a_constant_deficit(gamma: float, missing: float):
    """Flip fractions f = ε^γ − K (a constant share of flips lost below the pixel): the
    plain fit over 4–128 px reads D = 2 − γ low, and fit + bound reaches the truth; a
    pure power law has no deficit and no bound."""
    e, i, j = _shifts_and_range(128)
    x = np.log(e[i : j + 1])

    def fitted(f: np.ndarray) -> float:
        return 2.0 - float(np.polyfit(x, np.log(f[i : j + 1]), 1)[0])

    f = e**gamma - missing
    d = fitted(f)
    b, deficit = cutoff_bound(e, f, d, (i, j))
    assert d < 2.0 - gamma - 0.005 and deficit > 0
    assert 2.0 - gamma <= d + b <= 2.0 - gamma + 3 * (2.0 - gamma - d)
    clean = e**gamma
    assert cutoff_bound(e, clean, fitted(clean), (i, j))[0] == pytest.approx(0.0, abs=1e-9)


def test_cutoff_bound_widens_only_the_upper_end_and_not_the_flag_rules():
    """A rough level set (H = 0.3, D = 1.7, spectrum cut at the pixel) reads low at 1024²
    with local slopes 1–4 px far below the fit; the interval's upper end carries the
    bound and covers 1.7 (without the bound it misses for some of these seeds), the lower
    end does not move; a Koch snowflake rendered on pixels gets no bound."""
    misses_without = 0
    for seed in range(4):
        e = default_dimension(TRUST_BATTERY["level_set_h0.3"].render(1024, seed))
        b = e.extra["cutoff_bound"]
        assert e.estimate < 1.68 and e.extra["cutoff_deficit"] > 0.08 and b > 0.04
        assert e.interval[0] <= 1.7 <= e.interval[1]
        assert e.interval[1] - e.estimate == pytest.approx(e.estimate - e.interval[0] + b)
        misses_without += e.interval[1] - b < 1.7
    assert misses_without >= 1
    k = default_dimension(BATTERY["koch_snowflake"].render(1024, 0))
    assert k.extra["cutoff_bound"] < 0.01


def test_flag_rules_use_the_symmetric_half_width():
    """The cutoff bound says how far the fit may sit low, not how much it scatters:
    disagreement, trend and one-way drift compare with the half-width without it."""
    e = _est(1.50, 0.03, "directional-uncertainty")
    wide = dataclasses.replace(
        e, interval=(1.47, 1.53 + 0.2), extra={"cutoff_bound": 0.2}
    )  # half_width 0.13, symmetric part 0.03
    assert wide.half_width == pytest.approx(0.13)
    far = BoundaryDimension((1024, 1024), wide, others={"box-counting": _est(1.56, 0.04)})
    assert far.disagreeing == ["box-counting"]
    steps = tuple((s, _est(v, 0.5)) for s, v in ((256, 1.44), (512, 1.47)))
    drift = BoundaryDimension((1024, 1024), wide, resolutions=(*steps, (1024, wide)))
    assert drift.drifting  # 1.44 -> 1.47 -> 1.50: one way by 0.06 > 0.03


# ---------------------------------------------------------------------- cutoff-limited


def _with_bounds(scatter: float, cut: float, deficit: float = 0.1) -> BoundaryDimension:
    """A report whose default interval is ``scatter`` below and ``scatter + cut`` above."""
    d = 1.6
    e = dataclasses.replace(
        _est(d, scatter, "directional-uncertainty"),
        interval=(d - scatter, d + scatter + cut),
        extra={"cutoff_bound": cut, "cutoff_deficit": deficit},
    )
    return BoundaryDimension((2048, 2048), e)


@pytest.mark.parametrize(
    ("scatter", "cut", "flag"),
    [
        (0.027, 0.10, True),  # a rough level set: the bound is four times the scatter
        (0.05, 0.06, True),
        (0.06, 0.05, False),  # the scatter covers what the cutoff could hold down
        (0.01, 0.025, False),  # beyond the scatter, but within CUTOFF_MIN
        (0.03, 0.0, False),
    ],
)
def test_cutoff_limited_when_the_bound_exceeds_the_scatter_and_the_accuracy(
    scatter: float, cut: float, flag: bool
):
    """The flag compares the one-sided cutoff bound with the symmetric half-width and
    CUTOFF_MIN; the warning gives the bound and the deficit, and the interval is kept."""
    from pipeline.analysis.fractal.boundary import CUTOFF_MIN

    r = _with_bounds(scatter, cut)
    assert r.cutoff == pytest.approx(cut)
    assert r.cutoff_limited is flag
    assert flag == (cut > max(CUTOFF_MIN, scatter))
    assert ("cutoff-limited" in r.text()) is flag and ("cutoff-limited" in r.short()) is flag
    if flag:
        assert f"up to {cut:.3f} low" in r.text() and "0.100 below the fit" in r.text()
    assert r.estimate.interval == pytest.approx((1.6 - scatter, 1.6 + scatter + cut))


def test_cutoff_limited_fires_on_the_rough_level_set_and_not_on_a_sharp_island():
    """The zero set of a rough surface (H = 0.3, D = 1.7) reads ~0.04 low at 2048² with no
    other flag: its cutoff bound (~0.1) exceeds its scatter, and the report says it may
    read low; the Koch snowflake (within 0.01, no deficit below 4 px) does not."""
    rough = boundary_dimension(
        TRUST_BATTERY["level_set_h0.3"].render(2048, 0), resolutions=False, noise=False
    )
    assert rough.estimate.estimate < 1.68 and rough.cutoff_limited, rough.text()
    assert rough.estimate.interval[1] >= 1.7
    snow = boundary_dimension(
        BATTERY["koch_snowflake"].render(2048, 0), resolutions=False, noise=False
    )
    assert abs(snow.estimate.estimate - 1.2619) < 0.01 and not snow.cutoff_limited, snow.text()


def test_a_frontier_fit_outside_one_to_two_is_no_frontier(monkeypatch):
    """The separated frontier of a noise region that fills most of the frame in a few
    blocky patches can fit to a negative 'dimension' (Sohl-Dickstein's offset panel at 512²:
    -1.72 [-3.66, 0.22]); a region's boundary has 1 <= D <= 2, so such a fit is reported as
    n/a with its reason, never as a number."""
    from pipeline.analysis.fractal import estimators

    f = TRUST_BATTERY["noisy_iid"].render(1024, 0)
    assert noise_check(f).frontier is not None  # the frontier is found on this field
    bad = _est(-1.72, 1.94, "directional-uncertainty")
    monkeypatch.setattr(estimators, "default_dimension", lambda *a, **k: bad)
    nc = noise_check(f)
    assert nc.noisy and nc.frontier is None
    assert "shows no scaling: its fit reads -1.72 [-3.66, 0.22], outside 1-2" in nc.text()
