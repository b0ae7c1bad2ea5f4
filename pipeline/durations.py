"""Durations as people read them (``"950 ms"``, ``"4 min 19 s"``): a leaf module, so that
the engine's progress lines, ``sweep plan`` and the experiments' plan lines share it."""

from __future__ import annotations

import math

__all__ = ["format_duration"]


def format_duration(seconds: float) -> str:
    """``seconds`` as a short human-readable duration: ``"950 ms"``, ``"12.3 s"``,
    ``"4 min 19 s"``, ``"3 h 05 min"``, ``"2 d 3 h"``; ``"unknown"`` for NaN or infinity."""
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} µs"
    if seconds < 60:
        return f"{seconds:.3g} s"
    s = round(seconds)
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
