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
from pipeline.spec.limits import MAX_AXIS_VALUES, MAX_INDEX

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


def check_keys(
    raw: Mapping[str, Any],
    allowed: Sequence[str],
    where: str,
    shown: Sequence[str] | None = None,
) -> None:
    """Raise :class:`SpecError` for the first key of ``raw`` not in ``allowed``; the message
    lists ``shown`` (default ``allowed``: keys allowed but set elsewhere can be left out)."""
    shown = allowed if shown is None else shown
    for key in raw:
        if not isinstance(key, str) or key not in allowed:
            field_name = f"{where}.{key}" if where else str(key)
            raise SpecError(
                field_name,
                f"unknown key{suggest(str(key), shown)} (allowed: {', '.join(shown)})",
            )


@dataclass(frozen=True)
class Axis:
    """One grid axis: a dimension name, its coordinate values, and how they were given.

    ``values`` are the coordinates exactly as stored in the dataset (for ``sigma_w2`` these
    are variances σ_w²; :attr:`physical` gives the scale σ_w the experiment uses). ``dtype``
    is the coordinate's NumPy dtype (``uint64`` for seeds, so that seeds >= 2⁶³ stay exact
    and distinct; ``None``: NumPy's choice).
    """

    name: str
    values: tuple
    squared: bool = False
    dtype: str | None = None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def base_name(self) -> str:
        """The parameter this axis sets: ``sigma_w2`` → ``sigma_w``."""
        return self.name[:-1] if self.squared else self.name

    @property
    def array(self) -> np.ndarray:
        """The coordinate values as an array of :attr:`dtype` (shape ``(len(self),)``)."""
        return np.asarray(self.values, dtype=self.dtype)

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
    units: str | None = "1"  # UDUNITS; None for strings
    squared_long_name: str = ""  # of the squared axis, e.g. "weight variance σ_w²"
    dtype: str | None = None  # the coordinate's dtype (default: int64, float64, str)
    label: str = ""  # figures' axis label when shorter than long_name (default: long_name)

    def __post_init__(self) -> None:
        # an int axis the kernels index (a width, a depth) is bounded by their int32
        if self.kind == "int" and self.high is None:
            object.__setattr__(self, "high", MAX_INDEX)
        if self.dtype is None and self.kind != "str":
            object.__setattr__(self, "dtype", "int64" if self.kind == "int" else "float64")

    def axis(self, values: tuple, squared: bool = False) -> Axis:
        """An :class:`Axis` of this rule with ``values`` (already checked)."""
        name = self.squared_name if squared and self.squared_name else self.name
        return Axis(name=name, values=tuple(values), squared=squared, dtype=self.dtype)

    def interval_text(self) -> str:
        """The allowed range in interval notation, e.g. ``(0, 2]`` or ``[1, inf)``."""
        fmt = (lambda v: f"{int(v)}") if self.kind == "int" else (lambda v: f"{v:g}")  # noqa: E731
        lo = "-inf" if self.low is None else fmt(self.low)
        hi = "inf" if self.high is None else fmt(self.high)
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
            value = _finite_float(value, field_name)
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


def _finite_float(value: Any, field_name: str) -> float:
    """``value`` as a float; :class:`SpecError` when it is not finite (``.inf``, or an
    integer too large for a float, e.g. 10**400)."""
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise SpecError(field_name, f"value {_short(value)} is not a finite number")
    return out


