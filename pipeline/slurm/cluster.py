"""SLURM worker jobs for a sweep: start them, keep them, and give up cleanly.

:func:`slurm_client` starts a dask-jobqueue ``SLURMCluster`` with one Dask worker per job,
scales it (a fixed number of jobs or adaptive), and hands back a ``check`` that the driver
calls while it waits: a worker job that SLURM ended (scancel, walltime, preemption, node
failure) is replaced by a new job, and a cluster on which no worker joins within
``start_timeout`` raises instead of waiting forever. :func:`check_submittable` asks SLURM
whether it accepts a profile's job before anything is created; :func:`submit_driver` puts the
driver itself in a batch job.

Losing a worker job loses no results: Dask recomputes its in-flight chunks elsewhere, and a
chunk's done marker is written only after all of its data
(:func:`pipeline.store.writer.write_chunk`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import SlurmCommandError, SlurmError, UsageError
from pipeline.slurm.commands import (
    LIVE_STATES,
    one_line,
    parse_job_id,
    queue_states,
    slurm_command,
)
from pipeline.slurm.profiles import SlurmProfile
from pipeline.slurm.scripts import job_class, render_worker_script, with_runtime_defaults

__all__ = [
    "SlurmOptions",
    "check_submittable",
    "parse_adapt",
    "slurm_client",
    "submit_driver",
]


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
            raise UsageError("jobs and adapt: give one of them, not both", option=("jobs", "adapt"))
        if self.jobs is not None and self.jobs < 1:
            raise UsageError(f"jobs: value {self.jobs} must be >= 1", option="jobs")
        if self.adapt is not None:
            lo, hi = self.adapt
            if not 0 <= lo <= hi or hi < 1:
                raise UsageError(
                    f"adapt: {lo}:{hi} needs 0 <= MIN <= MAX and MAX >= 1", option="adapt"
                )
        if not self.start_timeout > 0:
            raise UsageError(
                f"start_timeout: value {self.start_timeout} must be > 0", option="start_timeout"
            )

    @property
    def n_jobs(self) -> int:
        return self.jobs if self.jobs is not None else (1 if self.adapt is None else 0)


def parse_adapt(text: str) -> tuple[int, int]:
    """``"MIN:MAX"`` → ``(MIN, MAX)``."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if m is None:
        raise UsageError(f"adapt: {text!r} is not MIN:MAX (two integers, e.g. 0:8)", option="adapt")
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

    opts = with_runtime_defaults(options.profile.options, options.log_dir)
    sched = dict(opts.pop("scheduler_options", {}) or {})
    sched.setdefault("dashboard_address", ":0")
    try:
        cluster = SLURMCluster(
            job_cls=job_class(), scheduler_options=sched, silence_logs=50, **opts
        )
    except (TypeError, ValueError) as e:
        raise SlurmError(
            f"profile {options.profile.name!r}: {one_line(str(e))}", option="profile"
        ) from e
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


def submit_driver(script: str) -> str:
    """Submit the driver's batch script (on stdin) and return its job id."""
    return parse_job_id(slurm_command(["sbatch", "--parsable"], input=script, timeout=120))
