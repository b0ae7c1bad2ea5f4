"""Elementary functions for Numba kernels, written without library calls so that loops over
them vectorise (C's ``tanh``, ``erf`` and ``exp`` are scalar calls that LLVM cannot vectorise
without a vector math library). Every function takes and returns a float64; float32 kernels
round the result once, at the store. Accuracy (measured against the C library and SciPy,
docs/conventions.md):

* :func:`tanh64`: ≤ 3 ulp of float64 (Cephes' rational form for |x| < 0.625, else
  (e − 1)/(e + 1) with e = e^{2|x|});
* :func:`exp_neg`: e^y for y ≤ 0, ≤ 1 ulp-ish (relative error < 5e-16; Cephes' Padé form on
  the reduced argument times an exact power of two);
* :func:`erf32`: erf to float32 accuracy (≤ 1 ulp of float32 after rounding; relative error
  < 2e-8 in float64): the Taylor series for |x| < 1, else 1 − erfc with the Chebyshev-fitted
  erfc of Numerical Recipes (fractional error < 1.2e-7 on erfc ≤ 0.16). Not for float64.

Importing this module needs Numba (the ``cpu`` extra).
"""

from __future__ import annotations

import math

from numba import njit

__all__ = ["erf32", "exp_neg", "tanh64"]

_JIT = {"cache": True, "error_model": "numpy", "inline": "always"}

# Cephes tanh (|x| < 0.625: x + x³ P(x²)/Q(x²)) and exp (Padé on [−ln2/2, ln2/2])
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3
_EP0, _EP1, _EP2 = 1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1
_EQ0, _EQ1 = 3.00198505138664455042e-6, 2.52448340349684104192e-3
_EQ2, _EQ3 = 2.27265548208155028766e-1, 2.00000000000000000009e0
_LOG2E = 1.4426950408889634
_C1, _C2 = 6.93145751953125e-1, 1.42860682030941723212e-6
# erf's Taylor coefficients 2/√π (−1)^n / (n! (2n + 1)), n = 0..9
_T = tuple(
    (-1) ** k / (math.factorial(k) * (2 * k + 1)) * 2 / math.sqrt(math.pi) for k in range(10)
)
_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7, _T8, _T9 = _T


@njit(**_JIT)
def tanh64(x: float) -> float:
    """tanh(x), ≤ 3 ulp from ``math.tanh``; NaN stays NaN, ±inf gives ±1. One division."""
    a = abs(x)
    zz = x * x
    num_s = x * zz * ((_TP0 * zz + _TP1) * zz + _TP2)
    den_s = ((zz + _TQ0) * zz + _TQ1) * zz + _TQ2
    y = 2.0 * min(a, 20.0)  # tanh(20) rounds to 1
    k = math.floor(_LOG2E * y + 0.5)
    u = (y - k * _C1) - k * _C2
    uu = u * u
    px = u * ((_EP0 * uu + _EP1) * uu + _EP2)
    qx = ((_EQ0 * uu + _EQ1) * uu + _EQ2) * uu + _EQ3
    ki = int(k)  # 0 <= k <= 58: 2^k as a product of exact powers of two
    p2 = 2.0 if ki & 1 else 1.0
    p2 *= 4.0 if ki & 2 else 1.0
    p2 *= 16.0 if ki & 4 else 1.0
    p2 *= 256.0 if ki & 8 else 1.0
    p2 *= 65536.0 if ki & 16 else 1.0
    p2 *= 4294967296.0 if ki & 32 else 1.0
    big_n = p2 * (qx + px)  # e^{2|x|} = 2^k (q + p)/(q − p); tanh = (e − 1)/(e + 1)
    big_d = qx - px
    small = a < 0.625
    ratio = (num_s if small else big_n - big_d) / (den_s if small else big_n + big_d)
    res = x + ratio if small else (ratio if x >= 0 else -ratio)
    return res if x == x else x


@njit(**_JIT)
def exp_neg(y: float) -> float:
    """e^y for y <= 0 (y < −700 is taken as −700: e^−700 ≈ 1e−304); relative error < 5e-16."""
    y = max(y, -700.0)
    k = math.floor(_LOG2E * y + 0.5)
    u = (y - k * _C1) - k * _C2
    uu = u * u
    px = u * ((_EP0 * uu + _EP1) * uu + _EP2)
    qx = ((_EQ0 * uu + _EQ1) * uu + _EQ2) * uu + _EQ3
    ki = -int(k)  # 0 <= ki <= 1010: 2^−ki as a product of exact powers of two
    p2 = 0.5 if ki & 1 else 1.0
    p2 *= 0.25 if ki & 2 else 1.0
    p2 *= 0.0625 if ki & 4 else 1.0
    p2 *= 0.00390625 if ki & 8 else 1.0
    p2 *= 1.52587890625e-05 if ki & 16 else 1.0
    p2 *= 2.3283064365386963e-10 if ki & 32 else 1.0
    p2 *= 5.421010862427522e-20 if ki & 64 else 1.0
    p2 *= 2.938735877055719e-39 if ki & 128 else 1.0
    p2 *= 8.636168555094445e-78 if ki & 256 else 1.0
    p2 *= 7.458340731200207e-155 if ki & 512 else 1.0
    return p2 * (qx + px) / (qx - px)


@njit(**_JIT)
def erf32(x: float) -> float:
    """erf(x) to float32 accuracy (relative error < 2e-8); NaN stays NaN, ±inf gives ±1."""
    a = min(abs(x), 6.0)
    s = x * x
    small = x * (
        _T0
        + s
        * (
            _T1
            + s
            * (
                _T2
                + s * (_T3 + s * (_T4 + s * (_T5 + s * (_T6 + s * (_T7 + s * (_T8 + s * _T9))))))
            )
        )
    )
    t = 1.0 / (1.0 + 0.5 * a)
    poly = t * (
        0.37409196
        + t
        * (
            0.09678418
            + t
            * (
                -0.18628806
                + t
                * (
                    0.27886807
                    + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                )
            )
        )
    )
    big = 1.0 - t * exp_neg(-a * a - 1.26551223 + t * (1.00002368 + poly))
    big = big if x >= 0 else -big
    res = small if a < 1.0 else big
    return res if x == x else x
