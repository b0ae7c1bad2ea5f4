"""The ``sweep`` command line's arguments: one sub-parser per command.

Every bad flag is one line, ``error: ...``, and exit status 2, like every other bad input:
argparse's own complaints (an unknown flag, ``--workers x``) through :class:`_Parser`, the
values' ranges through :func:`check_args`.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from pipeline.cli.draws import PROCEDURES
from pipeline.errors import UsageError
from pipeline.gpu.backend import BACKENDS
from pipeline.spec.limits import MAX_INDEX

__all__ = ["MAX_FRAMES", "build_parser", "check_args"]

MAX_FRAMES = 60
"""Most zoom frames: each halves the window, and after ~50 halvings a float64 window can no
longer tell its points apart."""

# (lowest, highest) value of each integer flag; None: unbounded
_INT_BOUNDS: dict[str, tuple[int, int | None]] = {
    "workers": (1, 1024),
    "threads": (1, 1024),
    "retries": (0, 100),
    "jobs": (1, 100_000),
    "frames": (1, MAX_FRAMES),
    "burn_in": (0, MAX_INDEX),
    "width": (1, 1_000_000),
    "depth": (1, MAX_INDEX),
    "seed": (0, 2**63 - 1),
}


_STORE_COMMANDS = ("status", "verify", "summary", "analyze", "figures")
"""Commands whose STORE is a positional argument."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """``--version``: the package version (and git revision of a source checkout), computed
    only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kw: object) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kw)  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        from pipeline.provenance import git_revision, package_version

        rev = git_revision()
        print(f"sweep (phase-sweep) {package_version()}" + (f", git {rev}" if rev else ""))
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``sweep``: one sub-command per stage (run, submit, plan, status, ...)."""
    p = _Parser(
        prog="sweep", description="Chunked, resumable phase-diagram sweeps of random networks."
    )
    p.add_argument("--version", action=_Version, help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run or resume a sweep")
    run.add_argument("spec", help="YAML sweep spec (or workflow file)")
    _add_scale_arg(run)
    run.add_argument("--store", help="output Zarr store (default: the spec's 'store')")
    _add_compute_args(run)
    run.add_argument("--no-summary", action="store_true", help="do not print the summary")
    run.add_argument(
        "--refine",
        action="store_true",
        help="adaptive boundary refinement with the spec's refine: block, or the defaults",
    )

    submit = sub.add_parser(
        "submit", help="run a sweep's (or a zoom's) driver as a SLURM batch job"
    )
    submit.add_argument("spec", help="YAML sweep spec (or workflow file)")
    _add_scale_arg(submit)
    submit.add_argument("--store", help="output Zarr store (default: the spec's 'store')")
    submit.add_argument(
        "--frames",
        type=int,
        metavar="K",
        help="submit a zoom of K frames (the driver runs `sweep zoom`) instead of a sweep",
    )
    _add_direction_args(submit, "submit a zoom out (the driver runs `sweep zoom --direction out`)")
    submit.add_argument("--retries", type=int, default=2, help="extra attempts per chunk")
    submit.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="auto (default: decided on each worker: cupy with a GPU, else numba when "
        "installed, else numpy), numpy, numba, cupy",
    )
    submit.add_argument("--threads", type=int, default=1, help="threads inside each task")
    _add_memory_arg(submit)
    _add_slurm_args(submit)
    submit.add_argument("--partition", help="partition of the driver job (default: the profile's)")
    submit.add_argument("--walltime", default="24:00:00", help="driver job walltime (24:00:00)")
    submit.add_argument("--driver-mem", default="4G", help="driver job memory (default 4G)")
    submit.add_argument("--dry-run", action="store_true", help="print the job script only")

    plan = sub.add_parser(
        "plan", help="show what a sweep will compute and a time estimate, writing nothing"
    )
    plan.add_argument("spec", help="YAML sweep spec (or workflow file)")
    _add_scale_arg(plan)
    plan.add_argument("--store", help="output store (default: the spec's 'store')")
    plan.add_argument(
        "--refine",
        action="store_true",
        help="adaptive boundary refinement with the spec's refine: block, or the defaults",
    )
    plan.add_argument(
        "--no-timing",
        action="store_true",
        help="skip the one-second calibration behind the time estimate",
    )

    status = sub.add_parser("status", help="done/total chunks of a store, and the missing ones")
    status.add_argument("store")
    status.add_argument("--all", action="store_true", help="list every missing chunk")

    verify = sub.add_parser(
        "verify", help="check that every done chunk's files exist, decode and match checksums"
    )
    verify.add_argument("store")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="un-mark the damaged chunks (and delete their files): the next run recomputes them",
    )

    summary = sub.add_parser(
        "summary",
        help="print a store's summary again: the λ_L sign changes vs mean field (propagation), "
        "converged shares and boundary dimensions (trainability), every frame (zoom)",
    )
    summary.add_argument("store")

    analyze = sub.add_parser(
        "analyze",
        help="boundary dimensions of a store; for propagation also critical lines vs mean "
        "field and regime areas; written to its 'analysis' group",
    )
    analyze.add_argument("store")
    analyze.add_argument(
        "--factor",
        type=float,
        default=10.0,
        help="critical: |λ_L| L <= log(factor), factor > 1 (default 10)",
    )
    analyze.add_argument(
        "--burn-in", type=int, default=0, help="λ over the layers after this recorded layer"
    )
    analyze.add_argument("--no-write", action="store_true", help="print only, write nothing")

    zoom = sub.add_parser(
        "zoom", help="a zoom sequence: frames halving around the boundary (run's options apply)"
    )
    zoom.add_argument(
        "spec", help="YAML sweep spec (its plane window is frame 0; with --direction out, the last)"
    )
    zoom.add_argument(
        "--frames", type=int, help=f"number of frames K, 1..{MAX_FRAMES} (zoom in only)"
    )
    _add_direction_args(zoom)
    _add_scale_arg(zoom)
    zoom.add_argument("--store", help="output zoom store (default: the spec's 'store')")
    _add_compute_args(zoom)
    zoom.add_argument("--no-summary", action="store_true", help="do not print the frames' lines")
    zoom.add_argument(
        "--refine",
        action="store_true",
        help="adaptive boundary refinement with the spec's refine: block, or the defaults",
    )

    figures = sub.add_parser(
        "figures", help="draw a store's figure: the one its workflow declares, or --kind"
    )
    figures.add_argument("store")
    figures.add_argument(
        "-o", "--out", help="output directory (default: STORE-figures beside the store)"
    )
    figures.add_argument(
        "--kind",
        help="figure kind to draw (default: the store's 'figure:'); e.g. frontier, "
        "trainability_grid, xi_c_map, phase_cv, effective_rank, eps_panel",
    )
    figures.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an option of the kind (VALUE is YAML: --option layers=[15,25]); repeatable",
    )
    draws = sub.add_parser(
        "draws",
        help="write a paper's own random draws (.npz) for a spec's draws: {file: PATH}",
    )
    draws.add_argument(
        "procedure",
        choices=PROCEDURES,
        help="sohl-dickstein2024: the notebook's three panel files (JAX); "
        "dinverno2025: their propagation_test network (torch)",
    )
    draws.add_argument(
        "-o",
        "--out",
        help="sohl-dickstein2024: output folder (default ./draws); "
        "dinverno2025: the .npz file to write (new, required)",
    )
    draws.add_argument(
        "--architecture", help="dinverno2025: dense, struct or conv (checked by the procedure)"
    )
    draws.add_argument(
        "--weight-tying",
        default="per_layer",
        help="dinverno2025: per_layer (default) or shared",
    )
    draws.add_argument("--width", type=int, help="width (sohl-dickstein2024: default 16)")
    draws.add_argument("--depth", type=int, help="dinverno2025: L, layers (required)")
    draws.add_argument("--seed", type=int, default=0, help="the paper's seed (default 0)")
    draws.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[500, 1000],
        help="sohl-dickstein2024: step counts of the minibatch tables (default 500 1000)",
    )
    return p


def _add_direction_args(p: argparse.ArgumentParser, out_help: str | None = None) -> None:
    """``--direction in|out``, ``--max-width W``, ``--growth G`` (``sweep zoom``, and
    ``sweep submit`` for a zoom's driver)."""
    p.add_argument(
        "--direction",
        choices=["in", "out"],
        default="in",
        help=out_help
        or "in (default): each frame halves around the boundary; out: from the spec's window "
        "out, widths doubled about its centre until >= --max-width (Sohl-Dickstein's sequence)",
    )
    p.add_argument(
        "--max-width",
        type=float,
        metavar="W",
        help="zoom out: the widest frame's smaller width reaches W (plane units; default 6)",
    )
    p.add_argument(
        "--growth",
        type=float,
        metavar="G",
        help="zoom out: factor between consecutive frames' widths, > 1 (default 2)",
    )


def _add_scale_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale", help="a scale the workflow file declares (e.g. smoke, paper); default: base"
    )


