"""``trainability_grid`` (Sohl-Dickstein 2024): one trainability image per (width, activation).

sign(score)·log(1 + |score|) on a diverging map over (log10 lr_in, log10 lr_out), with the
converged share and the boundary dimension per image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.figures.common import (
    dim_text,
    dimension,
    display_limit,
    field_label,
    image_notes,
    pyplot,
    show_score,
    train_image,
)
from pipeline.figures.layout import note_missing
from pipeline.figures.registry import register

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["trainability_grid", "trainability_grid_notes"]


def trainability_grid(ds: xr.Dataset) -> Figure:
    """Trainability images, one per (width, activation): rows = widths, columns =
    activations; sign(score)·log(1 + |score|) on a diverging map (blue: converged), with the
    converged share and the boundary's box-counting dimension (95 % interval) per image."""
    plt = pyplot()
    from matplotlib.colors import Normalize

    # rows: widths, and step counts when several are scored (a `steps` dim)
    widths = list(ds.width.values) if "width" in ds.dims else [None]
    counts = list(ds.steps.values) if "steps" in ds.score.dims else [None]
    rows = [(n, t) for n in widths for t in counts]
    acts = list(ds.activation.values) if "activation" in ds.dims else [None]
    images = {}
    for n, t in rows:
        for act in acts:
            pick = (("width", n), ("activation", act), ("steps", t))
            sel = {k: v for k, v in pick if v is not None}
            images[((n, t), act)] = train_image(ds, sel)
    lim = display_limit(ds, [img[0] for img in images.values()])
    norm = Normalize(-lim, lim)  # one norm: one colour bar for every panel
    nr, nc = len(rows), len(acts)
    # a single image gets room for its colour bar and a two-line title
    fig, axes = plt.subplots(
        nr,
        nc,
        figsize=(3.3 * nc + 1.4, 3.1 * nr + 0.9),
        constrained_layout=True,
        squeeze=False,
    )
    mesh = None
    for i, (n, t) in enumerate(rows):
        for j, act in enumerate(acts):
            score, a, b = images[((n, t), act)]
            ax = axes[i, j]
            mesh = show_score(ax, ds, score, a, b, norm)
            conv = 100 * np.mean(score[np.isfinite(score)] < 0) if np.isfinite(score).any() else 0
            when = "" if t is None else f", {t} steps"
            ax.set_title(
                f"{act}, n = {n}{when}: {conv:.1f} % converged\n{dim_text(dimension(score))}",
                fontsize=8,
            )
    fig.colorbar(mesh, ax=axes, label=field_label(ds))
    note_missing(fig, [img[0] for img in images.values()])
    spec = ds.attrs.get("sweep_spec", {})
    depth = int(ds.depth.values.ravel()[0]) if "depth" in ds.coords else "?"
    fig.suptitle(
        f"trainability after {_steps_text(spec.get('steps', '?'))} steps of gradient descent\n"
        f"depth L = {depth} layers, dataset {spec.get('dataset', '?')}; D: boundary dimension",
        fontsize=10,
    )
    return fig


def _steps_text(steps: Any) -> str:
    """``500`` or ``500 and 1000`` (a list of step counts)."""
    if isinstance(steps, list | tuple):
        return " and ".join(str(t) for t in steps)
    return str(steps)


def trainability_grid_notes(ds: xr.Dataset, **_: Any) -> list[str]:
    """Converged share and boundary dimension of every image."""
    return image_notes(ds, "trainability_grid")


register("trainability_grid", trainability_grid, trainability_grid_notes)
