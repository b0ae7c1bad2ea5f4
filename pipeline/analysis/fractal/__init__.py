"""Fractal dimension of the boundary between the two classes of a signed 2-D field.

* :mod:`.counts`      boundary masks and box counts (in memory, or chunk by chunk with Dask)
* :mod:`.fit`         the calibrated scaling fit: range, model and 95 % interval
* :mod:`.notebook`    the estimator of Sohl-Dickstein's (2024) notebook, as published
* :mod:`.shifts`      class flips under axis shifts (the default estimator's data)
* :mod:`.estimators`  the named estimators (``default``: directional uncertainty, or box counting)
* :mod:`.noise`       whether a boundary is noise-dominated, and its frontier without the noise
* :mod:`.boundary`    one boundary's report: default estimate, agreement, size, drift, noise
* :mod:`.battery`     fields of known boundary dimension, for calibration

Conventions (class ``f > 0``, the 2×2 boundary mask, box grids) are in :mod:`.counts`.
"""

from pipeline.analysis.fractal.counts import (
    BoxCounts,
    boundary_mask,
    box_counts,
    box_counts_lazy,
    count_boxes,
    count_boxes_lazy,
    default_sizes,
)
from pipeline.analysis.fractal.estimate import DimensionEstimate
from pipeline.analysis.fractal.estimators import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    box_counting_dimension,
    default_dimension,
    dinverno_dimension,
    directional_uncertainty_exponent,
    estimate_dimension,
    sohl_dickstein_dimension,
    uncertainty_exponent,
)
from pipeline.analysis.fractal.fit import dimension_from_counts
from pipeline.analysis.fractal.notebook import (
    NotebookCounts,
    notebook_box_counts,
    notebook_edges,
    sohl_dickstein_notebook_dimension,
)

__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "BoxCounts",
    "DimensionEstimate",
    "NotebookCounts",
    "boundary_mask",
    "box_counting_dimension",
    "default_dimension",
    "box_counts",
    "box_counts_lazy",
    "count_boxes",
    "count_boxes_lazy",
    "default_sizes",
    "dimension_from_counts",
    "dinverno_dimension",
    "directional_uncertainty_exponent",
    "estimate_dimension",
    "notebook_box_counts",
    "notebook_edges",
    "sohl_dickstein_dimension",
    "sohl_dickstein_notebook_dimension",
    "uncertainty_exponent",
]
