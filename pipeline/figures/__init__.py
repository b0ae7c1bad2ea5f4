"""Stage 6 of the pipeline: paper figures drawn from a store alone (``sweep figures STORE``).

A workflow's ``figure:`` entry (kept in the store's spec attrs) names a *kind* and its
options. Each kind is one module that registers itself (:mod:`.registry`): a function from the
store's ``xarray.Dataset`` to a matplotlib ``Figure``, with the papers' variable names on the
axes and the mean-field theory overlaid, and the few numbers behind it.

* :mod:`.xi_c`               ``xi_c_map`` (Schoenholz et al. 2016)
* :mod:`.phase_cv`           ``phase_cv`` (Qu, Wardak & Gong 2022, Fig. 5)
* :mod:`.effective_rank`     ``effective_rank`` (the effective-dimension note)
* :mod:`.frontier`           ``frontier`` (D'Inverno et al. 2025)
* :mod:`.trainability_grid`  ``trainability_grid`` (Sohl-Dickstein 2024)
* :mod:`.eps_panel`          ``eps_panel`` (weight perturbations ε)
* :mod:`.d2_map`             ``d2_map`` (Qu, Wardak & Gong 2022, Fig. 3b: D_q of the Jacobian)
* :mod:`.jacobian_density`   ``jacobian_density`` (Qu et al. Fig. 2a: cavity vs empirical |λ|)
* :mod:`.l_map`              ``l_map`` (Qu et al. Fig. 2b: largest L with ΔJ_f1 > 0)
* :mod:`.zoom`               a zoom store's frames side by side (``zoom_frames``)
* :mod:`.render`             draw a store to PNG and PDF; the notes behind it
* :mod:`.common`             helpers shared by the figures
* :mod:`.layout`             missing-data colour, text that fits, the checks of every figure

matplotlib is imported only when drawing (the ``plot`` extra); the fits and theory lines
are plain NumPy and usable without it.
"""

import importlib

from pipeline.figures.registry import FIGURE_KINDS, FIGURES, FigureKind, register
from pipeline.figures.render import (
    default_out_dir,
    draw,
    figure_notes,
    render_store,
    render_zoom,
    store_figure,
    store_notes,
    zoom_figure,
)

KIND_MODULES = (
    "xi_c",
    "phase_cv",
    "effective_rank",
    "frontier",
    "divergence",
    "trainability_grid",
    "eps_panel",
    "d2_map",
    "jacobian_density",
    "l_map",
)
"""The figure modules, in the order their kinds are listed; importing one registers its kind."""

for _name in KIND_MODULES:
    importlib.import_module(f"pipeline.figures.{_name}")

__all__ = [
    "FIGURES",
    "FIGURE_KINDS",
    "KIND_MODULES",
    "FigureKind",
    "default_out_dir",
    "draw",
    "figure_notes",
    "register",
    "render_store",
    "render_zoom",
    "store_figure",
    "store_notes",
    "zoom_figure",
]
