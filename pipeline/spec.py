"""The sweep spec: a frozen, validated description of one sweep, parsed once at the boundary.

A spec is written in YAML (see README, "Spec reference") and turned into a :class:`SweepSpec`
by :func:`load_spec` / :func:`parse_spec`. Every later stage (plan, store, executor, the
experiments) reads only the ``SweepSpec``; the store keeps its canonical dictionary
(:meth:`SweepSpec.to_dict`) in its attrs, and :meth:`SweepSpec.from_dict` rebuilds it there.

Errors are :class:`SpecError` (a ``ValueError``) with a one-line message that names the field,
the value given and what is allowed, e.g.
``spec field 'axes.alpha': value 2.5 is outside (0, 2]``.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = [
    "Axis",
    "SpecError",
    "SweepSpec",
    "load_spec",
    "parse_spec",
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
)
# ``figure`` (what ``sweep figures`` draws) and ``scale`` (the workflow scale the spec was
# made at, see pipeline.workflow) are carried into the store's attrs but change no number.
NON_NUMERIC_KEYS = ("store", "name", "description", "figure", "scale")


class SpecError(ValueError):
    """A spec that cannot be run; the message names the field, the value and what is allowed."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"spec field '{field_name}': {message}")


def suggest(name: str, allowed: Sequence[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest allowed name, or ``""``."""
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_keys(raw: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    """Raise :class:`SpecError` for the first key of ``raw`` not in ``allowed``."""
    for key in raw:
        if key not in allowed:
            field_name = f"{where}.{key}" if where else str(key)
            raise SpecError(
                field_name,
                f"unknown key{suggest(str(key), allowed)} (allowed: {', '.join(allowed)})",
            )


@dataclass(frozen=True)
class Axis:
    """One grid axis: a dimension name, its coordinate values, and how they were given.

    ``values`` are the coordinates exactly as stored in the dataset (for ``sigma_w2`` these
    are variances σ_w²; :attr:`physical` gives the scale σ_w the experiment uses).
    """

    name: str
    values: tuple
    squared: bool = False

    def __len__(self) -> int:
        return len(self.values)

    @property
    def base_name(self) -> str:
        """The parameter this axis sets: ``sigma_w2`` → ``sigma_w``."""
        return self.name[:-1] if self.squared else self.name

    @property
    def physical(self) -> np.ndarray:
        """Values as the experiment uses them (square roots for a squared axis)."""
        arr = np.asarray(self.values)
        return np.sqrt(arr.astype(np.float64)) if self.squared else arr


@dataclass(frozen=True)
class AxisRule:
    """What an experiment allows on one axis (used by :func:`parse_axis`)."""

    name: str
    kind: str  # "float", "int" or "str"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    default: tuple | None = None
    squared_name: str | None = None  # e.g. "sigma_w2" may be given instead of "sigma_w"
    long_name: str = ""
    units: str = "1"

    def interval_text(self) -> str:
        """The allowed range in interval notation, e.g. ``(0, 2]`` or ``[1, inf)``."""
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def check(self, value: Any, field_name: str) -> Any:
        """Validate one coordinate value; return it normalised (int, float or str)."""
        if self.kind == "str":
            if not isinstance(value, str) or value not in self.choices:
                raise SpecError(
                    field_name,
                    f"unknown value {value!r}{suggest(str(value), self.choices)} "
                    f"(allowed: {', '.join(self.choices)})",
                )
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(
                field_name, f"value {value!r} is not a number (allowed: {self.interval_text()})"
            )
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise SpecError(field_name, f"value {value!r} is not an integer")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise SpecError(field_name, f"value {value!r} is not finite")
        too_low = self.low is not None and (
            value <= self.low if self.low_open else value < self.low
        )
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            what = "integers" if self.kind == "int" else "numbers"
            raise SpecError(
                field_name, f"value {value!r} is outside the allowed {what} {self.interval_text()}"
            )
        return value


def _count(raw: Any, field_name: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise SpecError(field_name, f"count {raw!r} is not an integer >= 1")
    if raw < 1:
        raise SpecError(field_name, f"count {raw} must be >= 1")
    return raw


def _expand_values(raw: Any, rule: AxisRule, field_name: str) -> list:
    """Turn an axis entry (scalar, list, linspace/logspace/start-count mapping) into values."""
    if isinstance(raw, Mapping):
        forms = ("values", "linspace", "logspace", "start")
        check_keys(raw, (*forms, "count"), field_name)
        given = [f for f in forms if f in raw]
        if len(given) != 1:
            raise SpecError(
                field_name,
                f"give exactly one of {', '.join(forms)} (got {', '.join(given) or 'none'})",
            )
        form = given[0]
        if form == "values":
            return _expand_values(raw["values"], rule, f"{field_name}.values")
        if "count" not in raw:
            raise SpecError(f"{field_name}.count", f"missing (needed with '{form}')")
        n = _count(raw["count"], f"{field_name}.count")
        if form == "start":
            start = rule.check(raw["start"], f"{field_name}.start")
            if rule.kind != "int":
                raise SpecError(f"{field_name}.start", "start/count is for integer axes only")
            return list(range(start, start + n))
        ends = raw[form]
        if not isinstance(ends, Sequence) or isinstance(ends, str) or len(ends) != 2:
            raise SpecError(f"{field_name}.{form}", f"value {ends!r} is not a [start, stop] pair")
        for e in ends:
            if isinstance(e, bool) or not isinstance(e, int | float):
                raise SpecError(f"{field_name}.{form}", f"value {ends!r} is not a pair of numbers")
        fn = np.linspace if form == "linspace" else np.logspace
        values = fn(float(ends[0]), float(ends[1]), n)
        if rule.kind == "int":
            values = np.round(values).astype(np.int64)
        return [v.item() for v in values]
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        if len(raw) == 0:
            raise SpecError(field_name, "empty list (an axis needs at least one value)")
        return list(raw)
    return [raw]


def parse_axis(raw: Any, rule: AxisRule, squared: bool) -> Axis:
    """Validate one axis entry against ``rule``; ``squared`` when given as e.g. ``sigma_w2``."""
    name = rule.squared_name if squared else rule.name
    field_name = f"axes.{name}"
    values = _expand_values(raw, rule, field_name)
    checked = []
    for i, v in enumerate(values):
        checked.append(rule.check(v, field_name if len(values) == 1 else f"{field_name}[{i}]"))
    seen: set = set()
    for v in checked:
        if v in seen:
            raise SpecError(field_name, f"duplicate value {v!r} (axis values must be distinct)")
        seen.add(v)
    return Axis(name=name, values=tuple(checked), squared=squared)


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
        ``scale`` only when set, so older stores' dicts are unchanged)."""
        extra: dict[str, Any] = {}
        if self.figure is not None:
            extra["figure"] = json.loads(json.dumps(dict(self.figure)))
        if self.scale is not None:
            extra["scale"] = self.scale
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
        ``description``, ``figure`` and ``scale`` are ignored: they do not change a number)."""
        a, b = self.to_dict(), other.to_dict()
        for d in (a, b):
            for k in NON_NUMERIC_KEYS:
                d.pop(k, None)
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


def parse_spec(raw: Any) -> SweepSpec:
    """Validate a raw spec mapping (as loaded from YAML) and return a :class:`SweepSpec`."""
    from pipeline.experiments import get_experiment, known_experiments

    if not isinstance(raw, Mapping):
        raise SpecError("<top>", f"a spec is a mapping of fields, got {type(raw).__name__}")
    exp_name = raw.get("experiment", "propagation")
    if exp_name not in known_experiments():
        raise SpecError(
            "experiment",
            f"unknown value {exp_name!r}{suggest(str(exp_name), known_experiments())} "
            f"(allowed: {', '.join(known_experiments())})",
        )
    exp = get_experiment(exp_name)
    check_keys(raw, (*TOP_LEVEL_KEYS, *exp.param_keys), "")

    # axes
    raw_axes = raw.get("axes", {})
    if not isinstance(raw_axes, Mapping):
        raise SpecError("axes", f"expected a mapping of axis name to values, got {raw_axes!r}")
    rules = exp.axis_rules_for(raw) if hasattr(exp, "axis_rules_for") else exp.axis_rules
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
            axes.append(Axis(rule.name, tuple(rule.default)))
        else:
            raise SpecError(f"axes.{rule.name}", "missing (this axis has no default)")
    axes_t = tuple(axes)

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

    dtype = raw.get("dtype", getattr(exp, "default_dtype", "float32"))
    if dtype not in DTYPES:
        raise SpecError("dtype", f"unknown value {dtype!r} (allowed: {', '.join(DTYPES)})")
    store = raw.get("store")
    if store is not None and not isinstance(store, str | Path):
        raise SpecError("store", f"value {store!r} is not a path")

    figure = raw.get("figure")
    if figure is not None and (
        not isinstance(figure, Mapping) or not isinstance(figure.get("kind"), str)
    ):
        raise SpecError("figure", f"expected a mapping with a 'kind' name, got {figure!r}")
    scale = raw.get("scale")
    if scale is not None and not isinstance(scale, str):
        raise SpecError("scale", f"value {scale!r} is not a scale name")

    params, raw_params = exp.parse_params(raw, axes_t)
    return SweepSpec(
        experiment=exp_name,
        axes=axes_t,
        params=params,
        chunks=tuple(chunks),
        dtype=dtype,
        store=None if store is None else str(store),
        name=str(raw.get("name", "") or ""),
        description=str(raw.get("description", "") or ""),
        figure=None if figure is None else dict(figure),
        scale=scale,
        raw_params=raw_params,
    )


def spec_file(path: str | Path) -> Path:
    """``path`` as a Path; :class:`SpecError` when it is missing or not a regular file."""
    p = Path(path)
    if p.is_dir():
        raise SpecError("<file>", f"{str(p)!r} is a directory; give a spec (YAML) file")
    if not p.is_file():
        raise SpecError("<file>", f"spec file {str(p)!r} does not exist")
    return p


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML spec file.

    Raises :class:`SpecError` for a missing file, malformed YAML or any invalid field.
    """
    p = spec_file(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError("<file>", f"{str(p)!r} is not valid YAML{where}: {problem}") from e
    if raw is None:
        raise SpecError("<file>", f"{str(p)!r} is empty")
    return parse_spec(raw)
