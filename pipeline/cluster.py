"""SLURM: profiles, job scripts, one helper for every SLURM command, and the worker-job keeper.

Only this module (and :mod:`pipeline.execute`, which calls it) knows about SLURM. The pieces:

- :func:`slurm_command` runs every ``sbatch``/``scancel``/``squeue`` call, ours and
  dask-jobqueue's, and raises :class:`SlurmCommandError` (exit code, command, stdout, stderr)
  when one fails; :func:`parse_job_id` reads the id that ``sbatch --parsable`` prints.
- :func:`load_profile` reads a dask-jobqueue profile (``jobqueue: {NAME: {...}}``, the format
  of ``slurm/jobqueue.yaml`` and of ``~/.config/dask/jobqueue.yaml``).
- :func:`render_worker_script` and :func:`render_driver_script` are pure: options in, the text
  of a job script out.
- :func:`slurm_client` starts a SLURMCluster with one Dask worker per job, scales it, and hands
  back a ``check`` that the driver calls while it waits: a worker job that SLURM ended
  (scancel, walltime, preemption, node failure) is replaced by a new job, and a cluster on
  which no worker joins within ``start_timeout`` raises instead of waiting forever.
- :func:`submit_driver` puts ``sweep run --cluster slurm`` itself in a batch job.

Losing a worker job loses no results: Dask recomputes its in-flight chunks elsewhere, and a
chunk's done marker is written only after all of its data (``store.write_chunk``).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PROFILE_FILE",
    "SlurmCommandError",
    "SlurmError",
    "SlurmOptions",
    "SlurmProfile",
    "check_submittable",
    "load_profile",
    "parse_job_id",
    "queue_states",
    "render_driver_script",
    "render_worker_script",
    "slurm_client",
    "slurm_command",
    "submit_driver",
]

#: The profiles shipped with the project (``gpu``, ``cpu``), used when the user's Dask config
#: has no profile of the requested name.
PROFILE_FILE = Path(__file__).resolve().parent.parent / "slurm" / "jobqueue.yaml"

#: ``squeue`` states of a job that may still run a worker; any other state, or a job that
#: ``squeue`` no longer lists, has ended.
LIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING"}
)


class SlurmError(RuntimeError):
    """SLURM cannot do what the sweep needs (no sbatch, bad profile, jobs that never start)."""


class SlurmCommandError(SlurmError):
    """A SLURM command exited with a non-zero status (or timed out).

    ``returncode`` is None for a timeout. A ``RuntimeError``, so dask-jobqueue's own handling
    (it ignores a failing ``scancel`` of a job that is already gone) still applies.
    """

    def __init__(
        self, cmd: Sequence[str], returncode: int | None, stdout: str, stderr: str
    ) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited with status {returncode}"
        super().__init__(
            f"command `{shlex.join(self.cmd)}` {status}; "
            f"stdout: {_one_line(stdout)!r}; stderr: {_one_line(stderr)!r}"
        )

    @property
    def reason(self) -> str:
        """SLURM's own words (stderr, else stdout), on one line."""
        return _one_line(self.stderr) or _one_line(self.stdout) or "(no output)"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def slurm_command(cmd: Sequence[str], *, input: str | None = None, timeout: float = 120) -> str:
    """Run one SLURM client command and return its stdout.

    Every SLURM call of the package goes through here. Raises :class:`SlurmError` when the
    command is not on PATH and :class:`SlurmCommandError` (with exit code, command, stdout and
    stderr) when it fails or runs past ``timeout`` seconds.
    """
    cmd = [str(c) for c in cmd]
    if shutil.which(cmd[0]) is None:
        raise SlurmError(
            f"{cmd[0]}: not found on PATH; --cluster slurm needs the SLURM client commands "
            "(run on a login node of the cluster, or put SLURM's bin directory on PATH)"
        )
    try:
        out = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise SlurmCommandError(cmd, None, _text(e.stdout), _text(e.stderr)) from e
    if out.returncode != 0:
        raise SlurmCommandError(cmd, out.returncode, out.stdout, out.stderr)
    return out.stdout


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def parse_job_id(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``ID`` or ``ID;CLUSTER``)."""
    m = re.fullmatch(r"(\d+)(?:;\S+)?", stdout.strip())
    if m is None:
        raise SlurmError(f"sbatch --parsable printed {stdout.strip()!r}, expected a job id")
    return m.group(1)


def queue_states() -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` for this user's jobs that ``squeue`` still lists."""
    out = slurm_command(["squeue", "--me", "--noheader", "--format=%i|%T|%r"])
    states = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


