"""The sweep spec: a frozen, validated description of one sweep, parsed once at the boundary.

A spec is written in YAML (see docs/specs.md) and turned into a :class:`SweepSpec`
by :func:`load_spec` / :func:`parse_spec`. Every later stage (plan, store, executor, the
experiments) reads only the ``SweepSpec``; the store keeps its canonical dictionary
(:meth:`SweepSpec.to_dict`) in its attrs, and :meth:`SweepSpec.from_dict` rebuilds it there.

The experiment named by the spec (:mod:`pipeline.experiments`) owns its axes and its own
parameters; this module owns the fields every sweep has (``axes``, ``chunks``, ``dtype``,
``store``, ...). Errors are :class:`~pipeline.errors.SpecError` with a one-line message that
names the field, the value given and what is allowed, e.g.
``spec field 'axes.alpha': value 2.5 is outside (0, 2]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import SpecError
from pipeline.experiments import get_experiment, known_experiments
from pipeline.spec.fields import Axis, check_keys, parse_axis, suggest
from pipeline.spec.limits import MAX_CHUNKS, MAX_GRID_POINTS
from pipeline.spec.refine import RefineSpec, parse_refine
from pipeline.spec.yamlfile import expand_home, spec_file

__all__ = [
    "DTYPES",
    "NON_NUMERIC_KEYS",
    "TOP_LEVEL_KEYS",
    "SweepSpec",
    "parse_spec",
    "spec_file",
    "spec_experiment",
    "with_refine",
]

DTYPES = ("float32", "float64")
TOP_LEVEL_KEYS = (
    "experiment",
    "name",
    "description",
    "store",
    "axes",
    "chunks",
    "dtype",
    "figure",
    "scale",
    "refine",
)
# ``figure`` (what ``sweep figures`` draws) and ``scale`` (the workflow scale the spec was
# made at, see pipeline.spec.workflow) are carried into the store's attrs but change no number.
NON_NUMERIC_KEYS = ("store", "name", "description", "figure", "scale")
# ``scale`` is set by ``--scale`` (a file declares ``scales:``): not offered in "allowed:" lists
_SHOWN_TOP_LEVEL_KEYS = tuple(k for k in TOP_LEVEL_KEYS if k != "scale")


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep.

    Attributes
    ----------
    experiment : name of the experiment (``"propagation"``); it owns ``params`` and the axes.
    axes : grid axes in dimension order (the dataset's dims, ``layer`` etc. follow them).
    params : the experiment's own validated parameters (a frozen dataclass).
    chunks : chunk length along each axis, same order as ``axes``.
    dtype : ``"float32"`` or ``"float64"``: the compute and storage precision (default: the
        experiment's, float32 for propagation, float64 for trainability).
    store : output Zarr store path, or ``None`` when given only on the command line.
    name, description : free text carried into the store's attrs.
    figure : what ``sweep figures`` draws from the store (``{"kind": ..., **options}``), or
        ``None``; validated by :func:`pipeline.workflow.load_workflow`.
    scale : the workflow scale (e.g. ``"smoke"``, ``"paper"``) the spec was built at, or ``None``.
    refine : adaptive boundary refinement of the image plane (:mod:`pipeline.spec.refine`),
        or ``None`` (every grid point computed).
    """

    experiment: str
    axes: tuple[Axis, ...]
    params: Any
    chunks: tuple[int, ...]
    dtype: str = "float32"
    store: str | None = None
    name: str = ""
    description: str = ""
    figure: Mapping[str, Any] | None = field(default=None, compare=False)
    scale: str | None = None
    raw_params: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    refine: RefineSpec | None = None

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        """Grid dimension names, in order."""
        return tuple(a.name for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape (one entry per axis)."""
        return tuple(len(a) for a in self.axes)

    @property
    def n_points(self) -> int:
        """Number of grid points."""
        return math.prod(self.shape)

    def axis(self, name: str) -> Axis:
        """The axis called ``name`` (or whose base name is ``name``, e.g. ``sigma_w``)."""
        for a in self.axes:
            if a.name == name or a.base_name == name:
                return a
        raise KeyError(name)

    # ---- round trip ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-able dict: every axis as its explicit value list (``figure`` and
        ``scale`` and ``refine`` only when set, so older stores' dicts are unchanged)."""
        extra: dict[str, Any] = {}
        if self.figure is not None:
            extra["figure"] = json.loads(json.dumps(dict(self.figure)))
        if self.scale is not None:
            extra["scale"] = self.scale
        if self.refine is not None:
            extra["refine"] = self.refine.to_dict()
        return {
            "experiment": self.experiment,
            "name": self.name,
            "description": self.description,
            "store": self.store,
            "dtype": self.dtype,
            "axes": {a.name: list(a.values) for a in self.axes},
            "chunks": dict(zip(self.dims, self.chunks, strict=True)),
            **json.loads(json.dumps(dict(self.raw_params))),
            **extra,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SweepSpec:
        """Inverse of :meth:`to_dict` (also accepts any raw spec mapping)."""
        return parse_spec(raw)

    def with_store(self, store: str | Path) -> SweepSpec:
        """A copy writing to ``store``."""
        d = self.to_dict()
        d["store"] = str(store)
        return parse_spec(d)

    def differences(self, other: SweepSpec) -> list[str]:
        """Dotted names of the fields where the two specs differ (``store``, ``name``,
        ``description``, ``figure`` and ``scale`` are ignored: they do not change a number;
        so is the path of a draws file, whose content hash is its identity)."""
        a, b = self.to_dict(), other.to_dict()
        for d in (a, b):
            for k in NON_NUMERIC_KEYS:
                d.pop(k, None)
            if isinstance(d.get("draws"), Mapping):
                d["draws"] = {k: v for k, v in d["draws"].items() if k != "file"}
        return _diff(a, b, "")


def _diff(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(name)
            else:
                out.extend(_diff(a[k], b[k], name))
        return out
    return [] if a == b else [prefix]


def spec_experiment(raw: Mapping[str, Any]) -> Any:
    """The experiment a raw spec names (default ``propagation``); :class:`SpecError` when
    it names none that is known."""
    exp_name = raw.get("experiment", "propagation")
    if not isinstance(exp_name, str) or exp_name not in known_experiments():
        raise SpecError(
            "experiment",
            f"unknown value {exp_name!r}{suggest(str(exp_name), known_experiments())} "
            f"(allowed: {', '.join(known_experiments())})",
        )
    return get_experiment(exp_name)


def parse_spec(raw: Any) -> SweepSpec:
    """Validate a raw spec mapping (as loaded from YAML) and return a :class:`SweepSpec`."""
    if not isinstance(raw, Mapping):
        raise SpecError("<top>", f"a spec is a mapping of fields, got {type(raw).__name__}")
    exp = spec_experiment(raw)
    exp_name = exp.name
    own = exp.param_keys
    check_keys(raw, (*TOP_LEVEL_KEYS, *own), "", (*_SHOWN_TOP_LEVEL_KEYS, *own))

    # axes
    raw_axes = raw.get("axes", {})
    if not isinstance(raw_axes, Mapping):
        raise SpecError("axes", f"expected a mapping of axis name to values, got {raw_axes!r}")
    rules = exp.axis_rules_for(raw)
    allowed_names = [r.name for r in rules] + [r.squared_name for r in rules if r.squared_name]
    check_keys(raw_axes, allowed_names, "axes")
    axes = []
    for rule in rules:
        plain, sq = rule.name in raw_axes, rule.squared_name in raw_axes
        if plain and sq:
            raise SpecError(
                f"axes.{rule.squared_name}",
                f"give either '{rule.name}' or '{rule.squared_name}', not both",
            )
        if sq:
            axes.append(parse_axis(raw_axes[rule.squared_name], rule, squared=True))
        elif plain:
            axes.append(parse_axis(raw_axes[rule.name], rule, squared=False))
        elif rule.default is not None:
            axes.append(rule.axis(tuple(rule.default)))
        else:
            raise SpecError(f"axes.{rule.name}", "missing (this axis has no default)")
    axes_t = tuple(axes)
    n_points = math.prod(len(a) for a in axes_t)
    if n_points > MAX_GRID_POINTS:
        sizes = " × ".join(str(len(a)) for a in axes_t)
        raise SpecError(
            "axes",
            f"{n_points:,} grid points ({sizes}); the limit is {MAX_GRID_POINTS:,} per store "
            "(split the sweep into several stores, e.g. by seed)",
        )

    # chunks
    raw_chunks = raw.get("chunks", {}) or {}
    if not isinstance(raw_chunks, Mapping):
        raise SpecError(
            "chunks", f"expected a mapping of axis name to chunk length, got {raw_chunks!r}"
        )
    names = [a.name for a in axes_t]
    check_keys(raw_chunks, names, "chunks")
    chunks = []
    for a in axes_t:
        default = exp.default_chunk(a)
        c = raw_chunks.get(a.name, default)
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise SpecError(f"chunks.{a.name}", f"value {c!r} is not an integer >= 1")
        if c > len(a):
            raise SpecError(
                f"chunks.{a.name}", f"value {c} is larger than the axis ({len(a)} values)"
            )
        chunks.append(c)
    n_chunks = math.prod(-(-len(a) // c) for a, c in zip(axes_t, chunks, strict=True))
    if n_chunks > MAX_CHUNKS:
        raise SpecError(
            "chunks",
            f"{n_chunks:,} chunks; the limit is {MAX_CHUNKS:,} (give larger chunk lengths)",
        )

    dtype = raw.get("dtype", exp.default_dtype)
    if dtype not in DTYPES:
        raise SpecError("dtype", f"unknown value {dtype!r} (allowed: {', '.join(DTYPES)})")
    store = _store_path(raw.get("store"))
    figure = raw.get("figure")
    if figure is not None:
        figure = check_figure(figure)
    scale = raw.get("scale")
    if scale is not None and not isinstance(scale, str):
        raise SpecError("scale", f"value {scale!r} is not a scale name")
    name, description = (_text(raw.get(k), k) for k in ("name", "description"))

    params, raw_params = exp.parse_params(raw, axes_t)
    spec = SweepSpec(
        experiment=exp_name,
        axes=axes_t,
        params=params,
        chunks=tuple(chunks),
        dtype=dtype,
        store=store,
        name=name,
        description=description,
        figure=figure,
        scale=scale,
        raw_params=raw_params,
    )
    if raw.get("refine") is not None:
        spec = with_refine(spec, raw["refine"])
    return spec


def with_refine(spec: SweepSpec, raw: Any) -> SweepSpec:
    """``spec`` with the ``refine:`` block ``raw`` (a mapping, or ``True`` for the defaults)
    validated against its image plane: refinement needs a plane and one value on every
    other axis."""
    exp = get_experiment(spec.experiment)
    plane = exp.plane(spec)
    if plane is None:
        raise SpecError("refine", f"experiment {spec.experiment!r} has no image plane to refine")
    bad = [a.name for a in spec.axes if a.name not in plane and len(a) != 1]
    if bad:
        raise SpecError(
            "refine",
            f"axes {', '.join(bad)} have several values; refinement follows one boundary in "
            f"the {plane[0]} × {plane[1]} plane (give them one value each)",
        )
    sizes = (len(spec.axis(plane[0])), len(spec.axis(plane[1])))
    return dataclasses.replace(spec, refine=parse_refine(raw, sizes))


def _text(value: Any, field_name: str) -> str:
    """A free-text field (``name``, ``description``): a string (a number is taken as text)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SpecError(field_name, f"expected text, got a {type(value).__name__}")
    return str(value)


def _store_path(value: Any) -> str | None:
    """The ``store`` field with ``~`` expanded (once, here), or None."""
    if value is None:
        return None
    if not isinstance(value, str | Path) or not str(value).strip() or "\0" in str(value):
        raise SpecError("store", f"value {value!r} is not a path")
    return expand_home(str(value), "store")


def check_figure(figure: Any) -> dict[str, Any]:
    """A ``figure:`` entry checked against the registered kinds and their options (names and
    values; :mod:`pipeline.spec.figures`); returns it as a plain dict. Imports no figure
    module."""
    from pipeline.spec.figures import check_figure_entry

    return check_figure_entry(figure)
