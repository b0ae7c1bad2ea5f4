"""``zoom_frames``: a zoom store (``sweep zoom``) drawn as its frames side by side.

Each frame in its own coordinates with its box-counting dimension and 95 % interval, and a
last panel with every frame's log N vs log s and the Sohl-Dickstein (2024) estimator pooled
over the sequence. The signed field and how it is shown come from the experiment
(:meth:`~pipeline.experiments.base.Experiment.signed_field`, ``display_field``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from pipeline.engine.zoom import (
    frame_dimensions,
    plane_axes,
    signed_field,
    zoom_lines,
)
from pipeline.errors import PipelineError
from pipeline.experiments import get_experiment
from pipeline.figures.common import PLANE_LABELS, dim_text, plot_loglog, pyplot, signed_limit
from pipeline.figures.layout import colour_map, note_missing
from pipeline.spec.sweep import parse_spec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["zoom_fields", "zoom_frames", "zoom_notes"]


def zoom_fields(frames: Sequence[xr.Dataset]) -> list[np.ndarray]:
    """Each frame's signed field (trainability score; propagation deepest λ_L) over its plane."""
    return [
        np.asarray(signed_field(parse_spec(f.attrs["sweep_spec"]), f).values, np.float64)
        for f in frames
    ]


def zoom_frames(frames: Sequence[xr.Dataset], *, max_frames: int = 6) -> Figure:
    """Up to ``max_frames`` frames of a zoom sequence side by side (axes in the frame's own
    coordinates, so each panel shows its window), each with its box-counting dimension and
    95 % interval; a last panel with every frame's log N vs log s and the Sohl-Dickstein
    (2024) estimator pooled over all frames."""
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
    npan = len(shown) + 1
    fig, axes = plt.subplots(1, npan, figsize=(3.5 * npan, 4.0), constrained_layout=True)
    drawn = []
    for ax, k in zip(axes[:-1], shown, strict=True):
        f = fields[k]
        x = np.asarray(frames[k][a].values, np.float64)
        y = np.asarray(frames[k][b].values, np.float64)
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
        ax.set_xlabel(PLANE_LABELS.get(a, a), fontsize=8)
        ax.xaxis.set_label_position("top")
        ax.set_ylabel(PLANE_LABELS.get(b, b), fontsize=8)
        ax.tick_params(labelsize=6, top=True, labeltop=True, bottom=False, labelbottom=False)
        width = x[-1] - x[0]
        ax.set_title(f"frame {k}: width {width:.3g}\n{dim_text(dims[k])}", fontsize=8)
    ax = axes[-1]
    colours = plt.cm.viridis(np.linspace(0.05, 0.9, len(frames)))
    for k, d in enumerate(dims):
        if d is not None:
            plot_loglog(ax, d, f"frame {k}", colours[k])
    ax.set_xlabel("log s (box size, pixels)")
    ax.set_ylabel("log N(s) (boxes on the boundary)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    ax.set_title(f"Sohl-Dickstein pooled:\n{dim_text(pooled)}", fontsize=8)
    note_missing(fig, drawn)
    what = exp.field_description
    fig.suptitle(f"zoom into the boundary ({what}); each window half the previous", fontsize=10)
    return fig


def zoom_notes(frames: Sequence[xr.Dataset]) -> list[str]:
    """Per frame: window and box-counting dimension; then the pooled estimator."""
    return [f"zoom: {line}" for line in zoom_lines(list(frames))]
