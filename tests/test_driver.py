"""The driver at scale: a bounded window of tasks (checked on the scheduler), fused tiny
chunks, a consolidated done index, and an interrupt of a 10^4-chunk sweep that exits within
5 s with status 130 and resumes to the uninterrupted result.

The stub experiment (tests/plugins/sweep_stub.py: f = 1000 a + b + offset, one point per
chunk) costs nothing but the engine's own work; worker processes and ``sweep`` subprocesses
find it as an entry point with tests/plugins on their path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from distributed.diagnostics.plugin import SchedulerPlugin

PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))  # before the module's client fixture spawns its workers

import sweep_stub  # noqa: E402

from pipeline import open_sweep, parse_spec, register, run_sweep  # noqa: E402
from pipeline.run import execute  # noqa: E402
from pipeline.run.submit import (  # noqa: E402
    MAX_CHUNKS_PER_TASK,
    TASK_FLOPS,
    TASKS_PER_THREAD,
    WindowPolicy,
    WindowStats,
    chunks_per_task,
    run_window,
)
from pipeline.store.markers import DONE_DIR, INDEX_FILE  # noqa: E402
from pipeline.store.sweep import chunk_info, done_keys, done_state  # noqa: E402

register(sweep_stub.EXPERIMENT, replace=True)


def stub_spec(n_a: int, n_b: int = 10, **extra) -> dict:
    return {"experiment": "stub", "axes": {"a": {"start": 0, "count": n_a},
            "b": {"start": 0, "count": n_b}}, **extra}  # fmt: skip


class ActiveTasks(SchedulerPlugin):
    """A scheduler plugin: the most chunk tasks ever waiting, queued or processing at once
    (the scheduler's view of the window; finished tasks awaiting release do not count)."""

    name = "active-tasks"
    ACTIVE = {"waiting", "queued", "processing", "no-worker"}

    def __init__(self) -> None:
        self.active: set = set()
        self.peak = 0

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if not str(key).startswith("chunk-"):
            return  # the spec's task, which every chunk task reads
        if finish in self.ACTIVE:
            self.active.add(key)
            self.peak = max(self.peak, len(self.active))
        else:
            self.active.discard(key)


@pytest.mark.slow
def test_the_window_never_holds_more_than_its_bound(tmp_path):
    from distributed import Client, LocalCluster

    plugin = ActiveTasks()
    spec = parse_spec(stub_spec(150))  # 1500 one-point chunks, one task each
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0")
        as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        client.register_plugin(plugin)
        report = run_sweep(spec, tmp_path / "w.zarr", client=client, progress=False,
                           chunks_per_task=1, log=lambda m: None)  # fmt: skip
        peak = client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.plugins[ActiveTasks.name].peak
        )
    bound = WindowPolicy().bound(2)
    assert report.complete and report.n_computed == 1500 and not report.failed
    assert report.window == bound == 2 * TASKS_PER_THREAD
    assert bound // 2 <= peak <= bound, peak  # used, never exceeded
    got = open_sweep(tmp_path / "w.zarr", chunks=None).f.values  # 1500 chunks: no dask
    np.testing.assert_array_equal(got, sweep_stub.expected(spec))


RUNS: list[int] = []


def _recorded(x: int) -> int:
    RUNS.append(x)  # in-process workers: this module's list (the function goes by reference)
    return 10 * x


class LosesTheFirstFetch:
    """A client whose first fetch of results finds their worker gone: the worker closes just
    before it (as a SLURM job cancelled right after its task finished), so the scheduler
    recomputes the task, which needs a new worker: only ``tick()`` adds one."""

    def __init__(self, client, cluster) -> None:
        self._client, self._cluster, self.lost = client, cluster, []

    def __getattr__(self, name):
        return getattr(self._client, name)

    async def _gather(self, futures, **kwargs):
        if not self.lost:
            self.lost = [f.key for f in futures]
            for worker in list(self._cluster.workers.values()):
                await worker.close()
        return await self._client._gather(futures, **kwargs)


def test_a_result_lost_before_it_is_fetched_is_computed_again_while_the_checks_run():
    import threading

    from distributed import Client, LocalCluster

    runs = RUNS
    runs.clear()
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
        as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        proxy = LosesTheFirstFetch(client, cluster)
        ticks = []

        def tick() -> None:  # the job keeper's part: a worker when none is left
            ticks.append(time.monotonic())
            if not client.scheduler_info()["workers"]:
                cluster.scale(len(cluster.worker_spec) + 1)

        got: dict = {}

        def on_done(item, fut, result):
            assert item not in got, f"{item} handed over twice"
            got[item] = (fut.status, result)
            return None

        item_of: dict = {}

        def submit(i: int):
            fut = client.submit(_recorded, i, pure=False)
            item_of[fut.key] = i
            return fut

        def run() -> None:
            got["stats"] = run_window(
                proxy, iter([1, 2, 3]), submit, on_done, WindowPolicy(), tick, tick_every=0.1,
                fetch_timeout=0.5,
            )  # fmt: skip

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "the fetch of a lost result blocked the driver"
    stats = got.pop("stats")
    assert got == {i: ("finished", 10 * i) for i in (1, 2, 3)}
    # each task submitted once; each whose result was lost computed once more on a new worker
    # (so may another that the closed worker held or was running)
    assert proxy.lost and stats.submitted == 3 and stats.requeued >= len(proxy.lost)
    assert stats.requeued_note() == (
        f"{stats.requeued} time(s) a finished task went back in flight: its result was lost "
        "with its worker, or not fetched within 0.5 s"
    )
    assert WindowStats().requeued_note() is None  # a run without one says nothing
    assert sorted(set(runs)) == [1, 2, 3] and max(runs.count(i) for i in runs) <= 2, runs
    assert all(runs.count(item_of[k]) == 2 for k in proxy.lost), (runs, proxy.lost)


