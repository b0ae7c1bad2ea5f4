"""A network's random draws read from a file (spec field ``draws: {file: PATH}``).

With a draws file the propagation experiment runs the network of D'Inverno et al. (2025)
on *given* arrays (their own draws, written by :mod:`.draws_torch`, or anyone's) instead of
the draws keyed by the seed (:mod:`.architectures`). The file is a NumPy ``.npz`` with

===================  ===========================  ==========================================
key                  shape                        meaning
===================  ===========================  ==========================================
``x1``, ``x2``       (N,)                         the divergence probe's two inputs (s⁰)
``bias_basis``       (N, N)                       W_bias: the bias of layer l is W_bias bsˡ
``bias_directions``  (L, N)                       bsˡ, row l − 1 for layer l (used as given)
``weights``          (T, N, N)  dense             W_l, entries N(0, 1) as drawn (unscaled)
``kernels``          (T, N)     conv              w_l, entries N(0, 1) as drawn (unscaled)
``diagonals``        (T, 2, N)  struct, complex   D₁, D₂ of F D₂ F D₁ (D₁ applied first)
===================  ===========================  ==========================================

with L the depth and T = L (``weight_tying: per_layer``; row l − 1 for layer l) or T = 1
(``shared``). Exactly the keys of the spec's architecture are allowed; real arrays are float32
or float64, ``diagonals`` complex64 or complex128, every value finite.

The layer map is the authors' (their state s; docs/conventions.md §2.5):

    s⁰ = x,   hˡ = σ_w A_l sˡ⁻¹ + σ_b W_bias bsˡ,   sˡ = erf(hˡ)/√N (dense) or out(hˡ)

with A_l = W_l (dense); the circular cross-correlation of torch's ``Conv1d(padding='same',
padding_mode='circular')`` with weight w_l/√N (conv): (A s)_i = Σ_k w_k/√N · s_((i+k−p) mod N),
p = ⌊(N − 1)/2⌋; F D₂ F D₁ (struct). They enter the pipeline's one code path
(:func:`.network.propagate_architecture`) as its operators, in its variables y = √N s (dense):
the dense operator is W_l/√N, conv's circulant kernel is c_m = w_((p − m) mod N)/√N.

The spec's identity holds the *content hash* of the arrays (:func:`content_hash`: SHA-256 over
each key's name, dtype, shape and bytes, keys sorted), not the path or the file's bytes, so the
same draws written again (a new file, another path) are the same spec and other draws are another
spec. The arrays are read where a chunk is computed (once per process) and checked against the
hash there.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import SpecError
from pipeline.experiments.propagation.architectures import Network, Operator, make_operator
from pipeline.spec.draws import content_hash
from pipeline.spec.draws import read_npz as _read_npz

__all__ = [
    "COMMON_KEYS",
    "OPERATOR_KEYS",
    "DrawsFile",
    "NetworkDraws",
    "content_hash",
    "expected_shapes",
    "parse_draws",
    "read_draws",
]

FIELD = "draws.file"

COMMON_KEYS = ("x1", "x2", "bias_basis", "bias_directions")
"""The keys every draws file has."""

_REAL = (np.dtype(np.float32), np.dtype(np.float64))
_COMPLEX = (np.dtype(np.complex64), np.dtype(np.complex128))

OPERATOR_KEYS = {"dense": "weights", "conv": "kernels", "struct": "diagonals"}
"""The key of each architecture's layer operators."""


def expected_shapes(network: Network, n: int, depth: int) -> dict[str, tuple[int, ...]]:
    """The shape of every key of a draws file for ``network`` (architecture, tying), width
    ``n`` and ``depth`` layers (module docstring)."""
    t = 1 if network.weight_tying == "shared" else depth
    op = {"dense": (t, n, n), "conv": (t, n), "struct": (t, 2, n)}[network.architecture]
    return {
        "x1": (n,),
        "x2": (n,),
        "bias_basis": (n, n),
        "bias_directions": (depth, n),
        OPERATOR_KEYS[network.architecture]: op,
    }