# --------------------------------------------------------------------------- profiles


# Keys of a profile that are dask-jobqueue *cluster* options, not worker-job options.
_CLUSTER_KEYS = {"scheduler_options", "shared_temp_directory"}


@dataclass(frozen=True)
class SlurmProfile:
    """A resolved dask-jobqueue SLURM profile.

    ``options``: keyword arguments of ``dask_jobqueue.SLURMCluster`` (``name`` → ``job_name``,
    dashes → underscores), merged over dask-jobqueue's ``jobqueue.slurm`` defaults, Nones
    dropped. ``source``: the file or config it came from (for messages).
    """

    name: str
    source: str
    options: Mapping[str, Any]

    @property
    def job_options(self) -> dict[str, Any]:
        """The options of one worker job (what ``SLURMJob`` takes)."""
        return {k: v for k, v in self.options.items() if k not in _CLUSTER_KEYS}

    @property
    def partition(self) -> str | None:
        return self.options.get("queue")


def _profiles_in_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--profiles: no such file {str(path)!r}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"--profiles: {str(path)!r} is not valid YAML: {_one_line(str(e))}") from e
    profiles = raw.get("jobqueue") if isinstance(raw, dict) else None
    if not isinstance(profiles, dict):
        raise ValueError(
            f"--profiles: {str(path)!r} has no 'jobqueue:' mapping of profiles "
            "(expected jobqueue: {NAME: {cores: ..., memory: ...}})"
        )
    return profiles


def load_profile(name: str, profiles: str | Path | None = None) -> SlurmProfile:
    """Resolve profile ``name``.

    From the file ``profiles`` when given; otherwise from the Dask config (``jobqueue.NAME``
    in ``~/.config/dask/*.yaml`` or ``$DASK_CONFIG``), then from :data:`PROFILE_FILE`.
    Raises ``ValueError`` naming the profiles that exist when ``name`` is not found, or the
    keys that are wrong.
    """
    import dask.config
    import dask_jobqueue  # noqa: F401  (registers the jobqueue.* defaults)

    defaults = dict(dask.config.get("jobqueue.slurm"))
    if profiles is not None:
        found = _profiles_in_file(Path(profiles))
        raw, source = found.get(name), str(Path(profiles).resolve())
        if raw is None:
            raise ValueError(
                f"--profile: no profile {name!r} in {source}; it has: {', '.join(found) or 'none'}"
            )
    else:
        raw, source = dask.config.get(f"jobqueue.{name}", None), f"Dask config jobqueue.{name}"
        shipped = _profiles_in_file(PROFILE_FILE) if PROFILE_FILE.is_file() else {}
        if raw is None and name in shipped:
            raw, source = shipped[name], str(PROFILE_FILE)
        if raw is None:
            raise ValueError(
                f"--profile: no profile {name!r} in the Dask config (~/.config/dask, "
                f"$DASK_CONFIG) nor in {PROFILE_FILE}; shipped profiles: "
                f"{', '.join(shipped) or 'none'} (or point to a file with --profiles FILE)"
            )
    if not isinstance(raw, dict):
        raise ValueError(f"--profile {name!r} ({source}): expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise ValueError(
            f"--profile {name!r} ({source}): unknown keys {unknown}; dask-jobqueue's SLURM "
            f"keys are: {', '.join(sorted(defaults))}"
        )
    merged = {**defaults, **raw}
    for req in ("cores", "memory"):
        if merged.get(req) is None:
            raise ValueError(f"--profile {name!r} ({source}): '{req}' is required")
    if merged.get("processes") not in (None, 1):
        raise ValueError(
            f"--profile {name!r} ({source}): processes is {merged['processes']}; the sweep runs "
            "one worker process per job (use cores for threads, --gres=gpu:1 for its GPU)"
        )
    options = {}
    for key, value in merged.items():
        if value is None or key in ("extra", "env-extra", "job-extra", "header-skip"):
            continue  # deprecated spellings, None unless a user sets them
        options["job_name" if key == "name" else key.replace("-", "_")] = value
    options["processes"] = 1
    return SlurmProfile(name=name, source=source, options=options)


