"""A refined store's point files: round ``r``'s points of one store chunk are the file
``<store>/_refine/r<r>/<chunk key>.npz`` (flat plane pixel indices ``_index``, class codes
``_code``, every variable), made atomically (written beside its final name and renamed), so
the file is the chunk's done marker for that round. When the refinement is over its settings
and counts go into the store's attrs (:data:`ATTR`). How the rounds are planned and run is
:mod:`pipeline.run.refine`'s.
"""

from __future__ import annotations

import os
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.store.identity import check_identity

__all__ = [
    "ATTR",
    "REFINE_DIR",
    "drop_partial_files",
    "point_files",
    "read_points",
    "record_refinement",
    "refine_status",
    "round_dir",
    "write_points",
]

REFINE_DIR = "_refine"
ATTR = "refine"
"""Store attribute: the refinement's settings and counts (audit share, audits, surprises,
evaluated pixels and their fraction of the grid, rounds)."""


def round_dir(store: str | Path, rnd: int) -> Path:
    """The folder of round ``rnd``'s point files."""
    return Path(store) / REFINE_DIR / f"r{rnd:02d}"


def write_points(
    store: str, token: str | None, rnd: int, name: str, arrays: dict[str, np.ndarray]
) -> None:
    """Round ``rnd``'s point file of the chunk named ``name`` (its key string): ``arrays``
    (``_index``, ``_code`` and every variable), written beside its final name and renamed
    (so it is whole or absent), after the store's identity is checked."""
    folder = round_dir(store, rnd)
    folder.mkdir(parents=True, exist_ok=True)
    # the partial file must not carry the ``.npz`` suffix: a count of finished files (resume,
    # ``sweep status``) would take a half-written one for a chunk's points
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.part"
    with open(tmp, "wb") as f:  # a file object: np.savez appends no suffix
        np.savez(f, **arrays)
    try:
        check_identity(store, token, store, f"refinement points of chunk {name} not written")
        os.replace(tmp, folder / f"{name}.npz")
    finally:
        tmp.unlink(missing_ok=True)


def point_files(folder: Path) -> list[Path]:
    """The finished point files of one round folder (partial ones, ``.<key>.<id>.part``, left by
    a killed worker, are not among them)."""
    return [p for p in folder.glob("*.npz") if not p.name.startswith(".")]


def drop_partial_files(store: str) -> int:
    """Remove the partial point files a killed run left (the driver holds the store's lease,
    so no live task of this store is writing one); how many there were."""
    stale = list(Path(store, REFINE_DIR).glob("r[0-9][0-9]/.*.part"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def read_points(store: str, rnd: int, name: str, names: tuple[str, ...] = ()) -> Any:
    """The arrays ``names`` (default all) of round ``rnd``'s point file of the chunk named
    ``name``, or None when it is missing or unreadable (every member's CRC is checked)."""
    path = round_dir(store, rnd) / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {f: z[f] for f in names} if names else {f: z[f] for f in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # missing, truncated, not a zip, a bad member CRC


def refine_status(store: str) -> str:
    """``sweep status``'s line for a refined store: what the refinement recorded, or the
    rounds whose point files are there so far (the store's chunks are written at the end)."""
    import zarr

    done = zarr.open_group(store, mode="r").attrs.get(ATTR)
    if done:
        return (
            f"refined: {done['evaluated']:,} pixels computed ({done['evaluated_fraction']:.3f} "
            f"of the grid) in {done['rounds']} rounds; {done['audits']:,} audits, "
            f"{done['surprises']} surprise(s)"
        )
    rounds = sorted(Path(store, REFINE_DIR).glob("r[0-9][0-9]"))
    files = sum(len(point_files(r)) for r in rounds)
    return (
        f"refinement in progress: {len(rounds)} round(s) started, {files} point file(s); "
        "the chunks are written after the last round"
    )


def record_refinement(store: str, record: dict[str, Any]) -> None:
    """The refinement's settings and counts, in the store's attrs (:data:`ATTR`)."""
    import zarr

    zarr.open_group(store, mode="r+").attrs[ATTR] = record
