"""Done markers: which chunks of a store are finished, fast at 10^6 chunks.

Two places say that a chunk is done, and a chunk is done when either says so:

* ``STORE/_done/<key>`` — one small JSON file per chunk (``"0.3.1"``), written by the worker
  after all of the chunk's variables are in the store (:mod:`pipeline.store.writer`). It
  holds what the worker recorded (backend, device) and the chunk's data fingerprint
  (``data_crc32``: CRC-32 of the variables' decoded bytes, in variable order). These files
  are the source of truth until they are consolidated.
* ``STORE/_done/_index.npz`` — the consolidated index, a NumPy ``.npz`` written by the driver
  (the holder of the store's lease) every so often: ``codes`` (one integer per chunk in plan
  order: 0 not done, k >= 1 done, written by a worker that recorded ``infos[k - 1]``), ``crc``
  (the fingerprint, -1 when none was recorded), ``t`` (when the chunk's marker was written, in
  seconds since the epoch, NaN when unknown; indexes written before it was kept have no ``t``)
  and ``meta`` (JSON: format, store token, chunks
  per axis, the distinct worker records). It is replaced atomically and only then are the
  per-chunk files it absorbed deleted, so a crash between the two leaves both (harmless).

So a million-chunk store keeps a ~18 MB index (codes, fingerprints, finish times) and a
markers folder of at most one consolidation period's files: ``sweep status`` and a resume read
the index and list a small folder instead of a million files. Stores of version 0.1 have only
per-chunk files (some empty); they read the same way. Files in the markers folder that are not
markers (``notes.txt``, ``.DS_Store``) are reported and otherwise ignored; an index made for another
store (another token or grid) is ignored with a note, and a missing markers folder means
that no chunk counts as done (a run recomputes them and makes the folder again).

Damage: an index that does not read (truncated, not an ``.npz``) is ignored with a note that
names it (its chunks count as not done, so a run recomputes them, and ``sweep verify
--repair`` deletes it); a marker file whose content is neither empty (version 0.1) nor a JSON
object (:class:`MarkerDamaged`) is never folded into the index: ``sweep verify`` lists its
chunk as damaged and ``--repair`` un-marks it.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.store.grid import ChunkKey, key_to_str

__all__ = [
    "DONE_DIR",
    "FINGERPRINT",
    "INDEX_FILE",
    "DoneIndex",
    "MarkerDamaged",
    "DoneState",
    "commit_marker",
    "consolidate",
    "load_index",
    "marker_path",
    "prepare_marker",
    "read_done",
    "read_marker",
    "unmark",
]

DONE_DIR = "_done"
INDEX_FILE = "_index.npz"
INDEX_FORMAT = "phase-sweep done index 1"
FINGERPRINT = "data_crc32"
"""Key of the chunk's data fingerprint in a marker record."""


def marker_path(root: str | Path, key: ChunkKey) -> Path:
    """The per-chunk marker file of ``key`` under the store (or pinned store root) ``root``."""
    return Path(root) / DONE_DIR / key_to_str(key)


def prepare_marker(root: str | Path, key: ChunkKey, record: Mapping[str, Any]) -> Path:
    """Write the marker record of ``key`` to a temporary file beside its marker and return
    that file; :func:`commit_marker` renames it into place (atomic: a reader never sees half a
    marker). The markers folder is made again if someone deleted it."""
    path = marker_path(root, key)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_text(json.dumps(dict(record)))
    except FileNotFoundError:
        path.parent.mkdir(exist_ok=True)  # the markers folder was deleted: make it again
        tmp.write_text(json.dumps(dict(record)))
    return tmp


def commit_marker(tmp: Path, root: str | Path, key: ChunkKey) -> None:
    """Rename the prepared marker ``tmp`` into place: from now on ``key`` is done."""
    os.replace(tmp, marker_path(root, key))


class MarkerDamaged(ValueError):
    """A marker file whose content is neither empty nor a JSON object (the message says
    what it holds)."""


def read_marker(store: str | Path, key: ChunkKey) -> dict[str, Any] | None:
    """The per-chunk marker record of ``key``; ``{}`` for an empty marker (a legacy store
    wrote empty ones), ``None`` when there is no marker file. Raises :class:`MarkerDamaged`
    when the file holds anything else (bytes that are not UTF-8, JSON that is not an
    object)."""
    try:
        raw = marker_path(store, key).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        text = raw.decode("utf-8")
        rec = json.loads(text) if text.strip() else {}
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MarkerDamaged(f"done marker unreadable ({raw[:16]!r}...: {type(e).__name__})") from e
    if not isinstance(rec, dict):
        raise MarkerDamaged(f"done marker holds a JSON {type(rec).__name__}, not an object")
    return rec


# ---------------------------------------------------------------- the consolidated index


