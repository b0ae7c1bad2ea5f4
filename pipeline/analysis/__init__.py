"""Stage 5 of the pipeline: analysis of sweep stores (regime maps, critical lines, boundaries).

* :mod:`.regimes`  ordered / critical / chaotic maps, measured critical lines, regime areas
* :mod:`.fractal`  boundary masks, box counts, the calibrated dimension estimators of a signed
  2-D field, the boundary report every command prints, and the calibration battery
* :mod:`.report`   the analysis dataset of a sweep (what ``sweep analyze`` prints and writes)

This package reads datasets, not stores, and knows no experiment: the field whose sign is
the class comes in as a :class:`SignedField` (:mod:`pipeline.run.analyze` asks a store's
experiment for it).

The mean-field theories they compare against are in :mod:`pipeline.numerics` (``theory``,
``levy``)::

    from pipeline.analysis import boundary_dimension
    from pipeline.run.analyze import analyze_store
    an = analyze_store("quickstart.zarr")     # also: sweep analyze STORE
    print(boundary_dimension(field).text())   # D = 1.247 [1.214, 1.280] (...)
"""

from pipeline.analysis.fractal import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    BoxCounts,
    DimensionEstimate,
    boundary_mask,
    box_counting_dimension,
    box_counts,
    box_counts_lazy,
    count_boxes,
    count_boxes_lazy,
    default_dimension,
    dimension_from_counts,
    dinverno_dimension,
    directional_uncertainty_exponent,
    estimate_dimension,
    sohl_dickstein_dimension,
    sohl_dickstein_notebook_dimension,
    uncertainty_exponent,
)
from pipeline.analysis.fractal.boundary import (
    BoundaryDimension,
    boundary_dimension,
    dimension_vs_resolution,
)
from pipeline.analysis.regimes import (
    classify_correlation,
    classify_cv,
    classify_lyapunov,
    late_lyapunov,
    measured_critical_line,
    regime_area,
    regime_maps,
    zero_crossings,
)
from pipeline.analysis.report import SignedField, analyze_field, format_analysis

__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "BoundaryDimension",
    "BoxCounts",
    "DimensionEstimate",
    "boundary_dimension",
    "count_boxes",
    "count_boxes_lazy",
    "dimension_vs_resolution",
    "dinverno_dimension",
    "directional_uncertainty_exponent",
    "estimate_dimension",
    "SignedField",
    "analyze_field",
    "boundary_mask",
    "box_counting_dimension",
    "default_dimension",
    "box_counts",
    "box_counts_lazy",
    "classify_correlation",
    "classify_cv",
    "classify_lyapunov",
    "dimension_from_counts",
    "format_analysis",
    "late_lyapunov",
    "measured_critical_line",
    "regime_area",
    "regime_maps",
    "sohl_dickstein_dimension",
    "sohl_dickstein_notebook_dimension",
    "uncertainty_exponent",
    "zero_crossings",
]
