"""Zoom-out sequences (`sweep zoom --direction out`): the notebook's window rule, frames that
resume after SIGKILL, refinement carried to every frame, the report's pooled estimate."""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
import zarr

from pipeline.analysis.fractal import sohl_dickstein_notebook_dimension
from pipeline.errors import PipelineError, SpecMismatchError
from pipeline.run.zoom import run_zoom, signed_field, zoom_summary
from pipeline.run.zoom_out import ZoomOut, run_zoom_out, zoom_out_windows
from pipeline.spec import parse_spec
from pipeline.store.sweep import DONE_DIR, done_keys
from pipeline.store.zoom import ZOOM_ATTR, frame_group, open_zoom


def test_windows_double_about_the_centre_until_the_smaller_width_reaches_6():
    # the paper's tanh full-batch window, in log10 learning rates
    wa = (math.log10(1.329976231e1), math.log10(1.329978604e1))
    wb = (math.log10(2.003582269e2), math.log10(2.003585844e2))
    win = zoom_out_windows(wa, wb)
    w = np.array([wa[1] - wa[0], wb[1] - wb[0]])
    n = 1 + math.ceil(math.log2(6 / w.min()))  # first doubling with min width >= 6
    assert len(win) == n == 24
    assert win[-1] == (wa, wb)  # the final window itself, last
    for k, (a, b) in enumerate(win):
        s = 2.0 ** (n - 1 - k)
        assert (a[0] + a[1]) / 2 == pytest.approx(sum(wa) / 2, abs=1e-12)
        assert (b[0] + b[1]) / 2 == pytest.approx(sum(wb) / 2, abs=1e-12)
        np.testing.assert_allclose([a[1] - a[0], b[1] - b[0]], s * w, rtol=1e-9)
    assert min(win[0][0][1] - win[0][0][0], win[0][1][1] - win[0][1][0]) >= 6
    assert min(win[1][0][1] - win[1][0][0], win[1][1][1] - win[1][1][0]) < 6
    # exactly 6 stops (the rule is "< 6 grows"); the larger width does not matter
    assert len(zoom_out_windows((0.0, 0.75), (0.0, 100.0))) == 4  # 0.75, 1.5, 3, 6
    assert len(zoom_out_windows((0.0, 7.0), (1.0, 9.0))) == 1
    # the options: growth 3 from 0.1 reaches 8.1 >= 6 in 4 steps; max_width 1
    g3 = zoom_out_windows((1.0, 1.1), (2.0, 2.2), growth=3.0)
    assert len(g3) == 5 and g3[0][0] == pytest.approx((1.05 - 4.05, 1.05 + 4.05))
    assert len(zoom_out_windows((1.0, 1.1), (2.0, 2.2), max_width=1.0)) == 5  # 0.1·16
    for kw, msg in (({"growth": 1.0}, "^growth: value 1.0"),
                    ({"max_width": 0.0}, "^max_width: value 0.0")):  # fmt: skip
        with pytest.raises(PipelineError, match=msg):
            zoom_out_windows((0.0, 1.0), (0.0, 1.0), **kw)
    with pytest.raises(PipelineError, match="more than 60 frames"):
        zoom_out_windows((0.0, 1e-20), (0.0, 1.0))


SPEC = {
    "experiment": "trainability",
    "axes": {
        "width": [4],
        "lr_in": {"linspace": [0.5, 1.5], "count": 16},
        "lr_out": {"linspace": [1.0, 2.5], "count": 16},
    },
    "steps": 20,
    "chunks": {"lr_in": 8, "lr_out": 8},
}
N_FRAMES = 4  # lr_in 1 wide: 1 · 2^3 = 8 >= 6 (4 < 6)


def _sweep(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True
    )


