"""The ``sweep`` command line's arguments: one sub-parser per command."""

from __future__ import annotations

import argparse

from pipeline.gpu.backend import BACKENDS

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``sweep``: one sub-command per stage (run, submit, plan, status, ...)."""
    p = argparse.ArgumentParser(
        prog="sweep", description="Chunked, resumable phase-diagram sweeps of random networks."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run or resume a sweep")
    run.add_argument("spec", help="YAML sweep spec")
    _add_scale_arg(run)
    run.add_argument("--store", help="output Zarr store (default: the spec's 'store')")
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a running Dask scheduler (default: a local cluster)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local cluster: worker processes (default: one per core)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads inside each task (default 1; results do not depend on it)",
    )
    run.add_argument(
        "--retries", type=int, default=2, help="extra attempts per failing chunk (default 2)"
    )
    run.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="auto (default: cupy where a GPU is visible, else numpy), numpy, cupy",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-summary", action="store_true", help="do not print the summary")
    run.add_argument(
        "--refine",
        action="store_true",
        help="adaptive boundary refinement with the spec's refine: block, or the defaults",
    )
    run.add_argument(
        "--cluster",
        choices=["local", "slurm"],
        default="local",
        help="local (default) or slurm: worker jobs through dask-jobqueue",
    )
    _add_slurm_args(run)

    submit = sub.add_parser("submit", help="run a sweep's driver as a SLURM batch job")
    submit.add_argument("spec", help="YAML sweep spec")
    submit.add_argument("--store", help="output Zarr store (default: the spec's 'store')")
    submit.add_argument("--retries", type=int, default=2, help="extra attempts per chunk")
    submit.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="auto (default: decided on each worker), numpy, cupy",
    )
    _add_scale_arg(submit)
    submit.add_argument("--threads", type=int, default=1, help="threads inside each task")
    _add_slurm_args(submit)
    submit.add_argument("--partition", help="partition of the driver job (default: the profile's)")
    submit.add_argument("--walltime", default="24:00:00", help="driver job walltime (24:00:00)")
    submit.add_argument("--driver-mem", default="4G", help="driver job memory (default 4G)")
    submit.add_argument("--dry-run", action="store_true", help="print the job script only")

    plan = sub.add_parser("plan", help="show what a sweep will compute, computing nothing")
    plan.add_argument("spec")
    _add_scale_arg(plan)
    plan.add_argument("--store", help="output store (default: the spec's 'store')")
    plan.add_argument(
        "--refine",
        action="store_true",
        help="adaptive boundary refinement with the spec's refine: block, or the defaults",
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

    summary = sub.add_parser("summary", help="print the λ_L sign-change table of a store")
    summary.add_argument("store")

    analyze = sub.add_parser(
        "analyze", help="critical lines, regime areas and boundary dimensions of a store"
    )
    analyze.add_argument("store")
    analyze.add_argument(
        "--factor", type=float, default=10.0, help="critical: |λ_L| L <= log(factor) (default 10)"
    )
    analyze.add_argument(
        "--burn-in", type=int, default=0, help="λ over the layers after this recorded layer"
    )
    analyze.add_argument("--no-write", action="store_true", help="print only, write nothing")

    zoom = sub.add_parser("zoom", help="a zoom sequence: frames halving around the boundary")
    zoom.add_argument("spec", help="YAML sweep spec (its plane window is frame 0)")
    zoom.add_argument("--frames", type=int, required=True, help="number of frames K >= 1")
    _add_scale_arg(zoom)
    zoom.add_argument("--store", help="output zoom store (default: the spec's 'store')")
    zoom.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler")
    zoom.add_argument("--workers", type=int, default=None, help="local worker processes")
    zoom.add_argument("--retries", type=int, default=2, help="extra attempts per chunk")
    zoom.add_argument("--no-progress", action="store_true", help="no progress bar")
    zoom.add_argument(
        "--refine",
        action="store_true",
        help="adaptive boundary refinement with the spec's refine: block, or the defaults",
    )

    figures = sub.add_parser("figures", help="draw the figure a store's workflow declares")
    figures.add_argument("store")
    figures.add_argument(
        "-o", "--out", help="output directory (default: STORE-figures beside the store)"
    )
    return p


def _add_scale_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale", help="a scale the workflow file declares (e.g. smoke, paper); default: base"
    )


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
