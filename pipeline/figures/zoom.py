"""``zoom_frames``: a zoom store (``sweep zoom``) drawn as its frames side by side.

Each frame in its own coordinates with its boundary dimension (default estimator, 95 %
interval and flags), a panel with every frame's log N vs log s and the Sohl-Dickstein (2024)
estimator and the estimator of the paper's notebook pooled over the sequence, and a last
panel with the dimension against zoom depth and against resolution (each frame at 1/4, 1/2
and full resolution). The signed field and how it is shown come from the experiment
(:meth:`~pipeline.experiments.base.Experiment.signed_field`, ``display_field``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.analysis.fractal.boundary import BoundaryDimension
from pipeline.analysis.fractal.notebook import sohl_dickstein_notebook_dimension
from pipeline.errors import PipelineError
from pipeline.experiments import get_experiment
from pipeline.figures.common import (
    dim_text,
    loglog_labels,
    plot_loglog,
    pyplot,
    relative_axis,
    signed_limit,
)
from pipeline.figures.layout import colour_map, note_missing
from pipeline.run.zoom import frame_dimensions, plane_axes, signed_field, zoom_lines
from pipeline.spec.sweep import parse_spec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["draw_depth_and_resolution", "zoom_fields", "zoom_frames", "zoom_notes"]


def zoom_fields(frames: Sequence[xr.Dataset]) -> list[np.ndarray]:
    """Each frame's signed field (trainability score; propagation deepest λ_L) over its plane."""
    return [
        np.asarray(signed_field(parse_spec(f.attrs["sweep_spec"]), f).values, np.float64)
        for f in frames
    ]


def zoom_frames(frames: Sequence[xr.Dataset], *, max_frames: int = 6) -> Figure:
    """Up to ``max_frames`` frames of a zoom sequence side by side (axes in the frame's own
    coordinates, so each panel shows its window), each with its boundary report's dimension,
    95 % interval and flags; a panel with every frame's log N vs log s and the
    Sohl-Dickstein (2024) estimator and the notebook's
    (:func:`~pipeline.analysis.fractal.notebook.sohl_dickstein_notebook_dimension`) pooled
    over all frames; a last panel with D against zoom
    depth and resolution (:func:`draw_depth_and_resolution`)."""
    plt = pyplot()
    if not frames:
        raise PipelineError("zoom store: no complete frame to draw")
    fields = zoom_fields(frames)
    dims, pooled = frame_dimensions(fields)
    spec = parse_spec(frames[0].attrs["sweep_spec"])
    a, b = plane_axes(spec)
    exp = get_experiment(spec.experiment)
    shown = list(range(len(frames)))
    if len(shown) > max_frames:  # first, last and evenly spaced between
        shown = sorted(set(np.linspace(0, len(frames) - 1, max_frames).round().astype(int)))
    npan = len(shown) + 2
    fig, axes = plt.subplots(1, npan, figsize=(3.3 * npan, 4.0), constrained_layout=True)
    drawn = []
    for ax, k in zip(axes[:-2], shown, strict=True):
        f = fields[k]
        x0 = np.asarray(frames[k][a].values, np.float64)
        x, xlabel = relative_axis(x0, exp.axis_label(a))
        y, ylabel = relative_axis(np.asarray(frames[k][b].values, np.float64), exp.axis_label(b))
        v = exp.display_field(f)
        lim = signed_limit(v)  # each frame on its own scale: deeper frames are closer to 0
        v = np.where(np.isneginf(v), -lim, v)
        drawn.append(v)
        mesh = ax.pcolormesh(
            x, y, v.T, shading="nearest", cmap=colour_map("RdBu_r"), vmin=-lim, vmax=lim
        )
        cbar = fig.colorbar(mesh, ax=ax, location="bottom", aspect=30, pad=0.02)
        cbar.ax.tick_params(labelsize=6)
        cbar.set_label(exp.display_label, fontsize=7)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.xaxis.set_label_position("top")
        ax.set_ylabel(ylabel, fontsize=7)
        ax.tick_params(labelsize=6, top=True, labeltop=True, bottom=False, labelbottom=False)
        width = x0[-1] - x0[0]
        ax.set_title(f"frame {k}: width {width:.3g}\n{dim_text(dims[k])}", fontsize=7)
    ax = axes[-2]
    colours = plt.cm.viridis(np.linspace(0.05, 0.9, len(frames)))
    for k, d in enumerate(dims):
        if d is not None:  # every frame's curve; the legend names the frames drawn
            plot_loglog(ax, d, f"frame {k}" if k in shown else "_nolegend_", colours[k])
    xl, yl = loglog_labels(next((d for d in dims if d is not None), None))
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    try:
        notebook = sohl_dickstein_notebook_dimension(fields)
    except PipelineError:  # a frame without a sign change
        notebook = None
    ax.set_title(
        f"Sohl-Dickstein pooled:\n{dim_text(pooled)}\nnotebook: {dim_text(notebook)}",
        fontsize=8,
    )
    draw_depth_and_resolution(axes[-1], dims)
    note_missing(fig, drawn)
    fig.suptitle(_sequence_title(frames, a, b, exp.field_description), fontsize=10)
    return fig


