"""``sweep verify``: scrub a store's done chunks, and un-mark the damaged ones.

For every chunk marked done, every variable's chunk file must exist, decode (its CRC-32C
checksum included, for stores that have one) and — where the marker recorded a fingerprint
(:mod:`pipeline.store.writer`) — hold the data that was written: a file copied in from
another chunk decodes fine but fails the fingerprint. Damage is listed by chunk key and
coordinates. :func:`repair` un-marks the damaged chunks and deletes their files (they then
read as fill values), so the next ``sweep run`` recomputes exactly those.

The store's bookkeeping files are checked too: its identity token (``_token``, restored by
:func:`repair` from the done index, which records it), the done index (deleted by
:func:`repair` when it does not read or was made for another token: ``sweep run`` then
recomputes the chunks it held), every done marker (one that does not parse is its chunk's
damage) and each variable's and coordinate's ``zarr.json`` (rewritten by :func:`repair` from
the copy in the root's consolidated metadata). A damaged root ``zarr.json`` cannot be
repaired: :func:`~pipeline.store.sweep.read_spec` refuses it in one line.

Chunks written by version 0.1 have no fingerprint and their files no checksum: for them the
scrub checks that the files exist and decode (a flipped byte inside such a file may go
unseen). :func:`missing_files` is the quick check ``status`` and ``summary`` run: that the
files of (a sample of) the done chunks exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pipeline.spec.sweep import SweepSpec
from pipeline.store.grid import (
    ChunkKey,
    chunk_counts,
    chunk_slices,
    describe_chunk,
    flat_to_key,
    key_to_str,
)
from pipeline.store.identity import TOKEN_FILE, new_token, read_token, token_state, write_token
from pipeline.store.lease import store_lease
from pipeline.store.markers import (
    DONE_DIR,
    FINGERPRINT,
    INDEX_FILE,
    DoneState,
    MarkerDamaged,
    load_index,
    read_done,
    read_marker,
)
from pipeline.store.sweep import ADDED_ATTR, index_token, read_spec
from pipeline.store.variables import store_variables
from pipeline.store.writer import chunk_fingerprint

__all__ = ["Damage", "VerifyReport", "missing_files", "repair", "verify_store"]


@dataclass
class Damage:
    """One damaged chunk: its key, where it lies, and what is wrong (one phrase each)."""

    flat: int
    key: ChunkKey
    where: str
    problems: list[str]

    def line(self) -> str:
        return f"{key_to_str(self.key)}  {self.where or '(the only chunk)'}: " + "; ".join(
            self.problems
        )


@dataclass
class VerifyReport:
    """What :func:`verify_store` found: done chunks checked, those without a fingerprint
    (version 0.1), the damaged ones, and notes about the markers folder."""

    store: str
    total: int
    checked: int
    legacy: int
    damaged: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bookkeeping: list[str] = field(default_factory=list)
    fixes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def needs_repair(self) -> bool:
        """Whether anything was found that :func:`repair` mends."""
        return bool(self.damaged or self.bookkeeping)

    def lines(self) -> list[str]:
        head = f"{self.store}: {self.checked}/{self.total} chunks done and checked, " + (
            f"{len(self.damaged)} damaged" if self.damaged else "no damaged chunk"
        )
        head += (
            f"; {len(self.bookkeeping)} damaged bookkeeping file(s)"
            if self.bookkeeping
            else ("" if self.damaged else ", no damage found")
        )
        if self.legacy:
            head += (
                f" ({self.legacy} written by version 0.1 without fingerprints: checked that "
                "their files exist and decode)"
            )
        out = [head, *(f"note: {n}" for n in self.notes)]
        if self.bookkeeping:
            out.append("damaged bookkeeping files (what --repair does):")
            out += [f"  {b}" for b in self.bookkeeping]
        if self.damaged:
            out.append("damaged chunks (key, coordinates: problems):")
            out += [f"  {d.line()}" for d in self.damaged]
        return out


class _Layout:
    """The store's variables (in the writer's order) and their chunk files."""

    def __init__(self, store: str, spec: SweepSpec) -> None:
        self.store, self.spec = store, spec
        self.names = [v.name for v in store_variables(spec)]
        group = zarr.open_group(store, mode="r")
        # a variable the store lacks (made by an earlier version, not resumed since) is
        # not checked: no chunk of it was ever written
        self.arrays = {n: group[n] for n in self.names if n in group}
        # added to the store after it was made: chunks done before have no file in them
        self.added = {n for n, a in self.arrays.items() if ADDED_ATTR in a.attrs}

    def files(self, key: ChunkKey, added: bool = True) -> list[tuple[str, Path]]:
        """``(variable, chunk file)`` of chunk ``key`` for every variable (``added=False``:
        not those added after the store was made)."""
        out = []
        for name, arr in self.arrays.items():
            if not added and name in self.added:
                continue
            extra = (0,) * (arr.ndim - len(key))
            rel = arr.metadata.encode_chunk_key(tuple(key) + extra)
            out.append((name, Path(self.store) / name / rel))
        return out

    def check(self, key: ChunkKey, fingerprint: int | None) -> list[str]:
        """What is wrong with chunk ``key`` (empty: nothing)."""
        problems, decoded = [], []
        region = chunk_slices(self.spec, key)
        # a chunk without a fingerprint may predate a variable added since (version 0.1)
        for name, path in self.files(key, added=fingerprint is not None):
            if not path.is_file():
                problems.append(f"{name}: file missing ({path.relative_to(self.store)})")
                continue
            arr = self.arrays[name]
            try:
                decoded.append(arr[region + (slice(None),) * (arr.ndim - len(region))])
            except Exception as e:  # a truncated or flipped file: whatever the codec raises
                text = " ".join(str(e).split())[:120]
                problems.append(f"{name}: does not decode ({type(e).__name__}: {text})")
        if not problems and fingerprint is not None and chunk_fingerprint(decoded) != fingerprint:
            problems.append("data differs from what was written (fingerprint mismatch)")
        return problems


def _fingerprints(store: str, state: DoneState, token: str | None) -> Callable[[int], Any]:
    """flat → recorded fingerprint (None: none recorded); raises
    :class:`~pipeline.store.markers.MarkerDamaged` for a marker that does not parse."""
    index, _ = load_index(store, state.counts, token)
    in_files = set(state.marker_flats.tolist())

    def lookup(flat: int) -> int | None:
        if flat in in_files:
            rec = read_marker(store, flat_to_key(flat, state.counts)) or {}
            crc = rec.get(FINGERPRINT)
            if isinstance(crc, int):
                return crc
        if index is not None and index.codes[flat] > 0 and index.crc[flat] >= 0:
            return int(index.crc[flat])
        return None

    return lookup


def verify_store(store: str | Path, threads: int | None = None) -> VerifyReport:
    """Check every done chunk of the sweep store at ``store`` (not a zoom root: each frame is
    a store of its own). ``threads``: parallel readers (default: 2 per core, at most 16)."""
    store = str(store)
    spec = read_spec(store)
    counts = chunk_counts(spec)
    bookkeeping: list[str] = []
    fixes: list[tuple[str, str]] = []
    token, problem = token_state(store)
    recorded = index_token(store)
    if problem or (token is None and recorded):
        token = recorded
        fixes.append(("token", recorded or new_token()))
        bookkeeping.append(
            f"{TOKEN_FILE}: {problem or 'missing'}; restored from the done index"
            if recorded
            else f"{TOKEN_FILE}: {problem}; a new token is written (no index records one)"
        )
    _, why = load_index(store, counts, token, codes_only=True)
    if why:
        fixes.append(("index", ""))
        bookkeeping.append(
            f"{DONE_DIR}/{INDEX_FILE}: {why.split(': ', 1)[1].split('; ignored')[0]}; "
            "deleted (sweep run recomputes the chunks it recorded)"
        )
    for name, text in _metadata_damage(store):
        fixes.append(("metadata", name))
        bookkeeping.append(f"{name}/zarr.json: {text}; rewritten from the consolidated copy")
    state = read_done(store, counts, token)
    state.notes = [n for n in state.notes if INDEX_FILE not in n]  # listed above
    layout = _Layout(store, spec)
    lookup = _fingerprints(store, state, token)
    flats = state.done_flats()
    prints: dict[int, int | None] = {}
    broken: dict[int, str] = {}
    for f in flats:
        try:
            prints[int(f)] = lookup(int(f))
        except MarkerDamaged as e:
            broken[int(f)] = str(e)

    def one(flat: int) -> Damage | None:
        key = flat_to_key(flat, state.counts)
        if flat in broken:
            problems = [f"{broken[flat]} ({DONE_DIR}/{key_to_str(key)})"]
        else:
            problems = layout.check(key, prints[flat])
        return Damage(flat, key, describe_chunk(spec, key), problems) if problems else None

    legacy = sum(p is None for p in prints.values())
    n = threads or min(16, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(n) as pool:
        found = [d for d in pool.map(one, (int(f) for f in flats), chunksize=64) if d]
    notes = list(state.notes)
    if state.strays:
        notes.append(f"ignored {len(state.strays)} file(s) in the markers folder that are not "
                     f"markers: {', '.join(state.strays[:5])}")  # fmt: skip
    return VerifyReport(store, state.total, len(flats), legacy, found, notes, bookkeeping, fixes)


def _metadata_damage(store: str) -> list[tuple[str, str]]:
    """``(array, what is wrong)`` for each top-level array whose ``zarr.json`` differs from
    its copy in the root's consolidated metadata (missing, truncated, edited)."""
    from zarr.core.buffer import default_buffer_prototype

    group = zarr.open_group(store, mode="r")
    consolidated = group.metadata.consolidated_metadata
    if consolidated is None:
        return []
    out = []
    for name, meta in consolidated.metadata.items():
        if "/" in name or getattr(meta, "node_type", None) != "array":
            continue
        want = meta.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()
        try:
            have = (Path(store) / name / "zarr.json").read_bytes()
        except FileNotFoundError:
            out.append((name, "missing"))
            continue
        if have != want:
            out.append((name, "differs from the copy in the consolidated metadata (damaged)"))
    return out


