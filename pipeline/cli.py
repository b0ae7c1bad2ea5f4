"""The ``sweep`` command line (also ``python -m pipeline``).

    sweep run SPEC      run or resume a sweep, then print its summary
    sweep submit SPEC   run the sweep's driver as a SLURM batch job; print the job id
    sweep plan SPEC     sizes, chunks, FLOPs, bytes and peak memory, computing nothing
    sweep status STORE  done/total chunks and which are missing
    sweep summary STORE the λ_L sign-change table vs mean-field theory
    sweep zoom SPEC --frames K   a zoom sequence into the boundary
    sweep figures STORE [-o DIR] the figure the store's workflow declares (PNG and PDF)

SPEC may be a workflow file with ``scales:``; ``--scale NAME`` (run, plan, zoom) applies one.

Errors in the input print one line (``error: ...``) and exit with status 2; failed chunks
exit with status 1 after the finished ones are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.backend import BACKENDS
from pipeline.cluster import SlurmError

if TYPE_CHECKING:
    from pipeline.cluster import SlurmOptions

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
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

    status = sub.add_parser("status", help="done/total chunks of a store, and the missing ones")
    status.add_argument("store")
    status.add_argument("--all", action="store_true", help="list every missing chunk")

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


def _slurm_options(args: argparse.Namespace) -> SlurmOptions:
    from pipeline.cluster import SlurmOptions, load_profile, parse_adapt

    return SlurmOptions(
        profile=load_profile(args.profile, args.profiles),
        jobs=args.jobs,
        adapt=parse_adapt(args.adapt) if args.adapt else None,
        start_timeout=args.start_timeout,
        log_dir=os.path.abspath(args.log_dir) if args.log_dir else None,
    )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM from scancel or walltime: cancel worker jobs, then exit


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.execute import run_sweep
    from pipeline.store import open_sweep
    from pipeline.summary import format_summary
    from pipeline.workflow import load_workflow

    spec = load_workflow(args.spec, args.scale)
    for name in ("workers", "threads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name}: value {v} must be >= 1")
    if args.retries < 0:
        raise ValueError(f"--retries: value {args.retries} must be >= 0")
    slurm = None
    if args.cluster == "slurm":
        if args.scheduler or args.workers:
            raise ValueError("--cluster slurm: --scheduler and --workers do not apply")
        slurm = _slurm_options(args)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    elif args.jobs is not None or args.adapt is not None:
        raise ValueError("--jobs/--adapt: they need --cluster slurm")
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
    if not args.no_summary and spec.experiment == "propagation":
        print(format_summary(open_sweep(report.store)))
    elif not args.no_summary and spec.experiment == "trainability":
        from pipeline.summary import format_trainability

        print(format_trainability(open_sweep(report.store)))
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from pipeline.cluster import (
        check_memory,
        check_walltime,
        driver_argv,
        render_driver_script,
        submit_driver,
    )
    from pipeline.store import read_spec
    from pipeline.workflow import load_workflow

    spec = load_workflow(args.spec, args.scale)
    store = os.path.abspath(args.store or spec.store or "")
    if not (args.store or spec.store):
        raise ValueError("store: no output path (set 'store' in the spec or pass --store)")
    if (Path(store) / "zarr.json").exists() and (diff := read_spec(store).differences(spec)):
        raise ValueError(f"store {store!r} was made by a different spec; fields: {', '.join(diff)}")
    if args.threads < 1 or args.retries < 0:
        raise ValueError("--threads must be >= 1 and --retries >= 0")
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
    from pipeline.cluster import check_submittable

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


def _cmd_plan(args: argparse.Namespace) -> int:
    from pipeline.plan import make_plan
    from pipeline.workflow import gpu_hours_text, load_workflow

    spec = load_workflow(args.spec, args.scale)
    if args.store:
        spec = spec.with_store(args.store)
    plan = make_plan(spec)
    print(plan.describe(spec))
    if spec.experiment == "propagation":
        print(gpu_hours_text(plan.flops, spec.dtype))
    return 0


def _check_store(store: str) -> bool:
    """Raise ``ValueError`` unless ``store`` is a sweep or zoom store; True for a zoom store."""
    from pipeline.zoom import is_zoom_store

    if not (Path(store) / "zarr.json").exists():
        raise ValueError(f"store: {store!r} is not a sweep or zoom store (no zarr.json)")
    return is_zoom_store(store)


def _zoom_frames(store: str) -> list[str]:
    """The frame stores of a zoom store (``STORE/frame_000`` ...) that exist so far."""
    return sorted(str(p.parent) for p in Path(store).glob("frame_*/zarr.json"))


def _not_a_frame(store: str, command: str) -> ValueError:
    frames = _zoom_frames(store)
    last = frames[-1] if frames else f"{store}/frame_000"
    return ValueError(
        f"store: {store!r} is a zoom store ({len(frames)} frame(s)); {command} one frame, "
        f"e.g. sweep {command} {last}"
    )


def _chunks_done(store: str) -> tuple[int, int]:
    from pipeline.plan import iter_chunk_keys
    from pipeline.store import done_keys, read_spec

    keys = set(iter_chunk_keys(read_spec(store)))
    return len(keys & done_keys(store)), len(keys)


def _warn_if_partial(store: str) -> None:
    """Say on stderr when a store is not complete: its missing chunks read as NaN. Stores
    written by other means (no sweep spec, so no chunk bookkeeping) are not checked."""
    try:
        done, total = _chunks_done(store)
    except ValueError:
        return
    if done < total:
        print(
            f"note: {store}: only {done}/{total} chunks done; the missing ones read as NaN "
            f"(sweep status {store} lists them; sweep run resumes)",
            file=sys.stderr,
        )


def _status_lines(store: str, show_all: bool) -> list[str]:
    from pipeline.plan import chunk_coords, iter_chunk_keys, key_to_str
    from pipeline.store import done_keys, read_spec

    spec = read_spec(store)
    keys = list(iter_chunk_keys(spec))
    done = done_keys(store)
    missing = [k for k in keys if k not in done]
    n_done = len(keys) - len(missing)
    lines = [f"{store}: {n_done}/{len(keys)} chunks done ({100 * n_done / len(keys):.1f} %)"]
    if missing:
        show = missing if show_all else missing[:20]
        lines.append(f"missing chunks ({len(missing)}):")
        for k in show:
            c = chunk_coords(spec, k)
            where = ", ".join(f"{d}={_span(v)}" for d, v in c.items() if len(spec.axis(d)) > 1)
            lines.append(f"  {key_to_str(k)}  {where}")
        if len(show) < len(missing):
            lines.append(f"  ... and {len(missing) - len(show)} more (--all lists them)")
    return lines


def _cmd_status(args: argparse.Namespace) -> int:
    import zarr

    from pipeline.zoom import ZOOM_ATTR, frame_group

    if not _check_store(args.store):
        print("\n".join(_status_lines(args.store, args.all)))
        return 0
    n = int(zarr.open_group(args.store, mode="r").attrs[ZOOM_ATTR].get("frames", 0))
    print(f"{args.store}: zoom store, {n} frame(s) asked for")
    for k in range(n):
        frame = str(Path(args.store) / frame_group(k))
        if (Path(frame) / "zarr.json").exists():
            print("\n".join(_status_lines(frame, args.all)))
        else:
            after = f"after frame {k - 1}" if k else "first"
            print(f"{frame}: not started (sweep zoom computes it {after})")
    return 0


def _span(values: Sequence) -> str:
    fmt = lambda v: f"{v:.6g}" if isinstance(v, float) else f"{v}"  # noqa: E731
    return fmt(values[0]) if len(values) == 1 else f"{fmt(values[0])}..{fmt(values[-1])}"


def _cmd_summary(args: argparse.Namespace) -> int:
    from pipeline.store import open_sweep, read_spec
    from pipeline.summary import format_summary, format_trainability
    from pipeline.zoom import zoom_summary

    if _check_store(args.store):
        for frame in _zoom_frames(args.store):
            _warn_if_partial(frame)
        print(zoom_summary(args.store))
        return 0
    _warn_if_partial(args.store)
    ds = open_sweep(args.store)
    trainability = read_spec(args.store).experiment == "trainability"
    print(format_trainability(ds) if trainability else format_summary(ds))
    return 0


def _cmd_zoom(args: argparse.Namespace) -> int:
    from pipeline.workflow import load_workflow
    from pipeline.zoom import run_zoom, zoom_summary

    spec = load_workflow(args.spec, args.scale)
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


def _cmd_figures(args: argparse.Namespace) -> int:
    from pipeline.figures import render_store, store_notes

    for store in _zoom_frames(args.store) if _check_store(args.store) else [args.store]:
        _warn_if_partial(store)
    try:
        paths = render_store(args.store, args.out)  # a zoom store: its frames side by side
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in store_notes(args.store):
        print(line)
    for p in paths:
        print(f"written: {p}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from pipeline.analysis.report import analyze_store, format_analysis

    if _check_store(args.store):
        raise _not_a_frame(args.store, "analyze")
    _warn_if_partial(args.store)
    an = analyze_store(
        args.store, factor=args.factor, burn_in=args.burn_in, write=not args.no_write
    )
    print(format_analysis(an))
    if not args.no_write:
        print(f"written: group 'analysis' of {args.store}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sweep`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    handler = {
        "run": _cmd_run,
        "submit": _cmd_submit,
        "plan": _cmd_plan,
        "status": _cmd_status,
        "summary": _cmd_summary,
        "analyze": _cmd_analyze,
        "zoom": _cmd_zoom,
        "figures": _cmd_figures,
    }[args.command]
    try:
        rc = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return rc
    except (ValueError, TypeError, FileNotFoundError, SlurmError) as e:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
