"""Elementary functions for Numba kernels, written without library calls so that loops over
them vectorise (C's ``tanh``, ``erf`` and ``exp`` are scalar calls that LLVM cannot vectorise
without a vector math library). Every function takes and returns a float64; float32 kernels
round the result once, at the store. Accuracy (measured against the C library and SciPy,
docs/conventions.md):

* :func:`tanh64`: ≤ 3 ulp of float64 (Cephes' rational form for |x| < 0.625, else
  (e − 1)/(e + 1) with e = e^{2|x|});
* :func:`exp_neg`: e^y for y ≤ 0, ≤ 1 ulp-ish (relative error < 5e-16; Cephes' Padé form on
  the reduced argument times an exact power of two);
* :func:`erf64`: erf to float64 accuracy, ≤ 3 ulp from ``math.erf`` (measured on a dense
  grid of [−7, 7], tests/test_compiled.py): Cephes' rational forms (x T(x²)/U(x²) for
  |x| < 1, else 1 − e^{−x²} P(|x|)/Q(|x|)), branch-free, with one division per argument.
  A float32 result is erf64's rounded once: on 4.6·10⁶ float32 arguments (a dense grid of
  [−7, 7], normal samples of scale 3 and 10⁻³) that is SciPy's float32 ``erf`` at every one.

Importing this module needs Numba (the ``cpu`` extra).
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["erf64", "exp_neg", "tanh64"]

_JIT = {"cache": True, "error_model": "numpy", "inline": "always"}

# Cephes tanh (|x| < 0.625: x + x³ P(x²)/Q(x²)) and exp (Padé on [−ln2/2, ln2/2])
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3
_EP0, _EP1, _EP2 = 1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1
_EQ0, _EQ1 = 3.00198505138664455042e-6, 2.52448340349684104192e-3
_EQ2, _EQ3 = 2.27265548208155028766e-1, 2.00000000000000000009e0
_LOG2E = 1.4426950408889634
_C1, _C2 = 6.93145751953125e-1, 1.42860682030941723212e-6
# Cephes' erf (|x| < 1: x T(x²)/U(x²)) and erfc (1 <= x < 8: e^{−x²} P(x)/Q(x)), U and Q monic
_ET = (
    9.60497373987051638749e0,
    9.00260197203842689217e1,
    2.23200534594684319226e3,
    7.00332514112805075473e3,
    5.55923013010394962768e4,
)
_EU = (
    3.35617141647503099647e1,
    5.21357949780152679795e2,
    4.59432382970980127987e3,
    2.26290000613890934246e4,
    4.92673942608635921086e4,
)
_EP = (
    2.46196981473530512524e-10,
    5.64189564831068821977e-1,
    7.46321056442269912687e0,
    4.86371970985681366614e1,
    1.96520832956077098242e2,
    5.26445194995477358631e2,
    9.34528527171957607540e2,
    1.02755188689515710272e3,
    5.57535335369399327526e2,
)
_EQ = (
    1.32281951154744992508e1,
    8.67072140885989742329e1,
    3.54937778887819891062e2,
    9.75708501743205489753e2,
    1.82390916687909736289e3,
    2.24633760818710981792e3,
    1.65666309194161350182e3,
    5.57535340817727675546e2,
)
_ET0, _ET1, _ET2, _ET3, _ET4 = _ET
_EU0, _EU1, _EU2, _EU3, _EU4 = _EU
_EP0_, _EP1_, _EP2_, _EP3_, _EP4_, _EP5_, _EP6_, _EP7_, _EP8_ = _EP
_EQ0_, _EQ1_, _EQ2_, _EQ3_, _EQ4_, _EQ5_, _EQ6_, _EQ7_ = _EQ


@intrinsic
def _as_float64(typingctx, bits):  # noqa: ANN001, ANN202, ARG001
    """The float64 whose IEEE bit pattern is the int64 ``bits`` (a vectorisable bitcast)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _fma(typingctx, a, b, c):  # noqa: ANN001, ANN202, ARG001
    """a·b + c in float64 rounded once (``llvm.fma``: the FMA instruction where the CPU has
    one); float32 arguments are widened first."""
    if not all(isinstance(t, types.Float) for t in (a, b, c)):
        return None
    sig = types.float64(a, b, c)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        wide = [
            context.cast(builder, v, t, types.float64)
            for v, t in zip(args, signature.args, strict=True)
        ]
        return builder.fma(*wide)

    return sig, codegen


@njit(**_JIT)
def _horner5(z: float, c0: float, c1: float, c2: float, c3: float, c4: float) -> float:
    return _fma(_fma(_fma(_fma(c0, z, c1), z, c2), z, c3), z, c4)


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
    p2 = _as_float64((int(k) + 1023) << 52)  # 2^k exactly (0 <= k <= 58): its bit pattern
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
    p2 = _as_float64((1023 + int(k)) << 52)  # 2^k exactly (−1010 <= k <= 0): its bit pattern
    return p2 * (qx + px) / (qx - px)


@njit(**_JIT)
def erf64(x: float) -> float:
    """erf(x) in float64, ≤ 3 ulp from ``math.erf``; NaN stays NaN, ±inf gives ±1.

    Both of Cephes' branches are computed and one is selected (so a loop over it vectorises);
    the large branch 1 − 2^k e^u P/Q is formed as (B − A)/B, sharing the one division with
    the small branch and with e^u (Padé form (q + p)/(q − p)); 2^k is built from its bits.
    |x| >= 6 gives ±1 exactly (erfc(6) ≈ 2e-17 is below half an ulp of 1). A float32
    argument is widened first."""
    x = x * 1.0
    a = min(abs(x), 6.0)
    z = x * x
    num_s = x * _horner5(z, _ET0, _ET1, _ET2, _ET3, _ET4)
    den_s = _fma(_horner5(z, 1.0, _EU0, _EU1, _EU2, _EU3), z, _EU4)
    pp = _horner5(a, _EP0_, _EP1_, _EP2_, _EP3_, _EP4_)
    pp = _fma(_fma(_fma(_fma(pp, a, _EP5_), a, _EP6_), a, _EP7_), a, _EP8_)
    qq = _horner5(a, 1.0, _EQ0_, _EQ1_, _EQ2_, _EQ3_)
    qq = _fma(_fma(_fma(_fma(qq, a, _EQ4_), a, _EQ5_), a, _EQ6_), a, _EQ7_)
    y = -(a * a)  # in [−36, 0]
    k = math.floor(_fma(_LOG2E, y, 0.5))
    kf = -float(k)
    u = _fma(kf, _C2, _fma(kf, _C1, y))
    uu = u * u
    px = u * _fma(_fma(_EP0, uu, _EP1), uu, _EP2)
    qx = _fma(_fma(_fma(_EQ0, uu, _EQ1), uu, _EQ2), uu, _EQ3)
    p2 = _as_float64((int(k) + 1023) << 52)  # 2^k, −52 <= k <= 0
    big_a = p2 * (qx + px) * pp  # erfc = A/B
    big_b = (qx - px) * qq
    num_l = big_b - big_a
    num_l = num_l if x >= 0 else -num_l
    small = a < 1.0
    res = (num_s if small else num_l) / (den_s if small else big_b)
    return res if x == x else x
