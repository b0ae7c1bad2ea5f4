"""The errors a user of the pipeline can cause, under one root.

Every error that bad input can cause (a spec field, a command-line flag, a store path, a
backend that cannot run here, a SLURM profile) is a :class:`PipelineError`: a ``ValueError``
whose message is one line that names what was given and what is allowed. The ``sweep``
command prints exactly these as ``error: ...`` and exits with status 2; any other exception
is a bug in the pipeline and keeps its traceback.

Errors that are not the user's input (chunks that failed on a worker) are not here:
:class:`pipeline.run.report.SweepFailed` is a ``RuntimeError``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "MissingFileError",
    "PipelineError",
    "ResourceError",
    "SchedulerError",
    "SlurmCommandError",
    "SlurmError",
    "SpecError",
    "SpecMismatchError",
    "StoreChangedError",
    "StoreError",
    "StoreInUseError",
    "UsageError",
]


class PipelineError(ValueError):
    """Root of the user-facing errors: the message is one line, fit to print as it is.

    ``option``: the name of the library argument the message starts with (``jobs``,
    ``profile``, ``scheduler``; None when it names none). The library words its messages by
    its own argument names; the command line maps ``option`` to the flag that set it
    (:func:`pipeline.cli.flag_message`)."""

    def __init__(self, *args: object, option: str | tuple[str, ...] | None = None) -> None:
        super().__init__(*args)
        self.option = option


class SpecError(PipelineError):
    """A spec that cannot be run; the message names the field, the value and what is allowed.

    ``field`` is the dotted name of the field (``axes.alpha``, ``probes.pair.c0``), or
    ``<file>`` / ``<top>`` for the file itself.
    """

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        self.detail = message
        super().__init__(f"spec field '{field_name}': {message}")


class SpecMismatchError(PipelineError):
    """The store was made by a different spec; the message names the fields that differ."""


class StoreError(PipelineError):
    """A path that is not a (usable) sweep store, or a store that cannot be used as asked."""


class StoreChangedError(StoreError):
    """The store a run writes to was deleted or replaced (its identity token changed) while
    the run was going: the run's chunks are refused rather than written into another store."""


class StoreInUseError(StoreError):
    """Another live driver holds the store's lease; the message names its host and PID."""


class MissingFileError(PipelineError, FileNotFoundError):
    """A file named in the input (a spec, a profiles file) that does not exist."""


class UsageError(PipelineError):
    """A command-line flag or API argument with a value that is not allowed."""


class ResourceError(PipelineError):
    """A sweep that needs more than its workers have (e.g. memory per task); checked before
    anything is created."""


class BackendError(PipelineError):
    """An unknown backend name, or a backend that cannot run in this process (with why)."""


class SchedulerError(PipelineError):
    """A ``--scheduler`` address that is malformed or where no Dask scheduler answers."""


class SlurmError(PipelineError, RuntimeError):
    """SLURM cannot do what the sweep needs (no sbatch, a bad profile, jobs that never start).

    Also a ``RuntimeError``, which is what dask-jobqueue expects of a failing SLURM command.
    """


class SlurmCommandError(SlurmError):
    """A SLURM command exited with a non-zero status (or timed out); see
    :func:`pipeline.slurm.commands.slurm_command`."""

    def __init__(self, cmd: list[str], returncode: int | None, stdout: str, stderr: str) -> None:
        import shlex

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
