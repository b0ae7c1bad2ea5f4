"""Spec fields: one grid axis and what an experiment allows on it, and field validators.

Pure validation, shared by the spec parser (:mod:`pipeline.spec.sweep`) and the experiments
(which declare their axes as :class:`AxisRule` values and validate their own parameters with
:func:`check_keys`, :func:`positive_int` and :func:`bounded_number`). Every failure is a
:class:`~pipeline.errors.SpecError` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import SpecError

__all__ = [
    "Axis",
    "AxisRule",
    "bounded_number",
    "check_keys",
    "parse_axis",
    "positive_int",
    "suggest",
]


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


def positive_int(value: Any, field_name: str, minimum: int) -> int:
    """``value`` if it is an integer >= ``minimum`` (not a bool), else :class:`SpecError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(field_name, f"value {value!r} is not an integer >= {minimum}")
    return value


def bounded_number(
    value: Any, field_name: str, lo: float, hi: float, lo_open: bool = False
) -> float:
    """``value`` as a float if it is a finite number in [lo, hi] (or (lo, hi] with
    ``lo_open``), else :class:`SpecError` with the interval."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(field_name, f"value {value!r} is not a finite number")
    if (value <= lo if lo_open else value < lo) or value > hi:
        left = "(" if lo_open else "["
        right = ")" if math.isinf(hi) else "]"
        raise SpecError(field_name, f"value {value!r} is outside {left}{lo:g}, {hi:g}{right}")
    return float(value)
