"""Zoom-out sequences: from a final window out to a wide view, as Sohl-Dickstein (2024)
measures a dimension.

The paper's notebook estimates each panel's dimension over a *zoom-out* sequence of its final
(deepest) window: with the final window's centre c and widths w (per plane axis, in the axes'
own coordinates: decades for the trainability plane's log10 learning rates), frame j (j = 0
the final window) spans c ± growth^j · w / 2, for j = 0, 1, ... up to the first j whose
smaller width growth^j · min(w) is at least ``max_width`` (defaults 2 and 6: doubling until
the window is six decades wide). Frames are stored widest first, the final window last (the
spec's own window, bit for bit), in a zoom store like :mod:`.zoom`'s (``STORE/frame_00k``,
each a complete sweep store at the spec's resolution, refined when the spec is); a killed
zoom-out resumes and recomputes nothing that was done. ``sweep zoom --direction out``
reports, besides every frame's boundary report, the notebook's estimator pooled over all
frames (:func:`~pipeline.analysis.fractal.notebook.sohl_dickstein_notebook_dimension`).

The notebook's own function takes a growth factor but always doubles; here ``growth`` is
used. A window that would reach past an axis's allowed range (e.g. σ ≥ 0) is shifted inside
it, keeping its width, as a zoom-in frame is (the notebook's learning-rate axes have none).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, SpecMismatchError
from pipeline.run.zoom import ZoomFrame, _frame_spec, check_zoomable, plane_axes, run_zoom
from pipeline.spec.sweep import SweepSpec
from pipeline.store.zoom import frame_group

__all__ = [
    "MAX_WIDTH",
    "GROWTH",
    "ZOOM_OUT_RULE",
    "ZoomOut",
    "run_zoom_out",
    "zoom_out_windows",
]

MAX_WIDTH = 6.0
"""The notebook's widest window: the smaller width reaches at least 6 (decades)."""
GROWTH = 2.0
"""The notebook's factor between consecutive windows' widths."""
MAX_OUT_FRAMES = 60
"""Most zoom-out frames (a window 1e-15 wide reaches 6 decades in 53 doublings)."""
ZOOM_OUT_RULE = "zoom out: window widths grow by a factor about the final window's centre"

Window = tuple[tuple[float, float], tuple[float, float]]


def zoom_out_windows(
    wa: tuple[float, float],
    wb: tuple[float, float],
    *,
    max_width: float = MAX_WIDTH,
    growth: float = GROWTH,
) -> list[Window]:
    """The zoom-out sequence of the final window ``(wa, wb)`` ((lo, hi) along each plane axis,
    in its coordinates), widest first, the final window last and unchanged.

    Frame j from the end spans ``c ± s_j · w / 2`` with s_0 = 1, s_{j+1} = growth · s_j, c and
    w the final window's centres and widths; the sequence stops at the first s_j with
    ``min(s_j · w) >= max_width`` (the notebook's rule and arithmetic, float64). One-line
    ``PipelineError`` for a width that is not a positive number, ``max_width`` not > 0 or
    ``growth`` not > 1, and for more than :data:`MAX_OUT_FRAMES` frames."""
    if not (math.isfinite(max_width) and max_width > 0):
        raise PipelineError(
            f"max_width: value {max_width} must be a finite number > 0", option="max_width"
        )
    if not (math.isfinite(growth) and growth > 1):
        raise PipelineError(f"growth: value {growth} must be a finite number > 1", option="growth")
    lo_a, hi_a = float(wa[0]), float(wa[1])
    lo_b, hi_b = float(wb[0]), float(wb[1])
    w = (hi_a - lo_a, hi_b - lo_b)
    if not all(math.isfinite(x) and x > 0 for x in w):
        raise PipelineError(
            f"zoom: the final window's widths {w[0]!r} x {w[1]!r} must be positive numbers "
            "(each plane axis from its lowest to its highest value)"
        )
    c = ((lo_a + hi_a) / 2.0, (lo_b + hi_b) / 2.0)
    out: list[Window] = [((lo_a, hi_a), (lo_b, hi_b))]
    s = 1.0
    while min(w[0] * s, w[1] * s) < max_width:
        s *= growth
        out.insert(
            0,
            (
                (c[0] - s * w[0] / 2.0, c[0] + s * w[0] / 2.0),
                (c[1] - s * w[1] / 2.0, c[1] + s * w[1] / 2.0),
            ),
        )
        if len(out) > MAX_OUT_FRAMES:
            raise PipelineError(
                f"zoom: the window {w[0]:.3g} x {w[1]:.3g} needs more than {MAX_OUT_FRAMES} "
                f"frames to grow by {growth:g} to --max-width {max_width:g}; "
                "raise --growth or lower --max-width"
            )
    return out


