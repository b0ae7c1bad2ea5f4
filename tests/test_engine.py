"""The engine end to end: Dask runs, chunking independence, resume after SIGKILL, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr

from pipeline import SpecMismatchError, open_sweep, parse_spec, run_sweep
from pipeline.gpu.backend import resolve_backend
from pipeline.store.grid import iter_chunk_keys, key_to_str
from pipeline.store.sweep import DONE_DIR, done_keys
from pipeline.store.variables import store_variables

SMALL = {
    "name": "engine-test",
    "experiment": "propagation",
    "axes": {
        "width": [16, 40],
        "alpha": [1.5, 2.0],
        "seed": {"start": 0, "count": 2},
        "activation": ["tanh", "relu"],
        "sigma_w2": {"linspace": [0.5, 4.0], "count": 5},
        "sigma_b": [0.0, 0.3, 0.6],
    },
    "depth": 6,
    "record_layers": {"every": 2},
    "probes": {"pair": {"q0": 1.0, "c0": 0.3}, "circle": {"K": 5}, "batch": {"m": 3}},
}


def data_only(ds: xr.Dataset) -> xr.Dataset:
    return ds.load().drop_attrs()


def assert_bit_identical(a: xr.Dataset, b: xr.Dataset) -> None:
    a, b = data_only(a), data_only(b)
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
        assert a[v].dtype == b[v].dtype
    xr.testing.assert_identical(a, b)


@pytest.mark.slow
def test_chunk_sizes_do_not_change_a_single_bit(tmp_path, client):
    fine = parse_spec({**SMALL, "chunks": {"sigma_w2": 2, "sigma_b": 1, "activation": 1}})
    coarse = parse_spec({**SMALL, "chunks": {"sigma_w2": 5, "sigma_b": 3, "seed": 2}})
    r1 = run_sweep(fine, tmp_path / "fine.zarr", client=client, progress=False)
    r2 = run_sweep(coarse, tmp_path / "coarse.zarr", client=client, progress=False, threads=2)
    assert r1.complete and r2.complete and not r1.failed
    assert r1.total == 2 * 2 * 2 * 2 * 3 * 3 and r2.total == 2 * 2 * 1 * 1 * 1 * 1
    a, b = open_sweep(tmp_path / "fine.zarr"), open_sweep(tmp_path / "coarse.zarr")
    assert_bit_identical(a, b)
    # on a cluster each worker resolves 'auto' and says what it used in the chunk's marker
    from pipeline.store.sweep import chunk_info

    assert a.attrs["backend"] == "auto (resolved on each worker)"
    here = resolve_backend("auto")  # numba where installed, else numpy (no GPU in these tests)
    assert {chunk_info(tmp_path / "fine.zarr", k)["backend"] for k in r1.computed} == {here}
    # and the data is real: every point computed, observables finite where expected
    assert int((a.nonfinite_layer < 0).sum()) == 0
    assert np.isfinite(a.q.sel(alpha=2.0).values).all()
    assert a.q.dims == ("width", "alpha", "seed", "activation", "sigma_w2", "sigma_b", "layer")
    np.testing.assert_allclose(a.sigma_w.values, np.sqrt(a.sigma_w2.values))


@pytest.mark.slow
def test_store_layout_attrs_and_plain_xarray_open(tmp_path, client):
    spec = parse_spec({**SMALL, "axes": {**SMALL["axes"], "width": [16], "alpha": [2.0]}})
    run_sweep(spec, tmp_path / "s.zarr", client=client, progress=False, backend="numpy")
    from pipeline.store.sweep import chunk_info

    assert chunk_info(tmp_path / "s.zarr", (0, 0, 0, 0, 0, 0))["backend"] == "numpy"
    code = (
        "import sys, xarray as xr\n"
        f"ds = xr.open_zarr({str(tmp_path / 's.zarr')!r})\n"
        "assert 'pipeline' not in sys.modules\n"
        "print(ds.attrs['sweep_spec']['depth'], ds.attrs['dtype'], ds.attrs['backend'],"
        " ds.sigma_b.attrs['long_name'], ds.layer.values.tolist(), float(ds.q.mean()) > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout.split() == [
        "6",
        "float32",
        "numpy",
        "bias",
        "scale",
        "σ_b",
        "[2,",
        "4,",
        "6]",
        "True",
    ]
    attrs = open_sweep(tmp_path / "s.zarr").attrs
    for k in ("package_version", "git_revision", "created", "experiment"):
        assert attrs[k]


def test_rerun_computes_nothing_and_other_spec_is_refused(tmp_path, client):
    spec = parse_spec({**SMALL, "axes": {**SMALL["axes"], "width": [16]}})
    store = tmp_path / "s.zarr"
    first = run_sweep(spec, store, client=client, progress=False)
    again = run_sweep(spec, store, client=client, progress=False)
    assert len(first.computed) == first.total and again.computed == []
    other = parse_spec({**SMALL, "axes": {**SMALL["axes"], "width": [16]}, "depth": 7})
    with pytest.raises(SpecMismatchError, match="fields that differ: depth, record_layers"):
        run_sweep(other, store, client=client, progress=False)


def test_failing_chunk_is_reported_and_the_rest_kept(tmp_path, client):
    spec = parse_spec(
        {
            **SMALL,
            "axes": {**SMALL["axes"], "width": [16], "alpha": [2.0], "seed": [0]},
            "chunks": {"sigma_b": 1},
        }
    )
    store = tmp_path / "s.zarr"
    from pipeline.store.sweep import create_or_open_store

    create_or_open_store(spec, store)
    # A real I/O failure: a directory where chunk (…, sigma_b chunk 1) of `q` must be written.
    blocker = store / "q" / "c" / "0" / "0" / "0" / "0" / "0" / "1" / "0"
    blocker.mkdir(parents=True)
    report = run_sweep(spec, store, client=client, retries=1, progress=False)
    bad = key_to_str((0, 0, 0, 0, 0, 1))
    assert list(report.failed) == [bad]
    assert "Error" in report.failed[bad]
    assert len(report.computed) == report.total - 1
    assert (0, 0, 0, 0, 0, 1) not in done_keys(store)
    blocker.rmdir()
    retry = run_sweep(spec, store, client=client, progress=False)
    assert retry.computed == [(0, 0, 0, 0, 0, 1)] and retry.complete


def _write_spec(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_sigkill_midway_then_resume_gives_identical_dataset(tmp_path, client):
    raw = {
        **SMALL,
        "axes": {
            "width": [192],
            "alpha": [1.7, 2.0],
            "seed": {"start": 0, "count": 4},
            "activation": ["tanh"],
            "sigma_w": {"linspace": [0.5, 2.5], "count": 8},
            "sigma_b": [0.1, 0.4],
        },
        "depth": 25,
        "chunks": {"sigma_w": 8, "sigma_b": 2},
    }
    spec = parse_spec(raw)
    total = len(list(iter_chunk_keys(spec)))
    store = tmp_path / "killed.zarr"
    spec_file = _write_spec(tmp_path / "spec.yaml", {**raw, "store": str(store)})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(spec_file),
            "--workers",
            "1",
            "--no-progress",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    try:
        while len(done_keys(store)) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no chunk finished in 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = done_keys(store)
    assert 2 <= len(before) < total, f"killed too late: {len(before)}/{total} done"

    def data_file(k):  # a chunk file of the first variable (markers are folded at the end)
        arr = zarr.open_group(store, mode="r")[store_variables(spec)[0].name]
        return store / arr.path / arr.metadata.encode_chunk_key(k + (0,) * (arr.ndim - len(k)))

    mtimes = {k: data_file(k).stat().st_mtime_ns for k in before}

    status = subprocess.run(
        [sys.executable, "-m", "pipeline", "status", str(store)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status.splitlines()[0].endswith(
        f"{len(before)}/{total} chunks done ({100 * len(before) / total:.1f} %)"
    )
    assert f"missing chunks ({total - len(before)}):" in status

    report = run_sweep(spec, store, client=client, progress=False)
    assert report.already_done == len(before)
    assert len(report.computed) == total - len(before)
    assert not set(report.computed) & before  # the finished chunks were not computed again
    for k, t in mtimes.items():
        assert data_file(k).stat().st_mtime_ns == t
    assert os.listdir(store / DONE_DIR) == ["_index.npz"]  # the run folded every marker

    ref = tmp_path / "uninterrupted.zarr"
    run_sweep(spec, ref, client=client, progress=False)
    assert_bit_identical(open_sweep(store), open_sweep(ref))


def test_store_path_that_is_something_else_is_refused(tmp_path):
    from pipeline.store.sweep import create_or_open_store

    spec = parse_spec({**SMALL, "axes": {**SMALL["axes"], "width": [16]}})
    other = tmp_path / "taken"
    other.mkdir()
    (other / "data.txt").write_text("not a store")
    with pytest.raises(ValueError, match="exists and is not a sweep store"):
        create_or_open_store(spec, other)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert create_or_open_store(spec, empty) is True
    assert create_or_open_store(spec, empty) is False
    assert not list(tmp_path.glob(".*tmp-*"))
