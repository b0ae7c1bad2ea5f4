"""Labels of axis values in printed tables: as few digits as tell every distinct value of the
column apart (α = 1.999999 is not printed as "2.00" beside α = 2)."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["distinct_labels"]

MAX_DIGITS = 17  # enough for any float64 to round-trip


def distinct_labels(values: Iterable[float], decimals: int) -> dict[float, str]:
    """value -> label for the distinct ``values`` of a table column: ``decimals`` decimals
    (fixed point; significant digits for magnitudes ≥ 1e6 or < 1e-3, e.g. ``1e+30``), more
    where two distinct values would print alike. Non-finite values print as Python does."""
    distinct = sorted({float(v) for v in values})
    finite = [v for v in distinct if math.isfinite(v)]
    labels = {v: str(v) for v in distinct if not math.isfinite(v)}
    for d in range(decimals, MAX_DIGITS + 1):
        got = {v: _label(v, d) for v in finite}
        if len(set(got.values())) == len(finite):
            return {**labels, **got}
    return {**labels, **{v: repr(v) for v in finite}}


def _label(v: float, digits: int) -> str:
    if v == 0 or 1e-3 <= abs(v) < 1e6:
        return f"{v:.{digits}f}"
    return f"{v:.{max(digits, 1)}g}"