def _describe(shapes: Mapping[str, tuple[Any, ...]]) -> str:
    return ", ".join(f"{k} ({', '.join(map(str, v))})" for k, v in shapes.items())


def _symbolic(network: Network, depth: int) -> dict[str, tuple[Any, ...]]:
    """:func:`expected_shapes` with the width written N (when the file does not give it)."""
    return {
        k: tuple("N" if d == 0 else d for d in v)
        for k, v in expected_shapes(network, 0, depth).items()
    }


def _check_arrays(
    path: Path, arrays: Mapping[str, np.ndarray], network: Network, depth: int
) -> int:
    """Check keys, dtypes, shapes and finiteness against the network; return N."""
    where = f"{str(path)!r}"
    op_key = OPERATOR_KEYS[network.architecture]
    allowed = (*COMMON_KEYS, op_key)
    x1 = arrays.get("x1")
    n = int(x1.shape[0]) if x1 is not None and x1.ndim == 1 and x1.shape[0] > 0 else None
    want = expected_shapes(network, n or 0, depth)
    need = f"{network.architecture}, {network.weight_tying}, depth {depth} needs " + _describe(
        expected_shapes(network, n, depth) if n else _symbolic(network, depth)
    )
    for key in allowed:
        if key not in arrays:
            raise SpecError(FIELD, f"{where} has no array {key!r} ({need})")
    extra = sorted(set(arrays) - set(allowed))
    if extra:
        raise SpecError(FIELD, f"{where} has arrays {', '.join(map(repr, extra))} ({need}, only)")
    if n is None:
        raise SpecError(FIELD, f"{where}: 'x1' has shape {x1.shape}, not (N,) with N >= 1")
    for key in allowed:
        a = arrays[key]
        ok = _COMPLEX if key == "diagonals" else _REAL
        if a.dtype not in ok:
            allowed_dt = " or ".join(str(d) for d in ok)
            raise SpecError(FIELD, f"{where}: {key!r} has dtype {a.dtype}, not {allowed_dt}")
        if a.shape != want[key]:
            raise SpecError(
                FIELD, f"{where}: {key!r} has shape {a.shape}, not {want[key]} ({need})"
            )
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise SpecError(
                FIELD, f"{where}: {key!r} holds {bad} NaN or infinite values (all must be finite)"
            )
    return n


@dataclass(frozen=True)
class DrawsFile:
    """The spec's reference to a draws file: its absolute ``path``, the ``sha256`` content hash
    (:func:`content_hash`) and the ``width`` N it fixes. The arrays are not held (the spec
    travels to every task); :meth:`load` reads them."""

    path: str
    sha256: str
    width: int

    def canonical(self) -> dict[str, Any]:
        """The spec's ``draws`` entry in the store (the path is not part of the identity:
        :meth:`pipeline.spec.sweep.SweepSpec.differences` compares the hash only)."""
        return {"file": self.path, "sha256": self.sha256, "width": self.width}

    def load(self) -> NetworkDraws:
        """The arrays (cached per process), checked against :attr:`sha256`."""
        return read_draws(self.path, self.sha256)


@dataclass(frozen=True, eq=False)
class NetworkDraws:
    """The arrays of a draws file as float64/complex128 (module docstring), and the pipeline
    operators and biases they make."""

    arrays: Mapping[str, np.ndarray]

    @property
    def width(self) -> int:
        """N."""
        return int(self.arrays["x1"].shape[0])

    def inputs(self) -> np.ndarray:
        """x₁, x₂ as (2, N) float64: the divergence probe's inputs (their s⁰)."""
        return np.stack([self.arrays["x1"], self.arrays["x2"]])

    def bias(self, layer: int) -> np.ndarray:
        """The unscaled bias of ``layer`` (1-based), W_bias bsˡ, float64 (N,)."""
        return self.arrays["bias_basis"] @ self.arrays["bias_directions"][layer - 1]

    def operator(
        self, network: Network, layer: int, dtype: str | np.dtype, xp: Any = np
    ) -> Operator:
        """The pipeline operator of ``layer`` (1-based; a shared operator: row 0), in the
        pipeline's variables (module docstring), on the array module ``xp``."""
        n = self.width
        arch = network.architecture
        row = 0 if network.weight_tying == "shared" else layer - 1
        a = self.arrays[OPERATOR_KEYS[arch]][row]
        if arch == "dense":
            return make_operator("dense", a / math.sqrt(n), dtype, xp)
        if arch == "conv":
            p = (n - 1) // 2  # torch's left padding of a 'same' convolution with N taps
            c = a[(p - np.arange(n)) % n] / math.sqrt(n)
            return make_operator("conv", c, dtype, xp)
        return make_operator("struct", a, dtype, xp)