class ZoomOut:
    """The zoom-out sequence of ``spec``'s plane window (a :class:`~.zoom.FrameSequence`):
    ``windows`` widest first (:func:`zoom_out_windows`); every frame has the spec's points
    per axis and everything else of the spec; the last frame is the spec itself."""

    title = "zoom out to"

    def __init__(self, spec: SweepSpec, *, max_width: float = MAX_WIDTH, growth: float = GROWTH):
        check_zoomable(spec)
        self.plane = plane_axes(spec)
        a, b = self.plane
        va, vb = spec.axis(a).values, spec.axis(b).values
        wa, wb = (float(va[0]), float(va[-1])), (float(vb[0]), float(vb[-1]))
        self.windows = zoom_out_windows(wa, wb, max_width=max_width, growth=growth)
        self.spec, self.base = spec, spec.to_dict()
        self.attrs: dict[str, Any] = {
            "rule": ZOOM_OUT_RULE,
            "direction": "out",
            "final_window": {a: list(wa), b: list(wb)},
            "max_width": float(max_width),
            "growth": float(growth),
        }

    def frame(self, k: int, prev: SweepSpec, root: Path) -> SweepSpec:
        """Frame ``k``'s spec (``prev`` is not needed: the windows are fixed in advance)."""
        store = root / frame_group(k)
        if k == len(self.windows) - 1:
            return self.spec.with_store(store)
        a, b = self.plane
        wa, wb = self.windows[k]
        na, nb = len(self.spec.axis(a)), len(self.spec.axis(b))
        return _frame_spec(self.base, a, b, wa, wb, na, nb, str(store))

    def check_resumable(self, old: dict[str, Any], root: str) -> None:
        """Refuse a store written by a zoom-in or with another ``max_width``/``growth``."""
        if old.get("rule") != ZOOM_OUT_RULE:
            raise SpecMismatchError(
                f"store {root!r} holds another kind of zoom (rule: "
                f"{old.get('rule', 'zoom in')}); use a new store path"
            )
        diff = [k for k in ("max_width", "growth") if old.get(k) != self.attrs[k]]
        if diff:
            was = ", ".join(f"{k} {old.get(k)} (now {self.attrs[k]})" for k in diff)
            raise SpecMismatchError(
                f"store {root!r} holds a zoom-out with another {was}; use a new store path"
            )


def run_zoom_out(
    spec: SweepSpec,
    store: str | Path | None = None,
    *,
    max_width: float = MAX_WIDTH,
    growth: float = GROWTH,
    **kw: Any,
) -> list[ZoomFrame]:
    """Compute (or resume) the zoom-out sequence of ``spec``'s plane window (:class:`ZoomOut`)
    into the zoom store ``store`` (default: the spec's), widest frame first; ``kw`` are
    :func:`~.zoom.run_zoom`'s (``client``, ``scheduler``, ``backend``, ``slurm``, ``retries``,
    ...). Returns one :class:`~.zoom.ZoomFrame` per frame."""
    seq = ZoomOut(spec, max_width=max_width, growth=growth)
    return run_zoom(spec, len(seq.windows), store, sequence=seq, **kw)
