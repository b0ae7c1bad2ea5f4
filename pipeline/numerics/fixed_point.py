"""The fixed point of an increasing one-dimensional map, reached by iterating from a start.

Both mean-field theories (:mod:`.theory`, Gaussian; :mod:`.levy`, α-stable) need the fixed
point q* of a length map ``q ↦ F(q)`` that increases with q: iterating from q0 moves
monotonically to the nearest fixed point on the side of F(q0). Iterating is slow near
criticality (the slope tends to 1), so the fixed point is bracketed by geometric steps in the
direction of F(q0) − q0 and polished by Brent's method.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy.optimize import brentq

__all__ = ["increasing_map_fixed_point"]


def increasing_map_fixed_point(
    fmap: Callable[[float], float],
    q0: float,
    *,
    rtol: float,
    q_max: float = 1e100,
    q_floor: float = 0.0,
    maxiter: int = 500,
) -> float:
    """The fixed point of the increasing map ``fmap`` that iteration from ``q0`` reaches.

    Returns ``inf`` when the upward bracket passes ``q_max`` (q diverges) and ``0.0`` when
    the downward bracket falls below ``q_floor`` (the trivial fixed point: with ``q_floor``
    > 0 the sign of F(q) − q there is round-off, see :func:`pipeline.numerics.theory.q_star`).
    ``rtol`` is Brent's relative tolerance on the root.
    """

    def g(q: float) -> float:
        return fmap(q) - q

    g0 = g(q0)
    if g0 == 0.0:
        return q0
    if g0 > 0.0:
        lo, hi, step = q0, q0 + g0, g0  # F(q0) = q0 + g0 is still below the fixed point
        while g(hi) > 0.0:
            lo, step = hi, 2.0 * step
            hi = lo + step
            if hi > q_max:
                return math.inf
    else:
        lo, hi = q0 + g0, q0  # F(q0) is still above the fixed point
        while g(lo) < 0.0:
            hi, lo = lo, lo / 10.0
            if lo < q_floor or lo == 0.0:
                return 0.0
    return float(brentq(g, lo, hi, xtol=1e-300, rtol=rtol, maxiter=maxiter))
