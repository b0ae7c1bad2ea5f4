"""SLURM through dask-jobqueue: job scripts as strings, bad input, and (marked ``slurm``) real
runs on the local one-node cluster: equal to a local run, a worker job cancelled midway, the
driver submitted, cancelled and resubmitted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline import open_sweep, parse_spec, run_sweep
from pipeline.slurm import (
    SlurmCommandError,
    SlurmError,
    SlurmOptions,
    load_profile,
    parse_job_id,
    render_driver_script,
    render_worker_script,
    slurm_command,
)
from pipeline.store.grid import iter_chunk_keys
from pipeline.store.sweep import done_keys

REPO = Path(__file__).resolve().parent.parent
LOCAL_PROFILES = REPO / "slurm" / "local.yaml"
WORKER_NAME = "sweep-test-worker"

# 8 chunks (one per seed) of about 1 s each on one core: kills land midway.
RAW = {
    "name": "slurm-test",
    "experiment": "propagation",
    "axes": {
        "width": [48],
        "seed": {"start": 0, "count": 8},
        "activation": ["tanh"],
        "sigma_w": {"linspace": [0.5, 2.5], "count": 24},
        "sigma_b": [0.05, 0.3],
    },
    # ~1 s a chunk on one core: long enough that a job cancelled after the first chunk is
    # cancelled midway, short enough that the 8 chunks are not most of the file's time
    "depth": 600,
    "record_layers": {"every": 100},
    "probes": {"pair": {"q0": 1.0, "c0": 0.5}, "circle": {"K": 16}},
    "chunks": {"seed": 1},
}
TOTAL = 8


def sweep(*args, cwd, check=False, timeout=240):
    """Run the CLI with a Dask config of its own (nothing from ~/.config/dask)."""
    env = {**os.environ, "DASK_CONFIG": str(Path(cwd) / "dask-config")}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=check,
        timeout=timeout,
    )


def write_spec(tmp_path: Path, raw: dict = RAW) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def assert_same_data(a, b) -> None:
    a, b = a.load().drop_attrs(), b.load().drop_attrs()
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        assert a[v].dtype == b[v].dtype
        assert a[v].values.tobytes() == b[v].values.tobytes(), v  # bit-identical, NaNs too
    import xarray as xr

    xr.testing.assert_identical(a, b)


# ------------------------------------------------------------------ pure: strings and errors


def test_worker_script_of_the_gpu_profile():
    gpu = load_profile("gpu", REPO / "slurm" / "jobqueue.yaml")
    script = render_worker_script(gpu, "tcp://10.0.0.1:8786", name="w-3")
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in (
        "#SBATCH -J sweep-gpu",
        "#SBATCH -p gpu",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64G",
        "#SBATCH -t 04:00:00",
        "#SBATCH --gres=gpu:1",
    ):
        assert directive in lines
    assert "export OMP_NUM_THREADS=1" in lines
    worker = lines[-1]
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://10.0.0.1:8786")
    for arg in ("--name w-3", "--nthreads 8", "--lifetime 225m", "--lifetime-stagger 5m"):
        assert arg in worker
    assert "--interface" not in worker and "--death-timeout 120" in worker
    cpu = load_profile("cpu", REPO / "slurm" / "jobqueue.yaml")
    assert "--gres" not in render_worker_script(cpu)


def test_driver_script():
    script = render_driver_script(
        ["run", "/p/spec.yaml", "--store", "/p/out dir/s.zarr", "--cluster", "slurm"],
        python="/venv/bin/python",
        workdir="/p",
        log_file="/p/logs/sweep-driver-%j.out",
        job_name="sweep-x",
        partition="cpu",
        walltime="2-00:00:00",
        prologue=["module load python"],
    )
    assert script == (
        "#!/usr/bin/env bash\n"
        "#SBATCH --job-name=sweep-x\n"
        "#SBATCH --output=/p/logs/sweep-driver-%j.out\n"
        "#SBATCH --chdir=/p\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --cpus-per-task=1\n"
        "#SBATCH --mem=4G\n"
        "#SBATCH --time=2-00:00:00\n"
        "#SBATCH --partition=cpu\n"
        "\n"
        "set -euo pipefail\n"
        "module load python\n"
        "exec /venv/bin/python -m pipeline run /p/spec.yaml --store '/p/out dir/s.zarr' "
        "--cluster slurm\n"
    )


@pytest.mark.slow
def test_submit_dry_run_prints_the_driver_script(tmp_path):
    spec = write_spec(tmp_path, {**RAW, "store": "s.zarr"})
    out = sweep(
        "submit", spec, "--profiles", LOCAL_PROFILES, "--profile", "local", "--adapt", "1:3",
        "--dry-run", cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    assert "#SBATCH --partition=debug\n" in out
    assert f"#SBATCH --output={tmp_path}/slurm-logs/sweep-driver-%j.out\n" in out
    assert out.rstrip().endswith(
        f"--store {tmp_path}/s.zarr --cluster slurm --profile local --profiles {LOCAL_PROFILES} "
        f"--adapt 1:3 --start-timeout 600 --log-dir {tmp_path}/slurm-logs --retries 2 "
        "--backend auto --threads 1 --no-progress"
    )
    assert not (tmp_path / "s.zarr").exists()
    # the workers' job script goes to stderr (stdout stays the driver's script alone)
    err = sweep(
        "submit", spec, "--profiles", LOCAL_PROFILES, "--profile", "local", "--dry-run",
        cwd=tmp_path, check=True,
    ).stderr  # fmt: skip
    assert "# the script of each worker job the driver submits (profile 'local'" in err
    assert "#SBATCH" in err and "distributed.cli.dask_worker tcp://SCHEDULER:PORT" in err
    assert not (tmp_path / "slurm-logs").exists()


@pytest.mark.slow
def test_submit_takes_a_workflow_scale_and_passes_it_to_the_driver(tmp_path):
    workflow = Path(__file__).resolve().parent.parent / "workflows" / "schoenholz2016_xi_c.yaml"
    out = sweep(
        "submit", str(workflow), "--scale", "smoke", "--store", "s.zarr", "--profiles",
        LOCAL_PROFILES, "--profile", "local", "--dry-run", cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    assert f"run {workflow} --store {tmp_path}/s.zarr --cluster slurm --scale smoke " in out
    bad = sweep("submit", str(workflow), "--scale", "huge", "--profiles", LOCAL_PROFILES,
                "--profile", "local", "--dry-run", cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "unknown scale 'huge'" in bad.stderr


# A zoom small enough for the one-core test cluster: 2 frames of 16 × 16 points, 4 chunks each
ZOOM = {
    "name": "slurm-zoom",
    "experiment": "trainability",
    "axes": {
        "width": [8],
        "lr_in": {"linspace": [-3, 6], "count": 16},
        "lr_out": {"linspace": [-3, 6], "count": 16},
    },
    "steps": 60,
    "chunks": {"lr_in": 8, "lr_out": 8},
}


@pytest.mark.slow
def test_submit_dry_run_of_a_zoom(tmp_path):
    spec = write_spec(tmp_path, {**ZOOM, "store": "z.zarr"})
    out = sweep(
        "submit", spec, "--frames", "3", "--profiles", LOCAL_PROFILES, "--profile", "local",
        "--jobs", "2", "--backend", "numpy", "--dry-run", cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    assert "#SBATCH --job-name=sweep-slurm-zoom\n" in out
    assert out.rstrip().endswith(
        f"-m pipeline zoom {spec} --frames 3 --store {tmp_path}/z.zarr --cluster slurm "
        f"--profile local --profiles {LOCAL_PROFILES} --jobs 2 --start-timeout 600 "
        f"--log-dir {tmp_path}/slurm-logs --retries 2 --backend numpy --threads 1 --no-progress"
    )
    # what the driver would refuse is refused before submitting: a zoom of a plane with
    # another axis of several values, a sweep store at the zoom's path
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**ZOOM, "axes": {**ZOOM["axes"], "seed": [0, 1]}}))
    out = sweep("submit", bad, "--frames", "2", "--store", "y.zarr", "--profiles",
                LOCAL_PROFILES, "--profile", "local", "--dry-run", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and out.stderr.startswith("error: zoom: axes seed must have")
    run_sweep(parse_spec(ZOOM), tmp_path / "s.zarr", n_workers=1, progress=False,
              log=lambda m: None)  # fmt: skip
    out = sweep("submit", spec, "--frames", "2", "--store", "s.zarr", "--profiles",
                LOCAL_PROFILES, "--profile", "local", "--dry-run", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and "is a sweep store, not a zoom" in out.stderr
    # a zoom out: the driver runs `sweep zoom --direction out` with the flags given; a zoom
    # in's store at its path is refused before submitting
    out = sweep(
        "submit", spec, "--direction", "out", "--max-width", "12", "--profiles", LOCAL_PROFILES,
        "--profile", "local", "--dry-run", cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    want = f"-m pipeline zoom {spec} --direction out --max-width 12 --store {tmp_path}/z.zarr "
    assert want in out
    import zarr

    from pipeline.run.zoom import ZOOM_IN_RULE
    from pipeline.store.zoom import ZOOM_ATTR

    zarr.open_group(tmp_path / "zin.zarr", mode="w").attrs[ZOOM_ATTR] = {"rule": ZOOM_IN_RULE}
    out = sweep("submit", spec, "--direction", "out", "--store", "zin.zarr", "--profiles",
                LOCAL_PROFILES, "--profile", "local", "--dry-run", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and "holds a zoom made by another rule" in out.stderr, out.stderr
    out = sweep("submit", spec, "--direction", "out", "--frames", "2", "--dry-run", cwd=tmp_path)
    assert out.returncode == 2 and "--frames: value 2 not allowed with --direction out" in (
        out.stderr
    )


def test_walltime_and_memory_are_checked_before_submitting():
    from pipeline.slurm import check_memory, check_walltime

    for ok in ("30", "30:00", "24:00:00", "2-12", "2-12:30", "2-12:30:00", "UNLIMITED"):
        assert check_walltime(ok) == ok
    for bad in ("banana", "1:2:3:4", "24h", "", "-1"):
        with pytest.raises(ValueError, match=rf"^--walltime: {bad!r} is not a SLURM time"):
            check_walltime(bad)
    assert check_memory("4G") == "4G" and check_memory("4096") == "4096"
    with pytest.raises(ValueError, match=r"^--driver-mem: 'lots' is not a SLURM memory size"):
        check_memory("lots")


def test_job_id_is_parsed_never_assumed():
    assert parse_job_id("4711\n") == "4711"
    assert parse_job_id("4711;cluster2\n") == "4711"
    for bad in ("", "Submitted batch job 12", "12 13"):
        with pytest.raises(SlurmError, match="expected a job id"):
            parse_job_id(bad)


def test_command_helper_raises_with_everything():
    with pytest.raises(SlurmCommandError) as info:
        slurm_command([sys.executable, "-c", "import sys; print('out'); sys.exit('bad')"])
    e = info.value
    assert e.returncode == 1 and e.stdout == "out\n" and e.stderr == "bad\n"
    assert "exited with status 1" in str(e) and "'out'" in str(e) and "'bad'" in str(e)
    with pytest.raises(SlurmError, match="sbatch-nowhere: not found on PATH"):
        slurm_command(["sbatch-nowhere", "--parsable"])


def test_profile_errors():
    with pytest.raises(ValueError, match="no profile 'nope' in .*it has: local"):
        load_profile("nope", LOCAL_PROFILES)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_profile("local", "/nonexistent/jobqueue.yaml")
    with pytest.raises(ValueError, match="^jobs and adapt: give one of them"):
        SlurmOptions(load_profile("local", LOCAL_PROFILES), jobs=2, adapt=(0, 2))


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--profile", "nope"], {}, "error: --profile: no profile 'nope'"),
        (["--profile", "local", "--jobs", "0"], {}, "error: --jobs: value 0 must be >= 1"),
        (["--profile", "local", "--adapt", "3"], {}, "error: --adapt: '3' is not MIN:MAX"),
        (["--profile", "local"], {"PATH": "/nonexistent"}, "error: sbatch: not found on PATH"),
    ],
)
@pytest.mark.slow
def test_bad_slurm_input_is_one_line_exit_2_and_no_store(tmp_path, args, env, message):
    spec = write_spec(tmp_path, {**RAW, "store": "s.zarr"})
    cmd = [sys.executable, "-m", "pipeline", "run", str(spec), "--cluster", "slurm"]
    cmd += ["--profiles", str(LOCAL_PROFILES), *args]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "DASK_CONFIG": str(tmp_path), **env},
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1, out.stderr
    assert not (tmp_path / "s.zarr").exists()


# ------------------------------------------------------------------ on the local SLURM cluster


def my_jobs(name: str | None = None) -> dict[str, str]:
    """``{job id: state}`` of this user's jobs (with job name ``name``)."""
    out = slurm_command(["squeue", "--me", "--noheader", "--format=%i|%j|%T"])
    rows = [line.split("|") for line in out.split()]
    return {i: s for i, j, s in rows if name is None or j == name}


