"""``eps_panel`` (the Sohl-Dickstein reproduction's Fig. 4): one trainability image per weight
perturbation ε, with the share of pixels whose class flipped against ε = 0.
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

__all__ = ["eps_panel", "eps_panel_notes"]


def eps_panel(ds: xr.Dataset) -> Figure:
    """One trainability image per weight perturbation ε (W + ε·N(0, 1)), with the converged
    share, the boundary dimension and the share of pixels whose class differs from ε = 0."""
    plt = pyplot()
    from matplotlib.colors import Normalize

    eps = [float(e) for e in ds.eps.values]
    images = [train_image(ds, {"eps": e}) for e in eps]
    lim = display_limit(ds, [img[0] for img in images])
    norm = Normalize(-lim, lim)  # one norm: one colour bar for every panel
    ref = images[eps.index(0.0)][0] if 0.0 in eps else images[0][0]
    fig, axes = plt.subplots(
        1, len(eps), figsize=(3.2 * len(eps) + 1.4, 4.0), constrained_layout=True, squeeze=False
    )
    mesh = None
    for ax, e, (score, a, b) in zip(axes[0], eps, images, strict=True):
        mesh = show_score(ax, ds, score, a, b, norm)
        changed = 100 * np.mean((score > 0) != (ref > 0))
        ax.set_title(
            f"ε = {e:g}: {100 * np.mean(score < 0):.1f} % converged\n"
            f"{dim_text(dimension(score))}\n{changed:.1f} % flipped vs ε = 0",
            fontsize=8,
        )
    fig.colorbar(mesh, ax=axes, label=field_label(ds))
    note_missing(fig, [img[0] for img in images])
    act = str(ds.activation.values.ravel()[0])
    n = int(ds.width.values.ravel()[0])
    fig.suptitle(f"initial weights W + ε·N(0, 1): {act}, width {n}", fontsize=10)
    return fig


def eps_panel_notes(ds: xr.Dataset, **_: Any) -> list[str]:
    """Converged share and boundary dimension of every image."""
    return image_notes(ds, "eps_panel")


register("eps_panel", eps_panel, eps_panel_notes)
