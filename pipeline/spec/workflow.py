"""Workflow files: a sweep spec plus named scales and the figure it is drawn as.

A workflow is an ordinary spec (README, "Spec reference") with two optional top-level keys::

    scales:                      # scale name -> overrides, deep-merged into the spec
      smoke: {axes: {width: [32]}, depth: 20}
      paper: {axes: {width: [1000], seed: {start: 0, count: 50}}, depth: 300}
    figure:                      # what `sweep figures STORE` draws (pipeline.figures)
      kind: xi_c_map
      layers: [15, 25, 35]       # the kind's own options

Without a scale the base values run. Overrides merge mapping by mapping; any other value
(a list, a number, a range mapping under an axis) replaces the base value whole, so an axis
given as ``{linspace: ..., count: ...}`` in the base can be replaced by a plain list. The
merged mapping is validated like any spec; ``figure`` and the chosen ``scale`` stay in the
spec's canonical dict and so in the store's attrs (neither changes a number, so re-running a
store made at the same sizes is not refused because of them).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import SpecError
from pipeline.spec.fields import check_keys
from pipeline.spec.sweep import SweepSpec, load_spec, parse_spec, spec_file

__all__ = ["load_workflow", "workflow_scales"]


def _read_yaml(path: str | Path) -> Mapping[str, Any]:
    p = spec_file(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        return {}  # load_spec below reports it with the line and column
    return raw if isinstance(raw, Mapping) else {}


def _merge(base: Any, over: Any) -> Any:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces ``base``."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        # An axis range ({linspace: ..}, {start: ..}, {values: ..}) is one value: replace it.
        forms = {"linspace", "logspace", "start", "values"}
        if forms & set(over) or forms & set(base):
            return copy.deepcopy(dict(over))
        out = dict(copy.deepcopy(dict(base)))
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def workflow_scales(path: str | Path) -> tuple[str, ...]:
    """The scale names a workflow file declares (``()`` for a plain spec)."""
    scales = _read_yaml(path).get("scales") or {}
    return tuple(str(k) for k in scales) if isinstance(scales, Mapping) else ()


def load_workflow(path: str | Path, scale: str | None = None) -> SweepSpec:
    """Read a workflow (or plain spec) file and return the validated spec at ``scale``.

    ``scale=None`` runs the base values. An unknown scale raises :class:`SpecError` naming
    the allowed scales; the figure kind and its options are checked against
    :data:`pipeline.figures.FIGURE_KINDS` (without importing matplotlib).
    """
    raw = _read_yaml(path)
    if not raw:
        spec = load_spec(path)  # missing, empty or malformed file: its usual one-line error
        if scale is not None:
            raise SpecError("scales", f"unknown scale {scale!r}: {str(path)!r} declares none")
        return spec
    raw = dict(raw)
    scales = raw.pop("scales", None) or {}
    if not isinstance(scales, Mapping) or not all(isinstance(v, Mapping) for v in scales.values()):
        raise SpecError("scales", f"expected a mapping of scale name to overrides, got {scales!r}")
    if "scale" in raw:
        raise SpecError("scale", "set by --scale, not in the file (declare 'scales' instead)")
    if scale is not None:
        if scale not in scales:
            allowed = ", ".join(map(str, scales)) or "none declared"
            raise SpecError("scales", f"unknown scale {scale!r} (allowed: {allowed})")
        over = dict(scales[scale])
        for k in ("scales", "scale"):
            if k in over:
                raise SpecError(f"scales.{scale}.{k}", "a scale cannot set this key")
        raw = _merge(raw, over)
        raw["scale"] = scale
    _check_figure(raw.get("figure"))
    return parse_spec(raw)


def _check_figure(figure: Any) -> None:
    if figure is None:
        return
    from pipeline.figures import FIGURE_KINDS  # matplotlib is imported only when drawing

    if not isinstance(figure, Mapping) or "kind" not in figure:
        raise SpecError("figure", f"expected a mapping with a 'kind', got {figure!r}")
    kind = figure["kind"]
    if kind not in FIGURE_KINDS:
        raise SpecError(
            "figure.kind",
            f"unknown value {kind!r} (allowed: {', '.join(FIGURE_KINDS)})",
        )
    check_keys(figure, ("kind", *FIGURE_KINDS[kind]), "figure")
