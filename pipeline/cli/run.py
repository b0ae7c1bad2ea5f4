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
    from pipeline.run.context import ClusterKind, RunContext
    from pipeline.run.zoom_out import ZoomOut
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


def _cluster(args: argparse.Namespace) -> ClusterKind:
    """The cluster kind the flags name: ``--cluster slurm`` (its profile and jobs), a
    ``--scheduler`` address, else a local cluster of ``--workers``; flags that do not fit
    the chosen cluster are one-line errors."""
    from pipeline.run.context import Local, Scheduler, Slurm

    if args.cluster == "slurm":
        if args.scheduler or args.workers:
            raise UsageError("--cluster slurm: --scheduler and --workers do not apply")
        return Slurm(_slurm_options(args))
    if args.jobs is not None or args.adapt is not None:
        raise UsageError("--jobs/--adapt: they need --cluster slurm")
    if args.log_dir is not None:
        raise UsageError("--log-dir: it names the SLURM job logs; it needs --cluster slurm")
    if args.scheduler is not None:
        return Scheduler(args.scheduler)
    return Local(args.workers)


def _context(args: argparse.Namespace) -> RunContext:
    """The run context of ``sweep run`` / ``sweep zoom``'s flags."""
    from pipeline.run.context import RunContext

    return RunContext(
        cluster=_cluster(args),
        backend=args.backend,
        retries=args.retries,
        threads=args.threads,
        progress=not args.no_progress,
        memory_check=not args.no_memory_check,
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
    from pipeline.experiments import get_experiment
    from pipeline.run.execute import run_sweep
    from pipeline.store.sweep import open_sweep

    spec = _load(args)
    report = run_sweep(spec, args.store, context=_context(args))
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


def _check_submit_store(store: str, spec: SweepSpec, rule: str | None) -> None:
    """Refuse, before submitting, a store that the driver would refuse: one made by another
    spec, a zoom store for a sweep, a sweep store for a zoom, or a zoom in for a zoom out
    (``rule``: the zoom's rule, :data:`~pipeline.run.zoom.ZOOM_IN_RULE` or
    :data:`~pipeline.run.zoom_out.ZOOM_OUT_RULE`; None for a sweep)."""
    import zarr

    from pipeline.run.zoom import ZOOM_IN_RULE, check_zoomable
    from pipeline.spec.sweep import parse_spec
    from pipeline.store.sweep import read_spec
    from pipeline.store.zoom import ZOOM_ATTR

    if rule is not None:
        check_zoomable(spec)
    if not (Path(store) / "zarr.json").exists():
        return
    zoom = zarr.open_group(store, mode="r").attrs.get(ZOOM_ATTR)
    if rule is None and zoom is not None:
        raise StoreError(
            f"store: {store!r} is a zoom store; submit a zoom with --frames K or --direction out"
        )
    if rule is not None and zoom is None:
        raise StoreError(f"store: {store!r} is a sweep store, not a zoom; use another path")
    if rule is not None and (had := zoom.get("rule", ZOOM_IN_RULE)) != rule:
        raise StoreError(
            f"store: {store!r} holds a zoom made by another rule ({had!r}, not {rule!r}); "
            "use another path"
        )
    old = parse_spec(zoom["base_spec"]) if zoom is not None else read_spec(store)
    if diff := old.differences(spec):
        raise SpecMismatchError(
            f"store {store!r} was made by a different spec; fields: {', '.join(diff)}"
        )


def cmd_submit(args: argparse.Namespace) -> int:
    """``sweep submit``: the driver (``sweep run --cluster slurm``, or ``sweep zoom`` with
    ``--frames`` or ``--direction out``) as a SLURM batch job."""
    from pipeline.run.context import RunContext, Slurm
    from pipeline.run.zoom import ZOOM_IN_RULE
    from pipeline.run.zoom_out import ZOOM_OUT_RULE
    from pipeline.slurm.cluster import submit_driver
    from pipeline.slurm.scripts import check_memory, check_walltime, render_driver_script
    from pipeline.spec.workflow import load_workflow

    zoom_out = args.direction == "out"
    if zoom_out or args.max_width is not None or args.growth is not None:
        _check_zoom_flags(args)  # as `sweep zoom`: --frames or --direction out, not both
    spec = load_workflow(args.spec, args.scale)
    if not (args.store or spec.store):
        raise StoreError("store: no output path (set 'store' in the spec or pass --store)")
    store = os.path.abspath(args.store or spec.store or "")
    rule = ZOOM_OUT_RULE if zoom_out else (ZOOM_IN_RULE if args.frames is not None else None)
    _check_submit_store(store, spec, rule)
    if zoom_out:
        _zoom_sequence(args, spec)  # the windows' own checks, before anything is submitted
    check_walltime(args.walltime)
    check_memory(args.driver_mem)
    slurm = _slurm_options(args)
    if not args.no_memory_check:
        RunContext(Slurm(slurm), backend=args.backend).check_memory(spec)
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
        frames=args.frames,
        memory_check=not args.no_memory_check,
        zoom_out=(args.max_width, args.growth) if zoom_out else None,
    )
    opts = slurm.profile.options
    what = "zoom" if rule is not None else "driver"
    script = render_driver_script(
        argv,
        python=sys.executable,
        workdir=os.getcwd(),
        log_file=os.path.join(log_dir, "sweep-driver-%j.out"),
        job_name=f"sweep-{spec.name or what}".replace(" ", "_"),
        partition=args.partition or opts.get("queue"),
        account=opts.get("account"),
        walltime=args.walltime,
        memory=args.driver_mem,
        prologue=opts.get("job_script_prologue", ()),
    )
    if args.dry_run:
        from pipeline.slurm.scripts import render_worker_script

        print(script, end="")  # stdout: the driver's script alone, so it can be saved and sent
        worker = render_worker_script(slurm.profile, "tcp://SCHEDULER:PORT", log_dir=None)
        print(
            f"# the script of each worker job the driver submits (profile {slurm.profile.name!r};"
            " the driver fills in its scheduler's address):\n" + worker,
            end="" if worker.endswith("\n") else "\n",
            file=sys.stderr,
        )
        return 0
    Slurm(slurm).check()
    os.makedirs(log_dir, exist_ok=True)
    job_id = submit_driver(script)
    print(job_id)
    print(
        f"submitted the sweep {what} as SLURM job {job_id}; log: "
        f"{os.path.join(log_dir, f'sweep-driver-{job_id}.out')}; progress: sweep status {store}",
        file=sys.stderr,
    )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """``sweep plan``: sizes, chunks, FLOPs, memory (and the experiment's own lines)."""
    from pipeline.run.plan import make_plan

    spec = _load(args)
    if args.store:
        spec = spec.with_store(args.store)
    plan = make_plan(spec)
    print(plan.describe(spec))
    if not args.no_timing:
        print(_time_line(spec, plan.flops, plan.n_chunks))
    return 0


