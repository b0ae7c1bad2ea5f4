"""Random boundaries on the pixel lattice: critical percolation and the Brownian frontier.

Site percolation on the square lattice at p_c = 0.592746 (one site per pixel), the largest
4-connected cluster C of the frame:

* ``cluster``: the boundary of C itself (all its perimeters, holes included): its box counts
  are those of C, dimension 91/48 (the mass dimension of critical clusters);
* ``hull``: the boundary of C's exterior when the exterior is the set of non-C sites
  8-connected to the frame's edge (it enters every fjord, however narrow): 7/4
  (Sapoval, Rosso & Gouyet 1985; Saleur & Duplantier 1987);
* ``perimeter``: the same with the exterior 4-connected, which closes the fjords whose mouth
  is a diagonal gap of one lattice spacing: the accessible external perimeter, 4/3
  (Grossman & Aharony 1986; Aizenman, Duplantier & Aharony 1999).

The Brownian frontier: a simple random walk of (n/4)² steps (its extent is 1/7–1/2 of the
frame, measured over 16 walks at 2048²: it lies inside the frame with room around it), the
boundary of the 4-connected exterior of its trace: 4/3 (Lawler, Schramm & Werner 2001).
Each field is True inside (the cluster, or the walk filled in).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["P_C", "brownian_frontier", "filled", "percolation"]

P_C = 0.592746  # site percolation threshold of the square lattice (Newman & Ziff 2000)
FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)


def filled(inside: NDArray[np.bool_], *, connectivity: int) -> NDArray[np.bool_]:
    """``inside`` with every hole filled: True except on the non-``inside`` sites connected
    (4- or 8-``connectivity``) to the frame's edge through non-``inside`` sites."""
    labels, _ = ndimage.label(~inside, structure=FOUR if connectivity == 4 else EIGHT)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, edge[edge > 0])
    return ~outside


def percolation(n: int, rng: np.random.Generator, kind: str) -> NDArray[np.bool_]:
    """The largest cluster of critical site percolation in an ``n`` × ``n`` frame:
    ``kind`` = ``cluster`` (C), ``hull`` (C filled, 8-connected exterior) or ``perimeter``
    (C filled, 4-connected exterior)."""
    occupied = rng.random((n, n), dtype=np.float32) < P_C
    labels, count = ndimage.label(occupied, structure=FOUR)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    cluster = labels == int(np.argmax(sizes))
    del labels
    if kind == "cluster":
        return cluster
    if kind == "hull":
        return filled(cluster, connectivity=8)
    if kind == "perimeter":
        return filled(cluster, connectivity=4)
    raise ValueError(f"kind: {kind!r} is not one of cluster, hull, perimeter")


def brownian_frontier(n: int, rng: np.random.Generator) -> NDArray[np.bool_]:
    """The trace of a simple random walk of (n/4)² steps, centred in the frame (redrawn
    while it does not fit with a one-pixel margin), with its 4-connected holes filled."""
    steps = (n // 4) ** 2
    moves = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]], np.int32)
    while True:
        path = np.cumsum(moves[rng.integers(0, 4, steps)], axis=0, dtype=np.int64)
        lo, hi = path.min(axis=0), path.max(axis=0)
        if np.all(hi - lo <= n - 3):
            break
    path += (n - 1 - (hi - lo)) // 2 - lo
    trace = np.zeros((n, n), bool)
    trace[path[:, 0], path[:, 1]] = True
    return filled(trace, connectivity=4)
