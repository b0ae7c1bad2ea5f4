"""Chunk writes, as a worker does them: into the store this run created, or not at all.

:func:`write_chunk` writes one chunk's variables into their region, then its done marker,
and checks the store's identity token (:mod:`pipeline.store.identity`) before writing and
again before marking the chunk done. Where the operating system allows it (Linux), writes go
through the store directory *opened once* (``/proc/self/fd/N``): they land in the directory
whose token was checked, even if the path is meanwhile deleted and made again — a write into
a deleted store fails (``FileNotFoundError``) instead of re-creating folders at the path, and
never reaches a new store there. Elsewhere the path is used, with the two token checks.

The opened store (its directory handle and Zarr arrays) is kept per worker process for the
next chunks, so a chunk costs its region writes and one small marker file, not a re-read of
the store's metadata. Chunks are written with every chunk file present (also when all fill
values), so a done chunk whose file is missing is damage, never "all fill".

A sweep chunk is exactly one Zarr chunk of every variable. For arrays whose codecs are the
ones this package writes (``bytes`` little-endian, ``zstd``, then ``crc32c``, or without it
as in version 0.1) the chunk file is encoded here, as those codecs define it (the same
numcodecs Zstandard, the same CRC-32C), and written atomically (a temporary file renamed):
Zarr's asynchronous write path costs several thread switches per chunk (~2-3 ms, most of
what a small chunk costs), which caps a driver at a few hundred chunks per second. Any
other array is written through Zarr. tests/test_store_safety.py checks that both paths write
the same bytes.

A chunk's marker records the worker's ``info`` (backend, device) and ``data_crc32``: the
CRC-32 of its variables' bytes as written (C order, the store's dtype, in variable order).
``sweep verify`` compares it with what the files decode to (:mod:`pipeline.store.verify`):
a file that decodes but holds other data (another chunk's file copied in, say) is caught.
"""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.spec.sweep import SweepSpec
from pipeline.store.grid import ChunkKey, chunk_slices, key_to_str
from pipeline.store.identity import check_identity, read_token
from pipeline.store.markers import FINGERPRINT, commit_marker, prepare_marker
from pipeline.store.variables import store_variables

__all__ = ["CURRENT_TOKEN", "chunk_fingerprint", "write_chunk"]

CURRENT_TOKEN: Any = object()
"""``write_chunk(token=CURRENT_TOKEN)``: expect whatever token the store has when the call
starts (a write outside a run)."""

_MAX_OPEN = 8  # stores kept open per process (zoom frames, tests): one fd each
_open: OrderedDict[tuple[str, str | None], _OpenStore] = OrderedDict()
_lock = threading.Lock()


class _Encoder:
    """Encodes one chunk of an array whose codecs are ``bytes`` (little-endian), ``zstd`` and
    optionally ``crc32c``, exactly as Zarr does; :meth:`for_array` returns None for any other
    array (written through Zarr)."""

    def __init__(self, arr: Any, zstd: Any, crc32c: bool) -> None:
        from numcodecs import Zstd

        self.chunk_shape = tuple(arr.metadata.chunk_grid.chunk_shape)
        self.dtype = np.dtype(arr.dtype).newbyteorder("<")
        self.fill = arr.metadata.fill_value
        self.zstd = Zstd(level=zstd.level, checksum=zstd.checksum)
        self.crc32c = crc32c
        self.metadata = arr.metadata

    @classmethod
    def for_array(cls, arr: Any) -> _Encoder | None:
        from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec

        codecs = list(arr.metadata.codecs)
        if (
            getattr(arr.metadata, "zarr_format", 3) != 3
            or arr.metadata.chunk_grid.__class__.__name__ != "RegularChunkGrid"
            or np.dtype(arr.dtype).kind not in "fiub"
            or len(codecs) not in (2, 3)
            or not isinstance(codecs[0], BytesCodec)
            or (codecs[0].endian is not None and codecs[0].endian.value != "little")
            or not isinstance(codecs[1], ZstdCodec)
            or (len(codecs) == 3 and not isinstance(codecs[2], Crc32cCodec))
        ):
            return None
        return cls(arr, codecs[1], crc32c=len(codecs) == 3)

    def encode(self, data: np.ndarray) -> bytes:
        """The chunk file of ``data`` (the chunk's region; an edge chunk is padded with the
        fill value to the full chunk shape, as Zarr stores it)."""
        if data.shape != self.chunk_shape:
            full = np.full(self.chunk_shape, self.fill, dtype=self.dtype)
            full[tuple(slice(0, n) for n in data.shape)] = data
            data = full
        raw = np.ascontiguousarray(data, dtype=self.dtype)
        out = bytes(self.zstd.encode(raw))
        if self.crc32c:
            import google_crc32c

            out += np.uint32(google_crc32c.value(out)).astype("<u4").tobytes()
        return out

    def write(self, root: str, name: str, chunk: tuple[int, ...], data: np.ndarray) -> None:
        """Write the encoded chunk ``chunk`` (chunk grid coordinates) of array ``name``."""
        path = os.path.join(root, name, self.metadata.encode_chunk_key(chunk))
        payload = self.encode(data)
        tmp = f"{path}.tmp{os.getpid()}-{threading.get_ident()}"
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)  # the chunk's first write here
            f = open(tmp, "wb")
        try:
            with f:
                f.write(payload)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


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
        self._arrays: dict[str, tuple[Any, _Encoder | None]] = {}
        self._group: Any = None

    def array(self, name: str) -> tuple[Any, _Encoder | None]:
        """The Zarr array ``name`` and its encoder (None: write through Zarr)."""
        entry = self._arrays.get(name)
        if entry is None:
            import zarr
            from zarr.storage import LocalStore

            if self._group is None:
                self._group = zarr.open_group(LocalStore(self.root), mode="r+")
            arr = self._group[name].with_config({"write_empty_chunks": True})
            entry = self._arrays[name] = (arr, _Encoder.for_array(arr))
        return entry

    def __del__(self) -> None:
        # closed only when no thread holds the handle any more: a descriptor closed under a
        # writing thread could be reused by another open and send its writes elsewhere
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _same_directory(handle: _OpenStore) -> bool:
    """Whether the directory ``handle`` opened is still the one at its path (or the path has
    no directory now: a deleted store, which the identity check then refuses)."""
    if handle.fd is None:
        return True
    try:
        now = os.stat(handle.path)
    except OSError:
        return True
    then = os.fstat(handle.fd)
    return (now.st_dev, now.st_ino) == (then.st_dev, then.st_ino)


def _opened(store: str, token: str | None) -> _OpenStore:
    """The store at ``store`` opened for the run whose token is ``token``: kept per process,
    opened again when the path now holds another directory (a store deleted and restored
    from a backup with the same token is the same store; the identity check refuses any
    other)."""
    key = (store, token)
    with _lock:
        handle = _open.get(key)
        if handle is not None and not _same_directory(handle):
            del _open[key]
            handle = None
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
    names = [v.name for v in store_variables(spec)]
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
            arr, encoder = handle.array(name)
            shape = tuple(s.stop - s.start for s in region) + arr.shape[len(region) :]
            data = np.ascontiguousarray(
                np.broadcast_to(np.asarray(arrays[name], dtype=arr.dtype), shape)
            )
            if encoder is not None:  # one sweep chunk = one Zarr chunk (extra dims whole)
                encoder.write(handle.root, name, (*key, *(0,) * (arr.ndim - len(key))), data)
            else:
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
