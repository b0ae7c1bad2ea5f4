"""The trainability experiment's activations: gains on the one activation table.

Sohl-Dickstein (2024)'s scalings, φ(z) = gain_out · base(gain_in · z) with ``base`` an entry of
:data:`pipeline.numerics.activations.ACTIVATIONS`. Every implementation reads this table: the
NumPy reference (:func:`train_activation`), the CUDA kernel and its NumPy emulation (the gains
are kernel arguments, the base's ``kernel_id`` the id), and the Numba kernel's ids (the
position in this table).
"""

from __future__ import annotations

import math
from functools import cache

from pipeline.numerics.activations import Activation, scaled

__all__ = ["TRAIN_ACTIVATIONS", "train_activation"]

_SQRT2 = math.sqrt(2.0)

TRAIN_ACTIVATIONS: dict[str, tuple[str, float, float]] = {
    "tanh": ("tanh", _SQRT2, 1.0),
    "relu": ("relu", 1.0, _SQRT2),
    "identity": ("linear", 1.0, 1.0),
    "sigmoid": ("sigmoid", 1.0, 1.0),
}
"""Activations of the trainability experiment (Sohl-Dickstein 2024's scalings): name →
(base activation of :mod:`pipeline.numerics.activations`, input gain, output gain), i.e.
φ(z) = tanh(√2 z), √2·relu(z), z, sigmoid(z)."""


@cache
def train_activation(name: str) -> Activation:
    """The trainability activation ``name`` (:data:`TRAIN_ACTIVATIONS`) as an
    :class:`~pipeline.numerics.activations.Activation` with its gains applied."""
    base, gain_in, gain_out = TRAIN_ACTIVATIONS[name]
    return scaled(base, gain_in, gain_out)