# --------------------------------------------------------------------------- job scripts


def _job_class() -> type:
    from dask_jobqueue.slurm import SLURMJob

    class SweepSLURMJob(SLURMJob):
        """A SLURMJob whose sbatch/scancel calls go through :func:`slurm_command`."""

        submit_command = "sbatch --parsable"

        @staticmethod
        async def _call(cmd: list[str], *, shell: bool = False, **kwargs: Any) -> str:
            return await asyncio.to_thread(slurm_command, cmd)

        def _job_id_from_submit_output(self, out: str) -> str:
            return parse_job_id(out)

    return SweepSLURMJob


def _with_runtime_defaults(options: Mapping[str, Any], log_dir: str | None) -> dict[str, Any]:
    out = dict(options)
    out.setdefault("python", sys.executable)  # same interpreter, so `pipeline` imports
    if log_dir is not None:
        out["log_directory"] = str(log_dir)
    return out


def render_worker_script(
    profile: SlurmProfile,
    scheduler: str = "tcp://SCHEDULER:8786",
    *,
    name: str = "worker",
    log_dir: str | None = None,
) -> str:
    """The batch script of one worker job of ``profile`` (as dask-jobqueue will submit it).

    Pure apart from dask-jobqueue creating ``log_dir`` when one is set.
    """
    opts = _with_runtime_defaults(profile.job_options, log_dir)
    return _job_class()(scheduler, name=name, **opts).job_script()


def render_driver_script(
    argv: Sequence[str],
    *,
    python: str,
    workdir: str,
    log_file: str,
    job_name: str = "sweep-driver",
    partition: str | None = None,
    account: str | None = None,
    walltime: str = "24:00:00",
    memory: str = "4G",
    prologue: Sequence[str] = (),
    extra_directives: Sequence[str] = (),
) -> str:
    """The batch script that runs ``python -m pipeline ARGV`` as the driver job.

    The driver needs one core: the Dask scheduler and the bookkeeping; the chunks run in the
    worker jobs it submits. ``exec`` makes the driver the job's main process, so SLURM's
    SIGTERM (scancel, walltime) reaches it and it cancels its worker jobs before exiting.
    """
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --output={log_file}",
        f"#SBATCH --chdir={workdir}",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=1",
        f"#SBATCH --mem={memory}",
        f"#SBATCH --time={walltime}",
    ]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if account:
        lines.append(f"#SBATCH --account={account}")
    lines += [f"#SBATCH {d}" for d in extra_directives]
    lines += ["", "set -euo pipefail", *prologue]
    lines.append(f"exec {shlex.join([python, '-m', 'pipeline', *argv])}")
    return "\n".join(lines) + "\n"


_SLURM_TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}){0,2})$")
_SLURM_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


def check_walltime(text: str, flag: str = "--walltime") -> str:
    """``text`` if it is a SLURM time limit (sbatch --time), else a one-line ``ValueError``."""
    if not _SLURM_TIME.match(text) and text.upper() not in ("UNLIMITED", "INFINITE"):
        raise ValueError(
            f"{flag}: {text!r} is not a SLURM time; use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or "
            "D-HH:MM:SS (e.g. 24:00:00)"
        )
    return text


def check_memory(text: str, flag: str = "--driver-mem") -> str:
    """``text`` if it is a SLURM memory size (sbatch --mem), else a one-line ``ValueError``."""
    if not _SLURM_MEM.match(text):
        raise ValueError(f"{flag}: {text!r} is not a SLURM memory size; use e.g. 4G, 4096M")
    return text


