"""``trainability_grid`` (Sohl-Dickstein 2024): one trainability image per (width, activation).

sign(score)·log(1 + |score|) on a diverging map over (log10 lr_in, log10 lr_out), with the
converged share and the boundary dimension per image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.experiments.trainability.spec import signed_log
from pipeline.figures.common import (
    SCORE_LABEL,
    dim_text,
    dimension,
    image_notes,
    pyplot,
    show_score,
    signed_limit,
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

    widths = list(ds.width.values) if "width" in ds.dims else [None]
    acts = list(ds.activation.values) if "activation" in ds.dims else [None]
    images = {}
    for n in widths:
        for act in acts:
            sel = {k: v for k, v in (("width", n), ("activation", act)) if v is not None}
            images[(n, act)] = train_image(ds, sel)
    lim = max(signed_limit(signed_log(img[0])) for img in images.values())
    norm = Normalize(-lim, lim)  # one norm: one colour bar for every panel
    nr, nc = len(widths), len(acts)
    # a single image gets room for its colour bar and a two-line title
    fig, axes = plt.subplots(
        nr,
        nc,
        figsize=(3.3 * nc + 1.4, 3.1 * nr + 0.9),
        constrained_layout=True,
        squeeze=False,
    )
    mesh = None
    for i, n in enumerate(widths):
        for j, act in enumerate(acts):
            score, a, b = images[(n, act)]
            ax = axes[i, j]
            mesh = show_score(ax, ds, score, a, b, norm)
            conv = 100 * np.mean(score[np.isfinite(score)] < 0) if np.isfinite(score).any() else 0
            ax.set_title(
                f"{act}, n = {n}: {conv:.1f} % converged\n{dim_text(dimension(score))}",
                fontsize=8,
            )
    fig.colorbar(mesh, ax=axes, label=SCORE_LABEL)
    note_missing(fig, [img[0] for img in images.values()])
    spec = ds.attrs.get("sweep_spec", {})
    depth = int(ds.depth.values.ravel()[0]) if "depth" in ds.coords else "?"
    fig.suptitle(
        f"trainability after {spec.get('steps', '?')} steps of gradient descent\n"
        f"depth D = {depth}, dataset {spec.get('dataset', '?')}",
        fontsize=10,
    )
    return fig


def trainability_grid_notes(ds: xr.Dataset, **_: Any) -> list[str]:
    """Converged share and boundary dimension of every image."""
    return image_notes(ds, "trainability_grid")


register("trainability_grid", trainability_grid, trainability_grid_notes)
