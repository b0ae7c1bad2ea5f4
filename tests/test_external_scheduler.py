"""Runs on an external scheduler: a real long-lived ``dask scheduler`` and ``dask worker``
(two processes on 127.0.0.1, started and stopped here), as ``sweep run --scheduler`` uses
them. Their workers outlive every run, so the store identity must be checked on every task:
a store deleted during a run is not reported complete nor recreated as chunk files without
``zarr.json``; a store restored from its backup is written into by the next run; and the
seeded fuzz of the bookkeeping files holds here too."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_bookkeeping import (
    PLUGINS,
    done_of,
    fuzz_bookkeeping,
    quiet,
    restore_damaged_backup,
    snapshot,
    stub,
)

from pipeline import parse_spec, run_sweep
from pipeline.store.markers import DONE_DIR

DELAY_S = 0.15  # each chunk sleeps this long on these workers (SWEEP_STUB_DELAY)
START_TIMEOUT_S = 60


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=log.open("w"), start_new_session=True)  # fmt: skip


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group (a worker's nanny and its worker process), SIGKILL
    after 10 s."""
    if proc.poll() is None:
        with _suppress():
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _suppress():
    import contextlib

    return contextlib.suppress(ProcessLookupError, PermissionError)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a running ``dask scheduler`` with one ``dask worker`` of two
    single-threaded worker processes, whose tasks import this checkout and the stub."""
    from distributed import Client

    d = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path, str(PLUGINS)]),
           "SWEEP_STUB_DELAY": str(DELAY_S)}  # fmt: skip
    sched_file = d / "scheduler.json"
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--dashboard-address", ":0", "--scheduler-file", str(sched_file)],
                    env, d / "scheduler.log")]  # fmt: skip
    try:
        t0 = time.monotonic()
        while not sched_file.exists():
            assert procs[0].poll() is None, (d / "scheduler.log").read_text()
            assert time.monotonic() - t0 < START_TIMEOUT_S, "dask scheduler did not start"
            time.sleep(0.2)
        procs.append(_start(["distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                             "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                            env, d / "worker.log"))  # fmt: skip
        with Client(scheduler_file=str(sched_file), timeout=START_TIMEOUT_S) as c:
            c.wait_for_workers(2, timeout=START_TIMEOUT_S)
            address = c.scheduler.address
        yield address
    finally:
        for p in reversed(procs):
            _stop(p)


@pytest.fixture
def ext_client(scheduler):
    from distributed import Client

    with Client(scheduler, timeout=30) as c:
        yield c


@pytest.mark.slow
def test_a_store_deleted_during_a_run_is_never_reported_complete_nor_recreated(scheduler, tmp_path):
    """``sweep run --scheduler``: ``rm -rf STORE`` once a chunk is done. The run exits
    non-zero, and no worker writes chunk files into a path without ``zarr.json``."""
    store = tmp_path / "s.zarr"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**stub(10), "store": str(store)}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path, str(PLUGINS)])}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(tmp_path / "s.yaml"),
                             "--scheduler", scheduler, "--no-progress", "--no-summary"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        t0 = time.monotonic()
        while not (store / DONE_DIR).is_dir() or not any(
            p.name != "_index.npz" for p in (store / DONE_DIR).iterdir()
        ):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 60, "no chunk was done within 60 s"
            time.sleep(0.05)
        shutil.rmtree(store)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, (out, err)
    assert "all done" not in out + err and "40/40 done" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert lines and "deleted" in lines[-1], err
    time.sleep(4 * DELAY_S)  # a task still running on a worker would write now
    assert not store.exists() or (store / "zarr.json").is_file(), sorted(
        str(p.relative_to(store)) for p in store.rglob("*")
    )


def test_a_store_restored_from_its_backup_runs_the_first_time(ext_client, tmp_path):
    """The long-lived workers wrote into the store; it is deleted and its backup (same
    token) copied back: the next run writes into it, first time."""
    spec = parse_spec(stub(3))
    store = tmp_path / "s.zarr"
    assert run_sweep(spec, store, client=ext_client, progress=False, log=quiet).complete
    before, done_before = snapshot(store), done_of(store)
    restore_damaged_backup(spec, store)
    report = run_sweep(spec, store, client=ext_client, progress=False, log=quiet)
    assert report.complete and report.n_computed == 3
    assert snapshot(store) == before and done_of(store) == done_before


@pytest.mark.parametrize("seed", [7, 31])
@pytest.mark.slow
def test_fuzz_damage_to_the_bookkeeping_files_with_an_external_scheduler(
    ext_client, tmp_path, capsys, seed
):
    spec = parse_spec(stub(3))
    store = tmp_path / "s.zarr"
    assert run_sweep(spec, store, client=ext_client, progress=False, log=quiet).complete
    fuzz_bookkeeping(spec, store, snapshot(store), ext_client, capsys, seed=seed, cases=3)
