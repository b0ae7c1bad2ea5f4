"""Phase-diagram sweeps of random deep networks at scale.

The stages, one folder each::

    spec/ (YAML → SweepSpec) → run/ (plan → Dask execution → zoom) → store/ (Zarr)
        → experiments/<name>/ (NumPy or CuPy per chunk) → analysis/ → figures/

The public API::

    from pipeline import load_spec, run_sweep, open_sweep
    spec = load_spec("workflows/quickstart.yaml")
    report = run_sweep(spec)            # resumable; returns a RunReport
    ds = open_sweep(spec.store)         # lazy xarray.Dataset

Errors caused by input are :class:`PipelineError` (a ``ValueError``) with one-line messages.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.errors import PipelineError, SpecError, SpecMismatchError
    from pipeline.experiments import Experiment, Variable, register
    from pipeline.run.execute import RunReport, SweepFailed, run_sweep
    from pipeline.run.plan import Plan, make_plan
    from pipeline.spec.sweep import SweepSpec, parse_spec
    from pipeline.spec.workflow import load_spec, load_workflow
    from pipeline.store.sweep import open_sweep, read_spec

# The public names, each from its module on first use: ``import pipeline`` (and so the
# ``sweep`` command, which is ``pipeline.cli``) does not load Zarr, xarray and the engine
# before it can act on a Ctrl-C or print ``--help``.
_EXPORTS = {
    "RunReport": "pipeline.run.execute",
    "SweepFailed": "pipeline.run.execute",
    "run_sweep": "pipeline.run.execute",
    "Plan": "pipeline.run.plan",
    "make_plan": "pipeline.run.plan",
    "open_sweep": "pipeline.store.sweep",
    "read_spec": "pipeline.store.sweep",
    "PipelineError": "pipeline.errors",
    "SpecError": "pipeline.errors",
    "SpecMismatchError": "pipeline.errors",
    "Experiment": "pipeline.experiments",
    "Variable": "pipeline.experiments",
    "register": "pipeline.experiments",
    "SweepSpec": "pipeline.spec.sweep",
    "load_spec": "pipeline.spec.workflow",
    "parse_spec": "pipeline.spec.sweep",
    "load_workflow": "pipeline.spec.workflow",
}

__all__ = [
    "Experiment",
    "PipelineError",
    "Plan",
    "RunReport",
    "SpecError",
    "SpecMismatchError",
    "SweepFailed",
    "SweepSpec",
    "Variable",
    "load_spec",
    "load_workflow",
    "make_plan",
    "open_sweep",
    "parse_spec",
    "read_spec",
    "register",
    "run_sweep",
]

__version__ = "0.1.0"

# Modules a notebook reaches for, as attributes (``pipeline.theory.q_star``) without an import
# of their own; loaded on first use, so ``import pipeline`` stays light.
_LAZY_SUBMODULES = {
    "analysis": "pipeline.analysis",
    "figures": "pipeline.figures",
    "levy": "pipeline.numerics.levy",
    "rng": "pipeline.numerics.rng",
    "theory": "pipeline.numerics.theory",
    "zoom": "pipeline.run.zoom",
}


def __getattr__(name: str) -> Any:  # PEP 562
    import importlib

    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # looked up once
        return value
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(_LAZY_SUBMODULES[name])
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
