"""Phase-diagram sweeps of random deep networks at scale.

Spec (YAML) → plan (chunk keys) → Zarr v3 store template → Dask (local, scheduler address)
→ NumPy backend per chunk → region writes + done markers → ``xarray.open_zarr``.

The public API::

    from pipeline import load_spec, run_sweep, open_sweep
    spec = load_spec("workflows/quickstart.yaml")
    report = run_sweep(spec)            # resumable; returns a RunReport
    ds = open_sweep(spec.store)         # lazy xarray.Dataset
"""

from pipeline.execute import RunReport, SweepFailed, run_sweep
from pipeline.plan import Plan, make_plan
from pipeline.spec import SpecError, SweepSpec, load_spec, parse_spec
from pipeline.store import SpecMismatchError, open_sweep, read_spec

__all__ = [
    "Plan",
    "RunReport",
    "SpecError",
    "SpecMismatchError",
    "SweepFailed",
    "SweepSpec",
    "load_spec",
    "make_plan",
    "open_sweep",
    "parse_spec",
    "read_spec",
    "run_sweep",
]

__version__ = "0.1.0"

# Submodules a notebook reaches for, importable as attributes (``pipeline.theory.q_star``)
# without an import of their own; loaded on first use, so ``import pipeline`` stays light.
_LAZY_SUBMODULES = frozenset(
    {"analysis", "figures", "plan", "propagate", "rng", "summary", "theory", "train", "zoom"}
)


def __getattr__(name: str):  # PEP 562
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"pipeline.{name}")
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
