"""The one table of activation functions φ, their derivatives and their kernel ids.

Every function takes ``h`` (pre-activations, any shape, float32 or float64) and ``xp`` (the
array namespace, ``numpy`` or ``cupy``) and returns an array of the same shape and dtype; the
same formulas serve the NumPy references, the mean-field quadrature and the GPU paths.

Base activations (:data:`ACTIVATIONS`):

* ``tanh``; ``relu`` = max(h, 0) with φ'(0) = 0 (NaN propagates, as ``numpy.maximum``);
* ``erf`` = erf(h), so φ'(0) = 2/√π and the erf network at σ_b = 0 is critical at σ_w = √π/2;
* ``linear`` = h (also called ``identity``); ``sigmoid`` = 1/(1 + e^−h) = ½(1 + tanh(h/2)).

Experiments use them directly (propagation) or with gains, ``g_out · φ(g_in · h)``
(:func:`scaled`; trainability's ``tanh`` is tanh(√2 z), its ``relu`` √2·relu(z)). Which names
an experiment accepts is the experiment's choice (its axis rule). ``kernel_id`` is the
``PS_ACT_*`` value of ``kernels/activation_ids.cuh`` (a test ties the two).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import PipelineError

__all__ = [
    "ACTIVATIONS",
    "ALIASES",
    "Activation",
    "as_activation",
    "get_activation",
    "scaled",
]

ArrayFn = Callable[[Any, Any], Any]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@dataclass(frozen=True)
class Activation:
    """One activation: ``phi``, ``dphi`` (φ') and ``d2phi`` (φ''), each ``f(h, xp)``.

    ``phi`` also takes ``out=`` (an array of ``h``'s shape and dtype) to write in place.
    ``dphi_hx(h, x, xp)`` is φ'(h) given also ``x = φ(h)``, which is cheaper for tanh
    (1 − x²) and sigmoid (x(1 − x)); the propagation and training loops have ``x`` at hand.
    ``homogeneous`` marks φ(a h) = a φ(h) for a > 0 (relu, linear): for those χ1 does not
    depend on q, which the mean-field theory uses when q* does not exist. ``kernel_id`` is the
    activation's id in the CUDA kernels (``PS_ACT_*``). ``dphi_uses_x``: whether ``dphi_hx``
    reads ``x`` at all (tanh, sigmoid).
    """

    name: str
    phi: ArrayFn
    dphi: ArrayFn
    d2phi: ArrayFn
    dphi_hx: Callable[[Any, Any, Any], Any]
    homogeneous: bool = False
    kernel_id: int = -1
    dphi_uses_x: bool = False


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


def _tanh_d(h: Any, xp: Any) -> Any:
    t = xp.tanh(h)
    return 1 - t * t


def _tanh_d2(h: Any, xp: Any) -> Any:
    t = xp.tanh(h)
    return -2 * t * (1 - t * t)


def _sigmoid(h: Any, xp: Any, out: Any = None) -> Any:
    v = 0.5 * (1.0 + xp.tanh(0.5 * h))
    if out is None:
        return v
    out[...] = v
    return out


def _sigmoid_d(h: Any, xp: Any) -> Any:
    s = _sigmoid(h, xp)
    return s * (1.0 - s)


def _sigmoid_d2(h: Any, xp: Any) -> Any:
    s = _sigmoid(h, xp)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(
        "tanh",
        lambda h, xp, out=None: xp.tanh(h, out=out),
        _tanh_d,
        _tanh_d2,
        lambda h, x, xp: 1 - x * x,
        kernel_id=0,
        dphi_uses_x=True,
    ),
    "relu": Activation(
        "relu",
        lambda h, xp, out=None: xp.maximum(h, 0, out=out),
        lambda h, xp: (h > 0).astype(h.dtype),
        lambda h, xp: xp.zeros_like(h),
        lambda h, x, xp: (h > 0).astype(h.dtype),
        homogeneous=True,
        kernel_id=1,
    ),
    "erf": Activation(
        "erf",
        _erf,
        lambda h, xp: (_TWO_OVER_SQRT_PI * xp.exp(-h * h)).astype(h.dtype),
        lambda h, xp: (-2 * _TWO_OVER_SQRT_PI * h * xp.exp(-h * h)).astype(h.dtype),
        lambda h, x, xp: (_TWO_OVER_SQRT_PI * xp.exp(-h * h)).astype(h.dtype),
        kernel_id=2,
    ),
    "linear": Activation(
        "linear",
        _copy,
        lambda h, xp: xp.ones_like(h),
        lambda h, xp: xp.zeros_like(h),
        lambda h, x, xp: xp.ones_like(h),
        homogeneous=True,
        kernel_id=3,
    ),
    "sigmoid": Activation(
        "sigmoid",
        _sigmoid,
        _sigmoid_d,
        _sigmoid_d2,
        lambda h, x, xp: x * (1.0 - x),
        kernel_id=4,
        dphi_uses_x=True,
    ),
}
"""Base activations by name."""

ALIASES: dict[str, str] = {"identity": "linear"}
"""Other names of base activations."""


def get_activation(name: str) -> Activation:
    """Return the :class:`Activation` called ``name`` (or an alias of it);
    :class:`~pipeline.errors.PipelineError` lists the known ones."""
    key = ALIASES.get(name, name)
    try:
        return ACTIVATIONS[key]
    except (KeyError, TypeError):
        allowed = ", ".join(sorted([*ACTIVATIONS, *ALIASES]))
        raise PipelineError(f"activation: unknown value {name!r}; allowed: {allowed}") from None


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


def scaled(base: str | Activation, gain_in: float = 1.0, gain_out: float = 1.0) -> Activation:
    """``φ(h) = gain_out · base(gain_in · h)``, with its derivatives (same ``kernel_id``).

    A gain of exactly 1 costs no operation, so ``scaled(act)`` computes the same bits as
    ``act``; ``homogeneous`` is kept (a positive gain keeps φ(a h) = a φ(h)). Used by the
    trainability experiment: tanh(√2 z) is ``scaled("tanh", √2)``, √2·relu(z) is
    ``scaled("relu", gain_out=√2)``.
    """
    act = as_activation(base)
    gi, go = float(gain_in), float(gain_out)
    if not (gi > 0 and go > 0):
        raise PipelineError(f"gains: expected positive numbers, got gain_in={gi}, gain_out={go}")
    if gi == 1.0 and go == 1.0:
        return act
    g = gi * go

    def inner(h: Any) -> Any:
        return h if gi == 1.0 else gi * h

    def phi(h: Any, xp: Any, out: Any = None) -> Any:
        v = act.phi(inner(h), xp)
        v = v if go == 1.0 else go * v
        if out is None:
            return v
        out[...] = v
        return out

    def dphi_hx(h: Any, x: Any, xp: Any) -> Any:
        base_x = x / go if (go != 1.0 and act.dphi_uses_x) else x  # base φ(gain_in h)
        return g * act.dphi_hx(inner(h), base_x, xp)

    return Activation(
        name=act.name,
        phi=phi,
        dphi=lambda h, xp: g * act.dphi(inner(h), xp),
        d2phi=lambda h, xp: (g * gi) * act.d2phi(inner(h), xp),
        dphi_hx=dphi_hx,
        homogeneous=act.homogeneous,
        kernel_id=act.kernel_id,
        dphi_uses_x=act.dphi_uses_x,
    )
