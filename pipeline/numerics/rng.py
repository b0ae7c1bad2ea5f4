"""Counter-based random numbers: the single source of every random draw in the project.

Generator
    Philox4x32-10 of Random123 (Salmon et al., SC'11): a bijection of a 128-bit counter
    ``(c0, c1, c2, c3)`` under a 64-bit key ``(k0, k1)``, ten rounds with multipliers
    ``0xD2511F53``, ``0xCD9E8D57`` and Weyl key bumps ``0x9E3779B9``, ``0xBB67AE85``.
    Written in pure NumPy (uint64 arithmetic for the 32x32->64-bit products) so that a CUDA
    kernel can reproduce it bit for bit; :func:`philox4x32` is the readable reference and
    reproduces Random123's published known-answer vectors.

Keying convention (docs/conventions.md §2.2)
    One Philox call per drawn value, keyed by *what* is drawn, never by chunk or task::

        counter = (column, row, layer, stream)      each in [0, 2**32)
        key     = (seed & 0xFFFFFFFF, seed >> 32)   seed in [0, 2**64)

    ``stream`` names the kind of draw (:data:`STREAMS`). Because a value depends only on
    (seed, stream, layer, row, column), the width-N matrix is the leading N x N block of the
    width-2N one, and a block's numbers do not depend on how it is tiled or threaded.

Uniforms
    The output words ``(w0, w1, w2, w3)`` give two float64 uniforms, ``u1`` from ``(w0, w1)``
    and ``u2`` from ``(w2, w3)``, each from the top 52 bits of the 64-bit word ``hi:lo``::

        n = ((w_hi << 32) | w_lo) >> 12                 # integer in [0, 2**52)
        u = (n + 0.5) * 2**-52                          # float64

    Every step is exact in float64 (``n + 0.5`` needs 53 significant bits), so any IEEE
    machine gets the same bits; ``u`` lies in [2**-53, 1 - 2**-53], strictly inside (0, 1),
    and the law is exactly symmetric under ``u -> 1 - u``. (53 bits cannot do this: the
    values ``(n + 0.5) * 2**-53`` above 1/2 are not representable and the largest rounds
    to 1.0.) The fast path builds the same value from the bit pattern
    ``n | 0x3FF0000000000000`` = 1 + n 2**-52, minus ``1 - 2**-53`` (an exact subtraction).

α-stable draws (Chambers-Mallows-Stuck)
    Standard symmetric α-stable S_α(1), characteristic function exp(-|t|^α), 0 < α <= 2::

        V = π (u1 - 1/2),   W = -log u2
        X = sin(αV) / cos(V)^(1/α) · (cos((1-α)V) / W)^((1-α)/α)

    evaluated without sin/cos (slow in NumPy) through the exact identities, with
    ``τ = tan(αV/2)``, ``t = tan V``, ``s = tan((1-α)V)`` (all arguments inside (-π/2, π/2))::

        X = 2τ / (1 + τ²) · exp( log(1 + t²) / (2α) - (1-α)/(2α) · log((1 + s²) W²) )

    At α = 2 (S_2(1) = N(0, 2)) the special case ``X = 2 sin(V) √W`` is evaluated as
    ``X = t · sqrt(4W / (1 + t²))``; :func:`normal_block` uses ``t · sqrt(2W / (1 + t²))``,
    i.e. N(0, 1) = X/√2 up to rounding (a few ulp). A CUDA port reproduces the uniforms bit
    for bit and these values to a few ulp (tan/log/exp differ by an ulp or so between
    libraries). Non-finite draws (possible for tiny α) are returned as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from pipeline.errors import PipelineError

__all__ = [
    "STREAMS",
    "normal_block",
    "philox4x32",
    "stable_block",
    "stable_from_uniforms",
    "uniforms",
]

STREAMS: dict[str, int] = {
    "weight": 0,
    "bias": 1,
    "input": 2,
    "tangent": 3,
    "circle": 4,
    "batch": 5,
    # trainability experiment (docs/conventions.md §4)
    "train_weight": 6,
    "train_perturb": 7,
    "train_x": 8,
    "train_y": 9,
    "train_minibatch": 10,
    # propagation architectures (docs/conventions.md §2.5)
    "bias_matrix": 11,
    "divergence": 12,
}
"""Stream ids (the fourth counter word) for each kind of draw."""

_M0 = 0xD2511F53
_M1 = 0xCD9E8D57
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_MASK32 = 0xFFFFFFFF
_ROUNDS = 10

_U64_M0 = np.uint64(_M0)
_U64_M1 = np.uint64(_M1)
_U64_32 = np.uint64(32)
_U64_12 = np.uint64(12)


def _c64(value: int | float) -> np.ndarray:
    """A read-only 0-d constant: NumPy dispatches these faster than scalars (per-call cost
    matters: a tile takes ~100 ufunc calls)."""
    a = np.array(value, dtype=np.uint64 if isinstance(value, int) else np.float64)
    a.flags.writeable = False
    return a


_C_M0 = _c64(_M0)
_C_M1 = _c64(_M1)
_C_32 = _c64(32)
_C_12 = _c64(12)
_C_MASK32 = _c64(_MASK32)
_C_EXP_ONE = _c64(0x3FF0000000000000)  # bit pattern of 1.0: n | this = 1 + n 2**-52
_C_1_5 = _c64(1.5)
_C_HALF_ULP = _c64(2.0**-53)
_C_ONE_MINUS_HALF_ULP = _c64(1.0 - 2.0**-53)

_TILE = 32768
"""Values per tile of the fast path (4 uint64 buffers of this size stay in L2). Speed only."""
_TILE_THREADED = 65536
"""Tile size when threads > 1: fewer, longer ufunc calls, so fewer GIL hand-offs. Speed only."""


# --------------------------------------------------------------------------- Philox


def _as_u32_array(x: object, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers in [0, 2**32), got dtype {a.dtype}")
    if a.size and (int(a.min()) < 0 or int(a.max()) > _MASK32):
        raise PipelineError(
            f"{name}: values must lie in [0, 2**32); got range [{int(a.min())}, {int(a.max())}]"
        )
    return a.astype(np.uint64)


def philox4x32(
    c0: np.ndarray | int,
    c1: np.ndarray | int,
    c2: np.ndarray | int,
    c3: np.ndarray | int,
    k0: np.ndarray | int,
    k1: np.ndarray | int,
    rounds: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Philox4x32-``rounds`` of Random123: counter ``(c0, c1, c2, c3)``, key ``(k0, k1)``.

    Inputs are integer scalars or arrays with values in [0, 2**32); they broadcast together.
    Returns the four output words ``(w0, w1, w2, w3)``, each a uint32 array of the broadcast
    shape. Reference implementation (readable, not tuned); the fast path of
    :func:`stable_block` computes the same function and is tested against it.
    """
    if not isinstance(rounds, int | np.integer) or rounds < 0:
        raise PipelineError(f"rounds: expected a non-negative integer, got {rounds!r}")
    words = [
        _as_u32_array(v, n) for v, n in zip((c0, c1, c2, c3), ("c0", "c1", "c2", "c3"), strict=True)
    ]
    keys = [_as_u32_array(v, n) for v, n in zip((k0, k1), ("k0", "k1"), strict=True)]
    x0, x1, x2, x3, ka, kb = np.broadcast_arrays(*words, *keys)
    x0, x1, x2, x3, ka, kb = (a.copy() for a in (x0, x1, x2, x3, ka, kb))
    mask = np.uint64(_MASK32)
    for _ in range(rounds):
        p0 = x0 * _U64_M0  # exact: both factors < 2**32
        p1 = x2 * _U64_M1
        x0, x1, x2, x3 = (p1 >> _U64_32) ^ x1 ^ ka, p1 & mask, (p0 >> _U64_32) ^ x3 ^ kb, p0 & mask
        ka = (ka + np.uint64(_W0)) & mask
        kb = (kb + np.uint64(_W1)) & mask
    w0, w1, w2, w3 = (np.asarray(w, dtype=np.uint32) for w in (x0, x1, x2, x3))
    return w0, w1, w2, w3