def wait_for(predicate, timeout: float, what: str, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"driver exited ({proc.returncode}) while waiting for {what}")
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted local run of RAW."""
    store = tmp_path_factory.mktemp("ref") / "ref.zarr"
    report = run_sweep(parse_spec(RAW), store, n_workers=2, progress=False, log=lambda m: None)
    assert report.complete
    return open_sweep(store)


@pytest.fixture
def no_jobs_left():
    """Fail the test if it leaves a job of its own in the queue (jobs queued before it are not
    its doing, and are left alone)."""
    before = set(my_jobs())
    yield
    left = {j: s for j, s in my_jobs().items() if j not in before}
    for job in left:
        slurm_command(["scancel", job])
    assert not left, f"jobs left running: {left}"


@pytest.mark.slurm
@pytest.mark.parametrize(
    ("jobs", "says", "n_logs"),
    [
        (["--jobs", "2"], "SLURM: 2 worker job(s), profile 'local'", {2}),
        # adaptive from zero: the scaler asks for the jobs (rescaling may start more)
        (["--adapt", "0:2"], "SLURM: adaptive 0..2 worker jobs, profile 'local'", {1, 2, 3, 4}),
    ],
    ids=["jobs", "adapt"],
)
def test_cluster_slurm_equals_local_run(tmp_path, reference, no_jobs_left, jobs, says, n_logs):
    spec = write_spec(tmp_path)
    out = sweep(
        "run", spec, "--store", "s.zarr", "--cluster", "slurm", "--profiles", LOCAL_PROFILES,
        "--profile", "local", *jobs, "--log-dir", "logs", "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert says in out.stderr
    assert f"{TOTAL} chunks computed" in out.stderr and "scaled down" in out.stderr
    # each worker job that started wrote its .err log
    assert len(list((tmp_path / "logs").glob(f"{WORKER_NAME}-*.err"))) in n_logs
    assert_same_data(open_sweep(tmp_path / "s.zarr"), reference)


@pytest.mark.slurm
def test_scancel_worker_job_midway_loses_nothing(tmp_path, reference, no_jobs_left):
    spec = write_spec(tmp_path)
    store = tmp_path / "s.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", spec, "--store", store, "--cluster", "slurm",
         "--profiles", LOCAL_PROFILES, "--profile", "local", "--jobs", "1", "--log-dir",
         tmp_path / "logs", "--no-progress", "--no-summary"],
        cwd=tmp_path,
        env={**os.environ, "DASK_CONFIG": str(tmp_path / "dask-config")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: len(done_keys(store)) >= 1, 120, "the first chunk", proc)
        (victim,) = my_jobs(WORKER_NAME)  # the only worker job, with chunks in flight
        slurm_command(["scancel", victim])
        before = len(done_keys(store))
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert before < TOTAL, "cancelled too late"
    # The sweep could only finish on a replacement job: the one job it had was cancelled.
    assert re.search(rf"worker job {victim} \(.*\) \w+; submitting a replacement", out), out
    assert f"{TOTAL}/{TOTAL} done" in out
    assert done_keys(store) == set(iter_chunk_keys(parse_spec(RAW)))
    assert_same_data(open_sweep(store), reference)


@pytest.mark.slurm
def test_submit_cancel_resubmit_computes_only_missing(tmp_path, reference, no_jobs_left):
    spec = write_spec(tmp_path)
    store = tmp_path / "s.zarr"
    logs = tmp_path / "logs"
    submit = ["submit", spec, "--store", store, "--profiles", LOCAL_PROFILES, "--profile"]
    submit += ["local", "--jobs", "1", "--log-dir", logs, "--walltime", "00:10:00"]

    first = sweep(*submit, cwd=tmp_path, check=True).stdout.strip()
    assert first.isdigit()
    wait_for(lambda: len(done_keys(store)) >= 1, 120, "the first chunk")
    # status while the job runs and is cancelled: started first, the cancel not waiting on it
    # (a CLI start takes seconds under load, the compiled kernels a chunk in under one)
    env = {**os.environ, "DASK_CONFIG": str(tmp_path / "dask-config")}
    cmd = [sys.executable, "-m", "pipeline", "status", str(store)]
    status_proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    slurm_command(["scancel", first])
    status = status_proc.communicate(timeout=240)[0]
    assert status_proc.returncode == 0
    assert re.match(rf"{store}: \d/{TOTAL} chunks done", status), status
    wait_for(lambda: not my_jobs(), 60, "the driver and its worker job to end")
    before = done_keys(store)
    assert 1 <= len(before) < TOTAL, f"cancelled too late: {len(before)}/{TOTAL}"
    log1 = (logs / f"sweep-driver-{first}.out").read_text()
    assert "interrupted" in log1 and "scaled down" in log1, log1

    def chunk_file(key):  # the chunk's file of a variable (markers are folded at the end)
        import zarr

        from pipeline.store.variables import store_variables

        name = store_variables(parse_spec(RAW))[0].name
        arr = zarr.open_group(store, mode="r")[name]
        return store / name / arr.metadata.encode_chunk_key(key + (0,) * (arr.ndim - len(key)))

    mtimes = {k: chunk_file(k).stat().st_mtime_ns for k in before}

    second = sweep(*submit, cwd=tmp_path, check=True).stdout.strip()
    assert second.isdigit() and second != first

    def finished():
        out = slurm_command(["scontrol", "show", "job", "--oneliner", second])
        state = re.search(r"JobState=(\w+)", out).group(1)
        return state if state not in ("PENDING", "RUNNING", "COMPLETING") else None

    assert wait_for(finished, 180, f"job {second} to finish") == "COMPLETED"
    log2 = (logs / f"sweep-driver-{second}.out").read_text()
    missing = TOTAL - len(before)
    assert f"{len(before)}/{TOTAL} chunks already done, {missing} to compute" in log2, log2
    assert f"{missing} chunks computed" in log2, log2
    assert done_keys(store) == set(iter_chunk_keys(parse_spec(RAW)))
    for k, t in mtimes.items():  # chunks done by the first job were not computed again
        assert chunk_file(k).stat().st_mtime_ns == t
    assert_same_data(open_sweep(store), reference)


@pytest.mark.slurm
def test_unknown_partition_and_job_that_never_starts(tmp_path, no_jobs_left):
    profiles = tmp_path / "profiles.yaml"
    local = yaml.safe_load(LOCAL_PROFILES.read_text())["jobqueue"]["local"]
    profiles.write_text(
        yaml.safe_dump(
            {
                "jobqueue": {
                    "nopart": {**local, "queue": "no-such-partition"},
                    "later": {**local, "job-extra-directives": ["--begin=now+1hour"]},
                }
            }
        )
    )
    spec = write_spec(tmp_path, {**RAW, "store": "s.zarr"})
    common = ["run", spec, "--cluster", "slurm", "--profiles", profiles, "--no-progress"]

    out = sweep(*common, "--profile", "nopart", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("error: profile 'nopart' (partition no-such-partition): SLURM")
    assert "Invalid partition name specified" in out.stderr
    assert not (tmp_path / "s.zarr").exists()

    t0 = time.monotonic()
    out = sweep(*common, "--profile", "later", "--start-timeout", "4", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no Dask worker joined within 4 s (--start-timeout)"), last
    assert "PENDING (BeginTime)" in last, last
    assert time.monotonic() - t0 < 60
    assert done_keys(tmp_path / "s.zarr") == set()  # the template, nothing marked done


@pytest.fixture(scope="module")
def zoom_reference(tmp_path_factory):
    """The two frames of ZOOM computed locally."""
    from pipeline.run.zoom import run_zoom
    from pipeline.store.zoom import open_zoom

    store = tmp_path_factory.mktemp("zref") / "z.zarr"
    run_zoom(
        parse_spec(ZOOM), 2, store, n_workers=1, progress=False, log=lambda m: None, backend="numpy"
    )
    return open_zoom(store)


def assert_same_zoom(store, reference) -> None:
    from pipeline.store.zoom import open_zoom

    frames = open_zoom(store)
    assert len(frames) == len(reference) == 2
    for got, want in zip(frames, reference, strict=True):
        assert_same_data(got, want)


@pytest.mark.slurm
def test_zoom_on_slurm_uses_one_set_of_worker_jobs(tmp_path, zoom_reference, no_jobs_left):
    spec = write_spec(tmp_path, ZOOM)
    out = sweep(
        "zoom", spec, "--frames", "2", "--store", "z.zarr", "--cluster", "slurm", "--profiles",
        LOCAL_PROFILES, "--profile", "local", "--jobs", "1", "--backend", "numpy",
        "--log-dir", "logs", "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # the worker jobs start once and serve every frame
    assert out.stderr.count("SLURM: 1 worker job(s), profile 'local'") == 1, out.stderr
    assert out.stderr.count("scaled down") == 1, out.stderr
    assert out.stdout.count("\nframe ") == 2, out.stdout
    assert_same_zoom(tmp_path / "z.zarr", zoom_reference)


@pytest.mark.slurm
def test_submit_a_zoom(tmp_path, zoom_reference, no_jobs_left):
    spec = write_spec(tmp_path, ZOOM)
    job = sweep(
        "submit", spec, "--frames", "2", "--store", "z.zarr", "--profiles", LOCAL_PROFILES,
        "--profile", "local", "--jobs", "1", "--log-dir", "logs", "--walltime", "00:10:00",
        "--backend", "numpy", cwd=tmp_path, check=True,
    ).stdout.strip()  # fmt: skip
    assert job.isdigit()

    def finished():
        out = slurm_command(["scontrol", "show", "job", "--oneliner", job])
        state = re.search(r"JobState=(\w+)", out).group(1)
        return state if state not in ("PENDING", "RUNNING", "COMPLETING") else None

    assert wait_for(finished, 240, f"job {job} to finish") == "COMPLETED"
    log = (tmp_path / "logs" / f"sweep-driver-{job}.out").read_text()
    assert "zoom store" in log and log.count("\nframe ") == 2, log
    assert_same_zoom(tmp_path / "z.zarr", zoom_reference)
