"""The commands that read a store: ``sweep status``, ``verify``, ``summary``, ``analyze`` and
``figures``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError, StoreError

if TYPE_CHECKING:
    from pipeline.spec.sweep import SweepSpec
    from pipeline.store.markers import DoneState

__all__ = [
    "cmd_analyze",
    "cmd_figures",
    "cmd_status",
    "cmd_summary",
    "cmd_verify",
    "partial_summary",
    "warn_if_partial",
]


def _check_store(store: str) -> bool:
    """Raise :class:`StoreError` unless ``store`` is a sweep or zoom store; True for a zoom
    store (:class:`pipeline.store.handle.Store`)."""
    from pipeline.store.handle import Store

    return Store(store).check().is_zoom


def _zoom_frames(store: str) -> list[str]:
    """The frame stores of a zoom store (``STORE/frame_000`` ...) that exist so far."""
    from pipeline.store.zoom import frame_stores

    return frame_stores(store)


def _missing_files_line(store: str, spec: SweepSpec, state: DoneState) -> str | None:
    """A warning when done chunks of the store have missing files (checked on a sample of at
    most 2000 done chunks: ``sweep verify`` checks them all), else None."""
    from pipeline.store.grid import key_to_str
    from pipeline.store.verify import missing_files

    missing, checked = missing_files(store, spec, state)
    if not missing:
        return None
    chunks = sorted({k for k, _ in missing})
    key, var = missing[0]
    sample = "" if checked == state.n_done else f" (of {checked} checked)"
    return (
        f"warning: {store}: {len(chunks)} done chunk(s){sample} have missing files "
        f"(first: chunk {key_to_str(key)}, variable {var}); they read as NaN. "
        f"sweep verify {store} --repair, then sweep run, recomputes them"
    )


def warn_if_partial(store: str) -> None:
    """Say on stderr when a store is not complete (its missing chunks read as NaN), or when
    done chunks have missing files. Stores written by other means (no sweep spec, so no chunk
    bookkeeping) are not checked."""
    from pipeline.store.sweep import done_state, read_spec

    try:
        spec = read_spec(store)
    except StoreError:
        return
    state = done_state(store, spec)
    for note in state.notes:  # a damaged index or token: why chunks may count as missing
        print(f"note: {note}", file=sys.stderr)
    if state.n_done < state.total:
        print(
            f"note: {store}: only {state.n_done}/{state.total} chunks done; the missing ones "
            f"read as NaN (sweep status {store} lists them; sweep run resumes)",
            file=sys.stderr,
        )
    line = _missing_files_line(store, spec, state)
    if line:
        print(line, file=sys.stderr)


def _rate_line(store: str, state: DoneState, running: bool) -> str:
    """The rate of the store's recent chunk finishes and the time left at that rate (without
    a run holding the store: what the rest would take at that rate, not an ETA)."""
    import time

    from pipeline.run.progress import done_times, format_duration, rate_eta
    from pipeline.store.identity import token_state
    from pipeline.store.sweep import index_token

    token = token_state(store)[0] or index_token(store)  # as done_state reads the index
    times = done_times(store, state.counts, token)
    est = rate_eta(times, state.total - state.n_done)
    line = est.line()
    if est.last == est.last:  # not NaN: say how long ago the last chunk finished
        line += f"; last chunk finished {format_duration(max(time.time() - est.last, 0))} ago"
    if not running and est.rate > 0:
        line = line.replace(", ETA ", ", no run holds the store now: the rest would take ", 1)
    return line


def partial_summary(store: str, text: str) -> str:
    """A summary ``text`` of ``store`` with ``partial: k/n chunks ...`` as its first line
    when the store is not complete (the result says so, not only stderr)."""
    from pipeline.store.partial import partial_label

    label = partial_label(store)
    if label is None:
        return text
    return f"{label} (the missing ones read as NaN: these numbers are of part of the grid)\n{text}"


def _status_lines(store: str, show_all: bool) -> list[str]:
    from pipeline.store.grid import describe_chunk, flat_to_key, key_to_str
    from pipeline.store.lease import holder
    from pipeline.store.sweep import done_state, read_spec

    spec = read_spec(store)
    state = done_state(store, spec)
    n_done, total = state.n_done, state.total
    lines = [f"{store}: {n_done}/{total} chunks done ({100 * n_done / total:.1f} %)"]
    run = holder(store)
    if n_done < total:
        lines.append(_rate_line(store, state, running=run is not None))
    if run is not None:
        lines.append(
            f"running: `{run.get('command')}` on host {run.get('host')}, PID {run.get('pid')}, "
            f"since {run.get('since')}"
        )
    if spec.refine is not None:
        from pipeline.store.points import refine_status

        lines.append(refine_status(store))
    lines += [f"note: {n}" for n in state.notes]
    if state.strays:
        shown = ", ".join(state.strays[:5]) + (" ..." if len(state.strays) > 5 else "")
        lines.append(
            f"note: ignored {len(state.strays)} file(s) in the markers folder that are not "
            f"chunk markers: {shown}"
        )
    missing = state.missing()
    if len(missing):
        show = missing if show_all else missing[:20]
        lines.append(f"missing chunks ({len(missing)}):")
        for flat in show:
            k = flat_to_key(int(flat), state.counts)
            lines.append(f"  {key_to_str(k)}  {describe_chunk(spec, k)}")
        if len(show) < len(missing):
            lines.append(f"  ... and {len(missing) - len(show)} more (--all lists them)")
    warn = _missing_files_line(store, spec, state)
    if warn:
        lines.append(warn)
    return lines


def _stores(store: str) -> list[str | tuple[str, str]]:
    """The sweep stores behind ``store``: itself, or a zoom store's frames, with a line (a
    ``(path, text)`` pair) for the zoom root and for each frame not started yet."""
    import os

    from pipeline.store.zoom import frame_group, frames_asked

    store = os.path.expanduser(store)  # shown as given: a relative path stays relative
    if not _check_store(store):
        return [store]
    n = frames_asked(store)
    out: list[str | tuple[str, str]] = [(store, f"{store}: zoom store, {n} frame(s) asked for")]
    for k in range(n):
        frame = str(Path(store) / frame_group(k))
        if (Path(frame) / "zarr.json").exists():
            out.append(frame)
        else:
            after = f"after frame {k - 1}" if k else "first"
            out.append((frame, f"{frame}: not started (sweep zoom computes it {after})"))
    return out


def cmd_status(args: argparse.Namespace) -> int:
    """``sweep status``: done/total chunks, and the missing ones (every frame of a zoom)."""
    for store in _stores(args.store):
        print(store[1] if isinstance(store, tuple) else "\n".join(_status_lines(store, args.all)))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``sweep verify``: check that every done chunk's files exist, decode and hold what was
    written; ``--repair`` un-marks the damaged ones. Exit 1 when damage is left unrepaired."""
    from pipeline.store.verify import repair, verify_store

    unrepaired = 0
    for store in _stores(args.store):
        if isinstance(store, tuple):
            print(store[1])
            continue
        report = verify_store(store)
        print("\n".join(report.lines()))
        if report.needs_repair and args.repair:
            n = repair(store, report)
            if report.bookkeeping:
                print(f"repaired: {len(report.bookkeeping)} bookkeeping file(s) mended")
            if report.damaged:
                print(
                    f"repaired: un-marked {n} damaged chunk(s) and deleted their files; "
                    "`sweep run` on this store recomputes exactly those"
                )
        elif report.needs_repair:
            unrepaired += len(report.damaged) + len(report.bookkeeping)
    if unrepaired:
        print(
            f"{unrepaired} damaged chunk(s) or bookkeeping file(s) left: `sweep verify "
            f"{args.store} --repair` mends them (the next `sweep run` recomputes what it "
            "un-marks)",
            file=sys.stderr,
        )
        return 1
    return 0


