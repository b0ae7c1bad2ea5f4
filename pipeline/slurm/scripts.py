"""SLURM job scripts, rendered by pure functions, and checks of sbatch's time and memory
syntax.

:func:`render_worker_script` (one Dask worker job of a profile, as dask-jobqueue submits it)
and :func:`render_driver_script` (the driver itself in a batch job) take options and return
the text of a job script; nothing is submitted here.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.errors import UsageError
from pipeline.slurm.commands import parse_job_id, slurm_command
from pipeline.slurm.profiles import SlurmProfile

__all__ = [
    "check_memory",
    "check_walltime",
    "job_class",
    "render_driver_script",
    "render_worker_script",
    "with_runtime_defaults",
]


def job_class() -> type:
    """dask-jobqueue's ``SLURMJob`` with every sbatch/scancel call through
    :func:`~pipeline.slurm.commands.slurm_command`."""
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


def with_runtime_defaults(options: Mapping[str, Any], log_dir: str | None) -> dict[str, Any]:
    """Profile options plus this interpreter as the workers' ``python`` (unless the profile
    names one) and ``log_dir`` as the job logs' directory."""
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
    opts = with_runtime_defaults(profile.job_options, log_dir)
    return job_class()(scheduler, name=name, **opts).job_script()


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
    """``text`` if it is a SLURM time limit (sbatch --time), else a one-line error."""
    if not _SLURM_TIME.match(text) and text.upper() not in ("UNLIMITED", "INFINITE"):
        raise UsageError(
            f"{flag}: {text!r} is not a SLURM time; use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or "
            "D-HH:MM:SS (e.g. 24:00:00)"
        )
    return text


def check_memory(text: str, flag: str = "--driver-mem") -> str:
    """``text`` if it is a SLURM memory size (sbatch --mem), else a one-line error."""
    if not _SLURM_MEM.match(text):
        raise UsageError(f"{flag}: {text!r} is not a SLURM memory size; use e.g. 4G, 4096M")
    return text