def check_submittable(profile: SlurmProfile) -> None:
    """Ask SLURM (``sbatch --test-only``) whether it accepts the profile's worker job.

    Catches an unknown partition or account, a gres the partition lacks, a walltime over the
    partition's limit, before a store is created or a job submitted.
    """
    script = render_worker_script(profile)
    try:
        slurm_command(["sbatch", "--test-only"], input=script, timeout=60)
    except SlurmCommandError as e:
        raise SlurmError(
            f"profile {profile.name!r} (partition {profile.partition or 'default'}): SLURM "
            f"refuses its worker job: {e.reason} (`sbatch --test-only`, exit {e.returncode})"
        ) from e


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class SlurmOptions:
    """How ``run_sweep`` uses SLURM: a profile, a fixed ``jobs`` count or ``adapt=(min, max)``.

    ``start_timeout``: seconds without any connected worker (at the start, or after every job
    has ended) before the sweep gives up with an error. ``poll_interval``: seconds between
    ``squeue`` checks for ended jobs. ``max_failed_starts``: jobs that may end before their
    worker ever joined (a broken prologue, say) before the sweep stops resubmitting.
    """

    profile: SlurmProfile
    jobs: int | None = None
    adapt: tuple[int, int] | None = None
    start_timeout: float = 600.0
    log_dir: str | None = None
    poll_interval: float = 5.0
    max_failed_starts: int = 3

    def __post_init__(self) -> None:
        if self.jobs is not None and self.adapt is not None:
            raise ValueError("--jobs and --adapt: give one of them, not both")
        if self.jobs is not None and self.jobs < 1:
            raise ValueError(f"--jobs: value {self.jobs} must be >= 1")
        if self.adapt is not None:
            lo, hi = self.adapt
            if not 0 <= lo <= hi or hi < 1:
                raise ValueError(f"--adapt: {lo}:{hi} needs 0 <= MIN <= MAX and MAX >= 1")
        if not self.start_timeout > 0:
            raise ValueError(f"--start-timeout: value {self.start_timeout} must be > 0")

    @property
    def n_jobs(self) -> int:
        return self.jobs if self.jobs is not None else (1 if self.adapt is None else 0)


