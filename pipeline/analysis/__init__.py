"""Stage 5 of the pipeline: analysis of sweep stores (regime maps, critical lines, boundaries).

* :mod:`.regimes`  ordered / critical / chaotic maps, measured critical lines, regime areas
* :mod:`.fractal`  boundary masks, box counts and dimension estimators of a signed 2-D field
* :mod:`.report`   ``sweep analyze``: all of it for a store, written to its ``analysis`` group

The mean-field theories they compare against are in :mod:`pipeline.numerics` (``theory``,
``levy``)::

    from pipeline.analysis import analyze_store, box_counting_dimension
    an = analyze_store("quickstart.zarr")     # also: sweep analyze STORE
"""

from pipeline.analysis.fractal import (
    DimensionEstimate,
    boundary_mask,
    box_counting_dimension,
    box_counts,
    box_counts_lazy,
    dimension_from_counts,
    sohl_dickstein_dimension,
    uncertainty_exponent,
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
from pipeline.analysis.report import analyze, analyze_store, format_analysis

__all__ = [
    "DimensionEstimate",
    "analyze",
    "analyze_store",
    "boundary_mask",
    "box_counting_dimension",
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
    "uncertainty_exponent",
    "zero_crossings",
]
