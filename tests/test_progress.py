"""Rates and ETAs: readable durations, the status line from recorded finish times, the
heartbeat of a run without a progress bar."""

from __future__ import annotations

import math
import re
import time

import numpy as np
import pytest
import yaml

from pipeline import parse_spec, run_sweep
from pipeline.cli import main
from pipeline.run.progress import (
    Heartbeat,
    done_times,
    format_duration,
    heartbeat_every,
    rate_eta,
)
from pipeline.store.grid import chunk_counts
from pipeline.store.lease import store_lease
from pipeline.store.markers import load_index, unmark
from pipeline.store.sweep import read_token

TINY = {
    "name": "progress-test",
    "experiment": "propagation",
    "axes": {
        "width": [8],
        "alpha": [2.0],
        "seed": {"start": 0, "count": 1},
        "activation": ["tanh"],
        "sigma_w2": {"linspace": [0.5, 4.0], "count": 4},
        "sigma_b": [0.0, 0.3],
    },
    "depth": 3,
    "probes": {"pair": {"q0": 1.0, "c0": 0.3}},
    "chunks": {"sigma_w2": 1, "sigma_b": 1},
}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (6.96e-9 * 3600, "25.1 µs"),
        (0.95, "950 ms"),
        (12.34, "12.3 s"),
        (259, "4 min 19 s"),
        (3 * 3600 + 5 * 60, "3 h 05 min"),
        (2 * 86400 + 3 * 3600 + 59, "2 d 3 h"),
        (math.nan, "unknown"),
        (math.inf, "unknown"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_rate_eta_counts_intervals_over_the_recent_window():
    # 11 finishes 10 s apart: 1 per 10 s; an old burst an hour before is outside the window
    times = np.concatenate([np.arange(100.0), 5000.0 + 10.0 * np.arange(11)])
    est = rate_eta(times, remaining=30, window=600)
    assert est.rate == pytest.approx(0.1) and est.window == pytest.approx(100.0)
    assert est.eta == pytest.approx(300.0) and est.last == 5100.0
    assert "ETA 5 min 0 s for 30 more" in est.line()
    assert math.isnan(rate_eta(np.array([1.0]), 3).eta)
    assert "unknown" in rate_eta(np.array([]), 3).line()
    assert rate_eta(times, remaining=0).eta == 0.0


def test_heartbeat_says_a_line_at_most_every_n_seconds(monkeypatch):
    now = [0.0]
    lines: list[str] = []
    beat = Heartbeat(lines.append, total=100, done=20, every=60, clock=lambda: now[0])
    for _ in range(10):  # 10 chunks over 50 s: no line yet
        now[0] += 5
        beat.update(1)
    assert lines == []
    now[0] += 10  # 60 s since the start
    beat.tick()
    assert lines == ["progress: 30/100 chunks (30.0 %), 0.167 chunks/s, ETA 7 min 0 s"]
    beat.tick()
    assert len(lines) == 1
    monkeypatch.setenv("SWEEP_HEARTBEAT_S", "0.25")
    assert heartbeat_every() == 0.25
    monkeypatch.setenv("SWEEP_HEARTBEAT_S", "soon")
    assert heartbeat_every() == 120.0


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, client):
    """A complete 8-chunk store, run without a progress bar with a 0-second heartbeat."""
    path = tmp_path_factory.mktemp("progress") / "tiny.zarr"
    lines: list[str] = []
    mp = pytest.MonkeyPatch()
    mp.setenv("SWEEP_HEARTBEAT_S", "0")
    try:
        report = run_sweep(
            parse_spec(TINY), path, client=client, progress=False, log=lines.append,
            chunks_per_task=1,
        )  # fmt: skip
    finally:
        mp.undo()
    assert report.complete
    return path, lines


def test_run_without_bar_logs_heartbeat_lines(tiny_store):
    _, lines = tiny_store
    beats = [m for m in lines if m.startswith("progress: ")]
    assert beats, lines
    done = [int(re.match(r"progress: (\d+)/8 chunks", m).group(1)) for m in beats]
    assert done == sorted(done) and done[-1] <= 8 and max(done) >= 7


def test_index_keeps_finish_times_and_status_prints_an_eta(tiny_store, capsys):
    path, _ = tiny_store
    counts, token = chunk_counts(parse_spec(TINY)), read_token(path)
    t = done_times(path, counts, token)
    assert t.shape == (8,) and np.isfinite(t).all()
    # known times: 6 finishes 20 s apart, 2 chunks un-marked -> 0.05 chunks/s, 40 s left
    index, _ = load_index(path, counts, token)
    index.times[:] = 1000.0 + 20.0 * np.arange(8)
    index.save(path)
    unmark(path, counts, token, [6, 7])
    np.testing.assert_array_equal(np.sort(done_times(path, counts, token)), index.times[:6])
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "6/8 chunks done" in out and "rate 3 chunks/min" in out
    assert "no run holds the store now: the rest would take 40 s for 2 more" in out
    with store_lease(str(path), "sweep run", lambda m: None):  # a run holds it: an ETA
        assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rate 3 chunks/min" in out and "ETA 40 s for 2 more" in out and "running:" in out


def test_plan_prints_a_time_estimate_from_a_measured_rate(tmp_path, capsys):
    from pipeline.run.calibrate import Calibration, calibrate

    spec = parse_spec({**TINY, "chunks": {"sigma_w2": 4, "sigma_b": 2}})
    cal = calibrate(spec, "numpy", budget_s=0.5)
    assert cal.flops_per_s > 0 and cal.per_call_s >= 0 and "grid point" in cal.how
    assert Calibration(2e9, "numpy", "x", per_call_s=0.5).seconds(4e9, calls=3) == 3.5
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(TINY))
    assert main(["plan", str(tmp_path / "s.yaml")]) == 0
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if ln.startswith("time (estimate)")]
    assert len(line) == 1 and "GFLOP/s" in line[0]
    assert re.match(r"time \(estimate\)\s+[\d.]+ (µs|ms|s|min)", line[0])
    gpu = [ln for ln in out.splitlines() if ln.startswith("GPU time")][0]
    assert re.match(r"GPU time\s+[\d.]+ (µs|ns|ms) on one H100", gpu) and "e-" not in gpu


def test_plan_calibration_leaves_out_the_compiled_backends_first_call(monkeypatch):
    """The numba backend compiles (or loads its cache) in a worker's first call: calibrating
    must not time it, or a depth-1000 spec reads days instead of minutes."""
    from pipeline.experiments import get_experiment
    from pipeline.run import calibrate as cal_mod

    spec = parse_spec({**TINY, "chunks": {"sigma_w2": 4, "sigma_b": 2}})
    exp = get_experiment(spec.experiment)
    real = exp.compute_chunk
    calls = []

    def slow_first(spec_, coords, backend="numpy", threads=1):
        calls.append(backend)
        if len(calls) == 1:
            time.sleep(1.5)  # the one-off compilation
        return real(spec_, coords, backend="numpy", threads=threads)

    monkeypatch.setattr(type(exp), "compute_chunk", lambda self, *a, **k: slow_first(*a, **k))
    with_warmup = cal_mod.calibrate(spec, "numba", budget_s=1.0)
    assert len(calls) >= 3  # the untimed first call, then parts of the chunk
    calls.clear()
    numpy_rate = cal_mod.calibrate(spec, "numpy", budget_s=1.0).flops_per_s
    # the 1.5 s sleep is not in the rate: it is within a factor of the NumPy rate's
    assert with_warmup.flops_per_s > numpy_rate / 20
