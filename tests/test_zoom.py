"""Zoom sequences: the window rule, and a 5-frame zoom that resumes after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
import zarr

from pipeline.run.zoom import next_window, run_zoom
from pipeline.spec import parse_spec
from pipeline.store.grid import key_to_str
from pipeline.store.handle import Store
from pipeline.store.sweep import chunk_info, done_keys
from pipeline.store.zoom import frame_group, open_zoom


def test_window_rule_picks_the_boundary_block_nearest_the_centre():
    a = np.linspace(0.0, 8.0, 9)
    b = np.linspace(10.0, 18.0, 9)
    field = np.ones((9, 9))
    field[:, 6:] = -1  # boundary between columns 5 and 6
    (alo, ahi), (blo, bhi) = next_window(field, a, b)
    # nearest boundary block to the centre (4, 4): rows 3/4 tie -> row 3, column 5 -> (3.5, 5.5)
    assert (alo + ahi) / 2 == pytest.approx(3.5) and (blo + bhi) / 2 == pytest.approx(15.5)
    assert ahi - alo == pytest.approx(4.0) and bhi - blo == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no boundary"):
        next_window(np.ones((4, 4)), a[:4], b[:4])


SPEC = {
    "experiment": "trainability",
    "axes": {
        "width": [8],
        "lr_in": {"linspace": [-3, 6], "count": 16},
        "lr_out": {"linspace": [-3, 6], "count": 16},
    },
    "steps": 25,
    "chunks": {"lr_in": 8, "lr_out": 8},
}


@pytest.mark.slow
def test_five_frame_zoom_resumes_after_sigkill(tmp_path, client):
    store = tmp_path / "zoom.zarr"
    spec_file = tmp_path / "zoom.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "store": str(store)}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "zoom",
            str(spec_file),
            "--frames",
            "5",
            "--workers",
            "1",
            "--backend",  # every run option of `sweep run` applies to a zoom
            "numpy",
            "--threads",
            "1",
            "--no-progress",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    frame2 = store / frame_group(2)
    deadline = time.monotonic() + 180
    try:
        while len(done_keys(frame2)) < 1:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "frame 2 never started"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {k: done_keys(store / frame_group(k)) for k in range(5)}
    assert len(before[0]) == len(before[1]) == 4
    key = key_to_str(min(before[0]))  # the key as `sweep status` prints it
    assert chunk_info(store / frame_group(0), key)["backend"] == "numpy"
    assert 1 <= len(before[2]) < 4 and not before[3], before

    def data_file(k, key):  # a chunk file of frame k (markers are folded at a run's end)
        from pipeline.store.sweep import read_spec
        from pipeline.store.variables import store_variables

        frame = store / frame_group(k)
        name = store_variables(read_spec(frame))[0].name
        arr = zarr.open_group(frame, mode="r")[name]
        return frame / name / arr.metadata.encode_chunk_key(key + (0,) * (arr.ndim - len(key)))

    mtimes = {(k, key): data_file(k, key).stat().st_mtime_ns
              for k, keys in before.items() for key in keys}  # fmt: skip

    # `sweep status` on the zoom root: every frame's progress, the unstarted ones named
    status = _sweep("status", store).stdout.splitlines()
    assert status[0] == f"{store}: zoom store, 5 frame(s) asked for"
    assert f"{store / frame_group(1)}: 4/4 chunks done (100.0 %)" in status
    assert f"{store / frame_group(2)}: {len(before[2])}/4 chunks done" in "\n".join(status)
    assert status[-1].startswith(f"{store / frame_group(4)}: not started")

    spec = parse_spec({**SPEC, "store": str(store)})
    frames = run_zoom(spec, 5, client=client, progress=False, backend="numpy")
    computed = [len(f.report.computed) for f in frames]
    assert computed == [0, 0, 4 - len(before[2]), 4, 4]
    for (k, key), t in mtimes.items():
        assert data_file(k, key).stat().st_mtime_ns == t

    ref = run_zoom(
        spec.with_store(tmp_path / "ref.zarr"), 5, client=client, progress=False, backend="numpy"
    )
    assert [f.window for f in ref] == [f.window for f in frames]
    widths = [f.window["lr_in"][1] - f.window["lr_in"][0] for f in frames]
    np.testing.assert_allclose(widths, [9 / 2**k for k in range(5)])
    got, want = open_zoom(store), open_zoom(tmp_path / "ref.zarr")
    assert len(got) == len(want) == 5
    # what the store handle makes of the root and its frames
    root = Store(str(store))
    assert root.kind == "zoom" and [f.kind for f in root.frames()] == ["frame"] * 5
    assert [f.path for f in root.sweeps()] == [str(store / frame_group(k)) for k in range(5)]
    assert Store(str(tmp_path / "ref.zarr" / frame_group(0))).done().n_done == 4
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.score.values, w.score.values)
        np.testing.assert_array_equal(g.lr_in.values, w.lr_in.values)
        field = g.score.values
        assert (field < 0).any() and (field > 0).any()  # every frame holds the boundary

    # summary of the root: one line per frame; analyze points at a frame instead
    summary = _sweep("summary", store)
    assert summary.returncode == 0 and summary.stdout.count("\nframe ") == 5, summary.stdout
    assert "pooled over the frames: D n/a (frame too small)" in summary.stdout  # 16 px
    analyze = _sweep("analyze", store)
    assert analyze.returncode == 2 and analyze.stderr == (
        f"error: store: {str(store)!r} is a zoom store (5 frame(s)); analyze one frame, "
        f"e.g. sweep analyze {store / frame_group(4)}\n"
    )


def _sweep(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True
    )


def test_zoom_spec_problems_are_reported_before_any_frame(tmp_path):
    bad = {**SPEC, "axes": {**SPEC["axes"], "seed": [0, 1]}, "store": str(tmp_path / "z.zarr")}
    with pytest.raises(ValueError, match=r"^zoom: axes seed must have a single value"):
        run_zoom(parse_spec(bad), 2, client=object(), progress=False)
    prop = {"axes": {"width": [8], "sigma_w": [1.0, 2.0], "sigma_b": [0.0, 0.1]}, "depth": 3,
            "probes": {"circle": {"K": 4}}, "store": str(tmp_path / "p.zarr")}  # fmt: skip
    with pytest.raises(ValueError, match=r"^zoom: probes.pair or probes.divergence is needed"):
        run_zoom(parse_spec(prop), 2, client=object(), progress=False)
    good = parse_spec({**SPEC, "store": str(tmp_path / "g.zarr")})
    with pytest.raises(ValueError, match=r"^scheduler: no Dask scheduler at 'nonsense'"):
        run_zoom(good, 2, scheduler="nonsense", progress=False)
    for name in ("z.zarr", "p.zarr", "g.zarr"):
        assert not (tmp_path / name).exists(), name


def test_window_reaching_below_zero_is_shifted_inside_the_axis():
    from pipeline.run.zoom import _frame_spec

    base = parse_spec(
        {"axes": {"width": [16], "sigma_w": [1.0, 2.0], "sigma_b": [0.0, 0.3]}, "depth": 3}
    ).to_dict()
    spec = _frame_spec(base, "sigma_w", "sigma_b", (1.2, 1.7), (-0.05, 0.1), 4, 4, "x.zarr")
    assert spec.axis("sigma_b").values[0] == 0.0
    assert spec.axis("sigma_b").values[-1] == pytest.approx(0.15)
    assert spec.axis("sigma_w").values[0] == pytest.approx(1.2)


def test_zoom_of_another_spec_is_refused_naming_the_fields(tmp_path):
    import zarr

    from pipeline.store.zoom import ZOOM_ATTR

    spec = parse_spec({**SPEC, "store": str(tmp_path / "z.zarr")})
    group = zarr.open_group(str(tmp_path / "z.zarr"), mode="a")
    group.attrs[ZOOM_ATTR] = {"base_spec": parse_spec({**SPEC, "steps": 60}).to_dict(), "frames": 2}
    with pytest.raises(ValueError, match="fields that differ: steps"):
        run_zoom(spec, 2, client=object(), progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("refine", [False, True], ids=["plain", "refined"])
def test_zoom_killed_at_random_moments_resumes_to_the_same_frames(tmp_path, client, refine):
    """A zoom (plain, and refined) SIGKILLed at seeded random moments, then resumed,
    holds the same frames, windows and fields as an uninterrupted one."""
    raw = {**SPEC, "axes": {**SPEC["axes"], "lr_in": {"linspace": [-3, 6], "count": 32},
                            "lr_out": {"linspace": [-3, 6], "count": 32}},
           "chunks": {"lr_in": 16, "lr_out": 16}}  # fmt: skip
    if refine:
        raw["refine"] = {"coarse": 8, "audit": 0.02}
    spec = parse_spec({**raw, "store": str(tmp_path / "ref.zarr")})
    want = open_zoom(_finished(run_zoom(spec, 3, client=client, progress=False), tmp_path))
    rng = np.random.default_rng(7 + refine)
    for trial, delay in enumerate(rng.uniform(1.0, 8.0, 2)):
        store = tmp_path / f"t{trial}.zarr"
        spec_file = tmp_path / f"t{trial}.yaml"
        spec_file.write_text(yaml.safe_dump({**raw, "store": str(store)}))
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "zoom", str(spec_file), "--frames", "3",
             "--workers", "1", "--no-progress", "--no-summary"],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        run_zoom(spec.with_store(store), 3, client=client, progress=False)
        got = open_zoom(store)
        assert len(got) == len(want) == 3, (trial, delay)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.lr_in.values, w.lr_in.values)
            np.testing.assert_array_equal(g.lr_out.values, w.lr_out.values)
            np.testing.assert_array_equal(g.score.values, w.score.values)


def _finished(frames, tmp_path):
    assert len(frames) == 3
    return tmp_path / "ref.zarr"
