"""Training small MLPs by full-batch gradient descent, vectorised over hyperparameter points.

Pure computation (no I/O, no scheduler): the NumPy reference of the trainability experiment
(docs/conventions.md), after Sohl-Dickstein 2024 ("The boundary of neural network
trainability is fractal"):

* depth D weight matrices, width n, no biases, output dimension 1, mean-field
  parameterisation: ``z₁ = x W₁/√n``, ``a_k = φ(z_k)``, ``z_{k+1} = a_k W_{k+1}/√n``,
  output ``f = z_D/√n``; φ ∈ {tanh(√2 z), √2·relu(z), identity, sigmoid(z)};
* ``W_k`` entries N(0, 1), the same for every point (drawn from :mod:`pipeline.numerics.rng`, stream
  ``train_weight``, keyed by layer k, row, column), plus ``eps``·N(0, 1) from the
  ``train_perturb`` stream; data X ~ N(0, 1) (batch × n), Y ~ N(0, 1) (batch × 1);
* MSE loss ``mean_b (f_b − y_b)²``; step t updates ``W_k −= lr_k ∇_{W_k} L`` with
  ``lr_k = 10^lr_in`` for even k (0-based: the input layer is k = 0) and ``10^lr_out`` for
  odd k; in the ``offset`` mode the input-layer weights start at ``W₁ + offset`` and every
  layer uses ``10^lr``;
* score of a trajectory (``v_t`` = full-batch loss before step t): non-finite → 1e6,
  ``v /= v₀``, clip at 1e6, converged iff mean of the last 20 ``v`` < 1, score = −Σv if
  converged else +Σ(1/v). Its sign is the class.

Points are processed in tiles of a fixed number of points (padded with inert points), so a
point's numbers do not depend on which other points share its chunk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from pipeline.errors import PipelineError
from pipeline.experiments.trainability.activations import TRAIN_ACTIVATIONS, train_activation
from pipeline.numerics import rng

__all__ = [
    "DATASETS",
    "TRAIN_ACTIVATIONS",
    "Problem",
    "loss_and_grads",
    "make_problem",
    "score_trajectory",
    "default_batch",
    "train_activation",
    "train_losses",
    "train_points",
]

MAX_VALUE = 1e6
"""Clip value of the normalised loss (and the value of a non-finite loss)."""
MINIBATCH = 16
TILE_POINTS = 512

DATASETS = ("full", "single", "minibatch")


@dataclass(frozen=True)
class Problem:
    """One network family and data set, shared by every point of a (width, depth, ...)."""

    weights: tuple[np.ndarray, ...]  # W_k, shapes (n, n) ... (n, 1), float64
    x: np.ndarray  # (batch, n)
    y: np.ndarray  # (batch, 1)
    dataset: str
    seed: int
    minibatch_table: Mapping[int, np.ndarray] | None = field(default=None, compare=False)
    """Minibatch rows from a draws file: step count T → (T, 16) indices (the notebook's
    sequence depends on T); None: the keyed ``train_minibatch`` stream."""

    @property
    def width(self) -> int:
        """n."""
        return self.x.shape[1]

    @property
    def n_params(self) -> int:
        """Number of trainable parameters."""
        return sum(w.size for w in self.weights)

    @property
    def minibatch_depends_on_steps(self) -> bool:
        """Whether a run of T steps uses other minibatches than the first T of a longer run
        (true for a draws file's ``minibatch_idx_<T>`` tables)."""
        return self.dataset == "minibatch" and self.minibatch_table is not None

    def minibatch(self, step: int) -> np.ndarray:
        """Indices of the minibatch of ``step`` (the same at every point), shape (16,), from
        the keyed ``train_minibatch`` stream."""
        u, _ = rng.uniforms(
            self.seed, rng.STREAMS["train_minibatch"], step, np.arange(MINIBATCH), 0
        )
        return np.minimum((u * self.x.shape[0]).astype(np.int64), self.x.shape[0] - 1)

    def minibatch_indices(self, steps: int) -> np.ndarray:
        """The minibatch rows of a ``steps``-step run, shape (steps, 16), int64: the draws
        file's ``minibatch_idx_<steps>`` when it has one, else the keyed stream."""
        if self.minibatch_table is not None:
            if steps not in self.minibatch_table:
                have = ", ".join(str(k) for k in sorted(self.minibatch_table)) or "none"
                raise PipelineError(
                    f"draws.file: no minibatch_idx_{steps} for a {steps}-step run "
                    f"(the file has tables for steps: {have})"
                )
            return np.asarray(self.minibatch_table[steps], np.int64)
        return np.stack([self.minibatch(t) for t in range(steps)]).astype(np.int64)


def n_params(width: int, depth: int) -> int:
    """Parameters of a width-``width`` MLP with ``depth`` weight matrices and one output."""
    return width * width * (depth - 1) + width


def default_batch(width: int, depth: int, dataset: str) -> int:
    """Rows of the data set: 1 for ``single``, else the number of parameters."""
    return 1 if dataset == "single" else n_params(width, depth)


def make_problem(
    width: int,
    depth: int,
    seed: int,
    eps: float,
    dataset: str,
    batch: int | None = None,
) -> Problem:
    """Initial weights (with perturbation ``eps``) and data for one network family, from
    the keyed generator.

    ``dataset``: ``full`` (batch = number of parameters), ``single`` (one data point) or
    ``minibatch`` (batch = number of parameters; gradients on 16 of them per step);
    ``batch`` overrides the number of rows (e.g. the width, for the deep linear network).
    """
    if dataset not in DATASETS:
        raise PipelineError(f"dataset: unknown value {dataset!r} (allowed: {', '.join(DATASETS)})")
    weights = []
    for k in range(depth):
        fan_out = width if k < depth - 1 else 1
        w = rng.normal_block(seed, rng.STREAMS["train_weight"], k, 0, width, 0, fan_out)
        if eps:
            w = w + eps * rng.normal_block(
                seed, rng.STREAMS["train_perturb"], k, 0, width, 0, fan_out
            )
        weights.append(w)
    rows = default_batch(width, depth, dataset) if batch is None else batch
    x = rng.normal_block(seed, rng.STREAMS["train_x"], 0, 0, rows, 0, width)
    y = rng.normal_block(seed, rng.STREAMS["train_y"], 0, 0, rows, 0, 1)
    return Problem(tuple(weights), x, y, dataset, seed)


def loss_and_grads(
    weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, activation: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """MSE loss and its gradients for P networks at once.

    ``weights[k]``: (P, n, fan_out_k); ``x``: (B, n); ``y``: (B, 1). Returns the loss (P,)
    and the gradients, shaped like ``weights``.
    """
    act = train_activation(activation)
    n = x.shape[1]
    inv = 1.0 / math.sqrt(n)
    a = [x[None]]  # layer inputs A_0 .. A_{D-1}
    z = []
    for k, w in enumerate(weights):
        zk = np.matmul(a[-1], w) * inv
        z.append(zk)
        if k < len(weights) - 1:
            a.append(act.phi(zk, np))
    f = z[-1] * inv
    r = f - y[None]
    loss = np.mean(r * r, axis=(1, 2))
    dz = (2.0 / r[0].size) * r * inv  # dL/dz_D
    grads: list[np.ndarray] = [np.empty(0)] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        grads[k] = np.matmul(np.swapaxes(a[k], 1, 2), dz) * inv
        if k:
            da = np.matmul(dz, np.swapaxes(weights[k], 1, 2)) * inv
            dz = da * act.dphi_hx(z[k - 1], a[k], np)
    return loss, grads


def score_trajectory(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score, converged flag and normalised clipped losses of trajectories ``v`` (P, T).

    Non-finite → 1e6; v /= v₀; clip at 1e6; converged iff mean of the last 20 < 1;
    score = −Σv if converged else +Σ(1/v).
    """
    v = np.where(np.isfinite(v), v, MAX_VALUE)
    with np.errstate(all="ignore"):
        v = v / v[:, :1]
    v = np.where(v > MAX_VALUE, MAX_VALUE, v)
    converged = v[:, -20:].mean(axis=1) < 1
    score = np.where(converged, -v.sum(axis=1), (1.0 / v).sum(axis=1))
    return score, converged, v


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
    offset_every_step: bool = False,
    score_steps: tuple[int, ...] | None = None,
    backend: str = "numpy",
    threads: int = 1,
) -> dict[str, np.ndarray]:
    """Train one network per point and score it.

    ``lr_in``, ``lr_out``: (P,) learning rates (not logs) of the even / odd layers;
    ``offset``: (P,) added to every input-layer weight at initialisation, or before every
    step with ``offset_every_step`` (Sohl-Dickstein's notebook), or None.
    Returns ``score`` (P,), ``converged`` (P,) int8, ``final_loss`` (P,) (the last normalised
    clipped loss) and, with ``keep_trajectory``, ``loss`` (P, steps) normalised and clipped.
    With ``score_steps`` (step counts, increasing, the last = ``steps``) the three scores
    are (P, S): the score of the first T steps for each T, i.e. what a T-step run gives
    (one run of ``steps`` steps, except for a draws file's minibatch tables, whose
    sequence depends on T: then one run per T).

    ``backend``: ``numpy`` (this module, the reference) or ``numba``
    (:mod:`.compiled`, ``threads`` threads). NumPy points run in tiles of
    ``points_per_tile`` (default: all of them) padded with inert points (learning rate 0),
    so results depend on the tile size, never on neighbours.
    """
    counts = (steps,) if score_steps is None else tuple(score_steps)
    if counts[-1] != steps or any(b <= a for a, b in zip(counts, counts[1:], strict=False)):
        raise PipelineError(f"score_steps {counts} must increase and end at steps = {steps}")
    runs = counts if problem.minibatch_depends_on_steps else (steps,)
    per_run = [
        train_losses(
            problem,
            activation,
            lr_in,
            lr_out,
            offset,
            steps=t,
            dtype=dtype,
            offset_every_step=offset_every_step,
            backend=backend,
            threads=threads,
            points_per_tile=points_per_tile,
        )
        for t in runs
    ]
    scored = [
        score_trajectory(per_run[runs.index(t)] if t in runs else per_run[-1][:, :t])
        for t in counts
    ]
    out = {
        "score": np.stack([s for s, _, _ in scored], axis=-1),
        "converged": np.stack([c for _, c, _ in scored], axis=-1).astype(np.int8),
        "final_loss": np.stack([v[:, -1] for _, _, v in scored], axis=-1),
    }
    if score_steps is None:
        out = {k: v[:, 0] for k, v in out.items()}
    if keep_trajectory:
        out["loss"] = scored[-1][2]
    return out


def train_losses(
    problem: Problem,
    activation: str,
    lr_in: np.ndarray,
    lr_out: np.ndarray,
    offset: np.ndarray | None = None,
    *,
    steps: int,
    dtype: str = "float64",
    offset_every_step: bool = False,
    backend: str = "numpy",
    threads: int = 1,
    points_per_tile: int | None = None,
) -> np.ndarray:
    """Full-batch MSE loss before each of ``steps`` gradient-descent steps, shape
    (P, steps), float64, not normalised (score it with :func:`score_trajectory`).

    Arguments as :func:`train_points`. In ``minibatch`` data sets the gradient of step t
    uses rows ``problem.minibatch_indices(steps)[t]``; the recorded loss is on all rows.
    """
    p = len(lr_in)
    off = np.zeros(p) if offset is None else np.asarray(offset, np.float64)
    lr_in = np.asarray(lr_in, np.float64)
    lr_out = np.asarray(lr_out, np.float64)
    mb = problem.minibatch_indices(steps) if problem.dataset == "minibatch" else None
    if backend == "numba":
        from pipeline.experiments.trainability.compiled import train_losses_compiled

        return train_losses_compiled(
            problem.weights,
            problem.x,
            problem.y,
            activation,
            lr_in,
            lr_out,
            off,
            steps=steps,
            dtype=np.dtype(dtype),
            minibatch_idx=mb,
            offset_every_step=offset_every_step,
            threads=threads,
        )
    if backend != "numpy":
        raise PipelineError(f"backend: {backend!r} cannot train here (allowed: numpy, numba)")
    ppt = points_per_tile or max(1, p)
    out = []
    with threadpool_limits(limits=1, user_api="blas"), np.errstate(all="ignore"):
        for a in range(0, p, ppt):
            sl = slice(a, min(p, a + ppt))
            pad = ppt - (sl.stop - sl.start)

            def padded(v: np.ndarray, sl: slice = sl, pad: int = pad) -> np.ndarray:
                return np.concatenate([v[sl], np.zeros(pad)])

            losses = _tile_losses(
                problem,
                activation,
                padded(lr_in),
                padded(lr_out),
                padded(off),
                steps,
                np.dtype(dtype),
                mb,
                offset_every_step,
            )
            out.append(losses[: ppt - pad])
    return np.concatenate(out) if out else np.empty((0, steps))


def _tile_losses(
    problem: Problem,
    activation: str,
    lr_in: np.ndarray,
    lr_out: np.ndarray,
    offset: np.ndarray,
    steps: int,
    dtype: np.dtype,
    minibatch_idx: np.ndarray | None,
    offset_every_step: bool,
) -> np.ndarray:
    p = len(lr_in)
    weights = [np.repeat(w.astype(dtype)[None], p, axis=0) for w in problem.weights]
    off = offset.astype(dtype)[:, None, None]
    if not offset_every_step:
        weights[0] += off
    lrs = [
        (lr_in if k % 2 == 0 else lr_out).astype(dtype)[:, None, None] for k in range(len(weights))
    ]
    x, y = problem.x.astype(dtype), problem.y.astype(dtype)
    losses = np.empty((p, steps), np.float64)
    for t in range(steps):
        if offset_every_step:
            weights[0] += off
        if minibatch_idx is not None:
            idx = minibatch_idx[t]
            loss, _ = loss_and_grads(weights, x, y, activation)  # recorded on the full batch
            _, grads = loss_and_grads(weights, x[idx], y[idx], activation)
        else:
            loss, grads = loss_and_grads(weights, x, y, activation)
        losses[:, t] = loss
        for w, g, lr in zip(weights, grads, lrs, strict=True):
            w -= lr * g
    return losses
