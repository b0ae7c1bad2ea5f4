"""The figure kinds a workflow's ``figure:`` may name, registered once each.

A kind is a function from a store's ``xarray.Dataset`` to a matplotlib ``Figure`` (``draw``),
a function to the few numbers behind it (``notes``, printed by ``sweep figures``) and its
options, each with a check of its value (so a workflow's ``figure: {kind: phase_cv, layers:
[15, "x"]}`` is a one-line error when the workflow loads, not a traceback when it is drawn).
Each figure module registers its kind with :func:`register`; the spec parser checks
``figure:`` entries with :func:`check_figure_entry` without importing matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import PipelineError, SpecError
from pipeline.spec.fields import check_keys, suggest

__all__ = ["FIGURES", "FIGURE_KINDS", "FigureKind", "OptionCheck", "check_figure_entry", "register"]

OptionCheck = Callable[[Any, str], Any]
"""Checks one option's value: ``check(value, field_name)`` returns it normalised (plain,
JSON-able) or raises :class:`~pipeline.errors.SpecError`."""


@dataclass(frozen=True)
class FigureKind:
    """One figure kind: ``draw(ds, **options) -> Figure``, ``notes(ds, **options) -> lines``
    and the options a workflow may give, by name, with their checks."""

    name: str
    draw: Callable[..., Any]
    notes: Callable[..., list[str]]
    options: Mapping[str, OptionCheck] = field(default_factory=dict)


FIGURES: dict[str, FigureKind] = {}
"""Registered figure kinds by name."""

FIGURE_KINDS: dict[str, tuple[str, ...]] = {}
"""Kind name → its option names."""


def register(
    name: str,
    draw: Callable[..., Any],
    notes: Callable[..., list[str]],
    options: Mapping[str, OptionCheck] | None = None,
) -> FigureKind:
    """Register a figure kind under ``name``; returns it. A name is registered once."""
    if name in FIGURES:
        raise PipelineError(f"figure kind {name!r} is already registered")
    kind = FigureKind(name, draw, notes, dict(options or {}))
    FIGURES[name] = kind
    FIGURE_KINDS[name] = tuple(kind.options)
    return kind


def check_figure_entry(figure: Any, where: str = "figure") -> dict[str, Any]:
    """A ``figure:`` entry (``{"kind": NAME, **options}``) checked: a registered kind, known
    option names and valid values. Returns it with the values normalised."""
    if not isinstance(figure, Mapping) or "kind" not in figure:
        raise SpecError(where, f"expected a mapping with a 'kind', got {str(figure)[:60]!r}")
    kind = figure["kind"]
    if not isinstance(kind, str) or kind not in FIGURES:
        raise SpecError(
            f"{where}.kind",
            f"unknown value {str(kind)[:60]!r}{suggest(str(kind), list(FIGURES))} "
            f"(allowed: {', '.join(FIGURES)})",
        )
    options = FIGURES[kind].options
    check_keys(figure, ("kind", *options), where)
    out: dict[str, Any] = {"kind": kind}
    for name, value in figure.items():
        if name != "kind":
            out[name] = options[name](value, f"{where}.{name}")
    return out
