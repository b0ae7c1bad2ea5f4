"""A store's identity: a random token made with the store, checked by every chunk write.

``STORE/_token`` holds one line, a random hex token written when the store is created (or
when a run first resumes a store made before tokens existed). The driver reads it once; every
task carries it and checks it before writing a chunk and again before marking the chunk done
(:mod:`pipeline.store.writer`). A store deleted and made again at the same path has another
token, so the chunks of a run that was still writing to the old one are refused loudly
(:class:`~pipeline.errors.StoreChangedError`) instead of landing in the new store.

A store without ``_token`` is a *legacy* store (version 0.1): its expected token is ``None``,
which a store that has a token never matches.

A ``_token`` that is not one line of hex digits is damage: :func:`read_token` refuses it with
a one-line :class:`~pipeline.errors.StoreError` that says how to restore it (``sweep verify
STORE --repair`` takes the token back from the store's done index, which records it), and a
worker that meets it refuses its chunk as it refuses a replaced store.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from pipeline.errors import StoreChangedError, StoreError

__all__ = [
    "TOKEN_FILE",
    "check_identity",
    "new_token",
    "read_token",
    "token_state",
    "write_token",
]

_TOKEN = re.compile(r"[0-9a-f]{8,128}")

TOKEN_FILE = "_token"


def new_token() -> str:
    """A fresh store token (128 random bits as 32 hex digits)."""
    return uuid.uuid4().hex


def token_state(root: str | Path) -> tuple[str | None, str | None]:
    """``(token, None)`` for the store at ``root``, ``(None, None)`` when it has no token
    file, and ``(None, what is wrong)`` when the file is damaged (not one line of 8-128
    lowercase hex digits)."""
    try:
        raw = (Path(root) / TOKEN_FILE).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as e:
        return None, f"unreadable ({e.strerror or type(e).__name__})"
    text = raw.decode("ascii", errors="replace").strip()
    if _TOKEN.fullmatch(text):
        return text, None
    return None, f"damaged: holds {raw[:24]!r}, not a token"


def read_token(root: str | Path) -> str | None:
    """The token of the store at ``root``; ``None`` when it has none (a legacy store, or no
    store at all: :func:`check_identity` tells the two apart). A damaged token file is a
    one-line :class:`~pipeline.errors.StoreError` saying how to restore it."""
    token, problem = token_state(root)
    if problem:
        raise StoreError(
            f"store {str(root)!r}: its identity file {TOKEN_FILE} is {problem}; "
            f"`sweep verify {root} --repair` restores it"
        )
    return token


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
    found, problem = token_state(root)
    exists = (Path(root) / "zarr.json").exists()
    if exists and found == expected and not problem:
        return
    if not exists:
        now = "it was deleted"
    elif problem:
        now = f"its identity file {TOKEN_FILE} is {problem}"
    elif found is None:
        now = "it now has no identity token"
    else:
        now = f"it is now another store (token {found[:8]}…)"
    mine = f"token {expected[:8]}…" if expected else "a store without a token"
    raise StoreChangedError(
        f"store {str(store)!r} changed under this run ({mine} when the run started; {now}): "
        f"{what}. Start the run again to compute into the store that is there now"
    )
