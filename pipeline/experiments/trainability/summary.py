"""The summary of a trainability store: converged share and boundary dimension per image."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["format_trainability"]


def format_trainability(ds: xr.Dataset) -> str:
    """Per network family: share of converged points and the boundary report of the boundary
    between the classes in the learning-rate plane (default estimator, 95 % interval, and
    whether the plane is too small, the estimators disagree or the dimension drifts with
    resolution: :func:`~pipeline.analysis.fractal.boundary.boundary_dimension`)."""
    from pipeline.analysis.fractal.boundary import boundary_dimension
    from pipeline.spec.sweep import parse_spec

    spec = parse_spec(ds.attrs["sweep_spec"])
    a, b = spec.params.plane
    score = ds["score"].load()
    other = [d for d in score.dims if d not in (a, b)]
    lines = [
        f"Trainability boundary in the ({a}, {b}) plane "
        f"({score.sizes[a]} × {score.sizes[b]} points, "
        f"{' and '.join(map(str, spec.params.step_counts))} steps)"
    ]
    for idx in np.ndindex(*(score.sizes[d] for d in other)):
        sel = dict(zip(other, idx, strict=True))
        field = score.isel(sel).transpose(a, b).values
        label = ", ".join(f"{d}={score[d].values[i]}" for d, i in sel.items())
        lines.append(
            f"{label}: converged {100 * np.mean(field < 0):5.1f} %, "
            f"boundary {boundary_dimension(field).text()}"
        )
    return "\n".join(lines)
