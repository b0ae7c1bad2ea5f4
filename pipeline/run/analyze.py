"""``sweep analyze`` on a store: its experiment's class boundary, the analysis
(:mod:`pipeline.analysis.report`), written as the store's ``analysis`` group.

Reads the main group lazily and writes the Zarr group ``analysis`` inside the store
(``xarray.open_zarr(store, group="analysis")``); the main group is never touched:
``xarray.open_zarr(store)`` still opens the sweep. Which field is the boundary, over which
plane, and whether λ_L is there come from the experiment's hooks
(:meth:`~pipeline.experiments.base.Experiment.signed_field`, ``plane``,
``has_critical_regime``); the analysis itself knows no experiment.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from pipeline.analysis.report import ANALYSIS_GROUP, SignedField, analyze_field
from pipeline.errors import PipelineError, StoreError
from pipeline.experiments import Experiment, get_experiment
from pipeline.store.partial import partial_label
from pipeline.store.sweep import open_sweep

__all__ = ["analyze", "analyze_store", "signed_field_of", "stored_experiment"]

DEFAULT_EXPERIMENT = "propagation"
"""The experiment of a dataset that names none (written by xarray, not by ``sweep``)."""


def stored_experiment(ds: xr.Dataset) -> Experiment:
    """The experiment of a stored dataset: its ``experiment`` attribute, else its spec's,
    else :data:`DEFAULT_EXPERIMENT`."""
    name = ds.attrs.get("experiment") or ds.attrs.get("sweep_spec", {}).get("experiment")
    return get_experiment(str(name or DEFAULT_EXPERIMENT))


def signed_field_of(ds: xr.Dataset) -> SignedField:
    """The class boundary of a sweep ``ds`` as its experiment defines it: the field whose sign
    is the class (loaded), its image plane, what it is, and whether λ_L is there. A dataset
    without a spec (written by xarray) gets the field its variables alone give."""
    from pipeline.spec.sweep import parse_spec

    exp = stored_experiment(ds)
    if "sweep_spec" in ds.attrs:
        spec = parse_spec(ds.attrs["sweep_spec"])
        plane = exp.plane(spec)
        if plane is None:
            raise PipelineError(
                f"store: the {spec.experiment} experiment has no image plane; nothing to analyse"
            )
        field = exp.signed_field(spec, ds)
    else:
        plane = exp.stored_plane(ds)
        try:
            field = exp.signed_field(None, ds) if plane is not None else None
        except PipelineError:
            field = None
        if field is None or plane is None:
            raise StoreError("store: no sweep spec and no boundary field; nothing to analyse")
    return SignedField(field.load(), plane, exp.field_description, exp.has_critical_regime(ds))


def analyze(
    ds: xr.Dataset,
    *,
    factor: float = 10.0,
    burn_in: int = 0,
    threshold: float = 0.01,
) -> xr.Dataset:
    """The analysis dataset of a sweep ``ds`` (see :func:`analyze_store`)."""
    exp = stored_experiment(ds)
    extra = exp.extra_analysis(ds)  # the experiment's own results (D_q fits), or None
    alone = extra is not None and _plane(exp, ds) is None  # no class boundary to analyse
    signed = None if alone else signed_field_of(ds)
    return analyze_field(
        ds, signed, factor=factor, burn_in=burn_in, threshold=threshold, extra=extra
    )


def _plane(exp: Experiment, ds: xr.Dataset) -> tuple[str, str] | None:
    from pipeline.spec.sweep import parse_spec

    if "sweep_spec" in ds.attrs:
        return exp.plane(parse_spec(ds.attrs["sweep_spec"]))
    return exp.stored_plane(ds)


def analyze_store(
    store: str | Path,
    *,
    factor: float = 10.0,
    burn_in: int = 0,
    threshold: float = 0.01,
    write: bool = True,
) -> xr.Dataset:
    """Analyse the sweep in ``store`` and (if ``write``) save it as its ``analysis`` group.
    A store whose chunks are not all done gets the attribute ``partial`` (``"partial: k/n
    chunks"``), which :func:`~pipeline.analysis.report.format_analysis` prints first.

    Every store with a class boundary: ``boundary_dimension[_low|_high]`` (the default
    estimator's dimension with its 95 % interval of the boundary in the image plane, per
    image; NaN where the plane has fewer than 16 points per axis or no boundary) with
    ``boundary_dimension_needed_side|disagree|drifting|noise|frontier|report`` (the boundary
    report: too small, estimators disagreeing, drift with resolution, noise-dominated and
    the dimension of the frontier with the noise separated, its line). Stores with λ_L
    (propagation, pair probe) also: ``sigma_w_measured``, ``sigma_w_theory``,
    ``deviation_steps`` (critical lines,
    :func:`~pipeline.analysis.regimes.measured_critical_line`), ``regime_*`` (class maps per
    layer, seed-averaged), ``critical_fraction``/``critical_area`` (critical regime from λ_L
    with ``factor``).
    """
    path = Path(store)
    if not (path / "zarr.json").exists():
        raise PipelineError(f"store: {str(store)!r} is not a sweep store (no zarr.json)")
    ds = open_sweep(path)
    out = analyze(ds, factor=factor, burn_in=burn_in, threshold=threshold)
    if label := partial_label(path):  # said on the result itself, and kept with it
        out.attrs["partial"] = label
    if write:
        _write(out, path)
    return out


def _write(out: xr.Dataset, path: Path) -> None:
    import warnings

    import zarr

    try:
        with warnings.catch_warnings():  # the string coordinates' dtype is not in the v3 spec
            warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification")
            out.to_zarr(path, group=ANALYSIS_GROUP, mode="w", consolidated=False)
        # re-consolidate the root so that xarray.open_zarr(store, group="analysis") finds
        # the new group (the main arrays' metadata is unchanged by this)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # consolidated metadata is not in the v3 spec
            zarr.consolidate_metadata(str(path))
    except PermissionError as e:
        raise StoreError(
            f"store: cannot write the analysis group into {str(path)!r} ({e.strerror}); "
            "use --no-write to print the analysis only"
        ) from e
