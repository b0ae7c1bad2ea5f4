"""The summary of a trainability store: converged share and boundary dimension per image."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["format_trainability"]


def format_trainability(ds: xr.Dataset) -> str:
    """Per network family: share of converged points and the box-counting dimension (with
    its 95 % interval) of the boundary between the classes in the learning-rate plane."""
    from pipeline.analysis.fractal import box_counting_dimension
    from pipeline.spec.sweep import parse_spec

    spec = parse_spec(ds.attrs["sweep_spec"])
    a, b = spec.params.plane
    score = ds["score"].load()
    other = [d for d in score.dims if d not in (a, b)]
    lines = [
        f"Trainability boundary in the ({a}, {b}) plane "
        f"({score.sizes[a]} × {score.sizes[b]} points, {spec.params.steps} steps)"
    ]
    for idx in np.ndindex(*(score.sizes[d] for d in other)):
        sel = dict(zip(other, idx, strict=True))
        field = score.isel(sel).transpose(a, b).values
        label = ", ".join(f"{d}={score[d].values[i]}" for d, i in sel.items())
        try:
            d = box_counting_dimension(field)
            dim = f"{d.estimate:.3f} [95 % {d.interval[0]:.3f}, {d.interval[1]:.3f}]"
        except ValueError as e:
            dim = f"n/a ({e})"
        lines.append(
            f"{label}: converged {100 * np.mean(field < 0):5.1f} %, "
            f"boundary box-counting dimension {dim}"
        )
    return "\n".join(lines)
