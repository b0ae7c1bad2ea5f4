"""``sweep draws PROCEDURE``: write a draws file (spec field ``draws: {file: PATH}``) made by a
paper's own procedure (:mod:`pipeline.experiments.propagation.draws_torch`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.errors import UsageError

__all__ = ["PROCEDURES", "cmd_draws"]

PROCEDURES = ("dinverno2025",)
"""Procedures ``sweep draws`` knows: D'Inverno et al. (2025)'s ``propagation_test`` (torch)."""


def cmd_draws(args: argparse.Namespace) -> int:
    """Draw the arrays, write them to ``-o`` (a new file, written whole or not at all) and
    print the file, its arrays and their content hash."""
    from pipeline.experiments.propagation.draws_torch import draw_dinverno, write_draws

    out = Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"-o: {str(out)!r} does not end in .npz")
    if out.exists():
        raise UsageError(f"-o: {str(out)!r} exists; remove it or give another path")
    if not out.parent.is_dir():
        raise UsageError(f"-o: folder {str(out.parent)!r} does not exist")
    arrays = draw_dinverno(args.architecture, args.width, args.depth, args.seed, args.weight_tying)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.npz")
    try:
        digest = write_draws(arrays, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {out}")
    for k, v in arrays.items():
        print(f"  {k:16s} {str(v.dtype):10s} {v.shape}")
    print(f"content sha256 {digest}")
    return 0