def _sequence_title(frames: Sequence[xr.Dataset], a: str, b: str, what: str) -> str:
    """The figure's title: how the windows follow one another, read off the frames (a zoom
    in halves each window around the boundary; a zoom out, stored widest first, shares the
    final window's centre)."""
    wid = np.array([float(f[a].values[-1] - f[a].values[0]) for f in frames])
    n = len(frames)
    if n < 2 or not np.all(wid > 0):
        return f"zoom sequence of the boundary ({what}): {n} frame(s)"
    ratio = float(np.median(wid[:-1] / wid[1:]))
    cen = np.array([[float(f[c].values[[0, -1]].mean()) for c in (a, b)] for f in frames])
    shared = np.allclose(cen, cen[-1], rtol=0, atol=1e-9 * max(float(np.abs(cen).max()), 1.0))
    how = "widths grown about the last frame's centre" if shared else "around the boundary"
    return (
        f"zoom sequence of the boundary ({what}): {n} frames, each window 1/{ratio:.3g} of "
        f"the previous, {how}"
    )


def draw_depth_and_resolution(ax: Any, dims: Sequence[BoundaryDimension]) -> None:
    """The default estimate (95 % interval) against zoom depth, with each frame's estimates
    of the same window at 1/4 and 1/2 of its resolution beside it (a drift with resolution
    shows as a column of points that do not agree)."""
    markers = {0: ("s", 0.25), 1: ("^", 0.5)}
    labelled: set[str] = set()

    def label(text: str) -> str | None:  # each legend entry once, from whichever frame has it
        if text in labelled:
            return None
        labelled.add(text)
        return text

    for k, r in enumerate(dims):
        if r.estimate is None:
            continue
        e = r.estimate
        ax.errorbar(
            k, e.estimate, yerr=[[e.estimate - e.interval[0]], [e.interval[1] - e.estimate]],
            fmt="o", color="k", ms=4, capsize=2, label=label("full resolution"),
        )  # fmt: skip
        for j, (_side, c) in enumerate(r.resolutions[:-1]):
            if c is not None and j in markers:
                m, frac = markers[j]
                colour = "tab:orange" if j else "tab:blue"
                lab = label(f"1/{round(1 / frac)} resolution")
                ax.plot(k + 0.15 * (j + 1), c.estimate, m, ms=3, color=colour, label=lab)
    ax.set_xlabel("zoom depth (frame)")
    ax.set_ylabel("boundary dimension D")
    if labelled:
        ax.legend(fontsize=6)
    else:
        ax.text(0.5, 0.5, "no frame has a fit", ha="center", va="center", fontsize=8,
                transform=ax.transAxes)  # fmt: skip
    ax.set_title("dimension D vs zoom depth and resolution", fontsize=8)


def zoom_notes(frames: Sequence[xr.Dataset]) -> list[str]:
    """Per frame: window and boundary report; D vs depth; then the pooled estimator."""
    return [f"zoom: {line}" for line in zoom_lines(list(frames))]