def _check_int(value: object, name: str, lo: int, hi: int) -> int:
    """Validate an integer argument in [lo, hi) and return it as a Python int."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if not lo <= v < hi:
        raise PipelineError(f"{name}: expected an integer in [{lo}, {hi}), got {v}")
    return v


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.integer | np.floating):
        raise TypeError(f"alpha: expected a real number in (0, 2], got {alpha!r}")
    a = float(alpha)
    if not 0.0 < a <= 2.0:
        raise PipelineError(f"alpha: expected a tail index in (0, 2], got {a!r}")
    return a


@lru_cache(maxsize=64)
def _key_schedule(seed: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Round keys (k0 + r W0, k1 + r W1) mod 2**32 for r = 0..9, as 0-d uint64 arrays."""
    k0, k1 = seed & _MASK32, seed >> 32
    return (
        tuple(_c64((k0 + r * _W0) & _MASK32) for r in range(_ROUNDS)),
        tuple(_c64((k1 + r * _W1) & _MASK32) for r in range(_ROUNDS)),
    )


# --------------------------------------------------------------------------- uniforms


def _u_from_words(w_hi: np.ndarray, w_lo: np.ndarray) -> np.ndarray:
    n = (w_hi.astype(np.uint64) << _U64_32 | w_lo.astype(np.uint64)) >> _U64_12
    return (n.astype(np.float64) + 0.5) * 2.0**-52


