"""The ``sweep`` command line (also ``python -m pipeline``).

    sweep run SPEC      run or resume a sweep, then print its summary
    sweep submit SPEC   run the sweep's driver as a SLURM batch job; print the job id
    sweep plan SPEC     sizes, chunks, FLOPs, bytes, peak memory and a time estimate
    sweep status STORE  done/total chunks, rate and ETA, and which are missing
    sweep verify STORE [--repair]  check every done chunk's files; un-mark damaged ones
    sweep summary STORE the summary of a store (its experiment's)
    sweep analyze STORE critical lines, regime areas and boundary dimensions
    sweep zoom SPEC --frames K   a zoom sequence into the boundary (run's options apply)
    sweep zoom SPEC --direction out  the zoom-out sequence of the spec's window (the notebook's)
    sweep figures STORE [-o DIR] [--kind K] the store's figure (PNG and PDF)
    sweep draws dinverno2025 --architecture A --width N --depth L -o F.npz  a draws file
    sweep --version     the package version

SPEC may be a workflow file with ``scales:``; ``--scale NAME`` (run, plan, zoom) applies one.

Errors in the input (:class:`~pipeline.errors.PipelineError`) print one line
(``error: ...``) and exit with status 2; any other exception is a bug and keeps its
traceback. Failed chunks exit with status 1 after the finished ones are kept. An interrupt
(SIGINT: Ctrl-C; SIGTERM: ``kill``, ``scancel``, a job's walltime) stops submitting, cancels
what is in flight, closes the cluster and exits with 130 and one line on stderr, within a
few seconds whatever the sweep's size; further signals while it cleans up are ignored.

* :mod:`.parser`   the arguments of every command
* :mod:`.run`      run, submit, plan, zoom
* :mod:`.inspect`  status, verify, summary, analyze, figures
* :mod:`.draws`    draws
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["FLAGS", "flag_message", "main"]

# command -> (module, function), imported when the command runs: the modules load NumPy,
# Zarr and the engine, and `main` handles Ctrl-C from before they load (a callable here is
# called as it is)
_COMMANDS: dict[str, Any] = {
    "run": ("pipeline.cli.run", "cmd_run"),
    "submit": ("pipeline.cli.run", "cmd_submit"),
    "plan": ("pipeline.cli.run", "cmd_plan"),
    "status": ("pipeline.cli.inspect", "cmd_status"),
    "verify": ("pipeline.cli.inspect", "cmd_verify"),
    "summary": ("pipeline.cli.inspect", "cmd_summary"),
    "analyze": ("pipeline.cli.inspect", "cmd_analyze"),
    "zoom": ("pipeline.cli.run", "cmd_zoom"),
    "figures": ("pipeline.cli.inspect", "cmd_figures"),
    "draws": ("pipeline.cli.draws", "cmd_draws"),
}


def _command(name: str) -> Any:
    """The function of command ``name`` (imported on first use)."""
    import importlib

    cmd = _COMMANDS[name]
    if isinstance(cmd, tuple):
        cmd = getattr(importlib.import_module(cmd[0]), cmd[1])
    return cmd


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` once (in the main thread, where the
    driver waits); later ones are ignored while the run cleans up. Restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread: leave them alone
        return
    caught: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if caught:
            return  # already stopping: let the cleanup finish
        caught.append(signum)
        _quiet_cleanup()
        # a KeyboardInterrupt raised inside a gc callback or a __del__ is printed as
        # "Exception ignored" and lost, and the run would go on: until it is seen unwinding
        # the main thread, raise it again every half second
        signal.setitimer(signal.ITIMER_REAL, 0.5, 0.5)
        raise KeyboardInterrupt

    def again(signum: int, frame: object) -> None:
        if sys.exc_info()[0] is None:  # not unwinding: the first one was swallowed
            raise KeyboardInterrupt

    watched = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, handler) for s in watched}
    old[signal.SIGALRM] = signal.signal(signal.SIGALRM, again)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, h in old.items():
            signal.signal(s, h)


def _quiet_cleanup() -> None:
    """Once interrupted, the closing client and cluster log what they cancel (``Task
    exception was never retrieved ... AllExit``, a nanny that failed to start): the one
    ``interrupted:`` line says what matters, so their loggers are silenced."""
    import logging

    for name in ("asyncio", "distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


FLAGS = {
    "adapt": "--adapt",
    "architecture": "--architecture",
    "depth": "--depth",
    "frames": "--frames",
    "growth": "--growth",
    "jobs": "--jobs",
    "max_width": "--max-width",
    "profile": "--profile",
    "profiles": "--profiles",
    "scheduler": "--scheduler",
    "seed": "--seed",
    "start_timeout": "--start-timeout",
    "weight_tying": "--weight-tying",
    "width": "--width",
}
"""Library argument name -> the flag of ``sweep`` that sets it (for :func:`flag_message`)."""


def flag_message(error: PipelineError) -> str:
    """``error``'s message as the command line says it: the library argument names it starts
    with (``error.option``: ``jobs``, ``profile 'gpu'``, ``jobs and adapt``) become the flags
    that set them (``--jobs``, ...); other messages are printed as they are."""
    text = str(error)
    option = getattr(error, "option", None)
    if not option:
        return text
    head, sep, rest = text.partition(": ")
    for name in (option,) if isinstance(option, str) else option:
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        head = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flag, head, count=1)
    return head + sep + rest


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sweep`` console script; returns the exit status."""
    try:
        with _interrupts():  # from the start: a Ctrl-C while the modules load is one line too
            from pipeline.cli.parser import build_parser, check_args

            args = build_parser().parse_args(argv)
            check_args(args)
            _expand_paths(args)
            rc = _command(args.command)(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return rc
    except PipelineError as e:
        print(f"error: {flag_message(e)}", file=sys.stderr)
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
