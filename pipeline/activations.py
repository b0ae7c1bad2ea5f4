"""Activation functions φ and their first two derivatives, on any array module.

Every function takes ``h`` (pre-activations, any shape, float32 or float64) and returns an
array of the same shape and dtype. ``xp`` is the array namespace (``numpy`` or ``cupy``);
the same formulas serve the NumPy reference, the mean-field quadrature and the GPU path.

Conventions (DESIGN §3): ``tanh``; ``relu`` = max(h, 0) with φ'(0) = 0; ``erf`` = erf(h)
(so φ'(0) = 2/√π and the erf network at σ_b = 0 is critical at σ_w = √π/2); ``linear`` = h.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

ArrayFn = Callable[[Any, Any], Any]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf(h: Any, xp: Any, out: Any = None) -> Any:
    if xp is np:
        from scipy.special import erf
    else:  # cupy
        from cupyx.scipy.special import erf
    return erf(h, out=out)


def _copy(h: Any, xp: Any, out: Any = None) -> Any:
    if out is None:
        return h.copy()
    out[...] = h
    return out


@dataclass(frozen=True)
class Activation:
    """One activation: ``phi``, ``dphi`` (φ') and ``d2phi`` (φ''), each ``f(h, xp)``.

    ``phi`` also takes ``out=`` (an array of ``h``'s shape and dtype) to write in place.

    ``dphi_hx(h, x, xp)`` is φ'(h) given also ``x = φ(h)``, which is cheaper for tanh
    (1 − x²); the propagation loop has ``x`` at hand already.

    ``homogeneous`` marks φ(a h) = a φ(h) for a > 0 (relu, linear): for those χ1 does not
    depend on q, which the mean-field theory uses when q* does not exist.
    """

    name: str
    phi: ArrayFn
    dphi: ArrayFn
    d2phi: ArrayFn
    dphi_hx: Callable[[Any, Any, Any], Any]
    homogeneous: bool = False


def _tanh_d(h: Any, xp: Any) -> Any:
    t = xp.tanh(h)
    return 1 - t * t


def _tanh_d2(h: Any, xp: Any) -> Any:
    t = xp.tanh(h)
    return -2 * t * (1 - t * t)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(
        "tanh",
        lambda h, xp, out=None: xp.tanh(h, out=out),
        _tanh_d,
        _tanh_d2,
        lambda h, x, xp: 1 - x * x,
    ),
    "relu": Activation(
        "relu",
        lambda h, xp, out=None: xp.maximum(h, 0, out=out),
        lambda h, xp: (h > 0).astype(h.dtype),
        lambda h, xp: xp.zeros_like(h),
        lambda h, x, xp: (h > 0).astype(h.dtype),
        homogeneous=True,
    ),
    "erf": Activation(
        "erf",
        _erf,
        lambda h, xp: (_TWO_OVER_SQRT_PI * xp.exp(-h * h)).astype(h.dtype),
        lambda h, xp: (-2 * _TWO_OVER_SQRT_PI * h * xp.exp(-h * h)).astype(h.dtype),
        lambda h, x, xp: (_TWO_OVER_SQRT_PI * xp.exp(-h * h)).astype(h.dtype),
    ),
    "linear": Activation(
        "linear",
        _copy,
        lambda h, xp: xp.ones_like(h),
        lambda h, xp: xp.zeros_like(h),
        lambda h, x, xp: xp.ones_like(h),
        homogeneous=True,
    ),
}


def get_activation(name: str) -> Activation:
    """Return the :class:`Activation` called ``name``; ``ValueError`` lists the known ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation: unknown value {name!r}; allowed: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def as_activation(activation: str | Activation) -> Activation:
    """``activation`` itself, or the :class:`Activation` of that name (:func:`get_activation`);
    ``TypeError`` for anything else."""
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        return get_activation(activation)
    raise TypeError(
        f"activation: expected a name (str) or an Activation, got {type(activation).__name__}"
    )
