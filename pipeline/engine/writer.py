"""Chunk writes, as a worker does them: into the store this run created, or not at all.

:func:`write_chunk` writes one chunk's variables into their region, then its done marker,
and checks the store's identity token (:mod:`pipeline.engine.identity`) before writing and
again before marking the chunk done. Where the operating system allows it (Linux), writes go
through the store directory *opened once* (``/proc/self/fd/N``): they land in the directory
whose token was checked, even if the path is meanwhile deleted and made again — a write into
a deleted store fails (``FileNotFoundError``) instead of re-creating folders at the path, and
never reaches a new store there. Elsewhere the path is used, with the two token checks.

The opened store (its directory handle and Zarr arrays) is kept per worker process for the
next chunks, so a chunk costs its region writes and one small marker file, not a re-read of
the store's metadata. Chunks are written with every chunk file present
(``write_empty_chunks``), so a done chunk whose file is missing is damage, never "all fill".

A chunk's marker records the worker's ``info`` (backend, device) and ``data_crc32``: the
CRC-32 of its variables' bytes as written (C order, the store's dtype, in variable order).
``sweep verify`` compares it with what the files decode to (:mod:`pipeline.engine.verify`):
a file that decodes but holds other data (another chunk's file copied in, say) is caught.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.engine.identity import check_identity, read_token
from pipeline.engine.markers import FINGERPRINT, commit_marker, prepare_marker
from pipeline.engine.plan import ChunkKey, chunk_slices, key_to_str
from pipeline.experiments import get_experiment
from pipeline.spec.sweep import SweepSpec

__all__ = ["CURRENT_TOKEN", "chunk_fingerprint", "write_chunk"]

CURRENT_TOKEN: Any = object()
"""``write_chunk(token=CURRENT_TOKEN)``: expect whatever token the store has when the call
starts (a write outside a run)."""

_MAX_OPEN = 8  # stores kept open per process (zoom frames, tests): one fd each
_open: OrderedDict[tuple[str, str | None], _OpenStore] = OrderedDict()
_lock = threading.Lock()


class _OpenStore:
    """A store directory opened once: its root for writes (pinned where possible) and its
    Zarr arrays, opened on first use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.root = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            self.fd = None  # left to the first write to fail with its own error
        if self.fd is not None and os.path.isdir(f"/proc/self/fd/{self.fd}"):
            self.root = f"/proc/self/fd/{self.fd}"
        self._arrays: dict[str, Any] = {}
        self._group: Any = None

    def array(self, name: str) -> Any:
        arr = self._arrays.get(name)
        if arr is None:
            import zarr
            from zarr.storage import LocalStore

            if self._group is None:
                self._group = zarr.open_group(LocalStore(self.root), mode="r+")
            arr = self._group[name].with_config({"write_empty_chunks": True})
            self._arrays[name] = arr
        return arr

    def __del__(self) -> None:
        # closed only when no thread holds the handle any more: a descriptor closed under a
        # writing thread could be reused by another open and send its writes elsewhere
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _opened(store: str, token: str | None) -> _OpenStore:
    key = (store, token)
    with _lock:
        handle = _open.get(key)
        if handle is None:
            handle = _open[key] = _OpenStore(store)
            while len(_open) > _MAX_OPEN:
                _open.popitem(last=False)
        else:
            _open.move_to_end(key)
        return handle


def _forget(store: str, token: str | None) -> None:
    with _lock:
        _open.pop((store, token), None)


def chunk_fingerprint(arrays: list[np.ndarray]) -> int:
    """CRC-32 of the arrays' bytes in C order, chained in the given order."""
    crc = 0
    for a in arrays:
        crc = zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"), crc)
    return crc


def write_chunk(
    spec: SweepSpec,
    store: str | Path,
    key: ChunkKey,
    arrays: dict[str, np.ndarray],
    info: dict[str, Any] | None = None,
    token: str | None = CURRENT_TOKEN,
) -> dict[str, Any]:
    """Write one chunk's arrays into their region, then (only then) its done marker.

    ``arrays`` maps every variable to an array of shape chunk shape + extra dims (cast to the
    store's dtype). ``info`` (e.g. the worker's backend and device) is kept in the marker with
    the chunk's fingerprint; the marker record is returned. ``token``: the store identity this
    write belongs to (a run passes the token it read when it started; ``None`` for a legacy
    store); a store with another token (deleted and made again) refuses the write with
    :class:`~pipeline.errors.StoreChangedError`, before the data and before the marker.
    """
    exp = get_experiment(spec.experiment)
    names = [v.name for v in exp.variables(spec)]
    missing = set(names) - set(arrays)
    if missing:
        raise RuntimeError(
            f"chunk {key_to_str(key)}: variables {sorted(missing)} were not "
            "computed; refusing to mark it done"
        )
    store = str(store)
    if token is CURRENT_TOKEN:
        token = read_token(store)
    handle = _opened(store, token)
    what = f"chunk {key_to_str(key)} of this run was not written"
    try:
        check_identity(handle.root, token, store, what)
        region = chunk_slices(spec, key)
        written = []
        for name in names:
            arr = handle.array(name)
            shape = tuple(s.stop - s.start for s in region) + arr.shape[len(region) :]
            data = np.ascontiguousarray(
                np.broadcast_to(np.asarray(arrays[name], dtype=arr.dtype), shape)
            )
            arr[region + (slice(None),) * (arr.ndim - len(region))] = data
            written.append(data)
        record = {**(info or {}), FINGERPRINT: chunk_fingerprint(written)}
        tmp = prepare_marker(handle.root, key, record)
        try:
            what = f"chunk {key_to_str(key)} was written but not marked done"
            check_identity(handle.root, token, store, what)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        commit_marker(tmp, handle.root, key)
    except BaseException:
        _forget(store, token)  # reopen next time: the path may hold another store by then
        raise
    return record
