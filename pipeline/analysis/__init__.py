"""Analysis of sweep stores: Lévy mean field, regime maps and boundary dimensions.

from pipeline.analysis import critical_line, regime_maps, box_counting_dimension
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
from pipeline.analysis.levy import (
    levy_expect,
    levy_q_map,
    levy_q_star,
    levy_scale,
    levy_scale_star,
    ordered_transition_line,
    ordered_transition_sigma_w,
)
from pipeline.analysis.regimes import (
    classify_correlation,
    classify_cv,
    classify_lyapunov,
    critical_line,
    late_lyapunov,
    regime_area,
    regime_maps,
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
    "critical_line",
    "dimension_from_counts",
    "format_analysis",
    "late_lyapunov",
    "levy_expect",
    "levy_q_map",
    "levy_q_star",
    "levy_scale",
    "levy_scale_star",
    "ordered_transition_line",
    "ordered_transition_sigma_w",
    "regime_area",
    "regime_maps",
    "sohl_dickstein_dimension",
    "uncertainty_exponent",
]