def _short(value: Any) -> str:
    """``repr(value)``, cut to 40 characters (a 400-digit integer is not shown whole)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} characters)"


def _integer_hint(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return f" (write it as an integer, e.g. {int(value)})" if abs(value) < 1e16 else ""
    return ""


def _count(raw: Any, field_name: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise SpecError(
            field_name, f"count {_short(raw)} is not an integer >= 1{_integer_hint(raw)}"
        )
    if raw < 1:
        raise SpecError(field_name, f"count {raw} must be >= 1")
    if raw > MAX_AXIS_VALUES:
        raise SpecError(
            field_name, f"count {_short(raw)} is over the limit of {MAX_AXIS_VALUES:,} per axis"
        )
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
            if rule.kind != "int":
                raise SpecError(f"{field_name}.start", "start/count is for integer axes only")
            start = rule.check(raw["start"], f"{field_name}.start")
            rule.check(start + n - 1, f"{field_name}.start")  # the last value, too
            return list(range(start, start + n))
        ends = raw[form]
        if not isinstance(ends, Sequence) or isinstance(ends, str) or len(ends) != 2:
            raise SpecError(f"{field_name}.{form}", f"value {ends!r} is not a [start, stop] pair")
        for e in ends:
            if isinstance(e, bool) or not isinstance(e, int | float):
                raise SpecError(f"{field_name}.{form}", f"value {ends!r} is not a pair of numbers")
        lo, hi = (_finite_float(e, f"{field_name}.{form}") for e in ends)
        fn = np.linspace if form == "linspace" else np.logspace
        with np.errstate(over="ignore"):  # 10**400: inf, which the rule's check reports
            values = fn(lo, hi, n)
        if rule.kind == "int":  # integer-valued floats; the rule's check makes them ints
            values = np.round(values)
        return [v.item() for v in values]
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        if len(raw) == 0:
            raise SpecError(field_name, "empty list (an axis needs at least one value)")
        if len(raw) > MAX_AXIS_VALUES:
            raise SpecError(
                field_name, f"{len(raw):,} values; the limit is {MAX_AXIS_VALUES:,} per axis"
            )
        return list(raw)
    return [raw]


def parse_axis(raw: Any, rule: AxisRule, squared: bool) -> Axis:
    """Validate one axis entry against ``rule``; ``squared`` when given as e.g. ``sigma_w2``."""
    name = rule.squared_name if squared and rule.squared_name else rule.name
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
    return rule.axis(tuple(checked), squared)


def positive_int(value: Any, field_name: str, minimum: int, maximum: int = MAX_INDEX) -> int:
    """``value`` if it is an integer in [minimum, maximum] (not a bool), else
    :class:`SpecError`. The default maximum is what the kernels can index (int32)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(
            field_name,
            f"value {_short(value)} is not an integer >= {minimum}{_integer_hint(value)}",
        )
    if value > maximum:
        raise SpecError(field_name, f"value {_short(value)} is over the limit of {maximum:,}")
    return value


def bounded_number(
    value: Any, field_name: str, lo: float, hi: float, lo_open: bool = False
) -> float:
    """``value`` as a float if it is a finite number in [lo, hi] (or (lo, hi] with
    ``lo_open``), else :class:`SpecError` with the interval."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field_name, f"value {_short(value)} is not a finite number")
    value = _finite_float(value, field_name)
    if (value <= lo if lo_open else value < lo) or value > hi:
        left = "(" if lo_open else "["
        right = ")" if math.isinf(hi) else "]"
        raise SpecError(field_name, f"value {value!r} is outside {left}{lo:g}, {hi:g}{right}")
    return float(value)


def number_list(
    value: Any,
    field_name: str,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    max_len: int = 64,
    integers: bool = False,
) -> list[float] | list[int]:
    """``value`` as a list of 1..``max_len`` numbers in [lo, hi] (or (lo, hi]), each checked
    like :func:`bounded_number` (``integers``: like :func:`positive_int` with minimum
    ``lo``); a single number is a list of one."""
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not 1 <= len(items) <= max_len:
        raise SpecError(field_name, f"expected 1 to {max_len} values, got {len(items)}")
    out: list = []
    for i, v in enumerate(items):
        f = f"{field_name}[{i}]" if isinstance(value, list | tuple) else field_name
        if integers:
            out.append(positive_int(v, f, int(lo), int(min(hi, MAX_INDEX))))
        else:
            out.append(bounded_number(v, f, lo, hi, lo_open=lo_open))
    return out
