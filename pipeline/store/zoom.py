"""A zoom store's layout: a Zarr group whose children ``frame_000``, ``frame_001``, ... are
complete sweep stores, with the zoom's settings in the root's attrs (:data:`ZOOM_ATTR`) and
consolidated metadata of every frame written at the root (so ``xarray.open_datatree(STORE)``
opens the whole sequence). How the frames' windows are chosen is :mod:`pipeline.run.zoom`'s.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import xarray as xr
import zarr

from pipeline.errors import StoreError
from pipeline.store.sweep import SPEC_ATTR, make_parent_folders, os_reason

__all__ = [
    "ZOOM_ATTR",
    "consolidate_root",
    "existing_zoom",
    "frame_group",
    "frame_stores",
    "frames_asked",
    "is_zoom_store",
    "open_root",
    "open_zoom",
]

ZOOM_ATTR = "zoom"
"""Root attribute of a zoom store: its base spec, frames asked for, plane and rule."""


def frame_group(k: int) -> str:
    """Group name of frame ``k``."""
    return f"frame_{k:03d}"


def consolidate_root(root: Path) -> None:
    """Consolidated metadata at the zoom root, covering every frame written so far, so that
    ``xarray.open_datatree(root)`` opens the whole sequence in one read."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # consolidated metadata is a Zarr v3 extension
        zarr.consolidate_metadata(str(root))


def existing_zoom(root: Path) -> dict[str, Any] | None:
    """The zoom attrs of an existing zoom store at ``root``, or None when there is nothing
    there yet; :class:`StoreError` for anything ``sweep run`` would refuse too (a file, a
    folder that is not a store) and for a sweep store (a zoom writes frames as groups of
    its own store, never into a sweep's)."""
    try:
        if root.exists() and not root.is_dir():
            raise StoreError(f"store: {str(root)!r} is a file, not a folder; choose another path")
        if not (root / "zarr.json").exists():
            if root.is_dir() and any(root.iterdir()):
                raise StoreError(
                    f"store: {str(root)!r} exists and is not a zoom store (no zarr.json); "
                    "choose another path"
                )
            return None
    except OSError as e:
        raise StoreError(f"store: {str(root)!r} cannot be used: {os_reason(e)}") from e
    attrs = zarr.open_group(str(root), mode="r").attrs
    if ZOOM_ATTR in attrs:
        return dict(attrs[ZOOM_ATTR])
    kind = "a sweep store (made by sweep run)" if SPEC_ATTR in attrs else "a Zarr store"
    raise StoreError(
        f"store: {str(root)!r} is {kind}, not a zoom store; a zoom needs a store of its own: "
        "choose another path"
    )


def open_root(root: Path) -> Any:
    """The zoom store's root group, made if needed (folders made for it are removed again
    when it cannot be made)."""
    made = make_parent_folders(root)
    try:
        return zarr.open_group(str(root), mode="a")
    except OSError as e:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise StoreError(f"store: cannot create {str(root)!r}: {os_reason(e)}") from e


def open_zoom(store: str | Path) -> list[xr.Dataset]:
    """The frames of a zoom store, in order, as lazy datasets."""
    group = zarr.open_group(str(store), mode="r")
    n = group.attrs.get(ZOOM_ATTR, {}).get("frames", 0)
    frames = []
    for k in range(n):
        if (Path(store) / frame_group(k) / "zarr.json").exists():
            frames.append(xr.open_zarr(str(Path(store) / frame_group(k))))
    return frames


def is_zoom_store(store: str | Path) -> bool:
    """Whether ``store`` is the root of a zoom sequence (``sweep zoom``)."""
    try:
        return ZOOM_ATTR in zarr.open_group(str(store), mode="r").attrs
    except Exception:  # not a group (an array, nothing): not a zoom store
        return False


def frame_stores(store: str | Path) -> list[str]:
    """The frame stores of a zoom store (``STORE/frame_000`` ...) that exist so far."""
    return sorted(str(p.parent) for p in Path(store).glob("frame_*/zarr.json"))


def frames_asked(store: str | Path) -> int:
    """How many frames the zoom store ``store`` was asked for (its root attrs)."""
    return int(zarr.open_group(str(store), mode="r").attrs[ZOOM_ATTR].get("frames", 0))
