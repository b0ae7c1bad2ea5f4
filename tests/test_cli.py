"""The ``sweep`` command line: plan, run (with its summary), status, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline import open_sweep, theory

SPEC = {
    "store": "cli.zarr",
    "axes": {
        "width": [128],
        "seed": [0, 1],
        "activation": ["relu"],
        "sigma_w2": {"linspace": [1.0, 3.0], "count": 9},
        "sigma_b": [0.0],
    },
    "depth": 20,
    "record_layers": "last",
    "chunks": {"sigma_w2": 3},
}


def sweep(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd
    )


def test_plan_prints_sizes_without_computing(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    out = sweep("plan", "s.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "grid points       18" in text
    assert "chunks            6" in text
    flops = 2 * 128**2 * 18 * 3 * 20
    assert f"FLOPs             {flops:.3e}" in text
    assert not (tmp_path / "cli.zarr").exists()


@pytest.fixture(scope="module")
def spec_run(tmp_path_factory):
    """``sweep run`` of SPEC in a folder of its own: ``(folder, the completed process)``. The
    tests that use it only read the store, or are refused before they write."""
    here = tmp_path_factory.mktemp("cli")
    (here / "s.yaml").write_text(yaml.safe_dump(SPEC))
    return here, sweep("run", "s.yaml", "--workers", "1", "--no-progress", cwd=here)


@pytest.mark.slow
def test_run_prints_summary_and_status_reports_complete(spec_run):
    tmp_path, out = spec_run
    assert out.returncode == 0, out.stderr
    assert "6 chunks computed" in out.stderr
    # relu at σ_b = 0: λ_L changes sign at σ_w = √2 (mean field), measured within a grid step
    row = [ln for ln in out.stdout.splitlines() if ln.strip().startswith("128")][0].split()
    measured, theory_value = float(row[4]), float(row[5])
    assert theory_value == round(float(theory.critical_sigma_w(0.0, "relu")), 3)
    assert abs(measured - np.sqrt(2)) < 0.1, row
    ds = open_sweep(tmp_path / "cli.zarr")
    assert ds.lyapunov.dims[-1] == "layer" and ds.layer.values.tolist() == [20]
    status = sweep("status", "cli.zarr", cwd=tmp_path)
    assert status.stdout.strip() == "cli.zarr: 6/6 chunks done (100.0 %)"
    again = sweep("run", "s.yaml", "--workers", "1", "--no-progress", "--no-summary", cwd=tmp_path)
    assert "6/6 chunks already done, 0 to compute" in again.stderr and again.stdout == ""


@pytest.mark.slow
def test_store_of_another_spec_is_refused_with_exit_2(spec_run):
    tmp_path, run = spec_run
    assert run.returncode == 0, run.stderr
    other = {**SPEC, "depth": 21}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(other))
    out = sweep("run", "t.yaml", "--workers", "1", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: store {str(tmp_path / 'cli.zarr')!r} was made by a different spec; fields "
        "that differ: depth, "
        "record_layers. Use a new store path, or delete the old store to start over."
    )


@pytest.mark.slow
def test_status_of_a_non_store(tmp_path):
    out = sweep("status", "nothing.zarr", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: store: 'nothing.zarr' is not a sweep or zoom store (no zarr.json)"
    )


@pytest.mark.slow
def test_quickstart_then_analyze_prints_the_comparison_and_writes_it(tmp_path):
    import xarray as xr

    quickstart = Path(__file__).resolve().parent.parent / "workflows" / "quickstart.yaml"
    run = sweep("run", str(quickstart), "--store", "q.zarr", "--workers", "2", "--no-progress",
                cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = [ln.split() for ln in run.stdout.splitlines() if ln.strip().startswith("256")]
    assert len(rows) == 6  # one per σ_b
    diffs = [abs(float(r[6])) for r in rows]
    assert max(diffs[1:]) < 0.1, rows  # σ_b > 0: within 0.1 of the mean-field σ_w
    out = sweep("analyze", "q.zarr", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Critical regime from λ_L" in out.stdout
    an = xr.open_zarr(tmp_path / "q.zarr", group="analysis")
    assert an.attrs and len(an.data_vars) > 0
    assert "lyapunov" in xr.open_zarr(tmp_path / "q.zarr")  # the sweep itself untouched


def test_malformed_scheduler_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    out = sweep("run", "s.yaml", "--scheduler", "nonsense", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("error: --scheduler: no Dask scheduler at 'nonsense' (missing")
    assert not (tmp_path / "cli.zarr").exists()


@pytest.mark.slow
def test_partial_store_is_noted_burn_in_checked_and_a_closed_pipe_is_quiet(tmp_path):
    from pipeline.store.grid import chunk_counts
    from pipeline.store.identity import read_token
    from pipeline.store.markers import unmark
    from pipeline.store.sweep import read_spec

    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SPEC, "record_layers": [10, 20]}))
    run = sweep("run", "s.yaml", "--workers", "1", "--no-progress", "--no-summary", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    store = tmp_path / "cli.zarr"
    unmark(store, chunk_counts(read_spec(store)), read_token(store), [0])  # as if not computed
    out = sweep("summary", "cli.zarr", cwd=tmp_path)
    assert out.returncode == 0 and "Order-to-chaos transition" in out.stdout
    assert out.stderr == (
        "note: cli.zarr: only 5/6 chunks done; the missing ones read as NaN "
        "(sweep status cli.zarr lists them; sweep run resumes)\n"
    )
    out = sweep("analyze", "cli.zarr", "--burn-in", "20", "--no-write", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.splitlines()[-1] == (
        "error: burn_in: layer 20 is the last recorded one; it must be below 20 so that some "
        "layers follow it"
    )
    # the reader of stdout is gone before anything is written: no traceback, status 141
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "status", "--all", "cli.zarr"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err
