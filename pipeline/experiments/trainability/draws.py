"""A trainability network's initial weights and data from a draws file.

The file is an ``.npz`` in the orientation of Sohl-Dickstein's notebook (the network of
:mod:`.reference`, weights multiplied from the right):

=========================  =====================  ==========================================
key                        shape                  what
=========================  =====================  ==========================================
``W0`` … ``W{D-1}``        (n, n) … (n, 1)        initial weights of layer k (input first)
``X``                      (batch, n)             inputs
``Y``                      (batch, 1)             targets
``minibatch_idx_<T>``      (T, 16), integers      rows of the minibatch of each step of a
                                                  T-step run (``dataset: minibatch`` only;
                                                  one table per step count scored)
=========================  =====================  ==========================================

``batch`` is the spec's ``batch`` or the data set's default (the number of parameters; 1
for ``single``). With a draws file, ``width``, ``depth`` and ``seed`` take one value each
(the file fixes the network; ``seed`` then only keys an ``eps`` perturbation, drawn from
the ``train_perturb`` stream as without a file). ``pipeline.draws.sohl_dickstein`` writes
such files by the notebook's own procedure.
"""

from __future__ import annotations

import re

import numpy as np

from pipeline.errors import SpecError
from pipeline.experiments.trainability.reference import (
    MINIBATCH,
    Problem,
    default_batch,
)
from pipeline.numerics import rng
from pipeline.spec.draws import DrawsFile, require
from pipeline.spec.fields import Axis

__all__ = ["check_draws_axes", "perturbed", "problem_from_draws"]

_MB = re.compile(r"minibatch_idx_(\d+)$")


def check_draws_axes(axes: tuple[Axis, ...]) -> None:
    """With a draws file, ``width``, ``depth`` and ``seed`` must hold one value each."""
    for ax in axes:
        if ax.name in ("width", "depth", "seed") and len(ax) != 1:
            raise SpecError(
                f"axes.{ax.name}",
                f"{len(ax)} values with a draws file (the file fixes the network: give one)",
            )


def problem_from_draws(
    draws: DrawsFile,
    width: int,
    depth: int,
    dataset: str,
    batch: int | None,
    step_counts: tuple[int, ...],
) -> Problem:
    """The :class:`~.reference.Problem` a draws file holds, every array checked (keys,
    shapes, finite values, minibatch rows in range) against a width-``width``,
    ``depth``-layer network on ``dataset`` with ``batch`` rows, scored at ``step_counts``.
    Weights and data are float64 copies."""
    arrays = draws.arrays()
    rows = default_batch(width, depth, dataset) if batch is None else batch
    weights = []
    for k in range(depth):
        fan_out = width if k < depth - 1 else 1
        w = require(arrays, f"W{k}", (width, fan_out), what=f"initial weights of layer {k}")
        weights.append(np.array(w, np.float64))
    extra = sorted(k for k in arrays if re.fullmatch(r"W\d+", k) and int(k[1:]) >= depth)
    if extra:
        raise SpecError(
            "draws.file",
            f"holds {', '.join(extra)}: a deeper network than depth {depth} (W0..W{depth - 1})",
        )
    x = np.array(require(arrays, "X", (rows, width), what=f"inputs, {dataset} data set"), float)
    y = np.array(require(arrays, "Y", (rows, 1), what="targets"), np.float64)
    table = None
    if dataset == "minibatch":
        table = {}
        for t in step_counts:
            idx = require(
                arrays,
                f"minibatch_idx_{t}",
                (t, MINIBATCH),
                what=f"minibatch rows of a {t}-step run",
                integer=True,
            )
            if idx.size and (idx.min() < 0 or idx.max() >= rows):
                raise SpecError(
                    "draws.file",
                    f"array 'minibatch_idx_{t}' has rows outside 0..{rows - 1} (the data set)",
                )
            table[t] = np.array(idx, np.int64)
    return Problem(tuple(weights), x, y, dataset, 0, table)


def perturbed(problem: Problem, seed: int, eps: float) -> Problem:
    """``problem`` with ``eps``·N(0, 1) added to every weight, from the keyed
    ``train_perturb`` stream of ``seed`` (as :func:`~.reference.make_problem` perturbs);
    ``eps = 0`` returns ``problem`` itself (with its seed set)."""
    weights = problem.weights
    if eps:
        n = problem.width
        weights = tuple(
            w + eps * rng.normal_block(seed, rng.STREAMS["train_perturb"], k, 0, n, 0, w.shape[1])
            for k, w in enumerate(weights)
        )
    return Problem(weights, problem.x, problem.y, problem.dataset, seed, problem.minibatch_table)