def _apply_fixes(store: str, fixes: list[tuple[str, str]]) -> None:
    from zarr.core.buffer import default_buffer_prototype

    consolidated = None
    for what, arg in fixes:
        if what == "token":
            write_token(store, arg)
        elif what == "index":
            (Path(store) / DONE_DIR / INDEX_FILE).unlink(missing_ok=True)
        elif what == "metadata":
            if consolidated is None:
                group = zarr.open_group(store, mode="r")
                consolidated = group.metadata.consolidated_metadata.metadata  # type: ignore[union-attr]
            raw = consolidated[arg].to_buffer_dict(default_buffer_prototype())["zarr.json"]
            path = Path(store) / arg / "zarr.json"
            tmp = path.with_name(f"zarr.json.tmp-{os.getpid()}")
            tmp.write_bytes(raw.to_bytes())
            os.replace(tmp, path)


def repair(store: str | Path, report: VerifyReport) -> int:
    """Mend the bookkeeping files of ``report`` (token, index, array metadata), then un-mark
    its damaged chunks and delete their files (holding the store's lease: refused while a
    run is active). Returns how many chunks were un-marked."""
    from pipeline.store.markers import unmark

    store = str(store)
    if not report.needs_repair:
        return 0
    spec = read_spec(store)
    with store_lease(store, "sweep verify --repair"):
        _apply_fixes(store, report.fixes)
        if not report.damaged:
            return 0
        layout = _Layout(store, spec)
        flats = [d.flat for d in report.damaged]
        unmark(store, chunk_counts(spec), read_token(store), flats)
        for d in report.damaged:
            for _, path in layout.files(d.key):
                path.unlink(missing_ok=True)
    return len(flats)


def missing_files(
    store: str | Path, spec: SweepSpec, state: DoneState, limit: int = 2000
) -> tuple[list[tuple[ChunkKey, str]], int]:
    """Done chunks whose files are missing: ``([(key, variable), ...], chunks checked)``.

    Checks every done chunk when there are at most ``limit``, else ``limit`` of them evenly
    spread over the grid (``sweep verify`` checks all)."""
    flats = state.done_flats()
    if len(flats) > limit:
        flats = flats[np.linspace(0, len(flats) - 1, limit).astype(np.int64)]
    layout = _Layout(str(store), spec)
    out = []
    for flat in flats:
        key = flat_to_key(int(flat), state.counts)
        files = layout.files(key, added=False)  # (the quick check skips added variables)
        out += [(key, name) for name, path in files if not path.is_file()]
    return out, len(flats)
