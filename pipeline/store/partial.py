"""The words that a partial store's results carry: ``partial: k/n chunks``.

A store whose chunks are not all done reads as NaN where they are missing, so a summary, an
analysis or a figure of it describes part of the grid only; each of them says so on the
result itself (the summary's first line, the analysis' ``partial`` attribute and first line,
the figure's title), not only on stderr.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["mark_figure", "partial_label"]


def _sweep_counts(store: str | Path) -> tuple[int, int] | None:
    """(done, total) chunks of the sweep store ``store``; None for a store without a spec
    (written by other means: no chunk bookkeeping)."""
    from pipeline.errors import StoreError
    from pipeline.store.sweep import done_state, read_spec

    try:
        spec = read_spec(store)
    except StoreError:
        return None
    state = done_state(store, spec)
    return state.n_done, state.total


def partial_label(store: str | Path) -> str | None:
    """``"partial: k/n chunks"`` when the sweep store ``store`` is not complete, None when it
    is (or has no chunk bookkeeping). A zoom store counts the chunks of its frames, and says
    ``"partial: f/F frames, k/n chunks"`` when frames it asked for are not started."""
    from pipeline.store.zoom import ZOOM_ATTR, is_zoom_store

    if not is_zoom_store(store):
        counts = _sweep_counts(store)
        if counts is None or counts[0] >= counts[1]:
            return None
        return f"partial: {counts[0]}/{counts[1]} chunks"
    import zarr

    asked = int(zarr.open_group(str(store), mode="r").attrs[ZOOM_ATTR].get("frames", 0))
    frames = sorted(str(p.parent) for p in Path(store).glob("frame_*/zarr.json"))
    done = total = 0
    for frame in frames:
        counts = _sweep_counts(frame)
        if counts is not None:
            done, total = done + counts[0], total + counts[1]
    if len(frames) >= asked and done >= total:
        return None
    frames_part = f"{len(frames)}/{asked} frames, " if len(frames) < asked else ""
    return f"partial: {frames_part}{done}/{total} chunks"


def mark_figure(fig: object, label: str | None) -> None:
    """Put ``label`` (``partial: k/n chunks``) in the figure's title (its suptitle, made when
    there is none), in red; nothing when ``label`` is None."""
    if not label:
        return
    sup = getattr(fig, "_suptitle", None)
    text = sup.get_text() if sup is not None else ""
    note = f"{label}; missing chunks are grey"
    size = sup.get_fontsize() if sup is not None else 10
    fig.suptitle(f"{text}\n{note}" if text else note, fontsize=size, color="tab:red")  # type: ignore[attr-defined]
