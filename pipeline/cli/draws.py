"""``sweep draws PAPER -o FOLDER``: write a paper's own random draws (:mod:`pipeline.draws`)."""

from __future__ import annotations

import argparse

from pipeline.errors import PipelineError

__all__ = ["cmd_draws"]


def cmd_draws(args: argparse.Namespace) -> int:
    """Write the draws files of ``args.paper`` into ``args.out``; print each path."""
    if args.paper == "sohl-dickstein2024":
        from pipeline.draws.sohl_dickstein import write_all

        try:
            paths = write_all(
                args.out, width=args.width, seed=args.seed, steps=tuple(sorted(set(args.steps)))
            )
        except OSError as e:
            raise PipelineError(f"--out: {args.out!r} cannot be written ({e.strerror})") from None
    else:  # the parser's choices keep this out
        raise PipelineError(f"draws: unknown paper {args.paper!r}")
    for p in paths:
        print(p)
    return 0
