"""How every figure looks: colour maps with a colour for missing data, the legend entry that
names it, text that fits inside the figure, and the checks the tests apply to every kind.

* Missing data (a chunk not computed yet, a value that is not a number) is drawn in
  :data:`MISSING_COLOUR`, a grey that no colour map used here contains (RdBu's middle, λ_L = 0,
  is near white), and named in a figure legend (:func:`note_missing`).
* :func:`fit_texts` wraps (or, for a single long word, shrinks) any title or label that would
  reach outside the figure at its written size; constrained layout then makes room.
* :func:`clipped_texts`, :func:`mappables_without_colourbar` and
  :func:`mappables_without_missing_colour` are what the tests check of every figure.

matplotlib is imported only inside the functions (the ``plot`` extra).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure
    from matplotlib.text import Text

__all__ = [
    "MISSING_COLOUR",
    "MISSING_LABEL",
    "clipped_texts",
    "colour_map",
    "fit_texts",
    "mappables_without_colourbar",
    "mappables_without_missing_colour",
    "note_missing",
]

MISSING_COLOUR = "#7f7f7f"
"""Grey for missing data: a colour outside every colour map the figures use."""

MISSING_LABEL = "no data (chunk not computed, or not a number)"


def colour_map(name: str) -> Colormap:
    """The colour map ``name`` with :data:`MISSING_COLOUR` for masked / NaN values."""
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=MISSING_COLOUR)


def note_missing(fig: Figure, arrays: Iterable[np.ndarray], label: str = MISSING_LABEL) -> bool:
    """Add a figure legend entry for :data:`MISSING_COLOUR` when any of ``arrays`` (the
    values drawn) holds NaN; returns whether it did."""
    from matplotlib.patches import Patch

    if not any(np.isnan(np.asarray(a, np.float64)).any() for a in arrays):
        return False
    fig.legend(
        handles=[Patch(facecolor=MISSING_COLOUR, edgecolor="k", lw=0.5, label=label)],
        loc="outside lower left",
        fontsize=7,
        frameon=False,
    )
    return True


def _tick_labels(fig: Figure) -> set[int]:
    out: set[int] = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                out.update((id(tick.label1), id(tick.label2)))
    return out


def _texts(fig: Figure) -> list[Text]:
    """Titles, labels, legend entries and notes of ``fig``: every drawn, non-empty text
    except tick labels (constrained layout places those, and ticks outside the view are
    not drawn)."""
    from matplotlib.text import Text

    ticks = _tick_labels(fig)
    return [
        t
        for t in fig.findobj(Text)
        if id(t) not in ticks and t.get_visible() and t.get_text().strip()
    ]


def clipped_texts(fig: Figure, tol: float = 1.0) -> list[str]:
    """The texts of ``fig`` (see :func:`_texts`) whose window extent reaches more than
    ``tol`` pixels outside the figure, as drawn at its size and dpi."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    x0, y0, x1, y1 = fig.bbox.extents
    out = []
    for t in _texts(fig):
        b = t.get_window_extent(renderer)
        if b.x0 < x0 - tol or b.y0 < y0 - tol or b.x1 > x1 + tol or b.y1 > y1 + tol:
            out.append(t.get_text())
    return out


def fit_texts(fig: Figure, rounds: int = 4) -> Figure:
    """Wrap every text that reaches outside ``fig`` to the width there is (a single word
    too long: a smaller font), until all fit or ``rounds`` passes are done; returns ``fig``.
    Call it last, after everything is drawn on the figure."""
    for _ in range(rounds):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        fb = fig.bbox
        changed = False
        for t in _texts(fig):
            b = t.get_window_extent(renderer)
            if b.x0 >= fb.x0 - 1 and b.y0 >= fb.y0 - 1 and b.x1 <= fb.x1 + 1 and b.y1 <= fb.y1 + 1:
                continue
            vertical = 45 < (t.get_rotation() % 180) < 135
            span, room = (b.height, fb.height) if vertical else (b.width, fb.width)
            lines = t.get_text().split("\n")
            longest = max(len(line) for line in lines)
            width = max(8, min(longest - 2, int(longest * 0.9 * room / max(span, 1.0))))
            wrapped = "\n".join(textwrap.fill(line, width) for line in lines)
            if wrapped != t.get_text() and span > 0.9 * room:
                t.set_text(wrapped)
            else:
                t.set_fontsize(t.get_fontsize() * 0.85)
            changed = True
        if not changed:
            break
    return fig


def _mappables(fig: Figure) -> list[Any]:
    """Colour-mapped images and meshes of ``fig`` outside colour-bar axes (contour lines and
    single-colour overlays, which a legend explains, are not among them)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.contour import ContourSet

    out = []
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):
            continue
        for m in [*ax.collections, *ax.images]:
            if isinstance(m, ScalarMappable) and not isinstance(m, ContourSet):
                if m.get_array() is not None and m.get_array().size > 1 and m.get_cmap().N > 1:
                    out.append(m)
    return out


def mappables_without_colourbar(fig: Figure) -> list[Any]:
    """Colour-mapped images and meshes of ``fig`` that no colour bar explains: neither their
    own nor one of another mappable with the same colour map and limits."""
    mappables = _mappables(fig)

    def key(m: Any) -> tuple:
        return (m.get_cmap().name, m.norm.vmin, m.norm.vmax)

    explained = {key(m) for m in mappables if getattr(m, "colorbar", None) is not None}
    return [m for m in mappables if key(m) not in explained]


def mappables_without_missing_colour(fig: Figure) -> list[Any]:
    """Colour-mapped images and meshes of ``fig`` whose colour for missing data is not
    :data:`MISSING_COLOUR`."""
    from matplotlib.colors import same_color

    return [m for m in _mappables(fig) if not same_color(m.get_cmap().get_bad(), MISSING_COLOUR)]
