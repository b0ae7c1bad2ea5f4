"""Drawing a store: the figure its spec declares (or a zoom store's frames), as PNG and PDF.

:func:`render_store` is what ``sweep figures STORE`` runs; :func:`store_notes` gives the numbers
behind the figure for the terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from pipeline.errors import PipelineError, SpecError
from pipeline.figures.common import pyplot
from pipeline.figures.layout import fit_texts
from pipeline.figures.registry import FIGURES
from pipeline.figures.zoom import zoom_frames, zoom_notes
from pipeline.store.partial import mark_figure, partial_label
from pipeline.store.sweep import open_sweep, read_spec
from pipeline.store.zoom import ZOOM_ATTR, is_zoom_store, open_zoom

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FIGURE_DPI",
    "default_out_dir",
    "draw",
    "figure_notes",
    "finish",
    "render_store",
    "render_zoom",
    "store_figure",
    "store_notes",
    "zoom_figure",
]

FIGURE_DPI = 150
"""Resolution of the PNG files (the size checked for clipped text is the written one)."""


def draw(ds: xr.Dataset, figure: dict[str, Any]) -> Figure:
    """The matplotlib Figure of a ``figure:`` entry (``{"kind": ..., **options}``)."""
    opts = dict(figure)
    kind = opts.pop("kind")
    if kind not in FIGURES:
        raise SpecError("figure.kind", f"unknown value {kind!r} (allowed: {', '.join(FIGURES)})")
    return FIGURES[kind].draw(ds, **opts)


def figure_notes(ds: xr.Dataset, figure: dict[str, Any]) -> list[str]:
    """A few numbers behind the figure, for the terminal; and a note where some (not all)
    seeds of a grid point are non-finite (the figures' seed means skip NaN)."""
    opts = dict(figure)
    kind = FIGURES.get(opts.pop("kind", None))
    notes = kind.notes(ds, **opts) if kind is not None else []
    return notes + _partial_seed_notes(ds)


def _partial_seed_notes(ds: xr.Dataset) -> list[str]:
    flag = ds.get("nonfinite_layer")
    if flag is None or "seed" not in flag.dims or ds.sizes["seed"] < 2:
        return []
    bad = (flag > 0).sum("seed")
    some = int(((bad > 0) & (bad < ds.sizes["seed"])).sum())
    if not some:
        return []
    return [
        f"note: {some} grid point(s) have non-finite values in some of their "
        f"{ds.sizes['seed']} seeds (nonfinite_layer > 0); the figures' seed means skip NaN "
        "there (±∞ is kept)"
    ]


def store_notes(store: str | Path, figure: dict[str, Any] | None = None) -> list[str]:
    """:func:`figure_notes` of a sweep store (its declared figure, or ``figure``), or
    :func:`zoom_notes` of a zoom store."""
    if is_zoom_store(store):
        return zoom_notes(open_zoom(store))
    return figure_notes(open_sweep(store), dict(figure or read_spec(store).figure or {}))


def finish(fig: Any, title: str = "") -> Any:
    """The last touches of every figure: the workflow's name (and scale) in small grey type at
    the bottom right, and every text fitted inside the figure (:func:`.layout.fit_texts`)."""
    fig.set_dpi(FIGURE_DPI)  # fitted at the resolution it is written at
    if title:  # a figure-level x label: constrained layout keeps it clear of the axes
        fig.supxlabel(title, x=0.995, ha="right", fontsize=7, color="gray")
    return fit_texts(fig)


def _write(fig: Any, base: Path, stem: str) -> list[Path]:
    from pipeline.errors import UsageError

    plt = pyplot()
    paths = []
    try:
        base.mkdir(parents=True, exist_ok=True)
        for ext in ("png", "pdf"):
            p = base / f"{stem}.{ext}"
            fig.savefig(p, dpi=FIGURE_DPI)
            paths.append(p)
    except OSError as e:  # a file, read-only, under /proc, a full disk
        what = e.strerror or type(e).__name__
        where = f" ({e.filename})" if e.filename else ""
        if isinstance(e, FileExistsError | NotADirectoryError):
            what = "a file is in the way"
        raise UsageError(
            f"-o: cannot write the figures into {str(base)!r}: {what}{where}; give a folder "
            "that can be written"
        ) from e
    finally:
        plt.close(fig)
    return paths


def default_out_dir(store: str | Path) -> Path:
    """``STORE-figures`` beside the store; for a zoom frame ``Z.zarr/frame_002`` it is
    ``Z-frame_002-figures`` beside the zoom store (never a folder inside a Zarr store)."""
    p = Path(str(store).rstrip("/"))
    if (p.parent / "zarr.json").exists():
        return p.parent.parent / f"{p.parent.name.removesuffix('.zarr')}-{p.name}-figures"
    return Path(f"{p}-figures")


def zoom_figure(store: str | Path) -> tuple[Figure, str]:
    """The finished figure of a zoom store (:func:`zoom_frames`: its frames side by side with
    their dimensions) and its file stem ``zoom_frames``, whatever figure its base spec
    declares; that one is drawn per frame: ``sweep figures STORE/frame_000``."""
    import zarr

    pyplot()
    info = zarr.open_group(str(store), mode="r").attrs[ZOOM_ATTR]
    base_spec = info.get("base_spec", {})
    fig = zoom_frames(open_zoom(store))
    mark_figure(fig, partial_label(store))
    name = str(base_spec.get("name", ""))
    scale = base_spec.get("scale")
    return finish(fig, f"{name} zoom" + (f" ({scale} scale)" if scale else "")), "zoom_frames"


def render_zoom(store: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw a zoom store as ``zoom_frames.png|pdf`` (:func:`zoom_figure`)."""
    fig, stem = zoom_figure(store)
    return _write(fig, Path(out_dir) if out_dir is not None else default_out_dir(store), stem)


def store_figure(store: str | Path, figure: dict[str, Any] | None = None) -> tuple[Figure, str]:
    """The finished figure of a sweep store and its file stem (the kind): ``figure``
    (``{"kind": ..., **options}``) or, by default, the one the store's spec declares.
    Raises :class:`~pipeline.errors.PipelineError` when there is none."""
    spec = read_spec(store)
    figure = figure if figure is not None else spec.figure
    if figure is None:
        raise PipelineError(
            f"store {str(store)!r}: its spec declares no figure; give one: sweep figures "
            f"{store} --kind KIND (one of {', '.join(FIGURES)})"
        )
    pyplot()
    fig = draw(open_sweep(store), dict(figure))
    mark_figure(fig, partial_label(store))
    title = spec.name + (f" ({spec.scale} scale)" if spec.scale else "")
    return finish(fig, title), figure["kind"]


def render_store(
    store: str | Path, out_dir: str | Path | None = None, figure: dict[str, Any] | None = None
) -> list[Path]:
    """Draw a store's figure to ``out_dir`` (PNG at :data:`FIGURE_DPI` dpi, and PDF);
    return the paths.

    ``figure`` (``{"kind": ..., **options}``, checked like a workflow's ``figure:``) is drawn
    instead of the one the store's spec declares (:func:`store_figure`). A zoom store
    (``sweep zoom``) is drawn by :func:`render_zoom`. ``out_dir`` defaults to
    :func:`default_out_dir`. Raises :class:`~pipeline.errors.PipelineError` when there is
    no figure to draw, ``ImportError`` (naming the ``plot`` extra) without matplotlib.
    """
    if is_zoom_store(store):
        if figure is not None:
            raise PipelineError(
                f"store {str(store)!r} is a zoom store, drawn as its frames side by side; "
                f"draw one frame with a kind: sweep figures {store}/frame_000 --kind ..."
            )
        return render_zoom(store, out_dir)
    fig, stem = store_figure(store, figure)
    return _write(fig, Path(out_dir) if out_dir is not None else default_out_dir(store), stem)
