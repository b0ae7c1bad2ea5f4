"""Workflow files: a sweep spec plus named scales and the figure it is drawn as.

A workflow is an ordinary spec (docs/specs.md) with two optional top-level keys::

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

from pipeline.errors import SpecError
from pipeline.spec.fields import check_keys
from pipeline.spec.sweep import (
    TOP_LEVEL_KEYS,
    SweepSpec,
    parse_spec,
    spec_experiment,
    spec_file,
)
from pipeline.spec.yamlfile import read_yaml

__all__ = ["load_spec", "load_workflow", "workflow_scales"]

_RANGE_FORMS = {"linspace", "logspace", "start", "values"}


def _merge(base: Any, over: Any) -> Any:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces ``base``."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        # An axis range ({linspace: ..}, {start: ..}, {values: ..}) is one value: replace it.
        if _RANGE_FORMS & set(over) or _RANGE_FORMS & set(base):
            return copy.deepcopy(dict(over))
        out = dict(copy.deepcopy(dict(base)))
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _anchor_paths(raw: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """``raw`` with a relative ``draws.file`` taken from ``base`` (the spec file's folder)."""
    out = dict(raw)
    draws = out.get("draws")
    if isinstance(draws, Mapping) and isinstance(draws.get("file"), str):
        file = Path(draws["file"]).expanduser()
        if not file.is_absolute():
            out["draws"] = {**draws, "file": str(base / file)}
    return out


def _read(path: str | Path) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]]]:
    """(the base fields, the scales) of a workflow file, with its top-level keys checked."""
    raw = read_yaml(path)
    if raw is None:
        raise SpecError("<file>", f"{str(spec_file(path))!r} is empty")
    if not isinstance(raw, Mapping):
        raise SpecError("<top>", f"a spec is a mapping of fields, got {type(raw).__name__}")
    base = spec_file(path).absolute().parent
    raw = _anchor_paths(raw, base)
    if "scale" in raw:
        raise SpecError("scale", "set by --scale, not in the file (declare 'scales' instead)")
    exp = spec_experiment(raw)
    keys = (*(k for k in TOP_LEVEL_KEYS if k != "scale"), "scales", *exp.param_keys)
    check_keys(raw, keys, "")
    scales = raw.pop("scales", None) or {}
    if not isinstance(scales, Mapping):
        raise SpecError("scales", f"expected a mapping of scale name to overrides, got {scales!r}")
    for name, over in scales.items():
        if not isinstance(name, str) or not name:
            raise SpecError("scales", f"scale name {name!r} is not a name")
        if not isinstance(over, Mapping):
            raise SpecError(f"scales.{name}", f"expected a mapping of overrides, got {over!r}")
        for k in ("scales", "scale"):
            if k in over:
                raise SpecError(f"scales.{name}.{k}", "a scale cannot set this key")
    scales = {name: _anchor_paths(over, base) for name, over in scales.items()}
    return raw, scales


def workflow_scales(path: str | Path) -> tuple[str, ...]:
    """The scale names a workflow file declares (``()`` for a plain spec)."""
    return tuple(_read(path)[1])


def load_workflow(path: str | Path, scale: str | None = None) -> SweepSpec:
    """Read a workflow (or plain spec) file and return the validated spec at ``scale``.

    ``scale=None`` runs the base values. Every declared scale is validated, whichever is
    asked for, so a typo in one is reported when the file loads, named by its full field
    (``scales.paper.axes.widht``). An unknown scale raises :class:`SpecError` naming the
    declared ones; the figure kind and its options are checked
    (:func:`pipeline.spec.figures.check_figure_entry`, without importing the figures).
    """
    raw, scales = _read(path)
    base = parse_spec(raw)
    chosen = base
    for name, over in scales.items():
        merged = _merge(raw, over)
        merged["scale"] = name
        try:
            spec = parse_spec(merged)
        except SpecError as e:
            field = e.field if e.field not in ("<top>", "<file>") else ""
            raise SpecError(f"scales.{name}" + (f".{field}" if field else ""), e.detail) from e
        if name == scale:
            chosen = spec
    if scale is not None and scale not in scales:
        allowed = ", ".join(scales) or f"none: {str(path)!r} declares no scales"
        raise SpecError("scales", f"unknown scale {scale!r} (allowed: {allowed})")
    return chosen


def load_spec(path: str | Path, scale: str | None = None) -> SweepSpec:
    """Read and validate a YAML spec or workflow file, at its base values or at ``scale``
    (:func:`load_workflow`).

    Raises :class:`SpecError` for a missing file, malformed YAML or any invalid field.
    """
    return load_workflow(path, scale)
