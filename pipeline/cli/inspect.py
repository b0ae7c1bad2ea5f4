"""The commands that read a store: ``sweep status``, ``summary``, ``analyze`` and ``figures``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError

__all__ = ["cmd_analyze", "cmd_figures", "cmd_status", "cmd_summary", "warn_if_partial"]


def _check_store(store: str) -> bool:
    """Raise :class:`StoreError` unless ``store`` is a sweep or zoom store; True for a zoom
    store."""
    from pipeline.engine.zoom import is_zoom_store

    if not (Path(store) / "zarr.json").exists():
        raise StoreError(f"store: {store!r} is not a sweep or zoom store (no zarr.json)")
    return is_zoom_store(store)


def _zoom_frames(store: str) -> list[str]:
    """The frame stores of a zoom store (``STORE/frame_000`` ...) that exist so far."""
    return sorted(str(p.parent) for p in Path(store).glob("frame_*/zarr.json"))


def _not_a_frame(store: str, command: str) -> StoreError:
    frames = _zoom_frames(store)
    last = frames[-1] if frames else f"{store}/frame_000"
    return StoreError(
        f"store: {store!r} is a zoom store ({len(frames)} frame(s)); {command} one frame, "
        f"e.g. sweep {command} {last}"
    )


def _chunks_done(store: str) -> tuple[int, int]:
    from pipeline.engine.plan import iter_chunk_keys
    from pipeline.engine.store import done_keys, read_spec

    keys = set(iter_chunk_keys(read_spec(store)))
    return len(keys & done_keys(store)), len(keys)


def warn_if_partial(store: str) -> None:
    """Say on stderr when a store is not complete: its missing chunks read as NaN. Stores
    written by other means (no sweep spec, so no chunk bookkeeping) are not checked."""
    try:
        done, total = _chunks_done(store)
    except StoreError:
        return
    if done < total:
        print(
            f"note: {store}: only {done}/{total} chunks done; the missing ones read as NaN "
            f"(sweep status {store} lists them; sweep run resumes)",
            file=sys.stderr,
        )


def _status_lines(store: str, show_all: bool) -> list[str]:
    from pipeline.engine.plan import chunk_coords, iter_chunk_keys, key_to_str
    from pipeline.engine.store import done_keys, read_spec

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


def cmd_status(args: argparse.Namespace) -> int:
    """``sweep status``: done/total chunks, and the missing ones (every frame of a zoom)."""
    import zarr

    from pipeline.engine.zoom import ZOOM_ATTR, frame_group

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


def cmd_summary(args: argparse.Namespace) -> int:
    """``sweep summary``: the store's experiment's summary, or every frame of a zoom."""
    from pipeline.engine.store import open_sweep, read_spec
    from pipeline.engine.zoom import zoom_summary
    from pipeline.experiments import get_experiment

    if _check_store(args.store):
        for frame in _zoom_frames(args.store):
            warn_if_partial(frame)
        print(zoom_summary(args.store))
        return 0
    warn_if_partial(args.store)
    ds = open_sweep(args.store)
    print(get_experiment(read_spec(args.store).experiment).summary(ds))
    return 0


def _figure_from_flags(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--kind K --option NAME=VALUE ...`` as a checked figure entry (None without --kind)."""
    from pipeline.errors import SpecError, UsageError
    from pipeline.figures.registry import check_figure_entry
    from pipeline.spec.yamlfile import parse_yaml

    if args.kind is None:
        if args.option:
            raise UsageError("--option: give the figure's --kind too")
        return None
    entry: dict[str, Any] = {"kind": args.kind}
    for text in args.option:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--option: {text!r} is not NAME=VALUE (e.g. layers=[15,25])")
        try:
            entry[name.strip()] = parse_yaml(value, f"--option {name.strip()}")
        except SpecError as e:
            raise UsageError(f"--option {name.strip()}: {e.detail}") from e
    try:
        return check_figure_entry(entry)
    except SpecError as e:
        flag = "--kind" if e.field == "figure.kind" else f"--option {e.field[7:]}"
        raise UsageError(f"{flag}: {e.detail}") from e


def cmd_figures(args: argparse.Namespace) -> int:
    """``sweep figures``: draw the store's declared figure, or ``--kind`` (a zoom store: its
    frames)."""
    from pipeline.figures import render_store, store_notes

    figure = _figure_from_flags(args)
    for store in _zoom_frames(args.store) if _check_store(args.store) else [args.store]:
        warn_if_partial(store)
    try:
        paths = render_store(args.store, args.out, figure)  # a zoom store: frames side by side
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in store_notes(args.store, figure):
        print(line)
    for p in paths:
        print(f"written: {p}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """``sweep analyze``: critical lines, regime areas, boundary dimensions of a store."""
    from pipeline.analysis.report import analyze_store, format_analysis

    if _check_store(args.store):
        raise _not_a_frame(args.store, "analyze")
    warn_if_partial(args.store)
    an = analyze_store(
        args.store, factor=args.factor, burn_in=args.burn_in, write=not args.no_write
    )
    print(format_analysis(an))
    if not args.no_write:
        print(f"written: group 'analysis' of {args.store}")
    return 0