@pytest.mark.slow
def test_tiny_chunks_are_fused_and_the_done_index_consolidates(tmp_path, client, monkeypatch):
    # the fusion rule from the plan's FLOPs per chunk
    assert chunks_per_task(TASK_FLOPS, 10**6, 8) == 1
    assert chunks_per_task(TASK_FLOPS / 10, 10**6, 8) == 10
    assert chunks_per_task(1.0, 10**6, 8) == MAX_CHUNKS_PER_TASK
    assert chunks_per_task(1.0, 100, 8) == 100 // (TASKS_PER_THREAD * 8)  # every thread busy
    # consolidation after every completion once 50 markers wait (the defaults: 1000, 30 s)
    monkeypatch.setattr(execute, "CONSOLIDATE_MIN", 50)
    monkeypatch.setattr(execute, "CONSOLIDATE_EVERY_S", 0.0)
    spec = parse_spec(stub_spec(60, offset=0.25))
    store = tmp_path / "f.zarr"
    report = run_sweep(spec, store, client=client, progress=False, log=lambda m: None)
    assert report.complete  # 2 worker threads: 600 // 8 chunks per task, at most the cap
    assert report.chunks_per_task == min(MAX_CHUNKS_PER_TASK, 600 // (TASKS_PER_THREAD * 2))
    assert os.listdir(store / DONE_DIR) == [INDEX_FILE]  # every marker folded into the index
    assert done_keys(store) == set(np.ndindex(60, 10))
    # the stub computes with NumPy whatever auto resolved to (numba where it is installed)
    assert chunk_info(store, (59, 9))["backend"] in ("numpy", "numba")
    f = open_sweep(store, chunks=None).f.values  # 600 one-point chunks: no dask
    np.testing.assert_array_equal(f, sweep_stub.expected(spec))
    # a resume reads the index: nothing to compute; strays in the markers folder are noted
    (store / DONE_DIR / "notes.txt").write_text("mine")
    (store / DONE_DIR / ".DS_Store").write_bytes(b"\0\1")
    lines: list[str] = []
    again = run_sweep(spec, store, client=client, progress=False, log=lines.append)
    assert again.n_computed == 0 and again.complete
    assert "note: ignored 2 file(s) in the markers folder: .DS_Store, notes.txt" in lines
    state = done_state(store)
    assert state.n_done == 600 and state.strays == [".DS_Store", "notes.txt"]


@pytest.mark.slow
def test_interrupted_10k_chunk_sweep_exits_in_5_s_and_resumes_exactly(tmp_path, client):
    raw = stub_spec(1000, store=str(tmp_path / "big.zarr"))
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(raw))
    path = os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])
    # 2 ms per chunk there (the resume here runs without): still going when interrupted
    env = {**os.environ, "PYTHONPATH": path, "SWEEP_STUB_DELAY": "0.002"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(tmp_path / "big.yaml"),
         "--workers", "2", "--no-progress", "--no-summary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    store = tmp_path / "big.zarr"
    deadline = time.monotonic() + 120
    try:
        while not (store / DONE_DIR).is_dir() or len(os.listdir(store / DONE_DIR)) < 100:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no 100 chunks done in 120 s"
            time.sleep(0.02)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = proc.communicate(timeout=30)
        seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert seconds <= 5.0, f"took {seconds:.1f} s to exit"
    assert "Traceback" not in err and "Error" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1] == "interrupted: finished chunks are kept; run the same command to resume"
    assert not any(ln.startswith(("interrupted", "chunks", "KeyboardInterrupt"))
                   for ln in lines[:-1]), err  # fmt: skip
    assert not (store / "_lease").exists()  # the lease was given back

    spec = parse_spec(raw)
    done = done_state(store).n_done
    assert 100 <= done < 10**4, done
    resumed = run_sweep(spec, store, client=client, progress=False, log=lambda m: None)
    assert resumed.already_done == done and resumed.n_computed == 10**4 - done
    # an uninterrupted run gives exactly `expected` (test_the_window_never_holds_...); read
    # without dask (chunks=None): 10^4 one-point chunks as 10^4 tasks on the module's cluster
    # took ~30 s, the same values read by zarr directly ~3 s
    f = open_sweep(store, chunks=None).f.values
    np.testing.assert_array_equal(f, sweep_stub.expected(spec))


@pytest.mark.parametrize("threads, adaptive, mean_s, bound", [
    (0, False, None, 8),  # no worker yet: the floor
    (16, False, None, 64),  # 4 per thread
    (16, True, 0.5, 160),  # adaptive: 5 s of queued work per thread it may grow to
    (16, True, 60.0, 64),  # long tasks: 4 per thread is already more than 5 s each
])  # fmt: skip
def test_window_bound_follows_the_workers(threads, adaptive, mean_s, bound):
    policy = WindowPolicy(expected_threads=16 if adaptive else 0, adaptive=adaptive)
    assert policy.bound(threads, mean_s) == bound
