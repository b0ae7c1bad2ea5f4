"""A store's identity: a random token made with the store, checked by every chunk write.

``STORE/_token`` holds one line, a random hex token written when the store is created (or
when a run first resumes a store made before tokens existed). The driver reads it once; every
task carries it and checks it before writing a chunk and again before marking the chunk done
(:mod:`pipeline.engine.writer`). A store deleted and made again at the same path has another
token, so the chunks of a run that was still writing to the old one are refused loudly
(:class:`~pipeline.errors.StoreChangedError`) instead of landing in the new store.

A store without ``_token`` is a *legacy* store (version 0.1): its expected token is ``None``,
which a store that has a token never matches.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from pipeline.errors import StoreChangedError

__all__ = ["TOKEN_FILE", "check_identity", "new_token", "read_token", "write_token"]

TOKEN_FILE = "_token"


def new_token() -> str:
    """A fresh store token (128 random bits as 32 hex digits)."""
    return uuid.uuid4().hex


def read_token(root: str | Path) -> str | None:
    """The token of the store at ``root``; ``None`` when it has none (a legacy store, or no
    store at all: :func:`check_identity` tells the two apart)."""
    try:
        return (Path(root) / TOKEN_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_token(root: str | Path, token: str) -> None:
    """Write ``token`` as the store's identity (atomically: a reader sees the old file or the
    new one, never a partial line)."""
    path = Path(root) / TOKEN_FILE
    tmp = path.with_name(f"{TOKEN_FILE}.tmp-{os.getpid()}")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)


def check_identity(root: str | Path, expected: str | None, store: str | Path, what: str) -> None:
    """Raise :class:`StoreChangedError` unless the store at ``root`` still exists and has the
    token ``expected``. ``store`` is the path the user gave (for the message), ``what`` names
    the refused action (e.g. ``"chunk 0.3.1 not written"``)."""
    found = read_token(root)
    exists = (Path(root) / "zarr.json").exists()
    if exists and found == expected:
        return
    if not exists:
        now = "it was deleted"
    elif found is None:
        now = "it now has no identity token"
    else:
        now = f"it is now another store (token {found[:8]}…)"
    mine = f"token {expected[:8]}…" if expected else "a store without a token"
    raise StoreChangedError(
        f"store {str(store)!r} changed under this run ({mine} when the run started; {now}): "
        f"{what}. Start the run again to compute into the store that is there now"
    )
