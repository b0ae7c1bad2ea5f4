"""``sweep draws PROCEDURE``: write draws files (spec field ``draws: {file: PATH}``) made by a
paper's own procedure: Sohl-Dickstein (2024)'s notebook (:mod:`pipeline.draws.sohl_dickstein`,
JAX) or D'Inverno et al. (2025)'s ``propagation_test``
(:mod:`pipeline.experiments.propagation.draws_torch`, torch)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.errors import PipelineError, UsageError

__all__ = ["PROCEDURES", "cmd_draws"]

PROCEDURES = ("sohl-dickstein2024", "dinverno2025")
"""Procedures ``sweep draws`` knows."""


def cmd_draws(args: argparse.Namespace) -> int:
    """Draw the arrays of ``args.procedure`` and write them (each file whole or not at all);
    print what was written."""
    if args.procedure == "sohl-dickstein2024":
        return _sohl_dickstein(args)
    return _dinverno(args)


def _sohl_dickstein(args: argparse.Namespace) -> int:
    from pipeline.draws.sohl_dickstein import write_all

    for flag in ("architecture", "depth"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag}: not an option of sohl-dickstein2024 (width 16, depth 2)")
    out = args.out or "draws"
    try:
        paths = write_all(
            out,
            width=args.width or 16,
            seed=args.seed,
            steps=tuple(sorted(set(args.steps))),
        )
    except OSError as e:
        raise PipelineError(f"--out: {out!r} cannot be written ({e.strerror})") from None
    for p in paths:
        print(p)
    return 0


def _dinverno(args: argparse.Namespace) -> int:
    from pipeline.experiments import draws_procedure

    procedure = draws_procedure("dinverno2025")

    for flag in ("architecture", "width", "depth", "out"):
        if getattr(args, flag) is None:
            name = "-o" if flag == "out" else "--" + flag
            raise UsageError(f"{name}: required by dinverno2025")
    out = Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"-o: {str(out)!r} does not end in .npz")
    if out.exists():
        raise UsageError(f"-o: {str(out)!r} exists; remove it or give another path")
    if not out.parent.is_dir():
        raise UsageError(f"-o: folder {str(out.parent)!r} does not exist")
    arrays = procedure.draw_dinverno(
        args.architecture, args.width, args.depth, args.seed, args.weight_tying
    )
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.npz")
    try:
        digest = procedure.write_draws(arrays, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {out}")
    for k, v in arrays.items():
        print(f"  {k:16s} {str(v.dtype):10s} {v.shape}")
    print(f"content sha256 {digest}")
    return 0
