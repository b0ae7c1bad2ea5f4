"""The ``sweep`` command line (also ``python -m pipeline``).

    sweep run SPEC      run or resume a sweep, then print its summary
    sweep submit SPEC   run the sweep's driver as a SLURM batch job; print the job id
    sweep plan SPEC     sizes, chunks, FLOPs, bytes and peak memory, computing nothing
    sweep status STORE  done/total chunks and which are missing
    sweep summary STORE the summary of a store (its experiment's)
    sweep analyze STORE critical lines, regime areas and boundary dimensions
    sweep zoom SPEC --frames K   a zoom sequence into the boundary (run's options apply)
    sweep figures STORE [-o DIR] [--kind K] the store's figure (PNG and PDF)
    sweep --version     the package version

SPEC may be a workflow file with ``scales:``; ``--scale NAME`` (run, plan, zoom) applies one.

Errors in the input (:class:`~pipeline.errors.PipelineError`) print one line
(``error: ...``) and exit with status 2; any other exception is a bug and keeps its
traceback. Failed chunks exit with status 1 after the finished ones are kept; an interrupt
exits with 130.

* :mod:`.parser`   the arguments of every command
* :mod:`.run`      run, submit, plan, zoom
* :mod:`.inspect`  status, summary, analyze, figures
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pipeline.cli.inspect import cmd_analyze, cmd_figures, cmd_status, cmd_summary
from pipeline.cli.parser import build_parser, check_args
from pipeline.cli.run import cmd_plan, cmd_run, cmd_submit, cmd_zoom
from pipeline.errors import PipelineError

__all__ = ["main"]

_COMMANDS = {
    "run": cmd_run,
    "submit": cmd_submit,
    "plan": cmd_plan,
    "status": cmd_status,
    "summary": cmd_summary,
    "analyze": cmd_analyze,
    "zoom": cmd_zoom,
    "figures": cmd_figures,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sweep`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        _expand_paths(args)
        rc = _COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return rc
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished chunks are kept; run the same command to resume", file=sys.stderr
        )
        return 130
    except BrokenPipeError:  # e.g. `sweep status STORE | head`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as the shell reports a writer ended by SIGPIPE


def _expand_paths(args: object) -> None:
    """``~`` in path arguments, expanded once, here (``--store=~/x.zarr`` is not expanded
    by the shell)."""
    for name in ("spec", "store", "out", "profiles", "log_dir"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, os.path.expanduser(value))
