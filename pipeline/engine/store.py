"""The Zarr v3 store of a sweep: template first, one region write per chunk, done markers.

Layout of a store directory::

    STORE/zarr.json, STORE/<variable>/...   a Zarr v3 group written through xarray
    STORE/_done/<key>                        one empty file per finished chunk

The template holds every coordinate (with units and long names), every variable (filled with
its fill value: NaN, or -1 for integer flags) and attrs with the full spec, the package
version, git revision, backend, dtype and creation time. ``xarray.open_zarr(STORE)`` opens it
with nothing of this package imported. A chunk's marker is written only after all of its
variables are in the store (:func:`write_chunk`), so "done" always means "written"; writing a
chunk twice is harmless.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from pipeline.engine.plan import (
    ChunkKey,
    chunk_slices,
    iter_chunk_keys,
    key_from_str,
    key_to_str,
)
from pipeline.engine.provenance import git_revision, package_version
from pipeline.errors import SpecMismatchError, StoreError
from pipeline.experiments import get_experiment
from pipeline.spec.sweep import SweepSpec, parse_spec

__all__ = [
    "SpecMismatchError",
    "chunk_info",
    "create_or_open_store",
    "done_keys",
    "missing_keys",
    "open_sweep",
    "read_spec",
    "write_chunk",
]

DONE_DIR = "_done"
SPEC_ATTR = "sweep_spec"


def _cf_attrs(long_name: str, units: str | None) -> dict[str, str]:
    """CF attributes of a coordinate or variable: its long_name, and UDUNITS units unless it
    has none (strings, flags)."""
    return {"long_name": long_name} if units is None else {"long_name": long_name, "units": units}


def build_template(spec: SweepSpec, provenance: dict[str, Any] | None = None) -> xr.Dataset:
    """The lazy (dask) dataset of fill values that defines the store's layout, with CF 1.10
    attributes on every coordinate and variable and the ``Conventions``/``history`` globals."""
    exp = get_experiment(spec.experiment)
    rules = exp.rules_by_name()
    coords: dict[str, Any] = {}
    for ax in spec.axes:
        rule = rules[ax.base_name]
        attrs = _cf_attrs(rule.long_name, rule.units)
        if ax.squared:
            squared = rule.squared_long_name or f"{rule.long_name} squared"
            coords[ax.base_name] = (ax.name, ax.physical, attrs)
            attrs = _cf_attrs(squared, rule.units)
        values = ax.array  # the axis's dtype: seeds are uint64 (exact beyond 2**63)
        if values.dtype.kind == "U":  # stored as Zarr v3 variable-length UTF-8 strings (a
            values = values.astype(object)  # fixed-width numpy string has no v3 spec)
        coords[ax.name] = (ax.name, values, attrs)
    extra = exp.extra_coords(spec)
    for name, (values, attrs) in extra.items():
        coords[name] = (name, values, attrs)
    data_vars = {}
    for v in exp.variables(spec):
        dims = (*spec.dims, *v.extra_dims)
        shape = (*spec.shape, *(len(extra[d][0]) for d in v.extra_dims))
        chunks = (*spec.chunks, *(len(extra[d][0]) for d in v.extra_dims))
        dtype = np.dtype(v.dtype or spec.dtype)
        arr = da.full(shape, v.fill, dtype=dtype, chunks=chunks)
        attrs: dict[str, Any] = _cf_attrs(v.long_name, v.units)
        if v.flags:
            attrs["flag_values"] = np.array([f for f, _ in v.flags], dtype=dtype)
            attrs["flag_meanings"] = " ".join(m for _, m in v.flags)
        data_vars[v.name] = (dims, arr, attrs)
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    version = package_version()
    attrs = {
        SPEC_ATTR: spec.to_dict(),
        "Conventions": "CF-1.10",
        "experiment": spec.experiment,
        "title": spec.name or f"{spec.experiment} sweep",
        "history": f"{created}: created by phase-sweep {version} (sweep run)",
        "source": f"phase-sweep {version}, {spec.experiment} experiment",
        "dtype": spec.dtype,
        "package_version": version,
        "git_revision": git_revision() or "unknown",
        "created": created,
        **(provenance or {}),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def read_spec(store: str | Path) -> SweepSpec:
    """The spec a store was created with."""
    g = zarr.open_group(str(store), mode="r")
    raw = g.attrs.get(SPEC_ATTR)
    if raw is None:
        raise StoreError(f"{store}: not a sweep store (no '{SPEC_ATTR}' attribute)")
    return parse_spec(raw)


def create_or_open_store(
    spec: SweepSpec, store: str | Path, provenance: dict[str, Any] | None = None
) -> bool:
    """Make the store's template, or check that an existing store was made by ``spec``.

    Returns True when the store was created. Raises :class:`SpecMismatchError` naming the
    differing fields when the store holds another spec.
    """
    path = Path(store)
    if (path / "zarr.json").exists():
        old = read_spec(path)
        diff = old.differences(spec)
        if diff:
            raise SpecMismatchError(
                f"store {str(path)!r} was made by a different spec; fields that differ: "
                f"{', '.join(diff)}. Use a new store path, or delete the old store to start over."
            )
        add_new_variables(spec, path)
        return False
    if path.exists() and any(path.iterdir()):
        raise StoreError(
            f"store: {str(path)!r} exists and is not a sweep store (no zarr.json); "
            "choose another path"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = build_template(spec, provenance)
    encoding = {
        v: {"fill_value": int(ds[v].dtype.type(-1))}
        for v in ds.data_vars
        if np.issubdtype(ds[v].dtype, np.integer)
    }
    # Build the template beside the target and rename it into place: a driver killed
    # while writing it leaves no half-made store behind.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with warnings.catch_warnings():
        # xarray consolidates the metadata (one read opens the store); zarr warns that this
        # is an extension of the v3 spec, which every reader of these stores here supports
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(str(tmp), mode="w-", compute=False, zarr_format=3, encoding=encoding)
    (tmp / DONE_DIR).mkdir(exist_ok=True)
    try:
        if path.exists():
            path.rmdir()  # an empty directory made by the user
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if (path / "zarr.json").exists():  # another driver made it first: check its spec
            return create_or_open_store(spec, path, provenance)
        raise
    return True


def add_new_variables(spec: SweepSpec, store: str | Path) -> list[str]:
    """Add to an existing store the variables that its experiment now defines but the store
    lacks (a store written by an earlier version, e.g. before ``underflow_layer``), filled
    with their fill value (-1 for flags: not computed), so resuming it writes every variable.
    Chunks done before keep the fill value in the new variables. Returns the names added."""
    g = zarr.open_group(str(store), mode="r")
    template = build_template(spec)
    new = [v for v in template.data_vars if v not in g]
    if new:
        encoding = {
            v: {"fill_value": int(template[v].dtype.type(-1))}
            for v in new
            if np.issubdtype(template[v].dtype, np.integer)
        }
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            template[new].to_zarr(str(store), mode="a", compute=False, encoding=encoding)
    return new


def write_chunk(
    spec: SweepSpec,
    store: str | Path,
    key: ChunkKey,
    arrays: dict[str, np.ndarray],
    info: dict[str, Any] | None = None,
) -> None:
    """Write one chunk's arrays into their region, then (only then) its done marker.

    ``arrays`` maps every variable to an array of shape chunk shape + extra dims. ``info``
    (e.g. the worker's backend and device) is kept as JSON in the marker:
    :func:`chunk_info` reads it back.
    """
    exp = get_experiment(spec.experiment)
    names = [v.name for v in exp.variables(spec)]
    missing = set(names) - set(arrays)
    if missing:
        raise RuntimeError(
            f"chunk {key_to_str(key)}: variables {sorted(missing)} were not "
            "computed; refusing to mark it done"
        )
    region = chunk_slices(spec, key)
    g = zarr.open_group(str(store), mode="r+")
    for name in names:
        arr = g[name]
        full = region + (slice(None),) * (arr.ndim - len(region))
        arr[full] = np.asarray(arrays[name], dtype=arr.dtype)
    marker = Path(store) / DONE_DIR / key_to_str(key)
    tmp = marker.with_name(f"{marker.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(info or {}))
    os.replace(tmp, marker)


def chunk_info(store: str | Path, key: ChunkKey | str) -> dict[str, Any]:
    """What the worker that wrote chunk ``key`` recorded (backend, device, ...); ``key`` as
    a tuple or as ``sweep status`` prints it (``"0.0.3.0.1.0"``)."""
    if isinstance(key, str):
        key = key_from_str(key)
    text = (Path(store) / DONE_DIR / key_to_str(key)).read_text()
    return json.loads(text) if text.strip() else {}


def done_keys(store: str | Path) -> set[ChunkKey]:
    """Keys of the chunks marked done in the store."""
    d = Path(store) / DONE_DIR
    if not d.is_dir():
        return set()
    return {key_from_str(p.name) for p in d.iterdir() if ".tmp" not in p.name}


def missing_keys(spec: SweepSpec, store: str | Path) -> list[ChunkKey]:
    """Chunks of ``spec`` not yet done in ``store``, in plan order."""
    done = done_keys(store)
    return [k for k in iter_chunk_keys(spec) if k not in done]


def open_sweep(store: str | Path, **kwargs: Any) -> xr.Dataset:
    """Open a sweep store as a lazy (dask-backed) :class:`xarray.Dataset`.

    Same as ``xarray.open_zarr(store)``; chunks not yet computed read as NaN (or -1 for
    integer flags). Stores without consolidated metadata (written by other tools) open
    without xarray's fallback warning.
    """
    kwargs.setdefault("consolidated", _has_consolidated_metadata(Path(store)))
    return xr.open_zarr(str(store), **kwargs)


def _has_consolidated_metadata(path: Path) -> bool:
    """Whether the Zarr v3 root ``path/zarr.json`` carries consolidated metadata."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("consolidated_metadata") is not None
