"""One helper for every SLURM command, and what ``squeue`` says about jobs.

:func:`slurm_command` runs every ``sbatch``/``scancel``/``squeue`` call, ours and
dask-jobqueue's, and raises :class:`~pipeline.errors.SlurmCommandError` (exit code, command,
stdout, stderr) when one fails; :func:`parse_job_id` reads the id that ``sbatch --parsable``
prints; :func:`queue_states` reads this user's jobs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence

from pipeline.errors import SlurmCommandError, SlurmError

__all__ = ["LIVE_STATES", "one_line", "parse_job_id", "queue_states", "slurm_command"]

#: ``squeue`` states of a job that may still run a worker; any other state, or a job that
#: ``squeue`` no longer lists, has ended.
LIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING"}
)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
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
