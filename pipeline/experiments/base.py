"""What an experiment is: the hooks that the spec parser, the planner, the store, the executor
and the presentation layer call.

An experiment is a subclass of :class:`Experiment` that implements the required hooks (its
axes, its parameters, its output variables, the cost and the computation of one chunk) and may
override the optional ones (default dtype, summary, the boundary field that zooms, analysis
and figures use, lines for ``sweep plan``). It is registered under its name with
:func:`pipeline.experiments.register`; nothing outside its own package needs to know it.

The computation (:meth:`Experiment.compute_chunk`) is pure: coordinates in, arrays out; no
I/O, no scheduler. Everything else here is metadata.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.spec.fields import Axis, AxisRule

if TYPE_CHECKING:
    import xarray as xr

    from pipeline.spec.sweep import SweepSpec

__all__ = ["Experiment", "Variable"]


@dataclass(frozen=True)
class Variable:
    """One output variable: extra trailing dims after the grid dims, dtype, fill and attrs.

    ``dtype`` ``None`` means the spec's float dtype. ``fill`` is what an unwritten chunk
    reads as (NaN for floats), so a missing chunk is never mistaken for data. ``units`` is a
    UDUNITS string (``"1"`` for a dimensionless number; ``None`` for a flag variable).
    ``flags`` lists a class variable's (value, meaning) pairs: the store gets CF
    ``flag_values`` / ``flag_meanings`` from them.
    """

    name: str
    extra_dims: tuple[str, ...]
    long_name: str
    units: str | None = "1"
    dtype: str | None = None
    fill: Any = np.nan
    description: str = ""
    flags: tuple[tuple[int, str], ...] = ()


class Experiment(ABC):
    """Base class of the experiments: required hooks are abstract, optional ones have defaults.

    Class attributes: ``name`` (the spec's ``experiment`` value), ``axis_rules`` (every axis
    the experiment may have, in dimension order), ``param_keys`` (its own top-level spec
    fields) and ``default_dtype``.
    """

    name: str = ""
    axis_rules: tuple[AxisRule, ...] = ()
    param_keys: tuple[str, ...] = ()
    default_dtype: str = "float32"

    # ---- required -------------------------------------------------------------------------
    @abstractmethod
    def parse_params(
        self, raw: Mapping[str, Any], axes: tuple[Axis, ...]
    ) -> tuple[Any, dict[str, Any]]:
        """Validate the experiment's own top-level fields of the raw spec ``raw``; return
        (params, canonical dict). Errors are :class:`~pipeline.errors.SpecError`."""

    @abstractmethod
    def default_chunk(self, axis: Axis) -> int:
        """Default chunk length along ``axis``."""

    @abstractmethod
    def variables(self, spec: SweepSpec) -> list[Variable]:
        """Output variables of a sweep."""

    @abstractmethod
    def chunk_cost(self, spec: SweepSpec, chunk_shape: tuple[int, ...]) -> dict[str, float]:
        """Cost of one chunk of ``chunk_shape`` grid points: ``flops``, ``peak_bytes`` (a
        task's host working memory, bytes) and optionally ``device_peak_bytes``."""

    def cost_at(self, spec: SweepSpec, coords: dict[str, np.ndarray]) -> float:
        """FLOPs of the chunk whose coordinates are ``coords`` (dim → its values in the
        chunk), what ``sweep plan``'s calibration credits the chunk it times with. Default:
        :meth:`chunk_cost` of its shape; an experiment whose cost per point varies along an
        axis (and whose :meth:`chunk_cost` therefore averages over it) overrides this."""
        return float(self.chunk_cost(spec, tuple(len(v) for v in coords.values()))["flops"])

    @abstractmethod
    def compute_chunk(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        backend: str = "numpy",
        threads: int = 1,
    ) -> dict[str, np.ndarray]:
        """Compute every variable for the grid points in ``coords`` (the chunk's coordinate
        values per axis, keyed by dim name, in spec order). Returns arrays of shape
        ``chunk_shape + extra dims``; pure: no I/O, no scheduler. ``backend`` is ``numpy`` or
        ``cupy`` (``auto`` is resolved by the caller or here); ``threads`` is the number of
        threads the task may use (results must not depend on it)."""

    # ---- optional: refinement (points instead of a grid) ------------------------------------
    def compute_points(
        self,
        spec: SweepSpec,
        coords: dict[str, np.ndarray],
        backend: str = "numpy",
        threads: int = 1,
    ) -> dict[str, np.ndarray]:
        """Compute every variable at P scattered points of the :meth:`plane` (what a refined
        sweep computes). ``coords`` is keyed by dim name like :meth:`compute_chunk`'s, but
        the two plane axes hold P paired values (point p is ``(a[p], b[p])``, not an outer
        product) and every other axis holds its one value. Returns arrays of shape
        ``(P, *extra dims)``; a point's numbers must equal those :meth:`compute_chunk` gives
        it in any chunk.

        Default: one :meth:`compute_chunk` call per point (correct, slow: experiments whose
        computation is per point anyway override it)."""
        a_name, b_name = self._plane_or_raise(spec)
        names = [ax.name for ax in spec.axes]
        rows: dict[str, list[np.ndarray]] = {}
        for p in range(len(coords[a_name])):
            one = {
                nm: coords[nm][p : p + 1] if nm in (a_name, b_name) else coords[nm][:1]
                for nm in names
            }
            for k, v in self.compute_chunk(spec, one, backend=backend, threads=threads).items():
                rows.setdefault(k, []).append(v.reshape(v.shape[len(names) :]))
        return {k: np.stack(v) for k, v in rows.items()}

    def pixel_class(self, spec: SweepSpec, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The class of each of P computed points: +1, -1, or NaN (no class: a non-finite
        field). ``arrays`` is what :meth:`compute_points` returns (shape ``(P, *extra)``).

        Default: the sign of :meth:`signed_field` (``> 0`` → +1, ``<= 0`` → -1). An
        experiment whose class is not a sign (e.g. a distance threshold) overrides this."""
        import xarray as xr

        extra = self.extra_coords(spec)
        ds = xr.Dataset(
            {
                v.name: (("point", *v.extra_dims), arrays[v.name])
                for v in self.variables(spec)
                if v.name in arrays
            },
            coords={k: (k, vals) for k, (vals, _) in extra.items()},
        )
        field = np.asarray(self.signed_field(spec, ds).values, dtype=np.float64)
        return np.where(np.isnan(field), np.nan, np.where(field > 0, 1.0, -1.0))

    def _plane_or_raise(self, spec: SweepSpec) -> tuple[str, str]:
        plane = self.plane(spec)
        if plane is None:
            raise PipelineError(f"experiment {self.name!r} has no image plane")
        return plane

    # ---- optional: spec --------------------------------------------------------------------
    def axis_rules_for(self, raw: Mapping[str, Any]) -> tuple[AxisRule, ...]:
        """The axes of the raw spec ``raw``, in dimension order (default: every rule; an
        experiment whose axes depend on a mode field overrides this)."""
        return self.axis_rules

    def extra_coords(self, spec: SweepSpec) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """Coordinates of the non-grid dims (e.g. ``layer``) with their attrs (default none)."""
        return {}

    # ---- optional: presentation and boundary fields ----------------------------------------
    def summary(self, ds: xr.Dataset) -> str:
        """The text ``sweep run`` and ``sweep summary`` print for a store (default: sizes)."""
        sizes = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
        return f"{self.name} store: {sizes}; variables {', '.join(map(str, ds.data_vars))}"

    def plan_lines(self, spec: SweepSpec, flops: float) -> list[str]:
        """Extra lines for ``sweep plan`` (e.g. a GPU-hours estimate; default none)."""
        return []

    def plane(self, spec: SweepSpec) -> tuple[str, str] | None:
        """The two axes of the image plane whose class boundary zooms, analyses and figures
        follow, or None when the experiment has no such plane (the default)."""
        return None

    def signed_field(self, spec: SweepSpec | None, ds: xr.Dataset) -> xr.DataArray:
        """The field whose sign is the class (``> 0`` one class, ``<= 0`` the other) over
        :meth:`plane` and the other grid dims. ``spec`` is None for a dataset written without
        one (e.g. by xarray): the field from its variables alone, or a
        :class:`~pipeline.errors.PipelineError`. Default: not available."""
        raise PipelineError(f"experiment {self.name!r} has no signed field (no class boundary)")

    field_description: str = "sign of the field"
    """What :meth:`signed_field` is, for figure titles."""

    display_label: str = "signed field"
    """Colour-bar label of :meth:`display_field` in figures (the zoom frames)."""

    class_names: tuple[str, str] = ("<= 0", "> 0")
    """What the sign of :meth:`signed_field` means: (the class of ``<= 0``, of ``> 0``)."""

    def display_field(self, values: np.ndarray) -> np.ndarray:
        """``values`` of :meth:`signed_field` as a figure shows them (default unchanged)."""
        return values

    def axis_label(self, name: str) -> str:
        """The figure label of the axis (dim) ``name``: its rule's ``label`` (or
        ``squared_long_name`` for a squared axis), else its ``long_name``, else ``name``."""
        rule = self.rules_by_name().get(name)
        if rule is None:
            return name
        if rule.squared_name == name:
            return rule.squared_long_name or name
        return rule.label or rule.long_name or name

    def stored_plane(self, ds: xr.Dataset) -> tuple[str, str] | None:
        """The image plane (:meth:`plane`) of a stored dataset ``ds``, read from its dims and
        attributes without parsing its spec; None when the experiment has no plane (the
        default)."""
        return None

    def extra_analysis(self, ds: xr.Dataset) -> xr.Dataset | None:
        """The experiment's own results for ``sweep analyze`` (e.g. the jacobian
        experiment's D_q fits), merged into the store's ``analysis`` group: variables with
        CF ``long_name``/``units``, over dims of ``ds`` (default None: nothing beyond the
        class boundary). An experiment without an image plane that returns a dataset here
        is analysed by it alone."""
        return None

    def has_critical_regime(self, ds: xr.Dataset) -> bool:
        """Whether ``ds`` has what the critical-regime analysis reads (critical lines vs
        mean field, regime maps: :mod:`pipeline.analysis.regimes`; default no)."""
        return False

    def check_zoomable(self, spec: SweepSpec) -> None:
        """Raise :class:`~pipeline.errors.PipelineError` (one line) unless a zoom can follow
        the boundary of ``spec``: a plane, and one value on every other axis."""
        plane = self.plane(spec)
        if plane is None:
            raise PipelineError(f"zoom: experiment {self.name!r} has no image plane to zoom")
        bad = [ax.name for ax in spec.axes if ax.name not in plane and len(ax) != 1]
        if bad:
            raise PipelineError(
                f"zoom: axes {', '.join(bad)} must have a single value (a zoom follows one "
                f"boundary in the {plane[0]} × {plane[1]} plane)"
            )

    # ---- helpers ---------------------------------------------------------------------------
    def rules_by_name(self) -> dict[str, AxisRule]:
        """Every axis rule by its name and by its squared name (``sigma_w2``)."""
        out = {r.name: r for r in self.axis_rules}
        out.update({r.squared_name: r for r in self.axis_rules if r.squared_name})
        return out
