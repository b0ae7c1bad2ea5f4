"""The figure kinds a workflow's ``figure:`` may name, registered once each.

A kind is a function from a store's ``xarray.Dataset`` to a matplotlib ``Figure`` (``draw``),
a function to the few numbers behind it (``notes``, printed by ``sweep figures``) and the
names of its options. Each figure module registers its kind with :func:`register`; the
spec parser checks ``figure:`` entries against :data:`FIGURE_KINDS` without importing
matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["FIGURES", "FIGURE_KINDS", "FigureKind", "register"]


@dataclass(frozen=True)
class FigureKind:
    """One figure kind: ``draw(ds, **options) -> Figure``, ``notes(ds, **options) -> lines``
    and the option names a workflow may give."""

    name: str
    draw: Callable[..., Any]
    notes: Callable[..., list[str]]
    options: tuple[str, ...] = ()


FIGURES: dict[str, FigureKind] = {}
"""Registered figure kinds by name."""

FIGURE_KINDS: dict[str, tuple[str, ...]] = {}
"""Kind name → its option names (what the spec parser checks)."""


def register(
    name: str,
    draw: Callable[..., Any],
    notes: Callable[..., list[str]],
    options: tuple[str, ...] = (),
) -> FigureKind:
    """Register a figure kind under ``name``; returns it. A name is registered once."""
    if name in FIGURES:
        raise PipelineError(f"figure kind {name!r} is already registered")
    kind = FigureKind(name, draw, notes, tuple(options))
    FIGURES[name] = kind
    FIGURE_KINDS[name] = kind.options
    return kind
