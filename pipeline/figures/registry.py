"""The figure kinds a workflow's ``figure:`` may name, registered once each.

A kind is a function from a store's ``xarray.Dataset`` to a matplotlib ``Figure`` (``draw``),
a function to the few numbers behind it (``notes``, printed by ``sweep figures``) and its
options, each with a check of its value (so a workflow's ``figure: {kind: phase_cv, layers:
[15, "x"]}`` is a one-line error when the workflow loads, not a traceback when it is drawn).
Each figure module registers its kind with :func:`register`; the kinds and their options are
declared in :mod:`pipeline.spec.figures`, where the spec parser checks ``figure:`` entries
(:func:`check_figure_entry`) without importing the figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import PipelineError
from pipeline.spec.figures import FIGURE_OPTIONS, OptionCheck, check_figure_entry

__all__ = ["FIGURES", "FIGURE_KINDS", "FigureKind", "OptionCheck", "check_figure_entry", "register"]


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


def register(name: str, draw: Callable[..., Any], notes: Callable[..., list[str]]) -> FigureKind:
    """Register the figure kind ``name`` (declared with its options in
    :data:`pipeline.spec.figures.FIGURE_OPTIONS`); returns it. A name is registered once."""
    if name in FIGURES:
        raise PipelineError(f"figure kind {name!r} is already registered")
    if name not in FIGURE_OPTIONS:
        raise PipelineError(
            f"figure kind {name!r}: not declared in pipeline.spec.figures.FIGURE_OPTIONS"
        )
    kind = FigureKind(name, draw, notes, FIGURE_OPTIONS[name])
    FIGURES[name] = kind
    FIGURE_KINDS[name] = tuple(kind.options)
    return kind
