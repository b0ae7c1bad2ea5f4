"""Networks drawn elsewhere: the ``draws: {file: PATH}`` field of a spec.

A spec that names a draws file takes the network's initial weights, data or inputs from an
``.npz`` instead of the keyed generator, so a sweep can run *a paper's own network* (a window
of a fractal boundary is a window of one network: another draw shows other structure). Which
arrays a file must hold is the experiment's business (it checks their keys, shapes and values
with :func:`require`); this module owns what every draws file shares:

* ``PATH`` relative to the spec file's folder (:func:`resolve_relative`, applied when a spec
  file is read), or to the working directory for a spec given as a mapping;
* the *content hash* of its arrays (:func:`content_hash`: SHA-256 over each key's name,
  dtype, shape and bytes, keys sorted) is part of the spec's identity: other arrays are
  another spec, whatever the file's name; the path and the file's own bytes (zip timestamps)
  are not (the same draws written again or moved are the same spec). The canonical form is
  ``{file: ABSOLUTE_PATH, sha256: HEX}``;
* a canonical form read back from a store (it carries ``sha256``) is not opened until the
  arrays are needed (:meth:`DrawsFile.arrays`), so a store can be analysed where the file is
  absent; when opened, the content must still have that hash;
* every problem (missing file, not an ``.npz``, object arrays, a missing key, a wrong shape,
  non-finite values) is one :class:`~pipeline.errors.SpecError` naming ``draws.file``.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import SpecError

__all__ = ["FIELD", "DrawsFile", "content_hash", "parse_draws", "read_npz", "require"]

FIELD = "draws"
_FILE_FIELD = f"{FIELD}.file"


@dataclass(frozen=True)
class DrawsFile:
    """A draws file: its absolute ``path`` and the SHA-256 (hex) of its bytes."""

    path: str
    sha256: str

    def canonical(self) -> dict[str, str]:
        """``{file, sha256}``: the spec's stored form (only ``sha256`` is its identity)."""
        return {"file": self.path, "sha256": self.sha256}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the file, read once per process (cached by path and hash).

        Raises :class:`SpecError` when the file is gone, no longer an ``.npz`` or its
        content no longer has :attr:`sha256`."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (0, -1)  # read_npz names the problem
        return _load_checked(self.path, self.sha256, *stamp)


def parse_draws(raw: Any) -> DrawsFile | None:
    """The ``draws`` field of a raw spec (None when absent).

    ``{file: PATH}`` (a user's spec): the file is read and hashed now, so a bad file fails
    before anything is written. ``{file: PATH, sha256: HEX}`` (a stored spec): taken as it
    is; the hash is checked when the arrays are first read."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or "file" not in raw:
        raise SpecError(FIELD, f"value {raw!r} is not a mapping {{file: PATH}}")
    extra = sorted(set(raw) - {"file", "sha256"}, key=str)
    if extra:
        raise SpecError(f"{FIELD}.{extra[0]}", "unknown field (allowed: file)")
    path = raw["file"]
    if not isinstance(path, str) or not path.strip():
        raise SpecError(_FILE_FIELD, f"value {path!r} is not a path")
    try:
        p = Path(os.path.expanduser(path))
        p = p if p.is_absolute() else Path.cwd() / p
        absolute = str(p.resolve())
    except (OSError, RuntimeError) as e:
        raise SpecError(_FILE_FIELD, f"value {path!r} is not a usable path ({e})") from None
    sha = raw.get("sha256")
    if sha is not None:
        hexdigits = set("0123456789abcdef")
        if not isinstance(sha, str) or len(sha) != 64 or not set(sha) <= hexdigits:
            raise SpecError(f"{FIELD}.sha256", f"value {sha!r} is not a SHA-256 hex digest")
        return DrawsFile(absolute, sha)
    return DrawsFile(absolute, content_hash(read_npz(absolute)))


def require(
    arrays: Mapping[str, np.ndarray],
    key: str,
    shape: tuple[int, ...],
    *,
    what: str,
    integer: bool = False,
) -> np.ndarray:
    """``arrays[key]`` checked: present, of ``shape``, real numbers (integers with
    ``integer``), all finite. ``what`` says what the array is, for the error message."""
    if key not in arrays:
        have = ", ".join(sorted(arrays)) or "none"
        raise SpecError(_FILE_FIELD, f"has no array {key!r} ({what}); it holds: {have}")
    a = np.asarray(arrays[key])
    kinds = "iu" if integer else "fiu"
    if a.dtype.kind not in kinds:
        kind = "integers" if integer else "real numbers"
        raise SpecError(_FILE_FIELD, f"array {key!r} ({what}) has dtype {a.dtype}, not {kind}")
    if a.shape != tuple(shape):
        raise SpecError(
            _FILE_FIELD,
            f"array {key!r} ({what}) has shape {a.shape}; the spec needs {tuple(shape)}",
        )
    if not integer and not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise SpecError(_FILE_FIELD, f"array {key!r} ({what}) has {bad} non-finite values")
    return a


def content_hash(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) of the arrays: for each key in sorted order its name, dtype string,
    shape and C-order bytes. Independent of the file (zip timestamps, path)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickles), read-only; one-line
    :class:`SpecError` naming ``draws.file`` otherwise."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(
            _FILE_FIELD, f"{str(p)!r} does not exist or is not a file (a .npz of draws)"
        )
    try:
        z = np.load(p, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an archive")
        with z:
            out = {k: np.asarray(z[k]) for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpecError(
            _FILE_FIELD, f"{str(p)!r} is not a readable .npz archive of arrays ({reason})"
        ) from None
    for a in out.values():
        a.setflags(write=False)
    return out


@lru_cache(maxsize=8)
def _load_checked(path: str, sha256: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    arrays = read_npz(path)
    got = content_hash(arrays)
    if got != sha256:
        raise SpecError(
            _FILE_FIELD,
            f"{path!r} now holds other draws (content sha256 {got[:12]}…) than the spec "
            f"recorded ({sha256[:12]}…): restore that file, or run the new file into a new store",
        )
    return arrays