@contextlib.contextmanager
def _damage_as_one_line(stores: list[str]) -> Iterator[None]:
    """Turn an error while reading ``stores`` into one ``StoreError`` line naming the damaged
    chunks when a scrub finds damage there (a truncated chunk file fails deep in a codec);
    any other error keeps its traceback."""
    try:
        yield
    except PipelineError:
        raise
    except Exception as e:
        from pipeline.store.verify import verify_store

        for store in stores:
            try:
                report = verify_store(store)
            except Exception:
                continue
            if report.damaged:
                raise StoreError(
                    f"store {store}: {len(report.damaged)} damaged chunk(s) (first: "
                    f"{report.damaged[0].line()}); sweep verify {store} --repair, then "
                    "sweep run, recomputes them"
                ) from e
        raise


def cmd_summary(args: argparse.Namespace) -> int:
    """``sweep summary``: the store's experiment's summary, or every frame of a zoom."""
    from pipeline.experiments import get_experiment
    from pipeline.run.zoom import zoom_summary
    from pipeline.store.sweep import open_sweep, read_spec

    if _check_store(args.store):
        frames = _zoom_frames(args.store)
        for frame in frames:
            warn_if_partial(frame)
        with _damage_as_one_line(frames):
            print(partial_summary(args.store, zoom_summary(args.store)))
        return 0
    read_spec(args.store)  # a Zarr group not made by sweep: one line
    warn_if_partial(args.store)
    with _damage_as_one_line([args.store]):
        ds = open_sweep(args.store)
        print(
            partial_summary(
                args.store, get_experiment(read_spec(args.store).experiment).summary(ds)
            )
        )
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
    from pipeline.analysis.report import format_analysis
    from pipeline.run.analyze import analyze_store

    if _check_store(args.store):
        from pipeline.store.handle import Store

        raise Store(args.store).not_a_frame("analyze")
    from pipeline.store.sweep import read_spec

    try:
        read_spec(args.store)  # a Zarr group not made by sweep: one line
    except StoreError:
        import zarr

        # a dataset with λ_L but no spec (e.g. written by xarray) is analysed over (σ_w, σ_b)
        if "lyapunov" not in zarr.open_group(str(args.store), mode="r"):
            raise
    warn_if_partial(args.store)
    an = analyze_store(
        args.store, factor=args.factor, burn_in=args.burn_in, write=not args.no_write
    )
    print(format_analysis(an))
    if not args.no_write:
        print(f"written: group 'analysis' of {args.store}")
    return 0
