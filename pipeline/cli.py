"""The ``sweep`` command line (also ``python -m pipeline``).

    sweep run SPEC      run or resume a sweep, then print its summary
    sweep plan SPEC     sizes, chunks, FLOPs, bytes and peak memory, computing nothing
    sweep status STORE  done/total chunks and which are missing
    sweep summary STORE the λ_L sign-change table vs mean-field theory

Errors in the input print one line (``error: ...``) and exit with status 2; failed chunks
exit with status 1 after the finished ones are kept.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sweep", description="Chunked, resumable phase-diagram sweeps of random networks."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run or resume a sweep")
    run.add_argument("spec", help="YAML sweep spec")
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
    run.add_argument("--backend", default="auto", help="auto (default) or numpy")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-summary", action="store_true", help="do not print the summary")

    plan = sub.add_parser("plan", help="show what a sweep will compute, computing nothing")
    plan.add_argument("spec")
    plan.add_argument("--store", help="output store (default: the spec's 'store')")

    status = sub.add_parser("status", help="done/total chunks of a store, and the missing ones")
    status.add_argument("store")
    status.add_argument("--all", action="store_true", help="list every missing chunk")

    summary = sub.add_parser("summary", help="print the λ_L sign-change table of a store")
    summary.add_argument("store")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.execute import run_sweep
    from pipeline.spec import load_spec
    from pipeline.store import open_sweep
    from pipeline.summary import format_summary

    spec = load_spec(args.spec)
    for name in ("workers", "threads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name}: value {v} must be >= 1")
    if args.retries < 0:
        raise ValueError(f"--retries: value {args.retries} must be >= 0")
    report = run_sweep(
        spec,
        args.store,
        scheduler=args.scheduler,
        n_workers=args.workers,
        retries=args.retries,
        backend=args.backend,
        threads=args.threads,
        progress=not args.no_progress,
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
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from pipeline.plan import make_plan
    from pipeline.spec import load_spec

    spec = load_spec(args.spec)
    if args.store:
        spec = spec.with_store(args.store)
    print(make_plan(spec).describe(spec))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from pipeline.plan import chunk_coords, iter_chunk_keys, key_to_str
    from pipeline.store import done_keys, read_spec

    if not (Path(args.store) / "zarr.json").exists():
        raise ValueError(f"store: {args.store!r} is not a sweep store (no zarr.json)")
    spec = read_spec(args.store)
    keys = list(iter_chunk_keys(spec))
    done = done_keys(args.store)
    missing = [k for k in keys if k not in done]
    n_done = len(keys) - len(missing)
    print(f"{args.store}: {n_done}/{len(keys)} chunks done ({100 * n_done / len(keys):.1f} %)")
    if missing:
        show = missing if args.all else missing[:20]
        print(f"missing chunks ({len(missing)}):")
        for k in show:
            c = chunk_coords(spec, k)
            where = ", ".join(f"{d}={_span(v)}" for d, v in c.items() if len(spec.axis(d)) > 1)
            print(f"  {key_to_str(k)}  {where}")
        if len(show) < len(missing):
            print(f"  ... and {len(missing) - len(show)} more (--all lists them)")
    return 0


def _span(values: Sequence) -> str:
    return f"{values[0]}" if len(values) == 1 else f"{values[0]}..{values[-1]}"


def _cmd_summary(args: argparse.Namespace) -> int:
    from pipeline.store import open_sweep
    from pipeline.summary import format_summary

    print(format_summary(open_sweep(args.store)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sweep`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    handler = {"run": _cmd_run, "plan": _cmd_plan, "status": _cmd_status, "summary": _cmd_summary}[
        args.command
    ]
    try:
        return handler(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished chunks are kept; run the same command to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
