"""The Zarr v3 store of a sweep: its template, made once and atomically, and reading it.

Layout of a store directory::

    STORE/zarr.json, STORE/<variable>/...   a Zarr v3 group written through xarray
    STORE/_token                             the store's identity (pipeline.engine.identity)
    STORE/_done/<key>, STORE/_done/_index.npz   done markers (pipeline.engine.markers)
    STORE/_lease                             who runs on it now (pipeline.engine.lease)

The template holds every coordinate (with units and long names), every variable (filled with
its fill value: NaN, or -1 for integer flags) and attrs with the full spec, the package
version, git revision, backend, dtype and creation time. ``xarray.open_zarr(STORE)`` opens it
with nothing of this package imported. Every variable's chunks are compressed with Zstandard
and then checksummed with CRC-32C (Zarr v3's ``crc32c`` codec), so a flipped or truncated
chunk file fails to decode instead of reading as other numbers. A chunk's marker is written
only after all of its variables are in the store (:func:`pipeline.engine.writer.write_chunk`),
so "done" always means "written"; writing a chunk twice is harmless.

The template is built beside the target (``.NAME.tmp-PID``) and renamed into place, so a
driver killed while making it leaves no half-made store; a store path that cannot be made (a
file, inside a file, unwritable, too long, a full or read-only disk) is one
:class:`~pipeline.errors.StoreError` and leaves nothing behind, folders it made included.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from pipeline.engine.identity import new_token, read_token, write_token
from pipeline.engine.markers import DONE_DIR, DoneState, load_index, read_done, read_marker
from pipeline.engine.plan import ChunkKey, chunk_counts, flat_to_key, iter_chunk_keys, key_to_flat
from pipeline.engine.provenance import git_revision, package_version
from pipeline.engine.variables import store_variables
from pipeline.engine.writer import write_chunk
from pipeline.errors import SpecMismatchError, StoreError
from pipeline.experiments import get_experiment
from pipeline.spec.sweep import SweepSpec, parse_spec

if TYPE_CHECKING:  # xarray and dask load in ~1 s: only the commands that need them pay it
    import xarray as xr

__all__ = [
    "DONE_DIR",
    "SpecMismatchError",
    "chunk_info",
    "create_or_open_store",
    "done_keys",
    "done_state",
    "make_parent_folders",
    "missing_keys",
    "open_sweep",
    "os_reason",
    "read_spec",
    "resolve_store_path",
    "write_chunk",
]

SPEC_ATTR = "sweep_spec"


def resolve_store_path(store: str | Path) -> str:
    """``store`` as an absolute path, ``~`` expanded: the one form every later step (the
    workers included, which may run elsewhere) sees."""
    return os.path.abspath(os.path.expanduser(os.fspath(store)))


def build_template(spec: SweepSpec, provenance: dict[str, Any] | None = None) -> xr.Dataset:
    """The lazy (dask) dataset of fill values that defines the store's layout."""
    import dask.array as da
    import xarray as xr

    exp = get_experiment(spec.experiment)
    rules = exp.rules_by_name()
    coords: dict[str, Any] = {}
    for ax in spec.axes:
        rule = rules[ax.base_name]
        attrs = {"long_name": rule.long_name, "units": rule.units}
        if ax.squared:
            attrs = {"long_name": f"{rule.long_name}² (variance)", "units": rule.units}
            coords[ax.base_name] = (
                ax.name,
                ax.physical,
                {"long_name": rule.long_name, "units": rule.units},
            )
        values = np.asarray(ax.values)
        if values.dtype.kind == "U":  # stored as Zarr v3 variable-length UTF-8 strings (a
            values = values.astype(object)  # fixed-width numpy string has no v3 spec)
        coords[ax.name] = (ax.name, values, attrs)
    extra = exp.extra_coords(spec)
    for name, (values, attrs) in extra.items():
        coords[name] = (name, values, attrs)
    data_vars = {}
    for v in store_variables(spec):
        dims = (*spec.dims, *v.extra_dims)
        shape = (*spec.shape, *(len(extra[d][0]) for d in v.extra_dims))
        chunks = (*spec.chunks, *(len(extra[d][0]) for d in v.extra_dims))
        dtype = np.dtype(v.dtype or spec.dtype)
        # one dask chunk: the template is never computed, and a graph of one task per Zarr
        # chunk would cost minutes and gigabytes at 10^6 chunks; the Zarr chunks are set in
        # the encoding (the sweep's chunks, extra dims whole)
        arr = da.full(shape, v.fill, dtype=dtype, chunks=shape)
        data_vars[v.name] = xr.Variable(
            dims, arr, {"long_name": v.long_name, "units": v.units}, encoding={"chunks": chunks}
        )
    attrs = {
        SPEC_ATTR: spec.to_dict(),
        "experiment": spec.experiment,
        "title": spec.name or f"{spec.experiment} sweep",
        "dtype": spec.dtype,
        "package_version": package_version(),
        "git_revision": git_revision() or "unknown",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
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
    differing fields when the store holds another spec, and :class:`StoreError` (one line;
    nothing left on disk) when the path cannot hold a store.
    """
    path = Path(store)
    try:
        if (path / "zarr.json").exists():
            old = read_spec(path)
            diff = old.differences(spec)
            if diff:
                raise SpecMismatchError(
                    f"store {str(path)!r} was made by a different spec; fields that differ: "
                    f"{', '.join(diff)}. Use a new store path, or delete the old store to "
                    "start over."
                )
            return False
        if path.exists() and not path.is_dir():
            raise StoreError(f"store: {str(path)!r} is a file, not a folder; choose another path")
        if path.is_dir() and any(path.iterdir()):
            raise StoreError(
                f"store: {str(path)!r} exists and is not a sweep store (no zarr.json); "
                "choose another path"
            )
    except OSError as e:  # too long, no permission to look, ...
        raise StoreError(f"store: {str(path)!r} cannot be used: {os_reason(e)}") from e
    made = make_parent_folders(path)
    # Build the template beside the target and rename it into place: a driver killed
    # while writing it leaves no half-made store behind.
    tmp = path.with_name(f".{path.name[:64]}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        _write_template(spec, tmp, provenance)
        if path.exists():
            path.rmdir()  # an empty directory made by the user
        os.rename(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and _is_store(path):
            return create_or_open_store(spec, path, provenance)  # another driver made it first
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()
        if isinstance(e, OSError):
            raise StoreError(f"store: cannot create {str(path)!r}: {os_reason(e)}") from e
        raise
    return True


def _is_store(path: Path) -> bool:
    try:
        return (path / "zarr.json").is_file()
    except OSError:
        return False


def _write_template(spec: SweepSpec, tmp: Path, provenance: dict[str, Any] | None) -> None:
    from zarr.codecs import Crc32cCodec, ZstdCodec

    ds = build_template(spec, provenance)
    encoding: dict[str, dict[str, Any]] = {
        v: {"compressors": (ZstdCodec(level=0), Crc32cCodec()), "chunks": ds[v].encoding["chunks"]}
        for v in ds.data_vars
    }
    for v in ds.data_vars:
        if np.issubdtype(ds[v].dtype, np.integer):
            encoding[v]["fill_value"] = int(ds[v].dtype.type(-1))
    with warnings.catch_warnings():
        # xarray consolidates the metadata (one read opens the store); zarr warns that this
        # is an extension of the v3 spec, which every reader of these stores here supports
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(str(tmp), mode="w-", compute=False, zarr_format=3, encoding=encoding)
    (tmp / DONE_DIR).mkdir(exist_ok=True)
    write_token(tmp, new_token())


def make_parent_folders(path: Path) -> list[Path]:
    """Make the missing parent folders of ``path``; the ones made, outermost first (removed
    again when the store cannot be made)."""
    missing = []
    parent = path.parent
    try:
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        made = []
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
        return made
    except OSError as e:
        for d in reversed(locals().get("made", [])):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise StoreError(f"store: cannot create {str(path)!r}: {os_reason(e)}") from e


def os_reason(e: OSError) -> str:
    """An ``OSError`` in a few words: what failed, where."""
    where = f" ({e.filename})" if e.filename else ""
    if isinstance(e, FileExistsError | NotADirectoryError) and e.filename:
        return f"{e.filename} is a file, not a folder"
    return f"{e.strerror or type(e).__name__}{where}"


def ensure_token(store: str | Path) -> str:
    """The store's identity token; a store made before tokens existed gets one now (call
    this holding the store's lease)."""
    token = read_token(store)
    if token is None:
        token = new_token()
        write_token(store, token)
    return token


def done_state(store: str | Path, spec: SweepSpec | None = None) -> DoneState:
    """Which chunks of the store are done (:func:`pipeline.engine.markers.read_done`)."""
    spec = spec or read_spec(store)
    return read_done(store, chunk_counts(spec), read_token(store))


def chunk_info(store: str | Path, key: ChunkKey) -> dict[str, Any]:
    """What the worker that wrote chunk ``key`` recorded (backend, device, ...)."""
    rec = read_marker(store, key)
    if rec is None:
        counts = chunk_counts(read_spec(store))
        index, _ = load_index(store, counts, read_token(store), codes_only=True)
        code = int(index.codes[key_to_flat(key, counts)]) if index is not None else 0
        if code == 0:
            raise StoreError(f"store {str(store)!r}: chunk {key!r} is not done")
        rec = index.infos[code - 1]
    return {k: v for k, v in rec.items() if k != "data_crc32"}


def done_keys(store: str | Path) -> set[ChunkKey]:
    """Keys of the chunks marked done in the store (empty while there is no store yet)."""
    if not (Path(store) / "zarr.json").exists():
        return set()
    state = done_state(store)
    return {flat_to_key(f, state.counts) for f in state.done_flats()}


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
    import xarray as xr

    kwargs.setdefault("consolidated", _has_consolidated_metadata(Path(store)))
    return xr.open_zarr(str(store), **kwargs)


def _has_consolidated_metadata(path: Path) -> bool:
    """Whether the Zarr v3 root ``path/zarr.json`` carries consolidated metadata."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("consolidated_metadata") is not None
