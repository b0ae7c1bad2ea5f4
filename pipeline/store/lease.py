"""The store's lease: one driver (or one ``sweep verify --repair``) at a time per store.

``STORE/_lease`` is created exclusively (``O_CREAT | O_EXCL``) by the process that runs a
sweep on the store and holds JSON naming it: host, PID, the PID's start time, a run id, the
command and since when. While held, a background thread touches the file every
:data:`HEARTBEAT_S` seconds. A second driver on the same store is refused with
:class:`~pipeline.errors.StoreInUseError`, which names the holder's host and PID (two drivers
would compute every chunk twice).

A lease whose holder is gone is taken over: on the same host, when no process with that PID
and start time lives; from another host (a shared file system), when its heartbeat is older
than :data:`STALE_AFTER_S`. Taking over renames the stale file away first (an atomic step
only one contender wins), checks that what it renamed is the lease it judged stale, and then
creates its own, so two contenders never both hold the store.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import StoreInUseError

__all__ = ["HEARTBEAT_S", "LEASE_FILE", "STALE_AFTER_S", "Lease", "holder", "store_lease"]

LEASE_FILE = "_lease"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 120.0
DAMAGED_AFTER_S = 30.0
"""A lease file that names no holder (damaged, or its writer is between create and write) is
taken over once it is this old; a fresher one is refused with what to do."""


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _describe(rec: dict[str, Any]) -> str:
    return (
        f"`{rec.get('command', 'sweep')}` on host {rec.get('host', '?')}, "
        f"PID {rec.get('pid', '?')}, since {rec.get('since', '?')}"
    )


def _alive(rec: dict[str, Any], mtime: float) -> bool:
    """Whether the holder of lease record ``rec`` (file modified at ``mtime``) may live."""
    if rec.get("host") == socket.gethostname() and isinstance(rec.get("pid"), int):
        started = _process_start(rec["pid"])
        since = rec.get("pid_start", 0)
        since = float(since) if isinstance(since, int | float) else 0.0
        return started is not None and abs(started - since) < 2.0
    return time.time() - mtime < STALE_AFTER_S  # another host: trust its heartbeat


def holder(store: str | Path) -> dict[str, Any] | None:
    """The record of the lease's live holder, or None when the store is free (no lease, or
    a stale one)."""
    rec, mtime = _read(Path(store) / LEASE_FILE)
    return rec if rec and _alive(rec, mtime) else None


@dataclass
class Lease:
    """A held lease; :meth:`release` (or leaving :func:`store_lease`) gives it back."""

    path: Path
    record: dict[str, Any]
    _stop: threading.Event = field(default_factory=threading.Event)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Stop the heartbeat and delete the lease file if it is still this one."""
        self._stop.set()
        with contextlib.suppress(OSError, ValueError):
            rec, _ = _read(self.path)
            if rec and rec.get("run") == self.record["run"]:
                self.path.unlink()


def _try_create(path: Path, rec: dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(rec))
    return True


def _read(path: Path) -> tuple[dict[str, Any] | None, float]:
    """The lease record and its file's mtime; ``(None, 0)`` when the file is gone. A file
    that does not parse (its writer is between create and write, or it is damaged) reads as
    an empty record: stale once its mtime is old."""
    try:
        raw, mtime = path.read_bytes(), path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None, 0.0
    try:
        rec = json.loads(raw.decode("utf-8"))
    except ValueError:  # not UTF-8, not JSON
        rec = {}
    if not isinstance(rec, dict) or not {"host", "pid", "run"} <= rec.keys():
        rec = {}  # names no holder
    return rec, mtime


def _acquire(store: Path, command: str, log: Callable[[str], None]) -> Lease:
    path = store / LEASE_FILE
    pid = os.getpid()
    rec = {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": _process_start(pid) or 0.0,
        "run": uuid.uuid4().hex,
        "command": command,
        "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    deadline = time.monotonic() + 2.0
    for _ in range(40):
        if _try_create(path, rec):
            return Lease(path, rec)
        old, mtime = _read(path)
        if old is None:
            continue  # released meanwhile: try again
        if not old:  # being written right now, or damaged
            if time.time() - mtime < DAMAGED_AFTER_S:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
                continue
        elif _alive(old, mtime):
            raise StoreInUseError(
                f"store {str(store)!r} is in use by {_describe(old)} (lease {path}); wait "
                "for that run to end or stop it, then run again"
            )
        # stale: move it aside (one contender wins the rename), check it is the one judged
        aside = path.with_name(f"{LEASE_FILE}.stale-{pid}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue
        moved, _ = _read(aside)
        if moved and moved.get("run") != old.get("run"):  # a live lease taken in between
            with contextlib.suppress(OSError):
                os.link(aside, path)  # put it back unless yet another one is there
            aside.unlink(missing_ok=True)
            continue
        aside.unlink(missing_ok=True)
        if old:
            log(f"store {store}: took over the lease of {_describe(old)}, which is not running")
        else:
            log(f"store {store}: took over its lease file {path}, which named no holder")
    raise StoreInUseError(
        f"store {str(store)!r}: could not take its lease {path}: it does not say who holds "
        f"it (damaged, or being written) and it changed less than {DAMAGED_AFTER_S:g} s ago; "
        f"if no sweep uses this store, delete {path} and run again"
    )


@contextlib.contextmanager
def store_lease(
    store: str | Path, command: str = "sweep run", log: Callable[[str], None] = lambda m: None
) -> Iterator[Lease]:
    """Hold the lease of ``store`` for the ``with`` block (heartbeat included); raises
    :class:`~pipeline.errors.StoreInUseError` when a live process holds it."""
    lease = _acquire(Path(store), command, log)
    beat = threading.Thread(target=lease._heartbeat, name="sweep-lease", daemon=True)
    beat.start()
    try:
        yield lease
    finally:
        lease.release()
