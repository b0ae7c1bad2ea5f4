"""Stage 1 of the pipeline: the sweep spec, parsed and validated once, at the boundary.

* :mod:`.yamlfile` reading spec files: YAML with size, depth and alias limits, no key twice
* :mod:`.limits`   size limits checked while a spec is parsed, before anything is allocated
* :mod:`.fields`   one axis and what an experiment allows on it; field validators
* :mod:`.sweep`    :class:`SweepSpec` (frozen), :func:`parse_spec`
* :mod:`.workflow` workflow files: a spec plus named ``scales:`` and a ``figure:``;
  :func:`load_spec`
* :mod:`.figures`  the figure kinds a ``figure:`` may name and their options

Only :mod:`.fields` (with :mod:`.limits`) is imported with this package (the experiments
import it to declare their axes); the rest is loaded on first use, so that
``pipeline.experiments`` and this package do not import each other.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import SpecError
from pipeline.spec.fields import Axis, AxisRule, check_keys

__all__ = [
    "Axis",
    "AxisRule",
    "SpecError",
    "SweepSpec",
    "check_keys",
    "load_spec",
    "load_workflow",
    "parse_spec",
]

_LAZY = {
    "SweepSpec": "pipeline.spec.sweep",
    "load_spec": "pipeline.spec.workflow",
    "parse_spec": "pipeline.spec.sweep",
    "load_workflow": "pipeline.spec.workflow",
}


def __getattr__(name: str) -> Any:  # PEP 562: loaded on first use (see the docstring)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.spec' has no attribute {name!r}")
