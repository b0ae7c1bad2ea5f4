"""The initial weights and data of Sohl-Dickstein (2024)'s notebook, drawn as it draws them.

"The boundary of neural network trainability is fractal" (notebook
``the_boundary_of_neural_network_trainability_is_fractal.ipynb`` of the repository
Sohl-Dickstein/fractal) draws one network and data set per figure panel with JAX's
threefry generator, float64 (``jax_enable_x64``), from ``PRNGKey(0)``:

1. ``rng, s = split(rng)``; ``k = split(s, depth)``; ``W_i = normal(k[i], (width, fan_out))``
   (fan_out = width, the last layer 1);
2. ``rng, s = split(rng)``; ``X = normal(s, (batch, width))``;
3. ``rng, s = split(rng)``; ``Y = normal(s, (batch, 1))``;

with batch = the number of parameters for tanh and ReLU (``full``), the width for the deep
linear network (``linear``) and 1 for "dataset size 1" (``single``). The minibatch panel's
rows at step t of a T-step run are ``randint(split(PRNGKey(42), T)[t], (16,), 0, batch)``
(they depend on T: one table per step count).

Numbers: JAX releases before 0.5 drew with ``jax_threefry_partitionable`` off; this module
turns it off where the flag exists, so a newer JAX draws the same streams (the shipped files
were checked bit for bit against JAX 0.4.23; newer releases may differ in the last bit of
a few normals, their inverse-erf being computed differently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError

__all__ = ["KINDS", "FILE_NAMES", "draw", "write_all"]

KINDS = ("full", "linear", "single")
"""full: batch = number of parameters (tanh, ReLU panels; minibatch tables too); linear:
batch = width (the deep linear panel); single: one data point."""

FILE_NAMES = {
    "full": "sohl_dickstein2024_w{width}_draws.npz",
    "linear": "sohl_dickstein2024_w{width}_linear_draws.npz",
    "single": "sohl_dickstein2024_w{width}_single_datapoint_draws.npz",
}
MINIBATCH = 16


def _jax() -> Any:
    try:
        import jax
    except ImportError:
        raise PipelineError(
            "draws: the Sohl-Dickstein generator needs JAX (pip install 'phase-sweep[draws-jax]')"
        ) from None
    jax.config.update("jax_enable_x64", True)
    try:
        jax.config.update("jax_threefry_partitionable", False)
    except (AttributeError, KeyError, ValueError):  # releases without the flag draw this way
        pass
    return jax


def draw(
    kind: str,
    *,
    width: int = 16,
    depth: int = 2,
    seed: int = 0,
    steps: tuple[int, ...] = (500, 1000),
) -> dict[str, np.ndarray]:
    """The arrays of one panel's draws file: ``W0..W{depth-1}`` (width × width, the last
    width × 1), ``X`` (batch × width), ``Y`` (batch × 1), float64, and for ``full`` the
    minibatch tables ``minibatch_idx_<T>`` (T × 16, int64) for each T in ``steps``."""
    if kind not in KINDS:
        raise PipelineError(f"draws: unknown kind {kind!r} (allowed: {', '.join(KINDS)})")
    jax = _jax()
    random = jax.random
    key = random.PRNGKey(seed)
    key, sub = random.split(key)
    keys = random.split(sub, depth)
    out: dict[str, np.ndarray] = {}
    for i in range(depth):
        fan_out = 1 if i == depth - 1 else width
        out[f"W{i}"] = np.asarray(random.normal(keys[i], (width, fan_out)), np.float64)
    n_params = sum(w.size for w in out.values())
    batch = {"full": n_params, "linear": width, "single": 1}[kind]
    key, sub = random.split(key)
    out["X"] = np.asarray(random.normal(sub, (batch, width)), np.float64)
    key, sub = random.split(key)
    out["Y"] = np.asarray(random.normal(sub, (batch, 1)), np.float64)
    if kind == "full":
        for t in steps:
            ks = random.split(random.PRNGKey(42), t)
            rows = [np.asarray(random.randint(k, (MINIBATCH,), 0, batch)) for k in ks]
            out[f"minibatch_idx_{t}"] = np.stack(rows).astype(np.int64)
    return out


def write_all(
    folder: str | Path,
    *,
    width: int = 16,
    depth: int = 2,
    seed: int = 0,
    steps: tuple[int, ...] = (500, 1000),
) -> list[Path]:
    """Write the three panels' files (:data:`FILE_NAMES`) into ``folder``; returns their
    paths. Arrays are stored uncompressed in key order (``numpy.savez``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        arrays = draw(kind, width=width, depth=depth, seed=seed, steps=steps)
        path = folder / FILE_NAMES[kind].format(width=width)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        tmp.replace(path)
        paths.append(path)
    return paths