def _time_line(spec: SweepSpec, flops: float, n_chunks: int) -> str:
    """``sweep plan``'s time estimate: the plan's FLOPs at the rate this machine's backend
    measured in about a second (:mod:`pipeline.run.calibrate`)."""
    from pipeline.gpu.backend import resolve_backend
    from pipeline.run.calibrate import calibrate
    from pipeline.run.progress import format_duration

    backend = resolve_backend("auto")
    cal = calibrate(spec, backend)
    one = cal.seconds(flops, n_chunks)
    if backend == "cupy":
        workers, who = 1, "one GPU"
    else:
        from dask.system import CPU_COUNT

        workers, who = CPU_COUNT, f"the {CPU_COUNT} local workers of `sweep run`"
    return (
        f"time (estimate)   {format_duration(one)} of one worker's compute, "
        f"{format_duration(one / workers)} on {who} ({backend} here at "
        f"{cal.flops_per_s / 1e9:.3g} GFLOP/s + {format_duration(cal.per_call_s)} per chunk, "
        f"measured on {cal.how}; I/O and cluster start-up not included)"
    )


def cmd_zoom(args: argparse.Namespace) -> int:
    """``sweep zoom``: a zoom sequence into the boundary (frames halving around it), on the
    same clusters and backends as ``sweep run``."""
    from pipeline.run.zoom import check_zoomable, run_zoom, zoom_summary

    _check_zoom_flags(args)
    spec = _load(args)
    check_zoomable(spec)  # before any cluster is started
    sequence = _zoom_sequence(args, spec)  # the windows' own checks, before any cluster too
    frames = args.frames if sequence is None else len(sequence.windows)
    run_zoom(spec, frames, args.store, context=_context(args), sequence=sequence)
    if not args.no_summary:
        print(zoom_summary(args.store or spec.store))
    return 0


def _check_zoom_flags(args: argparse.Namespace) -> None:
    """One-line :class:`UsageError` for ``sweep zoom`` flags that do not go together:
    ``--frames`` only and always for a zoom in, ``--max-width`` and ``--growth`` only for a
    zoom out (``--direction out``)."""
    if args.direction != "out":
        for flag in ("max_width", "growth"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')}: only with --direction out")
        if args.frames is None:
            raise UsageError("--frames: required for a zoom in (or use --direction out)")
    elif args.frames is not None:
        raise UsageError(
            f"--frames: value {args.frames} not allowed with --direction out (the window and "
            "--max-width/--growth fix the number of frames)"
        )


def _zoom_sequence(args: argparse.Namespace, spec: SweepSpec) -> ZoomOut | None:
    """The zoom-out sequence of ``spec``'s window that ``sweep zoom --direction out`` asks
    for (``--max-width``, ``--growth``; defaults 6 and 2), or None for a zoom in."""
    from pipeline.run.zoom_out import GROWTH, MAX_WIDTH, ZoomOut

    if args.direction != "out":
        return None
    mw = MAX_WIDTH if args.max_width is None else args.max_width
    g = GROWTH if args.growth is None else args.growth
    return ZoomOut(spec, max_width=mw, growth=g)


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
    frames: int | None = None,
    memory_check: bool = True,
    zoom_out: tuple[float | None, float | None] | None = None,
) -> list[str]:
    """The ``sweep run`` (or, with ``frames``, ``sweep zoom``; with ``zoom_out`` = (max
    width, growth), either None for the default, ``sweep zoom --direction out``) arguments
    the driver job runs with (absolute paths)."""
    if zoom_out is not None:
        argv = ["zoom", spec, "--direction", "out"]
        for flag, value in zip(("--max-width", "--growth"), zoom_out, strict=True):
            if value is not None:
                argv += [flag, f"{value:g}"]
    elif frames is None:
        argv = ["run", spec]
    else:
        argv = ["zoom", spec, "--frames", str(frames)]
    argv += ["--store", store, "--cluster", "slurm"]
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
    if not memory_check:
        argv += ["--no-memory-check"]
    argv += ["--no-progress"]
    return argv