@dataclass
class DoneIndex:
    """The consolidated index of a store: per chunk (plan order) a record code and a data
    fingerprint; ``infos[k - 1]`` is the worker record of code ``k``."""

    counts: tuple[int, ...]
    token: str | None
    codes: np.ndarray  # uint32 (n_chunks,), 0 = not done
    crc: np.ndarray  # int64 (n_chunks,), -1 = no fingerprint recorded
    times: np.ndarray  # float64 (n_chunks,), seconds since the epoch; NaN = unknown
    infos: list[dict[str, Any]] = field(default_factory=list)
    _lookup: dict[str, int] | None = field(default=None, repr=False)  # info JSON -> code

    @classmethod
    def empty(cls, counts: tuple[int, ...], token: str | None) -> DoneIndex:
        n = int(np.prod(counts, dtype=np.int64))
        return cls(
            counts, token, np.zeros(n, np.uint32), np.full(n, -1, np.int64), np.full(n, np.nan), []
        )

    def set(self, flat: int, record: Mapping[str, Any], when: float = float("nan")) -> None:
        """Mark ``flat`` done with the worker ``record`` (its fingerprint kept apart);
        ``when``: the time its marker was written (seconds since the epoch)."""
        info = {k: v for k, v in record.items() if k != FINGERPRINT}
        text = json.dumps(info, sort_keys=True)
        lookup = self._lookup
        if lookup is None:
            lookup = {json.dumps(d, sort_keys=True): i + 1 for i, d in enumerate(self.infos)}
            self._lookup = lookup
        code = lookup.get(text)
        if code is None:
            self.infos.append(info)
            code = lookup[text] = len(self.infos)
        self.codes[flat] = code
        crc = record.get(FINGERPRINT)
        self.crc[flat] = int(crc) if isinstance(crc, int) else -1
        self.times[flat] = when

    def save(self, store: str | Path) -> None:
        """Write the index atomically into the store's markers folder."""
        d = Path(store) / DONE_DIR
        d.mkdir(exist_ok=True)
        meta = {
            "format": INDEX_FORMAT,
            "token": self.token,
            "counts": list(self.counts),
            "infos": self.infos,
        }
        tmp = d / f"{INDEX_FILE}.tmp{os.getpid()}-{threading.get_ident()}"
        with open(tmp, "wb") as f:
            codes = self.codes.astype(np.uint16) if len(self.infos) < 2**16 else self.codes
            np.savez(f, codes=codes, crc=self.crc, t=self.times, meta=np.array(json.dumps(meta)))
        os.replace(tmp, d / INDEX_FILE)


def load_index(
    store: str | Path,
    counts: tuple[int, ...],
    token: str | None,
    *,
    codes_only: bool = False,
    times: bool | None = None,
) -> tuple[DoneIndex | None, str | None]:
    """The store's consolidated index, or ``(None, why)`` when there is none (``why`` None)
    or it cannot be used (another store's token, another grid, unreadable: ``why`` says so).
    ``codes_only`` skips the fingerprints (what ``sweep status`` needs) and, unless ``times``
    is True, the times (NaN then)."""
    path = Path(store) / DONE_DIR / INDEX_FILE
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != INDEX_FORMAT:
                return None, f"{path}: unknown format {meta.get('format')!r}; ignored"
            if tuple(meta.get("counts", ())) != tuple(counts):
                return None, f"{path}: made for a grid of {meta.get('counts')} chunks; ignored"
            if meta.get("token") != token:
                return None, (
                    f"{path}: made for another store (its token is not the one in the "
                    "store's _token); ignored, so the chunks it recorded count as not done"
                )
            codes = z["codes"].astype(np.uint32)
            n = int(np.prod(counts, dtype=np.int64))
            crc = np.full(n, -1, np.int64) if codes_only else z["crc"]
            want_t = (not codes_only if times is None else times) and "t" in z.files
            t = z["t"].astype(np.float64) if want_t else np.full(n, np.nan)
            if codes.shape != (n,) or crc.shape != (n,) or t.shape != (n,):
                return None, f"{path}: wrong size; ignored"
            infos = list(meta.get("infos", []))
            return DoneIndex(tuple(counts), token, codes, crc, t, infos), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        # truncated, not an npz, no such member, a bad member CRC
        text = " ".join(str(e).split())[:100]
        return None, (
            f"{path}: unreadable ({type(e).__name__}: {text}); ignored, so the chunks it "
            "recorded count as not done (sweep run recomputes them)"
        )


# ---------------------------------------------------------------- reading the done state


@dataclass
class DoneState:
    """Which chunks are done: the union of the index and the per-chunk marker files.

    ``done``: bool per chunk (plan order); ``marker_flats``: chunks with a per-chunk file
    (not yet consolidated); ``strays``: names in the markers folder that are not markers;
    ``notes``: one line each about what was ignored (an index of another store, a missing
    markers folder).
    """

    counts: tuple[int, ...]
    done: np.ndarray
    marker_flats: np.ndarray
    strays: list[str]
    notes: list[str]

    @property
    def n_done(self) -> int:
        return int(np.count_nonzero(self.done))

    @property
    def total(self) -> int:
        return int(self.done.size)

    def missing(self) -> np.ndarray:
        """Flat indices of the chunks not done, in plan order."""
        return np.flatnonzero(~self.done)

    def done_flats(self) -> np.ndarray:
        """Flat indices of the done chunks, in plan order."""
        return np.flatnonzero(self.done)


