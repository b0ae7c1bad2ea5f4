"""The run context (cluster kinds, settings, backend resolution, memory check), the chunk
grid as a value object, and the store handle's kinds: without a cluster."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from pipeline import parse_spec
from pipeline.errors import ResourceError, UsageError
from pipeline.run.context import Attached, Local, RunContext, Scheduler, Slurm, cluster_kind
from pipeline.slurm.cluster import SlurmOptions
from pipeline.slurm.profiles import load_profile
from pipeline.store.grid import ChunkGrid, chunk_counts, chunk_slices, iter_chunk_keys, key_to_str

SPEC = {
    "experiment": "propagation",
    "axes": {
        "sigma_w": {"linspace": [0.5, 3.0], "count": 7},
        "sigma_b": [0.0, 0.5, 1.0],
        "width": [16],
    },
    "chunks": {"sigma_w": 3, "sigma_b": 2},
    "depth": 4,
    "record_layers": [4],
}


def test_run_sweep_keywords_name_the_cluster_kind_in_the_old_order():
    """An existing client wins over SLURM, SLURM over a scheduler, a scheduler over a local
    cluster (run_sweep's keywords, as before the run context)."""
    slurm = SlurmOptions(load_profile("cpu"), jobs=3)
    c = object()
    assert cluster_kind(client=c, slurm=slurm, scheduler="tcp://x:1") == Attached(c)
    assert cluster_kind(slurm=slurm, scheduler="tcp://x:1") == Slurm(slurm)
    assert cluster_kind(scheduler="tcp://x:1", n_workers=3) == Scheduler("tcp://x:1")
    assert cluster_kind(n_workers=3) == Local(3)
    ctx = RunContext.from_options(n_workers=2, retries=5, threads=3, backend="numpy")
    assert (ctx.cluster, ctx.retries, ctx.threads) == (Local(2), 5, 3)
    assert ctx.task_settings.attempts == 6
    with pytest.raises(TypeError, match="n_wrkers"):
        RunContext.from_options(n_wrkers=2)
    with pytest.raises(UsageError, match="chunks_per_task: value 0 must be >= 1"):
        RunContext(chunks_per_task=0)
    with pytest.raises(UsageError, match="scheduler: an empty address"):
        Scheduler("  ")


def test_expected_threads_and_adaptivity_per_kind():
    cpu = load_profile("cpu")  # 16 cores per job
    assert Slurm(SlurmOptions(cpu, jobs=3)).expected_threads("auto") == 48
    adaptive = Slurm(SlurmOptions(cpu, adapt=(0, 5)))
    assert adaptive.expected_threads("auto") == 80 and adaptive.adaptive
    assert not Slurm(SlurmOptions(cpu, jobs=1)).adaptive
    assert Local(3).expected_threads("numpy") == 3
    assert Local(None).expected_threads("cupy") == 1  # one worker per GPU, unknown count
    assert Attached(object()).expected_threads("numpy") == 0
    ctx = RunContext(Slurm(SlurmOptions(cpu, adapt=(0, 5))), backend="numpy")
    assert ctx.window_policy().adaptive and not ctx.window_policy(adaptive=False).adaptive
    assert ctx.window_policy().expected_threads == 80


def test_backend_is_resolved_here_only_for_a_local_cluster():
    remote = RunContext(Scheduler("tcp://x:1"), backend="auto")
    assert remote.worker_backend == "auto"
    assert remote.provenance == {"backend": "auto (resolved on each worker)"}
    assert RunContext(Scheduler("tcp://x:1"), backend="numpy").provenance["backend"] == "numpy"
    local = RunContext(Local(1), backend="numpy")
    assert local.worker_backend == "numpy" and local.provenance["backend"] == "numpy"
    with pytest.raises(Exception, match="backend"):
        RunContext(Scheduler("tcp://x:1"), backend="fortran").worker_backend  # noqa: B018


def test_memory_check_uses_the_kinds_worker_memory():
    spec = parse_spec(SPEC)
    cpu = load_profile("cpu")
    tiny = dataclasses.replace(cpu, options={**cpu.options, "memory": "1KiB"})
    with pytest.raises(ResourceError, match="a worker of SLURM profile 'cpu' has 1 KiB"):
        RunContext(Slurm(SlurmOptions(tiny, jobs=1)), backend="numpy").check_memory(spec)
    # a GPU profile running auto is not checked against host memory
    gpu = load_profile("gpu")
    tiny_gpu = dataclasses.replace(gpu, options={**gpu.options, "memory": "1KiB"})
    RunContext(Slurm(SlurmOptions(tiny_gpu, jobs=1)), backend="auto").check_memory(spec)
    RunContext(Local(1), backend="numpy").check_memory(spec)  # the machine's memory: enough


def test_chunk_grid_maps_keys_flats_names_and_slices_as_the_spec_functions():
    spec = parse_spec(SPEC)
    grid = ChunkGrid.of(spec)
    assert grid.counts == chunk_counts(spec) == (1, 1, 1, 1, 3, 2) and grid.n_chunks == 6
    keys = list(iter_chunk_keys(spec))
    assert list(grid.keys()) == keys
    for flat, key in enumerate(keys):
        assert grid.key(flat) == key and grid.flat(key) == flat
        assert grid.name(flat) == key_to_str(key)
        assert grid.slices(key) == chunk_slices(spec, key)
    # the slices tile the grid exactly once
    cover = np.zeros(spec.shape, int)
    for key in grid.keys():
        cover[grid.slices(key)] += 1
    assert (cover == 1).all()
    # the short last chunks
    assert grid.slices((0, 0, 0, 0, 2, 1))[-2:] == (slice(6, 7), slice(2, 3))
    with pytest.raises(ValueError, match="outside a grid"):
        grid.slices((0, 0, 0, 0, 3, 0))
    assert list(itertools.islice(ChunkGrid((5,), (2,)).keys(), 5)) == [(0,), (1,), (2,)]
