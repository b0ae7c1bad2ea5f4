"""Training small MLPs on a GPU: the raw kernel ``train.cu``.

Same function as :func:`.reference.train_points` (the NumPy reference): same arguments,
same outputs. The kernel trains one network per point, one point per group of ``lanes``
GPU lanes (a power of two ≥ width; lane j owns hidden unit j, all weights in registers) and
writes each point's full-batch loss before every step; the host scores the trajectories
with :func:`.reference.score_trajectory`, so score, converged and final_loss follow the
reference's rules by construction.

Points are independent in the kernel (no batched GEMM couples them), so a point's numbers
never depend on the tiling; ``points_per_tile`` is accepted for the reference's signature and
ignored (a launch holds as many points as ``LOSS_BYTES_PER_LAUNCH`` of losses allow).

Supported: width 1–32, depth 2–4 (:data:`MAX_WIDTH`, :data:`DEPTHS`); float32 and float64.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.experiments.trainability.reference import (
    MINIBATCH,
    TRAIN_ACTIVATIONS,
    Problem,
    score_trajectory,
    train_activation,
)

__all__ = [
    "ACT_IDS",
    "BLOCK",
    "DEPTHS",
    "MAX_WIDTH",
    "entry_defines",
    "kernel_args",
    "lanes_per_point",
    "train_points",
    "useful_fma_per_point_step",
]

ACT_IDS = {name: train_activation(name).kernel_id for name in TRAIN_ACTIVATIONS}
"""Activation ids of the training kernel (PS_ACT_* of activation_ids.cuh, from the one
activation table)."""

BLOCK = 128
"""Threads per block (PT_BLOCK in kernels/train.cu)."""
MAX_WIDTH = 32
"""Widest network the kernel trains: one point's lanes must fit in a warp."""
DEPTHS = (2, 3, 4)
"""Depths (weight matrices) with a compiled entry point."""
LOSS_BYTES_PER_LAUNCH = 1 << 30
"""Device memory for the (points, steps) float64 losses of one launch, at most."""

KernelRunner = Callable[..., np.ndarray]
"""``runner(name, w0, x, y, mb, lr_in, lr_out, offset, n, batch, steps, minibatch, act)``
→ losses (points, steps) float64: the CuPy launcher, or :func:`.emulate.run_train_kernel`."""


def lanes_per_point(width: int) -> int:
    """Lanes of one point: the smallest of 4, 8, 16, 32 that is ≥ ``width``."""
    if not 1 <= width <= MAX_WIDTH:
        raise PipelineError(
            f"width: the GPU training kernel supports 1..{MAX_WIDTH} hidden units, got {width} "
            "(use the numpy backend for wider networks)"
        )
    return max(4, 1 << (width - 1).bit_length())


def _check_depth(depth: int) -> None:
    if depth not in DEPTHS:
        raise PipelineError(
            f"depth: the GPU training kernel supports {DEPTHS[0]}..{DEPTHS[-1]} weight "
            f"matrices, got {depth} (use the numpy backend for other depths)"
        )


def kernel_args(
    problem: Problem,
    activation: str,
    lr_in: np.ndarray,
    lr_out: np.ndarray,
    offset: np.ndarray | None,
    steps: int,
    dtype: str,
) -> dict[str, Any]:
    """Validated, dtype-normalised host arguments of the kernel (every point).

    ``w0``: the initial weights, layer after layer, row-major, in ``dtype``; ``mb``:
    (steps, 16) int32 minibatch rows (minibatch mode) or an empty array; ``name``: the
    entry point.
    """
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    if activation not in ACT_IDS:
        allowed = ", ".join(ACT_IDS)
        raise PipelineError(f"activation: unknown value {activation!r} (allowed: {allowed})")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise PipelineError(f"steps: expected an integer >= 1, got {steps!r}")
    n, depth = problem.width, len(problem.weights)
    lanes = lanes_per_point(n)
    _check_depth(depth)
    p = len(lr_in)
    lr_in = np.asarray(lr_in, np.float64)
    lr_out = np.asarray(lr_out, np.float64)
    off = np.zeros(p) if offset is None else np.asarray(offset, np.float64)
    if lr_in.shape != (p,) or lr_out.shape != (p,) or off.shape != (p,):
        raise PipelineError(
            f"lr_in {lr_in.shape}, lr_out {lr_out.shape}, offset {off.shape}: expected (P,) each"
        )
    batch = problem.x.shape[0]
    if problem.dataset == "minibatch":
        mb = problem.minibatch_indices(steps).astype(np.int32)
        assert mb.min() >= 0 and mb.max() < batch
        minibatch = MINIBATCH
    else:
        mb, minibatch = np.zeros(0, np.int32), 0
    suffix = "f32" if dt == np.float32 else "f64"
    return {
        "name": f"ps_train_{suffix}_n{lanes}_d{depth}",
        # the reference casts weights, data and learning rates to dtype, then adds the offset
        "w0": np.concatenate([w.astype(dt).ravel() for w in problem.weights]),
        "x": np.ascontiguousarray(problem.x, dt),
        "y": np.ascontiguousarray(problem.y.ravel(), dt),
        "mb": np.ascontiguousarray(mb.ravel()),
        "lr_in": lr_in.astype(dt),
        "lr_out": lr_out.astype(dt),
        "offset": off.astype(dt),
        "n": n,
        "batch": batch,
        "steps": int(steps),
        "minibatch": minibatch,
        "act": ACT_IDS[activation],
        # φ(z) = gain_out · base(gain_in · z): the gains of the one table, as arguments
        "gain_in": float(TRAIN_ACTIVATIONS[activation][1]),
        "gain_out": float(TRAIN_ACTIVATIONS[activation][2]),
    }


