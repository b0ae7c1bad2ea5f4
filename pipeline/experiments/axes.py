"""Axis rules that several experiments share (one definition, so their limits and long names
cannot drift apart)."""

from __future__ import annotations

from pipeline.spec.fields import AxisRule

__all__ = ["ALPHA_RULE", "seed_rule"]

ALPHA_RULE = AxisRule(
    "alpha",
    "float",
    low=0,
    high=2,
    low_open=True,
    default=(2.0,),
    long_name="tail index α of the α-stable weights",
)
"""The tail index α ∈ (0, 2] of α-stable weights (2: Gaussian, the default)."""


def seed_rule(long_name: str) -> AxisRule:
    """The ``seed`` axis: unsigned 64-bit integers (seeds ≥ 2**63 exact and distinct), default
    (0,), with the experiment's ``long_name`` for what the seed draws."""
    return AxisRule(
        "seed", "int", low=0, high=2**64 - 1, default=(0,), long_name=long_name, dtype="uint64"
    )
