"""What a workflow's ``figure:`` entry may say: the figure kinds and their options, each with
a check of its value (so ``figure: {kind: phase_cv, layers: [15, "x"]}`` is a one-line error
when the workflow loads, not a traceback when it is drawn).

The kinds are drawn by :mod:`pipeline.figures` (each module registers its ``draw`` and
``notes`` under a name declared here; a test checks the two lists are the same). The
declarations live with the spec, which checks them, so the spec never imports the figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.errors import SpecError
from pipeline.spec.fields import (
    bounded_number,
    check_keys,
    number_list,
    positive_int,
    suggest,
)
from pipeline.spec.limits import MAX_INDEX

__all__ = ["FIGURE_OPTIONS", "OptionCheck", "check_figure_entry"]

OptionCheck = Callable[[Any, str], Any]
"""Checks one option's value: ``check(value, field_name)`` returns it normalised (plain,
JSON-able) or raises :class:`~pipeline.errors.SpecError`."""

FIGURE_OPTIONS: dict[str, dict[str, OptionCheck]] = {
    "xi_c_map": {
        "fit_from": lambda v, f: positive_int(v, f, 0),
        # the mean-field ξ_c is solved on theory_points² points: 400² take a few seconds
        "theory_points": lambda v, f: positive_int(v, f, 2, 400),
        "xi_levels": lambda v, f: number_list(v, f, 0, 1e6, lo_open=True, max_len=20),
    },
    "phase_cv": {
        # one panel per layer: a dozen is already a wide figure
        "layers": lambda v, f: number_list(v, f, 1, MAX_INDEX, integers=True, max_len=12),
        "threshold": lambda v, f: bounded_number(v, f, 0, math.inf, lo_open=True),
    },
    "effective_rank": {"rho": lambda v, f: bounded_number(v, f, 0, 1, lo_open=True)},
    "frontier": {},
    "divergence": {},
    "trainability_grid": {},
    "eps_panel": {},
    "d2_map": {"q": lambda v, f: bounded_number(v, f, 0, 20, lo_open=True)},
    # cavity Monte Carlo draws per theory curve (about 1 s per curve at 20 000)
    "jacobian_density": {"samples": lambda v, f: positive_int(v, f, 100, 1_000_000)},
    # ~0.8 s per theory point at 10 000 samples; the paper's grid 0.05 × 0.05 at 10⁵ is ~3 h
    "l_map": {
        "alpha_step": lambda v, f: bounded_number(v, f, 0.01, 1.0),
        "sigma_w_step": lambda v, f: bounded_number(v, f, 0.01, 3.0),
        "samples": lambda v, f: positive_int(v, f, 100, 1_000_000),
    },
}
"""Figure kind → its options by name, with their checks (the order kinds are listed in)."""


def check_figure_entry(figure: Any, where: str = "figure") -> dict[str, Any]:
    """A ``figure:`` entry (``{"kind": NAME, **options}``) checked: a declared kind, known
    option names and valid values. Returns it with the values normalised."""
    if not isinstance(figure, Mapping) or "kind" not in figure:
        raise SpecError(where, f"expected a mapping with a 'kind', got {str(figure)[:60]!r}")
    kind = figure["kind"]
    if not isinstance(kind, str) or kind not in FIGURE_OPTIONS:
        raise SpecError(
            f"{where}.kind",
            f"unknown value {str(kind)[:60]!r}{suggest(str(kind), list(FIGURE_OPTIONS))} "
            f"(allowed: {', '.join(FIGURE_OPTIONS)})",
        )
    options = FIGURE_OPTIONS[kind]
    check_keys(figure, ("kind", *options), where)
    out: dict[str, Any] = {"kind": kind}
    for name, value in figure.items():
        if name != "kind":
            out[name] = options[name](value, f"{where}.{name}")
    return out