def _parse_marker_names(names: list[str], counts: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """Flat indices of the names that are canonical chunk keys inside the grid; the rest."""
    ndim = len(counts)
    keys, strays = [], []
    for name in names:
        parts = name.split(".")
        if len(parts) == ndim and all(
            p.isdigit() and p.isascii() and (len(p) == 1 or p[0] != "0") for p in parts
        ):
            keys.append(parts)
        else:
            strays.append(name)
    if not keys:
        return np.zeros(0, np.int64), strays
    arr = np.array(keys, dtype=np.int64).reshape(len(keys), ndim)
    inside = (arr < np.asarray(counts)).all(axis=1)
    for row in arr[~inside]:
        strays.append(".".join(map(str, row)))
    flats = np.ravel_multi_index(tuple(arr[inside].T), counts) if inside.any() else arr[:0, 0]
    return np.asarray(flats, np.int64), strays


def read_done(store: str | Path, counts: tuple[int, ...], token: str | None) -> DoneState:
    """The done state of the store at ``store`` whose grid has ``counts`` chunks per axis and
    whose identity token is ``token``. Reads the index and lists the markers folder (in that
    order of listing first, so a consolidation that runs meanwhile never hides a chunk)."""
    d = Path(store) / DONE_DIR
    n = int(np.prod(counts, dtype=np.int64))
    done = np.zeros(n, bool)
    notes: list[str] = []
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        names = []
        notes.append(
            f"the markers folder {d} is missing: no chunk counts as done (a run recomputes "
            "them all and makes the folder again)"
        )
    names = [m for m in names if m != INDEX_FILE and ".tmp" not in m]
    flats, strays = _parse_marker_names(names, counts)
    index, why = load_index(store, counts, token, codes_only=True)
    if why:
        notes.append(why)
    if index is not None:
        done |= index.codes > 0
    done[flats] = True
    return DoneState(tuple(counts), done, flats, sorted(strays), notes)


# ---------------------------------------------------------------- consolidating, un-marking


def consolidate(
    store: str | Path,
    counts: tuple[int, ...],
    token: str | None,
    records: Mapping[int, Mapping[str, Any]],
    leftovers: Iterable[ChunkKey] = (),
    on_damaged: Callable[[ChunkKey, str], None] | None = None,
) -> int:
    """Fold per-chunk markers into the index, then delete their files.

    ``records``: flat index → marker record (what the tasks of this run returned, so nothing
    is read back); ``leftovers``: keys whose per-chunk files (from an earlier run) are read
    here; one that does not parse is left in place and passed to ``on_damaged(key, why)``.
    Only the lease holder may call this. Returns the number of chunks folded in.
    """
    from pipeline.store.grid import key_to_flat

    index, _ = load_index(store, counts, token)
    if index is None:
        index = DoneIndex.empty(counts, token)
    folded: list[ChunkKey | int] = []
    for flat, rec in records.items():
        index.set(flat, rec, _written_at(marker_path(store, _key(flat, counts))))
        folded.append(flat)
    for key in leftovers:
        try:
            rec = read_marker(store, key)
        except MarkerDamaged as e:  # left for `sweep verify`: never folded as a good chunk
            if on_damaged is not None:
                on_damaged(key, str(e))
            continue
        if rec is None:  # folded by someone else meanwhile, or un-marked
            continue
        index.set(key_to_flat(key, counts), rec, _written_at(marker_path(store, key)))
        folded.append(key)
    if not folded:
        return 0
    index.save(store)
    for item in folded:
        key = item if isinstance(item, tuple) else _key(item, counts)
        marker_path(store, key).unlink(missing_ok=True)
    return len(folded)


def _written_at(path: Path) -> float:
    """When the marker file ``path`` was written (its mtime, seconds since the epoch); now
    when it is gone."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        import time

        return time.time()


def _key(flat: int, counts: tuple[int, ...]) -> ChunkKey:
    return tuple(int(i) for i in np.unravel_index(int(flat), counts))


def unmark(
    store: str | Path, counts: tuple[int, ...], token: str | None, flats: Iterable[int]
) -> int:
    """Un-mark chunks (``sweep verify --repair``): clear them in the index and delete their
    per-chunk files, so the next run recomputes exactly these. Only the lease holder may call
    this. Returns how many were un-marked."""
    flats = sorted({int(f) for f in flats})
    if not flats:
        return 0
    index, _ = load_index(store, counts, token)
    if index is not None and (index.codes[flats] > 0).any():
        index.codes[flats] = 0
        index.crc[flats] = -1
        index.times[flats] = np.nan
        index.save(store)
    for f in flats:
        marker_path(store, _key(f, counts)).unlink(missing_ok=True)
    return len(flats)
