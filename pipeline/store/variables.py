"""The variables a sweep's store holds: the experiment's, plus ``computed`` for a refined
sweep (which pixels were computed, which were filled from their block)."""

from __future__ import annotations

from pipeline.experiments import get_experiment
from pipeline.experiments.base import Variable
from pipeline.spec.sweep import SweepSpec

__all__ = ["COMPUTED", "store_variables"]

COMPUTED = Variable(
    "computed",
    (),
    "1 if the grid point was computed, 0 if filled from the nearest corner of its refinement "
    "block (-1: not written)",
    "1",
    dtype="int8",
    fill=-1,
)


def store_variables(spec: SweepSpec) -> list[Variable]:
    """The experiment's variables, and :data:`COMPUTED` when ``spec.refine`` is set."""
    out = list(get_experiment(spec.experiment).variables(spec))
    if spec.refine is not None:
        out.append(COMPUTED)
    return out
