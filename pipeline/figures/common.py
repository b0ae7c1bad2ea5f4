"""Helpers shared by the figures: matplotlib on demand, selections, colour limits, labels.

Nothing here imports matplotlib at import time (:func:`pyplot` does, when drawing).
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from pipeline.analysis.fractal.boundary import BoundaryDimension, boundary_dimension
from pipeline.errors import PipelineError
from pipeline.figures.layout import colour_map
from pipeline.run.analyze import stored_experiment

__all__ = [
    "axis_label",
    "field_label",
    "clip_infinite",
    "dim_text",
    "dimension",
    "display_limit",
    "first_values",
    "image_notes",
    "no_dimension_reason",
    "loglog_labels",
    "plot_loglog",
    "pyplot",
    "show_score",
    "sigma_axis",
    "signed_limit",
    "signed_norm",
    "clip_to_norm",
    "train_image",
    "image_plane",
    "widest",
]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend; ``ImportError`` naming the ``plot`` extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "sweep figures needs matplotlib: install the 'plot' extra "
            "(pip install -e \".[plot]\" or pip install 'phase-sweep[plot]')"
        ) from e
    return plt


def first_values(da: xr.DataArray, keep: Sequence[str]) -> xr.DataArray:
    """Select the first value along every length-1-or-more dim not in ``keep`` except
    ``seed`` (averaged by the callers) and ``layer``."""
    for d in list(da.dims):
        if d not in keep and d not in ("seed", "layer"):
            da = da.isel({d: 0})
    return da


def sigma_axis(ds: xr.Dataset, base: str) -> tuple[str, np.ndarray]:
    """(dim name, variances) of the weight (``base='w'``) or bias axis."""
    sq = f"sigma_{base}2"
    if sq in ds.dims:
        return sq, np.asarray(ds[sq].values, np.float64)
    return f"sigma_{base}", np.asarray(ds[f"sigma_{base}"].values, np.float64) ** 2


def widest(ds: xr.Dataset) -> xr.Dataset:
    """The slice of the widest network (width N), when there is a width dim."""
    return ds.sel(width=int(ds.width.max())) if "width" in ds.dims else ds


_REPORTS: dict[tuple, BoundaryDimension] = {}


def dimension(field: np.ndarray) -> BoundaryDimension:
    """The boundary report of a field's sign boundary
    (:func:`~pipeline.analysis.fractal.boundary.boundary_dimension`, the one every command
    prints), remembered per field contents so that a figure and its notes compute it once."""
    a = np.ascontiguousarray(field)
    key = (a.shape, a.dtype.str, hashlib.sha1(a.tobytes()).hexdigest())
    if key not in _REPORTS:
        if len(_REPORTS) > 64:
            _REPORTS.clear()
        _REPORTS[key] = boundary_dimension(a)
    return _REPORTS[key]


def no_dimension_reason(field: np.ndarray) -> str:
    """Why :func:`dimension` has no fit for ``field`` (the estimator's own message)."""
    d = dimension(field)
    if d.estimate is not None:
        return ""
    shape = " × ".join(str(n) for n in np.shape(field))
    return f"no boundary-dimension fit on this {shape} grid:\n" + textwrap.fill(d.reason, 50)


def dim_text(d: Any) -> str:
    """A figure title's dimension: ``D = 1.234 [1.200, 1.268]`` and its flags (too small,
    estimators disagree, drifts with resolution) for a boundary report; ``D n/a`` for None."""
    if d is None:
        return "D n/a"
    if isinstance(d, BoundaryDimension):
        return d.short()
    return f"D = {d.estimate:.3f} [{d.interval[0]:.3f}, {d.interval[1]:.3f}]"


def clip_infinite(values: np.ndarray, lim: float) -> np.ndarray:
    """``values`` with ±∞ (e.g. λ_L = −∞ of a vanished tangent) drawn as ±``lim``; NaN stays."""
    return np.where(np.isinf(values), np.sign(values) * lim, values)


def signed_limit(values: np.ndarray) -> float:
    """Colour limit of a diverging map: the 99th percentile of |finite values| (1 if 0)."""
    v = np.abs(values[np.isfinite(values)])
    return float(np.percentile(v, 99)) if v.size and np.percentile(v, 99) > 0 else 1.0


def signed_norm(values: np.ndarray, q: float = 98.0) -> Any:
    """Colour norm of a diverging map of ``values`` centred on 0 (the middle colour): each
    side reaches the ``q``-th percentile of its own finite values (negative ones, positive
    ones), so a side with small values (λ_L's chaotic side, ~0.5, beside an ordered side
    down to -4) keeps its colours instead of fading into the middle; outliers saturate.
    With values of one sign only: symmetric limits (:func:`signed_limit`)."""
    from matplotlib.colors import Normalize, TwoSlopeNorm

    v = values[np.isfinite(values)]
    neg, pos = -v[v < 0], v[v > 0]
    lo = float(np.percentile(neg, q)) if neg.size else 0.0
    hi = float(np.percentile(pos, q)) if pos.size else 0.0
    if lo > 0 and hi > 0:
        return TwoSlopeNorm(vcenter=0.0, vmin=-lo, vmax=hi)
    lim = signed_limit(values)
    return Normalize(vmin=-lim, vmax=lim)


def clip_to_norm(values: np.ndarray, norm: Any) -> np.ndarray:
    """``values`` with -∞ drawn as the norm's ``vmin`` and +∞ as its ``vmax``; NaN stays."""
    out = np.where(np.isposinf(values), norm.vmax, values)
    return np.where(np.isneginf(out), norm.vmin, out)


def image_plane(ds: xr.Dataset) -> tuple[str, str]:
    """The image-plane axes of a stored dataset, as its experiment says
    (:meth:`~pipeline.experiments.base.Experiment.stored_plane`)."""
    exp = stored_experiment(ds)
    plane = exp.stored_plane(ds)
    if plane is None:
        raise PipelineError(f"store: the {exp.name} experiment has no image plane")
    return plane


def axis_label(ds: xr.Dataset, name: str) -> str:
    """The figure label of axis ``name`` of ``ds`` (its experiment's
    :meth:`~pipeline.experiments.base.Experiment.axis_label`)."""
    return stored_experiment(ds).axis_label(name)


def field_label(ds: xr.Dataset) -> str:
    """Colour-bar label of the experiment's displayed signed field, with what each sign
    means, e.g. ``sign(score)·log(1 + |score|)`` / ``< 0: converged, > 0: diverged``."""
    exp = stored_experiment(ds)
    neg, pos = exp.class_names
    return f"{exp.display_label}\n< 0: {neg}, > 0: {pos}"


def train_image(ds: xr.Dataset, sel: dict[str, Any]) -> tuple[np.ndarray, str, str]:
    """(score over (x, y) as (len x, len y), x name, y name) at ``sel``; other non-plane
    dims at their first value."""
    a, b = image_plane(ds)
    score = ds.score.sel(sel) if sel else ds.score
    score = first_values(score, (a, b))
    if "seed" in score.dims:
        score = score.isel(seed=0)
    return np.asarray(score.transpose(a, b).values, np.float64), a, b


def show_score(ax: Any, ds: xr.Dataset, score: np.ndarray, a: str, b: str, norm: Any) -> Any:
    """Draw a score image as the experiment displays it
    (:meth:`~pipeline.experiments.base.Experiment.display_field`) on ``ax`` with the colour
    ``norm`` (one norm for all panels of a figure, so one colour bar explains them); returns
    the mesh."""
    exp = stored_experiment(ds)
    x, xl = relative_axis(np.asarray(ds[a].values, np.float64), exp.axis_label(a))
    y, yl = relative_axis(np.asarray(ds[b].values, np.float64), exp.axis_label(b))
    mesh = ax.pcolormesh(
        x, y, exp.display_field(score).T, shading="nearest", cmap=colour_map("RdBu_r"), norm=norm
    )
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    return mesh


RELATIVE_SPAN = 1e-3
"""An axis whose span is below this share of its largest magnitude is drawn relative to its
centre (deep zoom windows: 7.7e-7 decades wide about 1.12)."""


def relative_axis(values: np.ndarray, label: str) -> tuple[np.ndarray, str]:
    """(coordinates to draw, axis label) of an axis: unchanged when its span is at least
    :data:`RELATIVE_SPAN` of its magnitude; else (values − c) / 10^k with 10^k the span's decade
    and c the centre rounded to it, labelled on a second line
    ``(value − c) / 1ek``, so a deep window's ticks read as small numbers and no offset text
    collides with the label."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    if finite.size < 2:
        return v, label
    lo, hi = float(finite.min()), float(finite.max())
    span, mag = hi - lo, max(abs(lo), abs(hi))
    if span <= 0 or span >= RELATIVE_SPAN * mag:
        return v, label
    k = int(np.floor(np.log10(span)))
    text = f"{0.5 * (lo + hi):.{max(-k, 0)}f}"  # the centre to the span's decade
    c = float(text)
    return (v - c) / 10.0**k, f"{label}\n(value − {text}) / 1e{k}"


def display_limit(ds: xr.Dataset, images: Sequence[np.ndarray]) -> float:
    """One colour limit for ``images`` of ``ds``'s signed field as its experiment displays
    them: the largest :func:`signed_limit` of any."""
    exp = stored_experiment(ds)
    return max(signed_limit(exp.display_field(img)) for img in images)


def loglog_labels(d: Any) -> tuple[str, str]:
    """(x label, y label) of :func:`plot_loglog` for an estimate's kind of data: box counts
    N(s), or the flip fraction f(ε) of the uncertainty exponents."""
    if isinstance(d, BoundaryDimension):
        d = d.estimate
    if d is not None and "uncertainty" in d.method:
        return "log ε (shift, pixels)", "log f(ε) (share of pairs that change class)"
    return "log s (box size, pixels)", "log N(s) (boxes on the boundary)"


def plot_loglog(ax: Any, d: Any, label: str, colour: Any = None) -> None:
    """log N vs log s (or log f vs log ε: :func:`loglog_labels`) of an estimate (or a
    boundary report's default estimate), with its fitted curve over the scaling range."""
    if isinstance(d, BoundaryDimension):
        d = d.estimate
    if d is None:
        return
    ls, ln = d.loglog()
    (pts,) = ax.plot(ls, ln, "o", ms=3, color=colour, label=label)
    i, j = d.fit_range
    x = np.log(d.scales[i : j + 1])
    ax.plot(x, d.fitted(x), "-", lw=1, color=pts.get_color())


def image_notes(ds: xr.Dataset, kind: str) -> list[str]:
    """Per trainability image of ``ds`` (every combination of the non-plane dims with several
    values): the converged share and the boundary report (default estimator and its flags)."""
    a, b = image_plane(ds)
    score = ds.score
    extra = [d for d in score.dims if d not in (a, b) and score.sizes[d] > 1]
    out = []
    for idx in np.ndindex(*[score.sizes[d] for d in extra]):
        sel = {d: score[d].values[i] for d, i in zip(extra, idx, strict=True)}
        img, _, _ = train_image(ds, sel)
        where = ", ".join(f"{d}={v}" for d, v in sel.items()) or "image"
        out.append(
            f"{kind}: {where}: converged {100 * np.mean(img < 0):.1f} %, boundary "
            f"{dimension(img).text()} ({img.shape[0]}x{img.shape[1]})"
        )
    return out