def parse_adapt(text: str) -> tuple[int, int]:
    """``"MIN:MAX"`` → ``(MIN, MAX)``."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if m is None:
        raise ValueError(f"--adapt: {text!r} is not MIN:MAX (two integers, e.g. 0:8)")
    return int(m.group(1)), int(m.group(2))


@dataclass
class _JobKeeper:
    """Replaces worker jobs that SLURM ended; fails when no worker shows up in time."""

    cluster: Any
    options: SlurmOptions
    log: Callable[[str], None]
    last_worker: float = field(default_factory=time.monotonic)
    last_poll: float = 0.0
    joined: set[str] = field(default_factory=set)
    failed_starts: int = 0
    replaced: list[str] = field(default_factory=list)

    def connected(self) -> set[str]:
        return {str(w.get("name")) for w in self.cluster.scheduler_info["workers"].values()}

    def check(self) -> None:
        now = time.monotonic()
        connected = self.connected()
        if connected:
            self.last_worker = now
            self.joined |= connected
        if now - self.last_poll >= self.options.poll_interval:
            self.last_poll = now
            self._replace_ended(connected)
        if not connected and now - self.last_worker > self.options.start_timeout:
            raise SlurmError(
                f"no Dask worker joined within {self.options.start_timeout:g} s (--start-timeout); "
                f"worker jobs: {self._describe_jobs()}. Finished chunks are kept; run again "
                "when the partition has room, or raise --start-timeout"
            )

    def _describe_jobs(self) -> str:
        try:
            states = queue_states()
        except SlurmError as e:
            return f"(squeue failed: {e})"
        ids = [j.job_id for j in list(self.cluster.workers.values()) if j.job_id]
        if not ids:
            return "none submitted"
        return ", ".join(
            f"{i} {states[i][0]} ({states[i][1]})" if i in states else f"{i} ended" for i in ids
        )

    def _replace_ended(self, connected: set[str]) -> None:
        jobs = {str(n): j for n, j in list(self.cluster.workers.items())}
        if not jobs:
            return
        states = queue_states()
        ended = [
            n
            for n, j in jobs.items()
            if j.job_id
            and n not in connected
            and n in {str(s) for s in self.cluster.worker_spec}
            and states.get(j.job_id, ("GONE", ""))[0] not in LIVE_STATES
        ]
        for n in ended:
            job_id = jobs[n].job_id
            state = states.get(job_id, ("ended", ""))[0].lower()
            if n not in self.joined:
                self.failed_starts += 1
                if self.failed_starts > self.options.max_failed_starts:
                    raise SlurmError(
                        f"{self.failed_starts} worker jobs ended before their worker joined "
                        f"(last: job {job_id}, {state}); see the job logs "
                        f"({self.options.log_dir or 'slurm-JOBID.out in the working directory'})"
                    )
            self.log(f"worker job {job_id} ({n}) {state}; submitting a replacement")
            self.replaced.append(job_id)
        if ended:
            self.cluster.loop.add_callback(self._respawn, ended)

    def _respawn(self, names: list[str]) -> None:
        # On the cluster's event loop, like SpecCluster.scale: swap each ended job's spec for a
        # fresh one; _correct_state then cancels the old job (harmless) and submits the new one.
        # The new entry is made while the old one still exists, so that it gets a new name.
        spec = self.cluster.worker_spec
        for n in names:
            for key in [k for k in spec if str(k) == n]:
                spec.update(self.cluster.new_worker_spec())
                del spec[key]
        self.cluster._correct_state()


@contextmanager
def slurm_client(
    options: SlurmOptions, log: Callable[[str], None]
) -> Iterator[tuple[Any, Callable[[], None]]]:
    """Start a SLURMCluster for ``options`` and yield ``(client, check)``.

    Call ``check()`` every second or so while tasks are pending. On exit every worker job is
    cancelled (scaled down to zero) and the scheduler closed.
    """
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    opts = _with_runtime_defaults(options.profile.options, options.log_dir)
    sched = dict(opts.pop("scheduler_options", {}) or {})
    sched.setdefault("dashboard_address", ":0")
    try:
        cluster = SLURMCluster(
            job_cls=_job_class(), scheduler_options=sched, silence_logs=50, **opts
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"--profile {options.profile.name!r}: {_one_line(str(e))}") from e
    try:
        client = Client(cluster)
        try:
            if options.adapt is not None:
                lo, hi = options.adapt
                cluster.adapt(minimum_jobs=lo, maximum_jobs=hi)
                log(f"SLURM: adaptive {lo}..{hi} worker jobs, profile {options.profile.name!r}")
            else:
                cluster.scale(jobs=options.n_jobs)
                log(f"SLURM: {options.n_jobs} worker job(s), profile {options.profile.name!r}")
            log(f"scheduler {cluster.scheduler_address}, dashboard {client.dashboard_link}")
            keeper = _JobKeeper(cluster, options, log)
            yield client, keeper.check
        finally:
            client.close()
    finally:
        ids = [j.job_id for j in list(cluster.workers.values()) if j.job_id]
        cluster.close()
        if ids:
            log(f"SLURM: scaled down, worker jobs {', '.join(ids)} cancelled")


def driver_argv(
    spec: str,
    store: str,
    options: SlurmOptions,
    profiles: str | None,
    *,
    retries: int,
    backend: str,
    threads: int,
    scale: str | None = None,
) -> list[str]:
    """The ``sweep run`` arguments the driver job runs with (absolute paths)."""
    argv = ["run", spec, "--store", store, "--cluster", "slurm"]
    if scale is not None:
        argv += ["--scale", scale]
    argv += ["--profile", options.profile.name]
    if profiles is not None:
        argv += ["--profiles", profiles]
    if options.adapt is not None:
        argv += ["--adapt", f"{options.adapt[0]}:{options.adapt[1]}"]
    else:
        argv += ["--jobs", str(options.n_jobs)]
    argv += ["--start-timeout", f"{options.start_timeout:g}"]
    if options.log_dir is not None:
        argv += ["--log-dir", options.log_dir]
    argv += ["--retries", str(retries), "--backend", backend, "--threads", str(threads)]
    argv += ["--no-progress"]
    return argv


def submit_driver(script: str) -> str:
    """Submit the driver's batch script (on stdin) and return its job id."""
    return parse_job_id(slurm_command(["sbatch", "--parsable"], input=script, timeout=120))
