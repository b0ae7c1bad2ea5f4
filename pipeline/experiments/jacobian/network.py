"""One bias-free network of the ``jacobian`` experiment: its quenched weights and the
pre-activations at the recorded layers (NumPy, float64).

Draws (docs/conventions.md §2.1): ``Wˡ = σ_w (2N)^(−1/α) Zˡ`` with Zˡ the S_α(1) draws of the
``weight`` stream at layer l (:func:`pipeline.numerics.rng.stable_block`, the propagation
experiment's dense draws), so Z depends only on (seed, width, α, layer) and one draw serves
the whole σ_w axis. Input ``x⁰``: N standard normal entries (``input`` stream, column 0), so
``q⁰ = 1``. ``h¹ = W¹ x⁰``, ``hˡ⁺¹ = Wˡ⁺¹ φ(hˡ)``; no bias (the paper's Figs. 2–3).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from pipeline.numerics import rng
from pipeline.numerics.activations import as_activation

__all__ = ["input_vector", "log_abs_det_z", "preactivations", "weight_draws", "weight_scale"]


def weight_scale(width: int, alpha: float, sigma_w: float) -> float:
    """The factor ``σ_w (2N)^(−1/α)`` of W = factor · Z."""
    return float(sigma_w) * (2.0 * width) ** (-1.0 / float(alpha))


@lru_cache(maxsize=4)
def weight_draws(seed: int, width: int, alpha: float, layers: int) -> tuple[NDArray, ...]:
    """Z¹ … Z^layers, each (width, width) float64 read-only (index 0 holds Z¹)."""
    out = []
    for layer in range(1, layers + 1):
        z = rng.stable_block(seed, rng.STREAMS["weight"], layer, 0, width, 0, width, alpha)
        z.flags.writeable = False
        out.append(z)
    return tuple(out)


@lru_cache(maxsize=64)
def log_abs_det_z(seed: int, width: int, alpha: float, layer: int, layers: int) -> float:
    """``ln|det Zˡ|`` (``slogdet``; one per network and layer for the whole σ_w axis)."""
    sign, logdet = np.linalg.slogdet(weight_draws(seed, width, alpha, layers)[layer - 1])
    return float(logdet) if sign != 0 else -math.inf


def input_vector(seed: int, width: int) -> NDArray[np.float64]:
    """x⁰: (width,) standard normal entries of the ``input`` stream (column 0)."""
    return rng.normal_block(seed, rng.STREAMS["input"], 0, 0, width, 0, 1)[:, 0]


def preactivations(
    z: tuple[NDArray, ...], x0: NDArray, alpha: float, sigma_w: float, activation: str, depth: int
) -> NDArray[np.float64]:
    """h¹ … h^depth as rows of a (depth, N) float64 array (row l − 1 is hˡ)."""
    act = as_activation(activation)
    n = x0.size
    c = weight_scale(n, alpha, sigma_w)
    out = np.empty((depth, n))
    x = x0
    with np.errstate(over="ignore", under="ignore"):
        for layer in range(depth):
            out[layer] = c * (z[layer] @ x)
            x = np.asarray(act.phi(out[layer], np), np.float64)
    return out
