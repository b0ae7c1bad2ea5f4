"""A store path that knows what it is: :class:`Store`.

Its :attr:`~Store.kind` is one of :data:`KINDS`: ``sweep`` (made by ``sweep run``),
``refined`` (a sweep whose spec refines: it also has point files, :mod:`.points`), ``zoom``
(a zoom store's root: frames as groups, :mod:`.zoom`) or ``frame`` (one frame of a zoom
store, itself a sweep store). Through it a caller reaches the store's done markers
(:meth:`~Store.done`), identity (:meth:`~Store.check_identity`, the token it was opened with),
lease (:meth:`~Store.lease`) and verification (:meth:`~Store.verify`), without knowing which
module keeps each. The commands that read stores ask it instead of sniffing files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import StoreError
from pipeline.store.identity import check_identity

if TYPE_CHECKING:
    from pipeline.spec.sweep import SweepSpec
    from pipeline.store.grid import ChunkGrid
    from pipeline.store.markers import DoneState
    from pipeline.store.verify import VerifyReport

__all__ = ["KINDS", "Store"]

KINDS = ("sweep", "refined", "zoom", "frame")


@dataclass(frozen=True)
class Store:
    """The store at ``path`` (as given: ``~`` expanded, a relative path stays relative),
    with the identity ``token`` a run opened it with (None: not opened for writing)."""

    path: str
    token: str | None = None

    @classmethod
    def at(cls, path: str | Path) -> Store:
        """The store at ``path`` (``~`` expanded)."""
        return cls(os.path.expanduser(os.fspath(path)))

    def exists(self) -> bool:
        """Whether a Zarr group is there (its ``zarr.json``); a path that cannot even be
        looked at (too long, no permission) is a :class:`StoreError`."""
        try:
            return (Path(self.path) / "zarr.json").is_file()
        except OSError as e:
            raise StoreError(f"store: {self.path!r} cannot be read ({e.strerror})") from e

    def check(self) -> Store:
        """This store, after checking that it is a sweep or zoom store whose metadata reads
        (one-line :class:`StoreError` otherwise)."""
        from pipeline.store.sweep import check_metadata

        if not self.exists():
            raise StoreError(f"store: {self.path!r} is not a sweep or zoom store (no zarr.json)")
        check_metadata(self.path)
        return self

    @property
    def is_zoom(self) -> bool:
        """Whether this is a zoom store's root (:mod:`pipeline.store.zoom`)."""
        from pipeline.store.zoom import is_zoom_store

        return is_zoom_store(self.path)

    @property
    def kind(self) -> str:
        """``sweep``, ``refined``, ``zoom`` or ``frame`` (:data:`KINDS`); a Zarr group that
        ``sweep run`` did not make (no spec) counts as a sweep."""
        from pipeline.store.zoom import is_zoom_store

        if self.is_zoom:
            return "zoom"
        parent = Path(self.path).resolve().parent
        if Path(self.path).name.startswith("frame_") and is_zoom_store(parent):
            return "frame"
        try:
            refined = self.spec().refine is not None
        except StoreError:
            return "sweep"
        return "refined" if refined else "sweep"

    def spec(self) -> SweepSpec:
        """The spec that made the store (:func:`pipeline.store.sweep.read_spec`)."""
        from pipeline.store.sweep import read_spec

        return read_spec(self.path)

    def frames(self) -> list[Store]:
        """A zoom store's frames that exist so far, in order (empty for other kinds)."""
        from pipeline.store.zoom import frame_stores, is_zoom_store

        return [Store(f) for f in frame_stores(self.path)] if is_zoom_store(self.path) else []

    def not_a_frame(self, command: str) -> StoreError:
        """The error for ``sweep COMMAND`` on a zoom store, naming a frame to use instead."""
        frames = self.frames()
        last = frames[-1].path if frames else f"{self.path}/frame_000"
        return StoreError(
            f"store: {self.path!r} is a zoom store ({len(frames)} frame(s)); {command} one "
            f"frame, e.g. sweep {command} {last}"
        )

    def opened(self) -> Store:
        """This store with its identity token (made for a store from before tokens; hold
        the lease): every write of the run checks it."""
        from pipeline.store.sweep import ensure_token

        return replace(self, token=ensure_token(self.path))

    def check_identity(self, what: str = "the run stops") -> None:
        """Raise :class:`~pipeline.errors.StoreChangedError` when the store was deleted or
        replaced since it was opened (its token differs)."""
        check_identity(self.path, self.token, self.path, what)

    def done(self, grid: ChunkGrid | None = None) -> DoneState:
        """Which chunks are done: read with the opened token on ``grid`` (a run), else as
        ``sweep status`` shows the store (a damaged token noted)."""
        from pipeline.store.markers import read_done
        from pipeline.store.sweep import done_state

        if grid is None:
            return done_state(self.path)
        return read_done(self.path, grid.counts, self.token)

    def lease(
        self, command: str, log: Callable[[str], None] = lambda m: None
    ) -> AbstractContextManager[Any]:
        """Hold the store's lease for a ``with`` block (:func:`pipeline.store.lease.
        store_lease`): one driver per store."""
        from pipeline.store.lease import store_lease

        return store_lease(self.path, command, log)

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lease now (command, host, PID, since), or None."""
        from pipeline.store.lease import holder

        return holder(self.path)

    def verify(self, threads: int | None = None) -> VerifyReport:
        """Scrub the done chunks (:func:`pipeline.store.verify.verify_store`)."""
        from pipeline.store.verify import verify_store

        return verify_store(self.path, threads)

    def repair(self, report: VerifyReport) -> int:
        """Un-mark the damaged chunks of ``report`` and mend the bookkeeping
        (:func:`pipeline.store.verify.repair`); how many chunks were un-marked."""
        from pipeline.store.verify import repair

        return repair(self.path, report)

    def sweeps(self) -> Iterator[Store]:
        """The sweep stores behind this one: itself, or a zoom store's frames."""
        yield from (self.frames() if self.is_zoom else [self])
