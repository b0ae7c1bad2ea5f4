"""The Zarr v3 store of a sweep: its template, made once and atomically, and reading it.

Layout of a store directory::

    STORE/zarr.json, STORE/<variable>/...   a Zarr v3 group written through xarray
    STORE/_token                             the store's identity (pipeline.store.identity)
    STORE/_done/<key>, STORE/_done/_index.npz   done markers (pipeline.store.markers)
    STORE/_lease                             who runs on it now (pipeline.store.lease)

The template holds every coordinate (with units and long names), every variable (filled with
its fill value: NaN, or -1 for integer flags) with CF 1.10 attributes, and attrs with the full
spec, the package version, git revision, backend, dtype and creation time. A store made by an
earlier version gains the variables added since when it is resumed
(:func:`add_new_variables`). ``xarray.open_zarr(STORE)`` opens it
with nothing of this package imported. Every variable's chunks are compressed with Zstandard
and then checksummed with CRC-32C (Zarr v3's ``crc32c`` codec), so a flipped or truncated
chunk file fails to decode instead of reading as other numbers. A chunk's marker is written
only after all of its variables are in the store (:func:`pipeline.store.writer.write_chunk`),
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

from pipeline.errors import SpecMismatchError, StoreError
from pipeline.experiments import get_experiment
from pipeline.provenance import git_revision, package_version
from pipeline.spec.sweep import SweepSpec, parse_spec
from pipeline.store.grid import (
    ChunkKey,
    chunk_counts,
    flat_to_key,
    iter_chunk_keys,
    key_from_str,
    key_to_flat,
    key_to_str,
)
from pipeline.store.identity import new_token, read_token, token_state, write_token
from pipeline.store.markers import (
    DONE_DIR,
    FINGERPRINT,
    INDEX_FILE,
    DoneState,
    load_index,
    read_done,
    read_marker,
)
from pipeline.store.variables import store_variables
from pipeline.store.writer import write_chunk

if TYPE_CHECKING:  # xarray and dask load in ~1 s: only the commands that need them pay it
    import xarray as xr

__all__ = [
    "ADDED_ATTR",
    "DONE_DIR",
    "SpecMismatchError",
    "add_new_variables",
    "check_metadata",
    "chunk_info",
    "create_or_open_store",
    "done_keys",
    "done_state",
    "index_token",
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
    path = os.path.expanduser(os.fspath(store))
    if path.startswith("~"):
        raise StoreError(f"store: {path!r}: no such user's home folder; give another path")
    return os.path.abspath(path)


def _cf_attrs(long_name: str, units: str | None) -> dict[str, str]:
    """CF attributes of a coordinate or variable: its long_name, and UDUNITS units unless it
    has none (strings, flags)."""
    return {"long_name": long_name} if units is None else {"long_name": long_name, "units": units}


def build_template(spec: SweepSpec, provenance: dict[str, Any] | None = None) -> xr.Dataset:
    """The lazy (dask) dataset of fill values that defines the store's layout, with CF 1.10
    attributes on every coordinate and variable and the ``Conventions``/``history`` globals.
    Each variable's Zarr chunks (the sweep's chunks, extra dims whole) are in its
    ``encoding["chunks"]``."""
    import dask.array as da
    import xarray as xr

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
    for v in store_variables(spec):
        dims = (*spec.dims, *v.extra_dims)
        shape = (*spec.shape, *(len(extra[d][0]) for d in v.extra_dims))
        chunks = (*spec.chunks, *(len(extra[d][0]) for d in v.extra_dims))
        dtype = np.dtype(v.dtype or spec.dtype)
        # one dask chunk: the template is never computed, and a graph of one task per Zarr
        # chunk would cost minutes and gigabytes at 10^6 chunks; the Zarr chunks are set in
        # the encoding (the sweep's chunks, extra dims whole)
        arr = da.full(shape, v.fill, dtype=dtype, chunks=shape)
        attrs: dict[str, Any] = _cf_attrs(v.long_name, v.units)
        if v.flags:
            attrs["flag_values"] = np.array([f for f, _ in v.flags], dtype=dtype)
            attrs["flag_meanings"] = " ".join(m for _, m in v.flags)
        data_vars[v.name] = xr.Variable(dims, arr, attrs, encoding={"chunks": chunks})
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


def check_metadata(store: str | Path) -> None:
    """Raise a one-line :class:`StoreError` when the store's root ``zarr.json`` exists but is
    not a Zarr v3 group's metadata (truncated, overwritten): nothing else records the
    store's layout and spec, so it cannot be repaired here."""
    path = Path(store) / "zarr.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as e:
        raise StoreError(f"store: {str(store)!r} cannot be read ({os_reason(e)})") from e
    try:
        meta = json.loads(raw.decode("utf-8"))
        ok = isinstance(meta, dict) and meta.get("node_type") == "group"
        why = "not a Zarr group's metadata"
    except ValueError as e:
        ok, why = False, f"{type(e).__name__}"
    if not ok:
        raise StoreError(
            f"store {str(store)!r}: its metadata {path} is damaged ({why}); it is the only "
            "record of the store's layout and spec: restore it from a backup, or start over "
            "in a new store"
        )


