"""Experiments: what a sweep computes at each grid point, as plug-ins.

An experiment is an :class:`~pipeline.experiments.base.Experiment` registered under its name
(the spec's ``experiment`` field) with :func:`register`. The built-in ones live in their own
packages and are imported on first use:

* ``propagation`` (:mod:`.propagation`): signal propagation through random finite-width
  networks (λ_L, q, c, circle CV, batch rank);
* ``trainability`` (:mod:`.trainability`): gradient descent on small MLPs over a
  learning-rate plane (converged or not);
* ``jacobian`` (:mod:`.jacobian`): eigenvalues and eigenvectors of the layer Jacobians of
  heavy-tailed networks (spectral radius, J_log, IPR_q).

Adding one: a package ``pipeline/experiments/<name>/`` whose ``__init__`` defines
``EXPERIMENT`` (an ``Experiment`` instance), plus its line in :data:`BUILTIN`. From another
package: an entry point in the group ``phase_sweep.experiments`` (``name = "module:OBJECT"``),
found on every process, Dask workers included; or ``register(MyExperiment())`` at run time
(in the driver's process: enough for in-process workers, e.g. tests).
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType

from pipeline.errors import PipelineError, SpecError
from pipeline.experiments.base import Experiment, Variable

__all__ = [
    "BUILTIN",
    "DRAWS_PROCEDURES",
    "ENTRY_POINT_GROUP",
    "Experiment",
    "Variable",
    "draws_procedure",
    "get_experiment",
    "known_experiments",
    "register",
]

BUILTIN: dict[str, str] = {
    "propagation": "pipeline.experiments.propagation",
    "trainability": "pipeline.experiments.trainability",
    "jacobian": "pipeline.experiments.jacobian",
}
"""Built-in experiments: name -> module holding ``EXPERIMENT`` (imported on first use)."""

DRAWS_PROCEDURES: dict[str, str] = {
    "dinverno2025": "pipeline.experiments.propagation.draws_torch",
}
"""``sweep draws`` procedures that an experiment's package provides: name -> module holding
``draw_dinverno``-style ``draw(...)`` / ``write_draws(arrays, path)`` (imported on use)."""

ENTRY_POINT_GROUP = "phase_sweep.experiments"
"""Entry-point group of experiments from other packages (``name = "module:OBJECT"``)."""

_REGISTERED: dict[str, Experiment] = {}


@cache
def _entry_points() -> dict[str, object]:
    """Installed experiment entry points by name (read once per process)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def register(experiment: Experiment, *, replace: bool = False) -> Experiment:
    """Make ``experiment`` available as ``experiment: <its name>`` in specs; returns it.

    ``replace=True`` allows re-registering a name (tests); otherwise a name that is taken
    raises ``ValueError``.
    """
    if not isinstance(experiment, Experiment):
        raise TypeError(f"register: expected an Experiment, got {type(experiment).__name__}")
    name = experiment.name
    if not name or not isinstance(name, str):
        raise PipelineError("register: an experiment needs a non-empty string name")
    taken = name in _REGISTERED or name in BUILTIN
    if taken and not replace and _REGISTERED.get(name) is not experiment:
        raise PipelineError(f"register: experiment {name!r} is already registered")
    _REGISTERED[name] = experiment
    return experiment


def known_experiments() -> tuple[str, ...]:
    """Names accepted by the spec's ``experiment`` field."""
    return tuple(dict.fromkeys([*BUILTIN, *_REGISTERED, *_entry_points()]))


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name``; :class:`~pipeline.errors.SpecError` otherwise."""
    if name not in _REGISTERED and name in BUILTIN:
        exp = importlib.import_module(BUILTIN[name]).EXPERIMENT
        _REGISTERED.setdefault(name, exp)
    if name not in _REGISTERED and isinstance(name, str):
        ep = _entry_points().get(name)
        if ep is not None:
            register(ep.load())
    if name not in _REGISTERED:
        raise SpecError(
            "experiment", f"unknown value {name!r} (allowed: {', '.join(known_experiments())})"
        )
    return _REGISTERED[name]


def draws_procedure(name: str) -> ModuleType:
    """The module of the ``sweep draws`` procedure ``name`` (:data:`DRAWS_PROCEDURES`)."""
    if name not in DRAWS_PROCEDURES:
        allowed = ", ".join(DRAWS_PROCEDURES)
        raise PipelineError(f"draws: unknown procedure {name!r} (allowed: {allowed})")
    return importlib.import_module(DRAWS_PROCEDURES[name])
