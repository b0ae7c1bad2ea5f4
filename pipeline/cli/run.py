"""The commands that compute: ``sweep run``, ``submit``, ``plan`` and ``zoom``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import SpecMismatchError, StoreError, UsageError

if TYPE_CHECKING:
    from pipeline.slurm.cluster import SlurmOptions
    from pipeline.spec.sweep import SweepSpec

__all__ = ["cmd_plan", "cmd_run", "cmd_submit", "cmd_zoom", "driver_argv"]


def _slurm_options(args: argparse.Namespace) -> SlurmOptions:
    from pipeline.slurm.cluster import SlurmOptions, parse_adapt
    from pipeline.slurm.profiles import load_profile

    return SlurmOptions(
        profile=load_profile(args.profile, args.profiles),
        jobs=args.jobs,
        adapt=parse_adapt(args.adapt) if args.adapt else None,
        start_timeout=args.start_timeout,
        log_dir=os.path.abspath(args.log_dir) if args.log_dir else None,
    )


def _load(args: argparse.Namespace) -> SweepSpec:
    """The spec of ``args.spec`` at ``args.scale``; with ``--refine``, refined (the spec's own
    ``refine:`` block, or the defaults when it has none)."""
    from pipeline.spec.sweep import with_refine
    from pipeline.spec.workflow import load_workflow

    spec = load_workflow(args.spec, args.scale)
    if getattr(args, "refine", False) and spec.refine is None:
        spec = with_refine(spec, True)
    return spec


def cmd_run(args: argparse.Namespace) -> int:
    """``sweep run``: run or resume a sweep, then print its experiment's summary."""
    from pipeline.engine.execute import run_sweep
    from pipeline.engine.store import open_sweep
    from pipeline.experiments import get_experiment

    spec = _load(args)
    for name in ("workers", "threads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name}: value {v} must be >= 1")
    if args.retries < 0:
        raise UsageError(f"--retries: value {args.retries} must be >= 0")
    slurm = None
    if args.cluster == "slurm":
        if args.scheduler or args.workers:
            raise UsageError("--cluster slurm: --scheduler and --workers do not apply")
        slurm = _slurm_options(args)  # SIGTERM (scancel, walltime) stops it: pipeline.cli
    elif args.jobs is not None or args.adapt is not None:
        raise UsageError("--jobs/--adapt: they need --cluster slurm")
    report = run_sweep(
        spec,
        args.store,
        scheduler=args.scheduler,
        n_workers=args.workers,
        retries=args.retries,
        backend=args.backend,
        threads=args.threads,
        progress=not args.no_progress,
        slurm=slurm,
    )
    if report.failed:
        print(
            f"{len(report.failed)} chunk(s) failed; finished chunks are kept. "
            f"Run the same command again to retry them.",
            file=sys.stderr,
        )
        return 1
    if not args.no_summary:
        print(get_experiment(spec.experiment).summary(open_sweep(report.store)))
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """``sweep submit``: the driver (``sweep run --cluster slurm``) as a SLURM batch job."""
    from pipeline.engine.store import read_spec
    from pipeline.slurm.cluster import check_submittable, submit_driver
    from pipeline.slurm.scripts import check_memory, check_walltime, render_driver_script
    from pipeline.spec.workflow import load_workflow

    spec = load_workflow(args.spec, args.scale)
    store = os.path.abspath(args.store or spec.store or "")
    if not (args.store or spec.store):
        raise StoreError("store: no output path (set 'store' in the spec or pass --store)")
    if (Path(store) / "zarr.json").exists() and (diff := read_spec(store).differences(spec)):
        raise SpecMismatchError(
            f"store {store!r} was made by a different spec; fields: {', '.join(diff)}"
        )
    if args.threads < 1 or args.retries < 0:
        raise UsageError("--threads must be >= 1 and --retries >= 0")
    check_walltime(args.walltime)
    check_memory(args.driver_mem)
    slurm = _slurm_options(args)
    if slurm.log_dir is None:  # the driver's worker jobs log beside it
        slurm = dataclasses.replace(slurm, log_dir=os.path.abspath("slurm-logs"))
    log_dir = slurm.log_dir
    profiles = os.path.abspath(args.profiles) if args.profiles else None
    argv = driver_argv(
        os.path.abspath(args.spec),
        store,
        slurm,
        profiles,
        retries=args.retries,
        backend=args.backend,
        threads=args.threads,
        scale=args.scale,
    )
    opts = slurm.profile.options
    script = render_driver_script(
        argv,
        python=sys.executable,
        workdir=os.getcwd(),
        log_file=os.path.join(log_dir, "sweep-driver-%j.out"),
        job_name=f"sweep-{spec.name or 'driver'}".replace(" ", "_"),
        partition=args.partition or opts.get("queue"),
        account=opts.get("account"),
        walltime=args.walltime,
        memory=args.driver_mem,
        prologue=opts.get("job_script_prologue", ()),
    )
    if args.dry_run:
        print(script, end="")
        return 0
    check_submittable(slurm.profile)
    os.makedirs(log_dir, exist_ok=True)
    job_id = submit_driver(script)
    print(job_id)
    print(
        f"submitted the sweep driver as SLURM job {job_id}; log: "
        f"{os.path.join(log_dir, f'sweep-driver-{job_id}.out')}; progress: sweep status {store}",
        file=sys.stderr,
    )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """``sweep plan``: sizes, chunks, FLOPs, memory (and the experiment's own lines)."""
    from pipeline.engine.plan import make_plan

    spec = _load(args)
    if args.store:
        spec = spec.with_store(args.store)
    print(make_plan(spec).describe(spec))
    return 0


def cmd_zoom(args: argparse.Namespace) -> int:
    """``sweep zoom``: a zoom sequence into the boundary (frames halving around it)."""
    from pipeline.engine.zoom import run_zoom, zoom_summary

    spec = _load(args)
    run_zoom(
        spec,
        args.frames,
        args.store,
        scheduler=args.scheduler,
        n_workers=args.workers,
        retries=args.retries,
        progress=not args.no_progress,
    )
    print(zoom_summary(args.store or spec.store))
    return 0


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
