"""Zoom sequences: frames whose window halves around a boundary point of the previous frame.

A zoom store is a Zarr group whose children ``frame_000``, ``frame_001``, ... are complete
sweep stores (each with its own spec, coordinates and done markers), so every frame opens
with ``xarray.open_zarr("STORE/frame_003")`` and a killed zoom resumes like a sweep. The root
carries consolidated metadata of every frame written (renewed after each), so
``xarray.open_datatree("STORE")`` opens the whole sequence.

The rule that picks the next window (deterministic, so a resumed run recomputes the same
windows from the stored frames):

1. take the frame's signed field (the experiment's :meth:`~pipeline.experiments.base.Experiment.
   signed_field`: ``score`` for trainability, the deepest ``lyapunov`` for propagation) over
   its two plane axes (all other axes must have one value);
2. boundary blocks are the 2×2 pixel blocks holding both classes (``> 0`` and ``<= 0``,
   :func:`pipeline.analysis.boundary_mask`);
3. pick the block whose centre is nearest to the centre of the frame, in pixel units (ties:
   smallest first-axis index, then second);
4. the next window is centred on that block's centre (in coordinates), half as wide along
   both axes, with the same number of points; a window reaching outside an axis's allowed
   range (σ ≥ 0) is shifted inside it, keeping its width.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import xarray as xr
import zarr

from pipeline.analysis.fractal import (
    DimensionEstimate,
    boundary_mask,
    sohl_dickstein_dimension,
    sohl_dickstein_notebook_dimension,
)
from pipeline.analysis.fractal.boundary import BoundaryDimension, boundary_dimension
from pipeline.errors import PipelineError, SpecMismatchError, StoreError
from pipeline.experiments import get_experiment
from pipeline.run.context import RunContext
from pipeline.run.execute import RunReport, run_sweep
from pipeline.spec.sweep import SweepSpec, parse_spec
from pipeline.store.sweep import resolve_store_path
from pipeline.store.zoom import (
    ZOOM_ATTR,
    consolidate_root,
    existing_zoom,
    frame_group,
    open_root,
    open_zoom,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "FrameSequence",
    "ZoomFrame",
    "ZoomIn",
    "check_zoomable",
    "dimension_vs_depth",
    "frame_dimensions",
    "next_window",
    "notebook_line",
    "run_zoom",
    "signed_field",
    "zoom_lines",
    "zoom_summary",
]


@dataclass(frozen=True)
class ZoomFrame:
    """One frame: its index, window (lo, hi) per plane axis, and the run report."""

    index: int
    window: dict[str, tuple[float, float]]
    report: RunReport


def plane_axes(spec: SweepSpec) -> tuple[str, str]:
    """The two image axes of a spec (the experiment's :meth:`plane`)."""
    plane = get_experiment(spec.experiment).plane(spec)
    if plane is None:
        raise PipelineError(f"zoom: experiment {spec.experiment!r} has no image plane")
    return plane


def check_zoomable(spec: SweepSpec) -> None:
    """Raise :class:`~pipeline.errors.PipelineError` (one line) unless ``spec`` can be zoomed
    (the experiment's :meth:`check_zoomable`: a plane, one value on every other axis, ...)."""
    get_experiment(spec.experiment).check_zoomable(spec)


def signed_field(spec: SweepSpec, ds: xr.Dataset) -> xr.DataArray:
    """The 2-D field whose sign is the class, over the two plane axes (in that order)."""
    a, b = plane_axes(spec)
    field = get_experiment(spec.experiment).signed_field(spec, ds)
    extra = [d for d in field.dims if d not in (a, b)]
    bad = [d for d in extra if field.sizes[d] != 1]
    if bad:
        raise PipelineError(
            f"zoom: axes {', '.join(bad)} must have a single value (a zoom follows one boundary)"
        )
    return field.isel({d: 0 for d in extra}).transpose(a, b)


def next_window(
    field: np.ndarray, a_vals: np.ndarray, b_vals: np.ndarray
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The next frame's window ((a_lo, a_hi), (b_lo, b_hi)) by the module's rule.

    ``field``: (len(a_vals), len(b_vals)) signed values; ``a_vals``, ``b_vals``: evenly
    spaced coordinates. Raises ``ValueError`` when the frame holds no boundary.
    """
    f = np.asarray(field, np.float64)
    ii, jj = np.nonzero(boundary_mask(f))
    if len(ii) == 0:
        raise PipelineError(
            "zoom: the frame holds no boundary (no 2x2 block with both signs); "
            "widen the first window"
        )
    ci, cj = (f.shape[0] - 1) / 2, (f.shape[1] - 1) / 2
    d2 = (ii + 0.5 - ci) ** 2 + (jj + 0.5 - cj) ** 2
    k = int(np.lexsort((jj, ii, d2))[0])
    da, db = a_vals[1] - a_vals[0], b_vals[1] - b_vals[0]
    centre_a = a_vals[0] + (ii[k] + 0.5) * da
    centre_b = b_vals[0] + (jj[k] + 0.5) * db
    half_a = (a_vals[-1] - a_vals[0]) / 4
    half_b = (b_vals[-1] - b_vals[0]) / 4
    return (centre_a - half_a, centre_a + half_a), (centre_b - half_b, centre_b + half_b)


def _inside(window: tuple[float, float], rule: Any) -> tuple[float, float]:
    """Shift ``window`` (keeping its width) into the axis's allowed range, e.g. σ ≥ 0."""
    lo, hi = float(window[0]), float(window[1])
    if rule is not None and rule.low is not None and lo < rule.low:
        lo, hi = rule.low, rule.low + (hi - lo)
    if rule is not None and rule.high is not None and hi > rule.high:
        lo, hi = rule.high - (hi - lo), rule.high
    return lo, hi


def _frame_spec(
    base: dict[str, Any], a: str, b: str, wa: tuple, wb: tuple, na: int, nb: int, store: str
) -> SweepSpec:
    rules = get_experiment(base["experiment"]).rules_by_name()
    wa, wb = _inside(wa, rules.get(a)), _inside(wb, rules.get(b))
    raw = {
        **base,
        "axes": {
            **base["axes"],
            a: {"linspace": list(map(float, wa)), "count": na},
            b: {"linspace": list(map(float, wb)), "count": nb},
        },
        "store": store,
    }
    return parse_spec(raw)


class FrameSequence(Protocol):
    """How a zoom store's frames are chosen (:func:`run_zoom`): ``frame(k, prev, root)`` is
    frame k's spec (stored at ``root/frame_00k``; ``prev`` is frame k − 1's spec, computed
    already, or for k = 0 the zoom's own spec); ``attrs`` go into the store's zoom attrs
    (``rule`` among them); ``title`` starts the store's title; ``check_resumable`` raises
    :class:`~pipeline.errors.SpecMismatchError` when a store's zoom attrs ``old`` were
    written by another sequence."""

    attrs: dict[str, Any]
    title: str

    def frame(self, k: int, prev: SweepSpec, root: Path) -> SweepSpec: ...

    def check_resumable(self, old: dict[str, Any], root: str) -> None: ...


ZOOM_IN_RULE = "nearest boundary 2x2 block to the frame centre; window halves"


class ZoomIn:
    """The zoom-in of the module's rule: frame 0 is the spec, frame k + 1 half of frame k
    around its boundary block nearest the centre. ``base``: the spec as a dict
    (:meth:`SweepSpec.to_dict`); ``plane``: its two plane axes."""

    title = "zoom into"

    def __init__(self, base: dict[str, Any], plane: tuple[str, str]) -> None:
        self.base, self.plane = base, plane
        self.attrs: dict[str, Any] = {"rule": ZOOM_IN_RULE}

    def frame(self, k: int, prev: SweepSpec, root: Path) -> SweepSpec:
        """Frame ``k``'s spec: the spec itself for k = 0, else from frame k − 1's field."""
        if k == 0:
            return prev.with_store(root / frame_group(0))
        a, b = self.plane
        field = signed_field(prev, xr.open_zarr(prev.store)).values
        na, nb = len(prev.axis(a)), len(prev.axis(b))
        wa, wb = next_window(
            field,
            np.asarray(prev.axis(a).values, float),
            np.asarray(prev.axis(b).values, float),
        )
        return _frame_spec(self.base, a, b, wa, wb, na, nb, str(root / frame_group(k)))

    def check_resumable(self, old: dict[str, Any], root: str) -> None:
        """Refuse a store another kind of sequence wrote (its ``rule`` differs)."""
        rule = old.get("rule", ZOOM_IN_RULE)
        if rule != ZOOM_IN_RULE:
            raise SpecMismatchError(
                f"store {root!r} holds another kind of zoom (rule: {rule}); use a new store path"
            )


def run_zoom(
    spec: SweepSpec,
    frames: int,
    store: str | Path | None = None,
    context: RunContext | None = None,
    sequence: FrameSequence | None = None,
    **options: Any,
) -> list[ZoomFrame]:
    """Compute (or resume) a ``frames``-frame zoom sequence starting from ``spec``'s window.

    Frame 0 is ``spec`` itself; frame k+1 zooms into frame k by the module's rule
    (:class:`ZoomIn`); another ``sequence`` (a :class:`FrameSequence`, e.g. the zoom-out of
    :mod:`pipeline.run.zoom_out`) picks the frames' windows instead. Frames
    already complete in the store are not recomputed. Returns one :class:`ZoomFrame` each.
    Where the chunks run is the ``context``'s (:class:`~pipeline.run.context.RunContext`,
    or its settings as keywords, as for :func:`~pipeline.run.execute.run_sweep`), opened
    once for every frame.
    """
    if context is not None and options:
        raise TypeError("run_zoom: give a context or its options, not both")
    ctx = context if context is not None else RunContext.from_options(**options)
    if frames < 1:
        raise PipelineError(f"frames: value {frames} must be >= 1", option="frames")
    given = store if store is not None else spec.store
    if given is None or not str(given):
        raise StoreError("store: no output path (set 'store' in the spec or give a store)")
    root = Path(resolve_store_path(given))
    check_zoomable(spec)
    seq = ZoomIn(spec.to_dict(), plane_axes(spec)) if sequence is None else sequence
    with ctx.opened(spec):
        frames_total = _check_resumable(spec, root, seq, frames)
        ctx.client()  # every frame's cluster, started before the store is made
        _write_root(spec, root, seq, frames_total)
        return _frames(ctx, spec, root, seq, frames)


def _check_resumable(spec: SweepSpec, root: Path, seq: FrameSequence, frames: int) -> int:
    """The frames the store asks for (a longer zoom extends it); refuses a store of another
    spec or sequence."""
    old = existing_zoom(root)
    if old is None:
        return frames
    diff = parse_spec(old["base_spec"]).differences(spec)
    if diff:
        raise SpecMismatchError(
            f"store {str(root)!r} holds a zoom of another spec; fields that differ: "
            f"{', '.join(diff)}. Use a new store path."
        )
    seq.check_resumable(old, str(root))
    return max(frames, int(old.get("frames", 0)))


def _write_root(spec: SweepSpec, root: Path, seq: FrameSequence, frames_total: int) -> None:
    """The zoom store's root group and its attrs (made if needed)."""
    group = open_root(root)
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    history = group.attrs.get("history")
    group.attrs.update(
        {
            ZOOM_ATTR: {
                "base_spec": spec.to_dict(),
                "frames": frames_total,
                "plane": list(plane_axes(spec)),
                **seq.attrs,
            },
            "Conventions": "CF-1.10",
            "title": f"{seq.title} the boundary of {spec.name or spec.experiment}",
            "history": history or f"{created}: created by phase-sweep (sweep zoom)",
        }
    )


def _frames(
    ctx: RunContext, spec: SweepSpec, root: Path, seq: FrameSequence, frames: int
) -> list[ZoomFrame]:
    """Each frame run as a sweep on the open context, the root's metadata renewed after."""
    a, b = plane_axes(spec)
    out: list[ZoomFrame] = []
    fspec = seq.frame(0, spec, root)
    for k in range(frames):
        report = run_sweep(fspec, fspec.store, context=ctx)
        consolidate_root(root)
        if report.failed:
            raise RuntimeError(
                f"zoom: frame {k} has failed chunks: "
                f"{', '.join(report.failed)}; run the command again"
            )
        wa = (fspec.axis(a).values[0], fspec.axis(a).values[-1])
        wb = (fspec.axis(b).values[0], fspec.axis(b).values[-1])
        out.append(ZoomFrame(k, {a: wa, b: wb}, report))
        if k + 1 < frames:
            fspec = seq.frame(k + 1, fspec, root)
    return out


def frame_dimensions(
    fields: list[np.ndarray],
) -> tuple[list[BoundaryDimension], DimensionEstimate | None]:
    """The boundary report of each frame (the default estimator with its flags and its
    estimates at 1/2 and 1/4 of the resolution,
    :func:`~pipeline.analysis.fractal.boundary.boundary_dimension`), and the Sohl-Dickstein
    (2024) estimator pooled over the sequence (None where the frames are too small)."""
    per_frame = [boundary_dimension(f) for f in fields]
    try:
        pooled = sohl_dickstein_dimension(fields)
    except ValueError:  # frames too small, or no boundary at two box sizes
        pooled = None
    return per_frame, pooled


def dimension_vs_depth(reports: list[BoundaryDimension]) -> str:
    """One line: the default estimate per zoom frame, and whether it drifts with depth (an
    estimate outside the interval of the frame before it)."""
    vals = [r.estimate for r in reports]
    got = [(k, e) for k, e in enumerate(vals) if e is not None]
    if not got:
        return "dimension vs zoom depth: no frame has a fit"
    moves = [
        k
        for (j, a), (k, b) in zip(got, got[1:], strict=False)
        if not (a.interval[0] <= b.estimate <= a.interval[1])
    ]
    seq = ", ".join(f"{e.estimate:.3f}" for _, e in got)
    verdict = (
        "drifts with depth (outside the previous frame's interval at frame "
        + ", ".join(map(str, moves))
        + ")"
        if moves
        else "consistent across depth (each within the previous frame's interval)"
    )
    return f"dimension vs zoom depth: {seq}; {verdict}"


def _fmt(d: DimensionEstimate | None, small: bool) -> str:
    """The pooled estimate, or why there is none."""
    if d is None:
        return "n/a (" + ("frame too small" if small else "too little boundary to fit") + ")"
    return f"{d.estimate:.3f} [{d.interval[0]:.3f}, {d.interval[1]:.3f}]"


# the smallest frame side sohl_dickstein_dimension fits: 16 × its default 10 px min_size
_MIN_SIDE_POOLED = 160


def zoom_lines(frames: list[xr.Dataset]) -> list[str]:
    """Per frame: window, share of the negative class, boundary blocks and the boundary
    report (default estimate, 95 % interval, flags); the estimates against zoom depth; then
    the Sohl-Dickstein estimate pooled over the frames."""
    if not frames:
        return ["no frame yet"]
    a, b = plane_axes(parse_spec(frames[0].attrs["sweep_spec"]))
    fields = [signed_field(parse_spec(ds.attrs["sweep_spec"]), ds).values for ds in frames]
    dims, pooled = frame_dimensions(fields)
    lines = []
    for k, (ds, field, d) in enumerate(zip(frames, fields, dims, strict=True)):
        xa, xb = ds[a].values, ds[b].values
        lines.append(
            f"frame {k}: {a} [{xa[0]:.6g}, {xa[-1]:.6g}] × {b} [{xb[0]:.6g}, {xb[-1]:.6g}]"
            f"  negative {100 * np.mean(field <= 0):5.1f} %"
            f"  boundary blocks {int(boundary_mask(field).sum())}"
            f"  {d.text()}"
        )
    lines.append(dimension_vs_depth(dims))
    small = min(min(f.shape) for f in fields) < _MIN_SIDE_POOLED
    lines.append(
        f"Sohl-Dickstein (2024) estimator pooled over the frames: D {_fmt(pooled, small=small)}"
    )
    lines.append(notebook_line(fields))
    return lines


def notebook_line(fields: list[np.ndarray]) -> str:
    """One line: the estimator of Sohl-Dickstein's notebook pooled over the frames' signed
    fields (:func:`~pipeline.analysis.fractal.notebook.sohl_dickstein_notebook_dimension`:
    median of all local slopes of all frames), the number of slopes, or why there is none."""
    head = "Sohl-Dickstein notebook estimator (median of all frames' local slopes)"
    try:
        d = sohl_dickstein_notebook_dimension(fields)
    except PipelineError as e:
        return f"{head}: D n/a ({e})"
    n = len(d.extra["local_slopes"])
    return f"{head}: D {_fmt(d, small=False)} from {n} slopes of {len(fields)} frame(s)"


def zoom_summary(store: str | Path) -> str:
    """What ``sweep zoom`` and ``sweep summary`` print for a zoom store (:func:`zoom_lines`)."""
    store = os.path.expanduser(os.fspath(store))
    frames = open_zoom(store)
    attrs = zarr.open_group(store, mode="r").attrs.get(ZOOM_ATTR, {})
    kind = " zooming out, widest first" if attrs.get("direction") == "out" else ""
    head = (
        f"zoom store {store}: {len(frames)} frame(s){kind} (all: xarray.open_datatree('{store}'); "
        f"one: xarray.open_zarr('{store}/frame_000'))"
    )
    return "\n".join([head, *zoom_lines(frames)])