@pytest.mark.slow
def test_zoom_out_frames_resume_after_sigkill_and_report_the_pooled_estimate(tmp_path, client):
    store = tmp_path / "out.zarr"
    spec_file = tmp_path / "out.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "store": str(store)}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "zoom", str(spec_file), "--direction", "out",
         "--workers", "1", "--backend", "numpy", "--no-progress"],
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while len(done_keys(store / frame_group(1))) < 1:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "frame 1 never started"
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {k: done_keys(store / frame_group(k)) for k in range(N_FRAMES)}
    assert len(before[0]) == 4 and sum(map(len, before.values())) < 4 * N_FRAMES, before
    mtimes = {
        (k, key): (store / frame_group(k) / DONE_DIR / str(key)).stat().st_mtime_ns
        for k, keys in before.items()
        for key in keys
        if (store / frame_group(k) / DONE_DIR / str(key)).exists()
    }

    spec = parse_spec({**SPEC, "store": str(store)})
    frames = run_zoom_out(spec, client=client, progress=False, backend="numpy")
    assert [len(f.report.computed) for f in frames] == [4 - len(before[k]) for k in range(N_FRAMES)]
    for (k, key), t in mtimes.items():
        assert (store / frame_group(k) / DONE_DIR / str(key)).stat().st_mtime_ns == t

    # the windows of the rule, the last one the spec's own coordinates bit for bit
    want = zoom_out_windows((0.5, 1.5), (1.0, 2.5))
    assert len(want) == N_FRAMES
    assert [(f.window["lr_in"], f.window["lr_out"]) for f in frames] == pytest.approx(want)
    got = open_zoom(store)
    np.testing.assert_array_equal(got[-1].lr_in.values, spec.axis("lr_in").values)
    np.testing.assert_array_equal(got[-1].lr_out.values, spec.axis("lr_out").values)
    for ds, (wa, _) in zip(got, want, strict=True):
        np.testing.assert_allclose(ds.lr_in.values, np.linspace(*wa, 16), rtol=0, atol=1e-12)

    # an uninterrupted zoom-out computes the same fields
    ref = run_zoom_out(
        spec.with_store(tmp_path / "ref.zarr"), client=client, progress=False, backend="numpy"
    )
    assert [f.window for f in ref] == [f.window for f in frames]
    for g, r in zip(got, open_zoom(tmp_path / "ref.zarr"), strict=True):
        np.testing.assert_array_equal(g.score.values, r.score.values)

    # the report: every frame's calibrated line and the notebook's estimator pooled
    text = zoom_summary(store)
    assert f"{N_FRAMES} frame(s) zooming out, widest first" in text
    assert text.count("\nframe ") == N_FRAMES
    fields = [signed_field(spec, ds).values for ds in got]  # (lr_in, lr_out)
    pooled = sohl_dickstein_notebook_dimension(fields)
    assert (
        f"Sohl-Dickstein notebook estimator (median of all frames' local slopes): "
        f"D {pooled.estimate:.3f} [{pooled.interval[0]:.3f}, {pooled.interval[1]:.3f}] "
        f"from {len(pooled.extra['local_slopes'])} slopes of {N_FRAMES} frame(s)"
    ) in text

    # the zoom figure's pooled panel names it too
    if importlib.util.find_spec("matplotlib") is not None:
        from pipeline import figures

        fig, _ = figures.zoom_figure(store)
        titles = "\n".join(ax.get_title() for ax in fig.axes)
        assert f"notebook: D = {pooled.estimate:.3f}" in titles
        fig.clf()

    # another direction or other options on the same store are refused
    with pytest.raises(SpecMismatchError, match="another kind of zoom"):
        run_zoom(spec, 2, client=client, progress=False)
    with pytest.raises(SpecMismatchError, match="another growth 2.0 \\(now 3.0\\)"):
        run_zoom_out(spec, growth=3.0, client=client, progress=False)
    attrs = zarr.open_group(str(store), mode="r").attrs[ZOOM_ATTR]
    assert attrs["direction"] == "out" and attrs["final_window"]["lr_in"] == [0.5, 1.5]


def test_refinement_reaches_every_zoom_out_frame(tmp_path, client):
    raw = {**SPEC, "axes": {**SPEC["axes"], "lr_in": {"linspace": [0.0, 2.0], "count": 16},
           "lr_out": {"linspace": [0.0, 2.0], "count": 16}}, "refine": {"coarse": 4}}  # fmt: skip
    spec = parse_spec({**raw, "store": str(tmp_path / "r.zarr")})
    frames = run_zoom_out(spec, client=client, progress=False)
    assert len(frames) == 3  # 2, 4, 8 decades
    for k in range(3):
        attrs = zarr.open_group(str(tmp_path / "r.zarr" / frame_group(k)), mode="r").attrs
        assert "refine" in attrs, k
    seq = ZoomOut(spec)
    assert seq.frame(0, spec, tmp_path).refine == spec.refine


@pytest.mark.slow
def test_zoom_out_flags_are_one_line_errors_and_write_nothing(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "store": str(tmp_path / "z.zarr")}))
    cases = [
        (["--direction", "out", "--frames", "3"], "error: --frames: value 3 not allowed with "
         "--direction out"),
        (["--max-width", "4"], "error: --max-width: only with --direction out"),
        ([], "error: --frames: required for a zoom in (or use --direction out)"),
        (["--direction", "out", "--growth", "1"], "error: --growth: value 1.0 must be a finite "
         "number > 1"),
    ]  # fmt: skip
    for extra, msg in cases:
        r = _sweep("zoom", spec_file, "--backend", "numpy", *extra)
        assert r.returncode == 2 and r.stderr.startswith(msg), (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "z.zarr").exists()
