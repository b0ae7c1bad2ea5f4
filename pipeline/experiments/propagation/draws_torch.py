"""Draws files (:mod:`.draws`) made by the procedure of D'Inverno et al. (2025)'s public code.

Their ``propagation_test`` seeds torch's global CPU generator and draws, in this order:

1. the bias directions: ``randn(depth, N)``, each row then divided by its norm (float32);
2. the bias basis W_bias: ``randn(N, N)``;
3. the inputs: ``x1 = randn(N)``, divided by its norm; then ``x2`` the same way;
4. the operators, one per layer (``per_layer``) or one (``shared``), each as its linear operator
   draws it:

   * ``dense`` (their ``rand``): ``randn(N, N)``, unscaled;
   * ``conv``: a ``torch.nn.Conv1d(1, 1, N, padding='same', padding_mode='circular',
     bias=False)`` is made (its default initialisation draws N uniforms from the generator,
     which are then discarded), then ``randn(1, 1, N)``: the weight is that draw / √N;
     the file keeps the unscaled draw;
   * ``struct`` (two unit-modulus diagonals, F D₂ F D₁): per diagonal ``rand(N)`` u and
     D = exp(2πi (u − ½)) in complex64.

Every array is float32 (complex64) as drawn. torch is an optional dependency (the
``draws-torch`` extra); with torch 2.13 the dense seed-0 file of N = 100, depth 1000 is the
authors' network bit for bit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UsageError
from pipeline.experiments.propagation.architectures import ARCHITECTURES, WEIGHT_TYING
from pipeline.experiments.propagation.draws import OPERATOR_KEYS, content_hash

__all__ = ["draw_dinverno", "import_torch", "write_draws"]


def import_torch() -> Any:
    """The ``torch`` module, or :class:`UsageError` saying how to install it."""
    try:
        import torch
    except ImportError as e:
        raise UsageError(
            "draws: torch is not installed; install the extra: "
            "pip install 'phase-sweep[draws-torch]'"
        ) from e
    return torch


def _unit(torch: Any, v: Any) -> Any:
    return v / torch.norm(v)


def draw_dinverno(
    architecture: str,
    width: int,
    depth: int,
    seed: int = 0,
    weight_tying: str = "per_layer",
) -> dict[str, np.ndarray]:
    """The arrays of a draws file for the authors' network (module docstring): ``x1``,
    ``x2`` (N,), ``bias_basis`` (N, N), ``bias_directions`` (depth, N) and the operators
    (``weights`` (T, N, N), ``kernels`` (T, N) or ``diagonals`` (T, 2, N) complex, T = depth
    or 1 when ``shared``), float32 / complex64. torch's global generator is restored after."""
    if architecture not in ARCHITECTURES:
        allowed = ", ".join(ARCHITECTURES)
        raise UsageError(
            f"architecture: {architecture!r} is not one of {allowed}", option="architecture"
        )
    if weight_tying not in WEIGHT_TYING:
        allowed = ", ".join(WEIGHT_TYING)
        raise UsageError(
            f"weight_tying: {weight_tying!r} is not one of {allowed}", option="weight_tying"
        )
    for name, v in (("width", width), ("depth", depth)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"{name}: {v!r} is not an integer >= 1", option=name)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UsageError(f"seed: {seed!r} is not an integer in 0..2**63 - 1", option="seed")
    torch = import_torch()
    n = width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bs = torch.randn(depth, n)
        for i in range(depth):
            bs[i, :] = bs[i, :] / torch.norm(bs[i, :])
        w_bias = torch.randn(n, n)
        x1 = _unit(torch, torch.randn(n))
        x2 = _unit(torch, torch.randn(n))
        ops = []
        for _ in range(depth if weight_tying == "per_layer" else 1):
            if architecture == "dense":
                ops.append(torch.randn(n, n))
            elif architecture == "conv":
                # the module's own initialisation consumes the generator before the kernel
                torch.nn.Conv1d(1, 1, n, padding="same", padding_mode="circular", bias=False)
                ops.append(torch.randn(1, 1, n)[0, 0])
            else:
                d = [torch.exp(1j * 2 * math.pi * (torch.rand(n) - 0.5)) for _ in range(2)]
                ops.append(torch.stack(d))
    return {
        "x1": x1.numpy(),
        "x2": x2.numpy(),
        "bias_basis": w_bias.numpy(),
        "bias_directions": bs.numpy(),
        OPERATOR_KEYS[architecture]: torch.stack(ops).numpy(),
    }


def write_draws(arrays: dict[str, np.ndarray], path: str | Path) -> str:
    """Write ``arrays`` as an uncompressed .npz at ``path`` (``.npz`` appended by NumPy when
    missing: the path is returned as written) and return the content hash
    (:func:`.draws.content_hash`)."""
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    np.savez(p, **arrays)
    return content_hash(arrays)