_CACHE: dict[tuple[str, str], NetworkDraws] = {}
_LOCK = threading.Lock()


def read_draws(path: str | os.PathLike[str], sha256: str) -> NetworkDraws:
    """The draws at ``path`` whose content hash must be ``sha256``, as float64 (complex128)
    arrays; cached per process. :class:`SpecError` when the file is gone or now holds other
    draws (the spec that recorded it asks for the ones it hashed)."""
    key = (str(path), sha256)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    p = Path(path)
    arrays = _read_npz(p)
    found = content_hash(arrays)
    if found != sha256:
        raise SpecError(
            FIELD,
            f"{str(p)!r} now holds other draws (content sha256 {found[:12]}…) than the spec "
            f"recorded ({sha256[:12]}…); restore that file or make a new store",
        )
    wide = {
        k: np.asarray(v, np.complex128 if v.dtype.kind == "c" else np.float64)
        for k, v in arrays.items()
    }
    for v in wide.values():
        v.setflags(write=False)
    draws = NetworkDraws(wide)
    with _LOCK:
        _CACHE[key] = draws
    return draws


def parse_draws(
    raw: Any,
    network: Network,
    depth: int,
    base_dir: str | os.PathLike[str] | None = None,
) -> DrawsFile:
    """Validate the spec field ``draws`` (``{file: PATH}``; the canonical form in a store
    adds ``sha256`` and ``width``) for ``network`` at ``depth``.

    A relative PATH is taken from ``base_dir`` (the spec file's folder; default the current
    one). The file is read and checked (keys, dtypes, shapes, finite values) and hashed. A
    canonical entry whose file is gone or holds other content is accepted as recorded (a store
    can be read without its draws); computing it then fails loudly (:func:`read_draws`).
    """
    if not isinstance(raw, Mapping) or "file" not in raw:
        raise SpecError(
            "draws", f"expected a mapping {{file: PATH}} (a .npz of draws), got {raw!r}"
        )
    for key in raw:
        if key not in ("file", "sha256", "width"):
            raise SpecError(f"draws.{key}", "unknown key (allowed: file)")
    if network.bias != "projected":
        raise SpecError(
            "bias",
            f"value {network.bias!r} with draws.file: only 'projected' (the file holds the bias "
            "basis and the bias directions)",
        )
    value = raw["file"]
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise SpecError(FIELD, f"value {value!r} is not a path to a .npz file")
    path = Path(os.path.expanduser(str(value)))
    if not path.is_absolute():
        path = Path(base_dir or os.getcwd()) / path
    path = Path(os.path.normpath(path))
    recorded = raw.get("sha256")
    if recorded is not None:
        if not isinstance(recorded, str) or len(recorded) != 64:
            raise SpecError("draws.sha256", f"value {recorded!r} is not a SHA-256 hex digest")
        width = raw.get("width")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise SpecError("draws.width", f"value {width!r} is not an integer >= 1")
        if not path.is_file():
            return DrawsFile(str(path), recorded, width)
    arrays = _read_npz(path)
    found = content_hash(arrays)
    if recorded is not None and found != recorded:
        return DrawsFile(str(path), recorded, int(raw["width"]))
    n = _check_arrays(path, arrays, network, depth)
    return DrawsFile(str(path), found, n)