def read_spec(store: str | Path) -> SweepSpec:
    """The spec a store was created with."""
    check_metadata(store)
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
            check_metadata(path)
            old = read_spec(path)
            diff = old.differences(spec)
            if diff:
                raise SpecMismatchError(
                    f"store {str(path)!r} was made by a different spec; fields that differ: "
                    f"{', '.join(diff)}. Use a new store path, or delete the old store to "
                    "start over."
                )
            add_new_variables(spec, path)
            return False
        if path.exists() and not path.is_dir():
            raise StoreError(f"store: {str(path)!r} is a file, not a folder; choose another path")
        if path.is_dir() and any(path.iterdir()):
            raise StoreError(
                f"store: {str(path)!r} exists and is not a sweep store (no zarr.json; what is "
                "left of a store deleted while a run wrote to it looks so): choose another "
                "path, or delete the folder"
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


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Zarr encoding of the template's variables: their chunks, Zstandard then CRC-32C, and
    -1 as the fill value of integer flags (not computed)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    encoding: dict[str, dict[str, Any]] = {
        v: {"compressors": (ZstdCodec(level=0), Crc32cCodec()), "chunks": ds[v].encoding["chunks"]}
        for v in ds.data_vars
    }
    for v in ds.data_vars:
        if np.issubdtype(ds[v].dtype, np.integer):
            encoding[v]["fill_value"] = int(ds[v].dtype.type(-1))
    return encoding


def _write_template(spec: SweepSpec, tmp: Path, provenance: dict[str, Any] | None) -> None:
    ds = build_template(spec, provenance)
    with warnings.catch_warnings():
        # xarray consolidates the metadata (one read opens the store); zarr warns that this
        # is an extension of the v3 spec, which every reader of these stores here supports
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(str(tmp), mode="w-", compute=False, zarr_format=3, encoding=_encoding(ds))
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


ADDED_ATTR = "sweep_added_after_creation"
"""Attribute of a variable :func:`add_new_variables` added to an existing store (when, ISO
8601): chunks done before then have no file in it (they read as its fill value), which
``sweep verify`` does not count as damage for chunks written without a fingerprint."""


def add_new_variables(spec: SweepSpec, store: str | Path) -> list[str]:
    """Add to an existing store the variables that its experiment now defines but the store
    lacks (a store written by an earlier version, e.g. before ``underflow_layer``), filled
    with their fill value (-1 for flags: not computed), so resuming it writes every variable.
    Chunks done before keep the fill value in the new variables; the new variables are
    encoded as the template's (checksummed) and carry :data:`ADDED_ATTR`. Returns the names
    added."""
    g = zarr.open_group(str(store), mode="r")
    new = [v.name for v in get_experiment(spec.experiment).variables(spec) if v.name not in g]
    if new:
        template = build_template(spec)[new]
        added = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        for v in new:
            template[v].attrs[ADDED_ATTR] = added
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            # re-consolidating walks the folder: the markers folder is not Zarr, and known
            warnings.filterwarnings("ignore", message="Object at", category=UserWarning)
            template.to_zarr(str(store), mode="a", compute=False, encoding=_encoding(template))
    return new


def ensure_token(store: str | Path) -> str:
    """The store's identity token; a store made before tokens existed gets one now (call
    this holding the store's lease). A missing token of a store whose done index names one
    (the file was deleted) and a damaged one are one-line errors: ``sweep verify --repair``
    restores them."""
    token = read_token(store)
    if token is None and index_token(store):
        raise StoreError(
            f"store {str(store)!r}: its identity file _token is missing, but its done index "
            f"records one; `sweep verify {store} --repair` restores it"
        )
    if token is None:
        token = new_token()
        write_token(store, token)
    return token


def index_token(store: str | Path) -> str | None:
    """The token the store's done index was made for (None: no readable index, or one of a
    store without a token)."""
    try:
        with np.load(Path(store) / DONE_DIR / INDEX_FILE, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except Exception:  # missing or damaged: load_index names the damage
        return None
    token = meta.get("token") if isinstance(meta, dict) else None
    return token if isinstance(token, str) else None


def done_state(store: str | Path, spec: SweepSpec | None = None) -> DoneState:
    """Which chunks of the store are done (:func:`pipeline.store.markers.read_done`). A
    damaged or deleted token file is noted (and the index read with the token it records),
    so that ``status`` and ``summary`` show the store as it is."""
    spec = spec or read_spec(store)
    token, problem = token_state(store)
    recorded = index_token(store)
    if token is None and recorded:
        problem = problem or "missing"
        token = recorded
    state = read_done(store, chunk_counts(spec), token)
    if problem:
        state.notes.insert(
            0,
            f"the store's identity file {Path(store) / '_token'} is {problem}: "
            f"`sweep verify {store} --repair` restores it (a run refuses the store until then)",
        )
    return state


def chunk_info(store: str | Path, key: ChunkKey | str) -> dict[str, Any]:
    """What the worker that wrote chunk ``key`` recorded (backend, device, ...); ``key`` as
    a tuple or as ``sweep status`` prints it (``"0.0.3.0.1.0"``)."""
    if isinstance(key, str):
        key = key_from_str(key)
    try:
        rec = read_marker(store, key)
    except ValueError as e:  # MarkerDamaged
        raise StoreError(
            f"store {str(store)!r}: chunk {key_to_str(key)}: {e}; `sweep verify {store} "
            "--repair` un-marks it"
        ) from e
    if rec is None:
        counts = chunk_counts(read_spec(store))
        index, _ = load_index(store, counts, read_token(store), codes_only=True)
        code = int(index.codes[key_to_flat(key, counts)]) if index is not None else 0
        if code == 0:
            raise StoreError(f"store {str(store)!r}: chunk {key_to_str(key)} is not done")
        rec = index.infos[code - 1]
    return {k: v for k, v in rec.items() if k != FINGERPRINT}


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