def entry_defines(name: str) -> tuple[str, ...]:
    """The ``-D`` definitions that make ``train.cu`` compile only the entry point ``name``
    (``ps_train_f64_n16_d2`` → PT_ONLY_T=double, PT_ONLY_SUF=f64, PT_ONLY_N=16, PT_ONLY_D=2):
    one entry compiles in seconds, all 24 in ~25-45 s."""
    m = re.fullmatch(r"ps_train_(f32|f64)_n(\d+)_d(\d+)", name)
    if m is None:
        raise ValueError(f"name: not a training entry point: {name!r}")
    suf, lanes, depth = m.groups()
    t = "float" if suf == "f32" else "double"
    return (f"PT_ONLY_T={t}", f"PT_ONLY_SUF={suf}", f"PT_ONLY_N={lanes}", f"PT_ONLY_D={depth}")


@lru_cache(maxsize=8)
def _function(name: str, device_id: int) -> Any:
    from pipeline.gpu.kernels import compiled_module

    return compiled_module("train.cu", device_id, entry_defines(name)).get_function(name)


def run_train_kernel_cupy(
    name: str,
    w0: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    mb: np.ndarray,
    lr_in: np.ndarray,
    lr_out: np.ndarray,
    offset: np.ndarray,
    n: int,
    batch: int,
    steps: int,
    minibatch: int,
    act: int,
    gain_in: float,
    gain_out: float,
) -> np.ndarray:
    """Launch ``name`` on the current CuPy device; losses (points, steps) float64 on the host."""
    import cupy as cp

    p = len(lr_in)
    dev = cp.cuda.Device()
    lanes = int(name.split("_n")[1].split("_")[0])
    ppb = BLOCK // lanes
    n_sm = int(dev.attributes["MultiProcessorCount"])
    grid = max(1, min(-(-p // ppb), 64 * n_sm))  # grid-stride beyond 64 blocks per SM
    d = {k: cp.asarray(v) for k, v in dict(w0=w0, x=x, y=y, lr_in=lr_in, lr_out=lr_out).items()}
    d_off = cp.asarray(offset)
    d_mb = cp.asarray(mb) if mb.size else cp.zeros(1, cp.int32)
    losses = cp.empty((p, steps), cp.float64)
    _function(name, int(dev.id))(
        (grid,),
        (BLOCK,),
        (
            d["w0"],
            d["x"],
            d["y"],
            d_mb,
            d["lr_in"],
            d["lr_out"],
            d_off,
            np.int32(n),
            np.int32(batch),
            np.int32(steps),
            np.int32(minibatch),
            np.int32(act),
            np.float64(gain_in),
            np.float64(gain_out),
            np.int64(p),
            losses,
        ),
    )
    return cp.asnumpy(losses)


def train_points(
    problem: Problem,
    activation: str,
    lr_in: np.ndarray,
    lr_out: np.ndarray,
    offset: np.ndarray | None = None,
    *,
    steps: int,
    dtype: str = "float64",
    points_per_tile: int | None = None,
    keep_trajectory: bool = False,
    runner: KernelRunner | None = None,
) -> dict[str, np.ndarray]:
    """Train one network per point on the GPU and score it (as :func:`.reference.train_points`).

    ``lr_in``, ``lr_out``: (P,) learning rates (not logs) of the even / odd layers;
    ``offset``: (P,) added to every input-layer weight at initialisation (or None).
    Returns ``score`` (P,) float64, ``converged`` (P,) int8, ``final_loss`` (P,) and, with
    ``keep_trajectory``, ``loss`` (P, steps), normalised and clipped. ``points_per_tile`` is
    ignored (points are independent in the kernel; launches hold as many points as
    :data:`LOSS_BYTES_PER_LAUNCH` allows). ``runner`` replaces the
    CuPy launch (tests pass :func:`.emulate.run_train_kernel`).
    Raises ``ValueError`` for widths above 32 or depths outside 2..4.
    """
    args = kernel_args(problem, activation, lr_in, lr_out, offset, steps, dtype)
    run = runner or run_train_kernel_cupy
    p = len(args["lr_in"])
    per_launch = max(1, LOSS_BYTES_PER_LAUNCH // (8 * args["steps"]))
    losses = np.empty((p, args["steps"]), np.float64)
    for a in range(0, p, per_launch):
        sl = slice(a, min(p, a + per_launch))
        part = {k: (v[sl] if k in ("lr_in", "lr_out", "offset") else v) for k, v in args.items()}
        losses[sl] = run(**part)
    with np.errstate(all="ignore"):
        score, converged, v = score_trajectory(losses)
    out = {"score": score, "converged": converged.astype(np.int8), "final_loss": v[:, -1]}
    if keep_trajectory:
        out["loss"] = v
    return out


def useful_fma_per_point_step(width: int, depth: int, batch: int) -> int:
    """Multiply-adds of one gradient step of one point as the reference's GEMMs count them:
    per data row, forward Σ fan_in·fan_out = params, weight gradients = params, and the
    back-propagated dL/da of every layer but the first = params − n²."""
    params = width * width * (depth - 1) + width
    return batch * (3 * params - width * width)