def _add_memory_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-memory-check",
        action="store_true",
        help="run even when one task needs more memory than a worker has (sweep plan: peak "
        "per task)",
    )


def _add_compute_args(p: argparse.ArgumentParser) -> None:
    """Where and how chunks are computed: the options of `sweep run` (and `sweep zoom`)."""
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a running Dask scheduler (default: a local cluster)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local cluster: worker processes (default: one per core, or per GPU with cupy)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads inside each task (default 1; results do not depend on it)",
    )
    p.add_argument(
        "--retries", type=int, default=2, help="extra attempts per failing chunk (default 2)"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="auto (default: cupy where a GPU works, else numba when installed, else numpy), "
        "numpy, numba (compiled CPU kernels, the 'cpu' extra), cupy",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_memory_arg(p)
    p.add_argument(
        "--cluster",
        choices=["local", "slurm"],
        default="local",
        help="local (default) or slurm: worker jobs through dask-jobqueue",
    )
    _add_slurm_args(p)


def _add_slurm_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SLURM (--cluster slurm, sweep submit)")
    g.add_argument("--profile", default="gpu", help="dask-jobqueue profile name (default gpu)")
    g.add_argument(
        "--profiles", metavar="FILE", help="profiles file (default: Dask config, slurm/)"
    )
    n = g.add_mutually_exclusive_group()
    n.add_argument("--jobs", type=int, help="fixed number of worker jobs (default 1)")
    n.add_argument("--adapt", metavar="MIN:MAX", help="adaptive number of worker jobs")
    g.add_argument(
        "--start-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="give up when no worker has joined for this long (default 600)",
    )
    g.add_argument("--log-dir", help="directory for the job logs")


def check_args(args: argparse.Namespace) -> None:
    """Raise :class:`~pipeline.errors.UsageError` (one line) for a flag value out of range:
    counts (:data:`_INT_BOUNDS`), ``--factor`` > 1, ``--start-timeout`` > 0, empty paths."""
    for name, (lo, hi) in _INT_BOUNDS.items():
        v = getattr(args, name, None)
        if v is None:
            continue
        flag = "--" + name.replace("_", "-")
        if v < lo:
            raise UsageError(f"{flag}: value {v} must be >= {lo}")
        if hi is not None and v > hi:
            raise UsageError(f"{flag}: value {v} is over the limit of {hi:,}")
    factor = getattr(args, "factor", None)
    if factor is not None and not (math.isfinite(factor) and factor > 1):
        raise UsageError(f"--factor: value {factor} must be a finite number > 1")
    for t in getattr(args, "steps", None) or ():
        if not 1 <= t <= 1_000_000:
            raise UsageError(f"--steps: value {t} is outside 1..1,000,000")
    timeout = getattr(args, "start_timeout", None)
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--start-timeout: value {timeout} must be > 0 seconds")
    positional = {"spec"} | ({"store"} if args.command in _STORE_COMMANDS else set())
    for name in ("store", "out", "profiles", "log_dir", "spec"):
        v = getattr(args, name, None)
        if v is not None and (not v.strip() or "\0" in v):
            flag = name.upper() if name in positional else "--" + name.replace("_", "-")
            raise UsageError(f"{flag}: {v!r} is not a path")
