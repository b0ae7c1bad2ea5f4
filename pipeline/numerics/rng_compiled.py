"""Philox4x32-10 and its uniforms compiled with Numba: the compiled CPU backend's draws.

:func:`tile_uniforms` computes what :func:`pipeline.numerics.rng._philox_tile_uniforms`
computes (same arguments, same returned views), bit for bit: the generator is integer
arithmetic (32 x 32 -> 64-bit products, xors, shifts, masks) and the uniforms are built by
exact float64 operations, so there is no rounding in which two implementations could differ.
Only the counter-to-uniforms step is compiled; the Chambers-Mallows-Stuck transform after it
(tan, log, sqrt, exp) stays NumPy's (:func:`pipeline.numerics.rng._cms`), so the draws
themselves are the NumPy path's bit for bit on any machine. Selected by
``rng.stable_block(..., philox="numba")`` (and ``normal_block``); the NumPy generator stays the
reference and the default.

Why it is faster: NumPy runs each of the ~100 integer operations of a tile as its own pass
over four uint64 buffers; here each value's ten rounds run in registers, one loop over the
tile that LLVM vectorises (a 32 x 32 -> 64-bit vector multiply per product).

Importing this module needs Numba (the ``cpu`` extra).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["tile_uniforms"]

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S12 = np.uint64(12)
_ULP52 = 2.0**-52  # n 2**-52 is exact for n < 2**52
_HALF_ULP = 2.0**-53
_ONE_MINUS_HALF_ULP = 1.0 - 2.0**-53


@njit(cache=True, nogil=True, error_model="numpy")
def _uniforms_kernel(k0, k1, stream, layer, row0, col0, d, u2):  # noqa: ANN001, ANN202
    """d[i, j] = u1 - 1/2 and u2[i, j] = u2 of the counter (col0 + j, row0 + i, layer,
    stream) under the key (k0, k1); every scalar a uint64 < 2**32, d and u2 float64 (R, C)."""
    n_rows, n_cols = d.shape
    for i in range(n_rows):
        row = (row0 + np.uint64(i)) & _MASK32
        for j in range(n_cols):
            x0 = (col0 + np.uint64(j)) & _MASK32
            x1 = row
            x2 = layer
            x3 = stream
            ka = k0
            kb = k1
            for _ in range(10):
                p0 = x0 * _M0  # exact: both factors < 2**32
                p1 = x2 * _M1
                x0, x1, x2, x3 = (
                    ((p1 >> _S32) ^ x1 ^ ka) & _MASK32,
                    p1 & _MASK32,
                    ((p0 >> _S32) ^ x3 ^ kb) & _MASK32,
                    p0 & _MASK32,
                )
                ka = (ka + _W0) & _MASK32
                kb = (kb + _W1) & _MASK32
            n1 = ((x0 << _S32) | x1) >> _S12  # top 52 bits of w0:w1
            n2 = ((x2 << _S32) | x3) >> _S12
            # 1 + n 2**-52 (the NumPy path's bit pattern n | 0x3FF0...), then the same two
            # exact subtractions: every step is exact, so the bits are the same
            f1 = 1.0 + np.float64(np.int64(n1)) * _ULP52
            f2 = 1.0 + np.float64(np.int64(n2)) * _ULP52
            d[i, j] = (f1 - 1.5) + _HALF_ULP
            u2[i, j] = f2 - _ONE_MINUS_HALF_ULP


def tile_uniforms(
    keys: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]],
    stream: int,
    layer: int,
    row0: int,
    n_rows: int,
    col0: int,
    n_cols: int,
    bufs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pipeline.numerics.rng._philox_tile_uniforms`, compiled (same arguments and
    returns): ``keys`` the round-key schedule (its round-0 entries are the key words),
    ``bufs`` four uint64 (n_rows, n_cols) arrays, overwritten. Returns ``(d, u2, s1, s2)``:
    float64 views into ``bufs`` holding u1 − 1/2, u2 (bit-identical to the NumPy path's) and
    two free scratch arrays. Counter (col, row, layer, stream), all words in [0, 2**32)."""
    a, b, c, e = bufs
    if a.shape != (n_rows, n_cols):
        raise ValueError(f"bufs: expected shape {(n_rows, n_cols)}, got {a.shape}")
    d = a.view(np.float64)
    u2 = b.view(np.float64)
    u64 = np.uint64
    _uniforms_kernel(
        u64(int(keys[0][0])),
        u64(int(keys[1][0])),
        u64(stream),
        u64(layer),
        u64(row0),
        u64(col0),
        d,
        u2,
    )
    return d, u2, c.view(np.float64), e.view(np.float64)