def uniforms(
    seed: int, stream: int, layer: int, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The two uniforms ``(u1, u2)`` behind the draw at every (row, col) pair.

    ``rows`` and ``cols`` are integer arrays (or scalars) in [0, 2**32) that broadcast
    together, e.g. ``rows[:, None]`` and ``cols[None, :]``; ``seed`` is in [0, 2**64),
    ``stream`` and ``layer`` in [0, 2**32). Returns two float64 arrays of the broadcast
    shape with values in [2**-53, 1 - 2**-53], computed as in the module docstring
    (counter = (col, row, layer, stream), key = (seed low, seed high)). Bit-identical to the
    uniforms used by :func:`stable_block`.
    """
    seed = _check_int(seed, "seed", 0, 2**64)
    stream = _check_int(stream, "stream", 0, 2**32)
    layer = _check_int(layer, "layer", 0, 2**32)
    w0, w1, w2, w3 = philox4x32(cols, rows, layer, stream, seed & _MASK32, seed >> 32)
    return _u_from_words(w0, w1), _u_from_words(w2, w3)


# --------------------------------------------------------------------------- CMS transform


@lru_cache(maxsize=256)
def _cms_constants(alpha: float, normal: bool) -> dict[str, np.ndarray]:
    """The float64 constants of :func:`_cms` for one α, as 0-d arrays (cheaper dispatch)."""
    return {
        "one": _c64(1.0),
        "half": _c64(0.5),
        "pi": _c64(math.pi),
        "w_scale": _c64(-2.0 if normal else -4.0),
        "pi_1ma": _c64(math.pi * (1.0 - alpha)),
        "pi_a2": _c64(0.5 * math.pi * alpha),
        "c_t": _c64(0.5 / alpha),
        "c_s": _c64(0.5 * (1.0 - alpha) / alpha),
    }


def _cms(
    d: np.ndarray,
    v: np.ndarray,
    alpha: float,
    s1: np.ndarray,
    s2: np.ndarray,
    out: np.ndarray,
    normal: bool = False,
    special: bool = True,
) -> None:
    """Chambers-Mallows-Stuck in place: ``d`` = u1 - 1/2, ``v`` = u2 (both float64, consumed).

    ``s1``, ``s2`` are float64 scratch arrays and ``out`` (float32 or float64) receives the
    draws; all have the shape of ``d``. Every path to a draw (block or uniforms) runs this
    exact sequence of operations, so the results are bit-identical. ``special=False`` forces
    the general-α evaluation even at α = 2 (tests compare the two).
    """
    k = _cms_constants(alpha, normal)
    mul = np.multiply
    with np.errstate(all="ignore"):
        if alpha == 2.0 and special:
            # X = 2 sin(V) sqrt(W) = t sqrt(4W / (1 + t^2)), t = tan V   (sqrt(2W...) for N(0,1))
            mul(d, k["pi"], out=d)
            np.tan(d, out=d)
            np.log(v, out=v)
            mul(v, k["w_scale"], out=v)
            mul(d, d, out=s1)
            np.add(s1, k["one"], out=s1)
            np.divide(v, s1, out=v)
            np.sqrt(v, out=v)
            mul(v, d, out=out)
            return
        assert not normal, "normal draws are the alpha = 2 special case"
        np.log(v, out=v)
        mul(v, v, out=v)  # W^2 = (log u2)^2
        mul(d, k["pi"], out=s1)
        np.tan(s1, out=s1)  # t = tan V
        mul(s1, s1, out=s1)
        np.add(s1, k["one"], out=s1)
        np.log(s1, out=s1)  # log(1 + t^2) = -2 log cos V
        mul(d, k["pi_1ma"], out=s2)
        np.tan(s2, out=s2)  # s = tan((1 - alpha) V)
        mul(s2, s2, out=s2)
        np.add(s2, k["one"], out=s2)
        mul(s2, v, out=s2)
        np.log(s2, out=s2)  # log((1 + s^2) W^2) = -2 log(cos((1 - alpha) V) / W)
        mul(s1, k["c_t"], out=s1)
        mul(s2, k["c_s"], out=s2)
        np.subtract(s1, s2, out=s1)
        np.exp(s1, out=s1)  # cos(V)^(-1/alpha) (cos((1-alpha)V)/W)^((1-alpha)/alpha)
        mul(d, k["pi_a2"], out=d)
        np.tan(d, out=d)  # tau = tan(alpha V / 2)
        mul(d, d, out=v)
        np.add(v, k["one"], out=v)
        mul(v, k["half"], out=v)
        np.divide(d, v, out=d)  # sin(alpha V) = 2 tau / (1 + tau^2)
        mul(d, s1, out=out)


def stable_from_uniforms(u1: np.ndarray, u2: np.ndarray, alpha: float) -> np.ndarray:
    """Standard symmetric α-stable S_α(1) draws from uniforms by Chambers-Mallows-Stuck.

    ``u1``, ``u2``: arrays (broadcast together) of uniforms in (0, 1), as from
    :func:`uniforms`; ``alpha`` in (0, 2]. Returns a float64 array of the broadcast shape,
    X with characteristic function exp(-|t|^α) (formula and its evaluation in the module
    docstring); α = 2 uses the special case 2 sin(V) √W, so S_2(1) = N(0, 2). Computed in
    float64; non-finite results (tiny α) are returned, never raised.
    """
    alpha = _check_alpha(alpha)
    a1, a2 = np.broadcast_arrays(np.asarray(u1, dtype=np.float64), np.asarray(u2, np.float64))
    d = a1 - 0.5  # exact for u1 on the 2**-53 grid
    v = a2.copy()
    out = np.empty(d.shape, np.float64)
    _cms(d, v, alpha, np.empty_like(d), np.empty_like(d), out)
    return out


def _cms_general(u1: np.ndarray, u2: np.ndarray, alpha: float) -> np.ndarray:
    """:func:`stable_from_uniforms` through the general-α formula, even at α = 2 (tests)."""
    a1, a2 = np.broadcast_arrays(np.asarray(u1, dtype=np.float64), np.asarray(u2, np.float64))
    d = a1 - 0.5
    v = a2.copy()
    out = np.empty(d.shape, np.float64)
    _cms(d, v, float(alpha), np.empty_like(d), np.empty_like(d), out, special=False)
    return out


# --------------------------------------------------------------------------- fast blocks


def _philox_tile_uniforms(
    keys: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]],
    stream: int,
    layer: int,
    row0: int,
    n_rows: int,
    col0: int,
    n_cols: int,
    bufs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Philox4x32-10 + uniforms for the tile rows row0.., cols col0.. (fast path).

    ``keys`` is :func:`_key_schedule`'s (0-d uint64 arrays: NumPy dispatches them faster
    than scalars), ``bufs`` four uint64 (n_rows, n_cols) arrays, overwritten. Returns
    ``(d, u2, s1, s2)``: float64 views into ``bufs`` holding u1 - 1/2, u2 and two free
    scratch arrays. Bit-identical to :func:`uniforms`.

    Why it is shaped like this: the counter is (col, row, layer, stream), so the first two
    rounds and half of the third depend on a single row or column; they run on 1-D arrays and
    only rounds 3..10 touch the full tile. A full round keeps the raw 64-bit products
    P = M x (hi:lo) and forms the next word in place as ((P_prev ^ k) << 32 ^ P) >> 32 =
    hi(P) ^ lo(P_prev) ^ k, so no temporaries are made; the last round leaves the words
    (w0 << 32 | w1) and (w2 << 32 | w3) whose top 52 bits are the uniforms.
    """
    k0s, k1s = keys
    mul, xor, shl, shr = np.multiply, np.bitwise_xor, np.left_shift, np.right_shift
    m0, m1, s32 = _C_M0, _C_M1, _C_32
    a, b, c, d = bufs
    rr = np.arange(row0, row0 + n_rows, dtype=np.uint64)
    cc = np.arange(col0, col0 + n_cols, dtype=np.uint64)

    # round 1: x0 <- row, x1 <- scalar, x2, x3 <- column
    p0c = mul(cc, m0)
    p1s = _M1 * layer
    x0r = xor(rr, np.uint64(p1s >> 32) ^ k0s[0])
    x1s = np.uint64(p1s & _MASK32)
    x2c = xor(shr(p0c, s32), np.uint64(stream) ^ k1s[0])
    x3c = np.bitwise_and(p0c, _C_MASK32)
    # round 2: x0, x1 <- column, x3 <- row, x2 full (in a)
    p0r = mul(x0r, m0)
    p1c = mul(x2c, m1)
    x0c = xor(shr(p1c, s32), x1s ^ k0s[1])
    x1c = np.bitwise_and(p1c, _C_MASK32)
    xor(shr(p0r, s32)[:, None], xor(x3c, k1s[1])[None, :], out=a)
    x3r = np.bitwise_and(p0r, _C_MASK32)
    # round 3: P1 full (a), x0 full (b), x2 full (c), x3 <- column
    p0c = mul(x0c, m0)
    mul(a, m1, out=a)
    xor(a, shl(xor(x1c, k0s[2]), s32)[None, :], out=b)
    shr(b, s32, out=b)
    xor(x3r[:, None], xor(shr(p0c, s32), k1s[2])[None, :], out=c)
    x3c = np.bitwise_and(p0c, _C_MASK32)
    # round 4: x0 (a), x2 (d) full; raw products kept as lo words: L1 = c, L3 = b
    mul(b, m0, out=b)
    mul(c, m1, out=c)
    xor(a, k0s[3], out=a)
    shl(a, s32, out=a)
    xor(a, c, out=a)
    shr(a, s32, out=a)
    xor(b, shl(xor(x3c, k1s[3]), s32)[None, :], out=d)
    shr(d, s32, out=d)
    x0, x2, l1, l3 = a, d, c, b
    # rounds 5..9
    for r in range(4, _ROUNDS - 1):
        mul(x0, m0, out=x0)
        mul(x2, m1, out=x2)
        xor(l1, k0s[r], out=l1)
        shl(l1, s32, out=l1)
        xor(l1, x2, out=l1)
        shr(l1, s32, out=l1)
        xor(l3, k1s[r], out=l3)
        shl(l3, s32, out=l3)
        xor(l3, x0, out=l3)
        shr(l3, s32, out=l3)
        x0, x2, l1, l3 = l1, l3, x2, x0
    # round 10: l1 <- w0:w1, l3 <- w2:w3
    mul(x0, m0, out=x0)
    mul(x2, m1, out=x2)
    xor(l1, k0s[_ROUNDS - 1], out=l1)
    shl(l1, s32, out=l1)
    xor(l1, x2, out=l1)
    xor(l3, k1s[_ROUNDS - 1], out=l3)
    shl(l3, s32, out=l3)
    xor(l3, x0, out=l3)
    # uniforms: top 52 bits as the mantissa of a float in [1, 2), then exact subtractions
    shr(l1, _C_12, out=l1)
    np.bitwise_or(l1, _C_EXP_ONE, out=l1)
    shr(l3, _C_12, out=l3)
    np.bitwise_or(l3, _C_EXP_ONE, out=l3)
    f1 = l1.view(np.float64)
    np.subtract(f1, _C_1_5, out=f1)
    np.add(f1, _C_HALF_ULP, out=f1)  # u1 - 1/2 = (n + 1/2) 2**-52 - 1/2, exact
    f2 = l3.view(np.float64)
    np.subtract(f2, _C_ONE_MINUS_HALF_ULP, out=f2)  # u2 = (n + 1/2) 2**-52, exact
    return f1, f2, x0.view(np.float64), x2.view(np.float64)


def _tiles(n_rows: int, n_cols: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(row offset, rows, col offset, cols) of the tiles covering an n_rows x n_cols block."""
    width = max(1, min(n_cols, tile))
    height = max(1, min(n_rows, tile // width))
    return [
        (r, min(height, n_rows - r), c, min(width, n_cols - c))
        for r in range(0, n_rows, height)
        for c in range(0, n_cols, width)
    ]


PHILOX = ("numpy", "numba")
"""Implementations of the tile generator: NumPy (the reference, :func:`_philox_tile_uniforms`)
or Numba (:mod:`pipeline.numerics.rng_compiled`, bit-identical, for the compiled backend)."""


def _tile_generator(philox: str) -> Callable[..., tuple[np.ndarray, ...]]:
    """The tile generator named by ``philox`` (:data:`PHILOX`)."""
    if philox == "numpy":
        return _philox_tile_uniforms
    if philox == "numba":
        from pipeline.numerics import rng_compiled  # needs Numba; imported on first use

        return rng_compiled.tile_uniforms
    raise PipelineError(f"philox: expected one of {', '.join(PHILOX)}, got {philox!r}")


def _block(
    seed: int,
    stream: int,
    layer: int,
    row_start: int,
    n_rows: int,
    col_start: int,
    n_cols: int,
    alpha: float,
    out: np.ndarray | None,
    threads: int,
    normal: bool,
    philox: str = "numpy",
) -> np.ndarray:
    seed = _check_int(seed, "seed", 0, 2**64)
    stream = _check_int(stream, "stream", 0, 2**32)
    layer = _check_int(layer, "layer", 0, 2**32)
    n_rows = _check_int(n_rows, "n_rows", 0, 2**32 + 1)
    n_cols = _check_int(n_cols, "n_cols", 0, 2**32 + 1)
    row_start = _check_int(row_start, "row_start", 0, 2**32 - n_rows + 1)
    col_start = _check_int(col_start, "col_start", 0, 2**32 - n_cols + 1)
    threads = _check_int(threads, "threads", 1, 1025)
    if out is None:
        out = np.empty((n_rows, n_cols), np.float64)
    else:
        if not isinstance(out, np.ndarray) or out.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"out: expected a float32 or float64 numpy array, got "
                f"{getattr(out, 'dtype', type(out).__name__)}"
            )
        if out.shape != (n_rows, n_cols):
            raise ValueError(f"out: expected shape {(n_rows, n_cols)}, got {out.shape}")
    tile_uniforms = _tile_generator(philox)
    tile = int(_TILE if threads == 1 else _TILE_THREADED)
    tiles = _tiles(n_rows, n_cols, tile) if n_rows and n_cols else []
    keys = _key_schedule(seed)

    def work(mine: list[tuple[int, int, int, int]]) -> None:
        flat = [np.empty(tile, np.uint64) for _ in range(4)]
        views: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        for r, nr, c, nc in mine:
            bufs = views.get((nr, nc))
            if bufs is None:
                bufs = views[nr, nc] = tuple(f[: nr * nc].reshape(nr, nc) for f in flat)
            d, u2, s1, s2 = tile_uniforms(
                keys, stream, layer, row_start + r, nr, col_start + c, nc, bufs
            )
            _cms(d, u2, alpha, s1, s2, out[r : r + nr, c : c + nc], normal=normal)

    n_workers = min(threads, len(tiles))
    if n_workers <= 1:
        work(tiles)
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for f in [pool.submit(work, tiles[i::n_workers]) for i in range(n_workers)]:
                f.result()
    return out


def stable_block(
    seed: int,
    stream: int,
    layer: int,
    row_start: int,
    n_rows: int,
    col_start: int,
    n_cols: int,
    alpha: float,
    out: np.ndarray | None = None,
    *,
    threads: int = 1,
    philox: str = "numpy",
) -> np.ndarray:
    """S_α(1) draws for rows ``row_start ..`` and columns ``col_start ..`` of (stream, layer).

    Returns a float64 array of shape (n_rows, n_cols) whose entry [i, j] is the draw keyed by
    row ``row_start + i``, column ``col_start + j`` (see the module docstring), i.e.
    ``stable_from_uniforms(*uniforms(seed, stream, layer, rows[:, None], cols[None, :]),
    alpha)``, bit for bit. If ``out`` (float32 or float64, shape (n_rows, n_cols)) is given,
    the values are written into it (rounded once to float32 if needed) and it is returned.
    ``seed`` in [0, 2**64); stream, layer, rows and columns in [0, 2**32); α in (0, 2].

    ``threads`` > 1 splits the tiles over a thread pool (NumPy releases the GIL); results are
    bit-identical for any thread count and any tiling. ``philox``: ``numpy`` (the reference)
    or ``numba`` (the compiled generator of :mod:`pipeline.numerics.rng_compiled`, for the
    compiled backend; needs Numba): the same uniforms bit for bit, so the same draws.
    """
    return _block(
        seed,
        stream,
        layer,
        row_start,
        n_rows,
        col_start,
        n_cols,
        _check_alpha(alpha),
        out,
        threads,
        normal=False,
        philox=philox,
    )


def normal_block(
    seed: int,
    stream: int,
    layer: int,
    row_start: int,
    n_rows: int,
    col_start: int,
    n_cols: int,
    out: np.ndarray | None = None,
    *,
    threads: int = 1,
    philox: str = "numpy",
) -> np.ndarray:
    """Standard normal N(0, 1) draws, shape (n_rows, n_cols), float64 unless ``out`` is given.

    Same keying and arguments as :func:`stable_block`; the value is the α = 2 draw divided by
    √2 (evaluated as ``tan(V) sqrt(2W / (1 + tan²V))``, within a few ulp of
    ``stable_block(..., alpha=2) / sqrt(2)``).
    """
    return _block(
        seed,
        stream,
        layer,
        row_start,
        n_rows,
        col_start,
        n_cols,
        2.0,
        out,
        threads,
        normal=True,
        philox=philox,
    )
