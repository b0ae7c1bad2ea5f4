"""The refinement plan: which pixels of the image plane a refined sweep computes, round by
round, as a pure function of the classes computed so far (no I/O, no scheduler).

The plane has ``n0 × n1`` pixels. The lattice of spacing ``s`` is ``L(s) = {0, s, 2s, ...}
∪ {n - 1}`` along each axis; a *block* of spacing ``s`` is the closed rectangle between
consecutive lattice points, so every pixel ``i < n - 1`` lies in block ``i // s`` and the
last pixel in the last block. The plane is tiled by *leaves*: blocks of spacings from
``coarse`` down to ``final`` whose four corners are computed.

Round 0 computes ``L(coarse)²``: every coarse block is a leaf. Every later round

1. calls a leaf *mixed* when the computed pixels in its closed block (corners, edge points
   of finer neighbours, audits) hold more than one class (+1, -1 and "no class" (NaN) are
   three classes);
2. *splits* every leaf of spacing > ``final`` that lies within ``guard`` of its own blocks
   of a mixed leaf (the mixed leaves included): its ``L(s/2)`` points are computed and its
   four children become leaves;
3. *audits* the leaves that are neither split nor mixed: the pixels of the fixed, seeded
   audit set (each pixel with probability ``audit``) inside them are computed; an audit
   pixel whose class differs from its leaf's is a *surprise*, and its leaf, now mixed, is
   split in the next round.

It ends with the first round that computes nothing. A round's pixels depend only on the
classes of the earlier rounds, so a resumed run recomputes the same plan. Every pixel not
computed is filled from the nearest corner of its leaf (:meth:`Refiner.fill_source`): a leaf
that is not mixed has one class at every computed pixel, so the filled pixels carry it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.spec.refine import RefineSpec

__all__ = [
    "CODE_NAN",
    "CODE_NEG",
    "CODE_NONE",
    "CODE_POS",
    "RefineRound",
    "Refiner",
    "codes_of",
    "expected_fraction",
]

CODE_NONE, CODE_NEG, CODE_POS, CODE_NAN = 0, 1, 2, 3
"""Per-pixel class codes: not computed, class -1, class +1, no class (NaN)."""


def codes_of(classes: np.ndarray) -> np.ndarray:
    """Class codes (int8) of classes ``+1 / -1 / NaN`` (any shape)."""
    c = np.asarray(classes, dtype=np.float64)
    return np.where(np.isnan(c), CODE_NAN, np.where(c > 0, CODE_POS, CODE_NEG)).astype(np.int8)


@dataclass(frozen=True)
class RefineRound:
    """One round's pixels: ``points`` (flat indices ``i * n1 + j``, increasing) and, per
    point, the class code its leaf predicts (``expected``: 0 for lattice points, the leaf's
    code for audit points)."""

    index: int
    points: np.ndarray
    expected: np.ndarray

    @property
    def n_audits(self) -> int:
        """How many of the round's points are audits."""
        return int(np.count_nonzero(self.expected))


_POPCOUNT = np.array([bin(b).count("1") for b in range(16)], np.int8)
"""Classes present in a block, from the OR of its pixels' class bits (``1 << code``)."""


def _lattice(n: int, s: int) -> np.ndarray:
    """``L(s)`` on an axis of ``n`` pixels."""
    return np.unique(np.append(np.arange(0, n, s), n - 1))


class Refiner:
    """The state of a refinement over a plane of ``shape`` pixels: the class code of every
    computed pixel and the spacing of the leaf over every cell (``final`` × ``final``
    pixels). :meth:`next_round` plans a round, :meth:`absorb` takes its classes."""

    def __init__(self, shape: tuple[int, int], refine: RefineSpec) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.coarse, self.final, self.guard = refine.coarse, refine.final, refine.guard
        n0, n1 = self.shape
        self.codes = np.zeros(self.shape, np.int8)
        self.n_cells = (-(-(n0 - 1) // self.final), -(-(n1 - 1) // self.final))
        self.cell_stride = np.full(self.n_cells, self.coarse, np.int32)
        # the audit set is drawn once for the whole plane, so it does not depend on the rounds
        rng = np.random.Generator(np.random.PCG64(refine.audit_seed))
        self.audit_set = rng.random(self.shape) < refine.audit
        self.audit_share = refine.audit
        self.rounds = 0
        self.surprises = 0
        self.audits = 0
        self._pending: RefineRound | None = None

    # ---- rounds -------------------------------------------------------------------------
    def next_round(self) -> RefineRound:
        """Plan the next round (its ``points`` are empty when the refinement is over)."""
        if self._pending is not None:
            raise RuntimeError("the previous round's classes were not absorbed")
        n0, n1 = self.shape
        if self.rounds == 0:
            rows, cols = _lattice(n0, self.coarse), _lattice(n1, self.coarse)
            pts = (rows[:, None] * n1 + cols[None, :]).ravel()
            rnd = RefineRound(0, np.sort(pts), np.zeros(len(pts), np.int8))
        else:
            rnd = self._plan()
        self._pending = rnd
        return rnd

    def absorb(self, codes: np.ndarray) -> int:
        """Take the class codes of the pending round's points (same order); returns the
        round's surprises (audit points whose class differs from their leaf's)."""
        rnd = self._pending
        if rnd is None:
            raise RuntimeError("no round is pending")
        codes = np.asarray(codes, np.int8)
        if codes.shape != rnd.points.shape or np.any(codes == CODE_NONE):
            raise ValueError("one class code per point of the round is needed")
        self.codes.ravel()[rnd.points] = codes
        audit = rnd.expected != 0
        surprises = int(np.count_nonzero(audit & (codes != rnd.expected)))
        self.surprises += surprises
        self.audits += int(np.count_nonzero(audit))
        self.rounds += 1
        self._pending = None
        return surprises

    # ---- one round ------------------------------------------------------------------------
    def _strides(self) -> list[int]:
        s, out = self.coarse, []
        while s >= self.final:
            out.append(s)
            s //= 2
        return out

    def _blocks(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corner pixel of every block of spacing ``s``, per axis."""
        out = []
        for n in self.shape:
            lo = np.arange(0, n - 1, s)
            out.append((lo, np.minimum(lo + s, n - 1)))
        return out[0], out[1]

    def _classes_present(self) -> dict[int, np.ndarray]:
        """Per spacing, how many classes the computed pixels of each block's closed
        rectangle hold (0..3). Each pixel carries a bit per class; the finest blocks OR their
        rows then their columns (a segment reduction over ``[lo, next lo)`` plus the shared
        edge row or column ``next lo``, which is the closed block's last), and a block of
        spacing ``2s`` ORs its two (or, at the plane's end, one) halves of spacing ``s``
        along each axis, whose closed rectangles are its own."""
        n0, n1 = self.shape
        bits = np.where(self.codes == CODE_NONE, 0, np.left_shift(1, self.codes)).astype(np.uint8)
        acc = bits
        for axis, n in ((0, n0), (1, n1)):
            lo = np.arange(0, n - 1, self.final)
            seg = np.bitwise_or.reduceat(acc, lo, axis=axis)
            # the closed block ends on the next block's first row (column), where there is one
            edge = np.take(acc, lo[1:], axis=axis)
            head = [slice(None)] * 2
            head[axis] = slice(0, len(lo) - 1)
            seg[tuple(head)] |= edge
            acc = seg
        present = {}
        for s in reversed(self._strides()):
            if s != self.final:
                pad = [(0, acc.shape[0] % 2), (0, acc.shape[1] % 2)]
                a = np.pad(acc, pad)
                acc = a[0::2, 0::2] | a[1::2, 0::2] | a[0::2, 1::2] | a[1::2, 1::2]
            present[s] = _POPCOUNT[acc]
        return present

    def _leaves(self, s: int) -> np.ndarray:
        """Blocks of spacing ``s`` that are leaves now."""
        k = s // self.final
        return self.cell_stride[::k, ::k] == s

    def _plan(self) -> RefineRound:
        n0, n1 = self.shape
        f, g = self.final, self.guard
        present = self._classes_present()
        mixed: dict[int, np.ndarray] = {}
        marks = np.zeros((self.n_cells[0] + 1, self.n_cells[1] + 1), np.int64)
        for s in self._strides():
            mixed[s] = self._leaves(s) & (present[s] >= 2)
            k = s // f
            b0, b1 = np.nonzero(mixed[s])
            # the guard band: a difference array over cells, summed below
            r_lo = np.clip((b0 - g) * k, 0, self.n_cells[0])
            r_hi = np.clip((b0 + 1 + g) * k, 0, self.n_cells[0])
            c_lo = np.clip((b1 - g) * k, 0, self.n_cells[1])
            c_hi = np.clip((b1 + 1 + g) * k, 0, self.n_cells[1])
            np.add.at(marks, (r_lo, c_lo), 1)
            np.add.at(marks, (r_hi, c_lo), -1)
            np.add.at(marks, (r_lo, c_hi), -1)
            np.add.at(marks, (r_hi, c_hi), 1)
        marked = np.cumsum(np.cumsum(marks, axis=0), axis=1)[:-1, :-1] > 0
        # per spacing, the blocks with a marked cell: cells pooled 2 x 2 from the final
        # spacing up (block b of spacing s holds cells [b k, (b + 1) k), k = s / final)
        near = {f: marked}
        for s in reversed(self._strides()[:-1]):
            a = near[s // 2]
            a = np.pad(a, [(0, a.shape[0] % 2), (0, a.shape[1] % 2)])
            near[s] = a[0::2, 0::2] | a[1::2, 0::2] | a[0::2, 1::2] | a[1::2, 1::2]

        want = np.zeros(self.shape, bool)
        split: dict[int, np.ndarray] = {}
        for s in self._strides():
            if s == f:
                continue
            k = s // f
            split[s] = self._leaves(s) & near[s]
            b0, b1 = np.nonzero(split[s])
            h = s // 2
            rows = np.minimum(b0[:, None] * s + np.array([0, h, s]), n0 - 1)
            cols = np.minimum(b1[:, None] * s + np.array([0, h, s]), n1 - 1)
            want[rows[:, :, None], cols[:, None, :]] = True
        lattice = want & (self.codes == CODE_NONE)

        # audits: the audit pixels not computed yet whose leaf is neither split nor mixed
        ai, aj = np.nonzero(self.audit_set & (self.codes == CODE_NONE) & ~lattice)
        ci = np.minimum(ai // f, self.n_cells[0] - 1)
        cj = np.minimum(aj // f, self.n_cells[1] - 1)
        s_of = self.cell_stride[ci, cj]
        keep = np.zeros(len(ai), bool)
        expected = np.zeros(len(ai), np.int8)
        for s in self._strides():
            sel = s_of == s
            if not sel.any():
                continue
            (lo0, _), (lo1, _) = self._blocks(s)
            b0 = np.minimum(ai[sel] // s, len(lo0) - 1)
            b1 = np.minimum(aj[sel] // s, len(lo1) - 1)
            busy = mixed[s][b0, b1] | (split[s][b0, b1] if s in split else False)
            keep[sel] = ~busy
            expected[sel] = self.codes[lo0[b0], lo1[b1]]
        audit_pts = ai[keep] * n1 + aj[keep]

        # the split leaves' children are leaves from now on
        for s, sp in split.items():
            k = s // f
            up = np.repeat(np.repeat(sp, k, axis=0), k, axis=1)[
                : self.n_cells[0], : self.n_cells[1]
            ]
            self.cell_stride[up & (self.cell_stride == s)] = s // 2

        pts = np.concatenate([np.flatnonzero(lattice), audit_pts])
        exp = np.concatenate([np.zeros(np.count_nonzero(lattice), np.int8), expected[keep]])
        order = np.argsort(pts, kind="stable")
        return RefineRound(self.rounds, pts[order], exp[order])

    # ---- the filled field ---------------------------------------------------------------
    @property
    def computed(self) -> np.ndarray:
        """Pixels computed so far (bool, the plane's shape)."""
        return self.codes != CODE_NONE

    @property
    def evaluated_fraction(self) -> float:
        """Computed pixels / all pixels."""
        return float(np.count_nonzero(self.codes)) / self.codes.size

    def fill_source(self) -> np.ndarray:
        """For every pixel, the flat index of the pixel whose values it shows: itself when
        computed, else the nearest corner of its leaf (ties: the lower one). Shape of the
        plane, int64."""
        n0, n1 = self.shape
        f = self.final
        i = np.arange(n0)[:, None]
        j = np.arange(n1)[None, :]
        s = self.cell_stride[
            np.minimum(i // f, self.n_cells[0] - 1), np.minimum(j // f, self.n_cells[1] - 1)
        ].astype(np.int64)

        def nearest(x: np.ndarray, n: int) -> np.ndarray:
            nb = -(-(n - 1) // s)
            lo = np.minimum(x // s, nb - 1) * s
            hi = np.minimum(lo + s, n - 1)
            return np.where(x - lo <= hi - x, lo, hi)

        src = nearest(i, n0) * n1 + nearest(j, n1)
        return np.where(self.computed, i * n1 + j, src)


def expected_fraction(shape: tuple[int, int], refine: RefineSpec, dimension: float) -> float:
    """A rough prior of the share of pixels a refinement computes, for ``sweep plan``.

    Model: a boundary of box-counting dimension ``dimension`` that crosses the plane once
    meets about ``(n / s)**D`` blocks of spacing ``s`` (``n`` the geometric mean side); each is
    split with a band of ``2 guard + 1`` blocks across it, and a split adds about 3 new
    pixels. Plus the coarse lattice and the audit share of the rest. The measured share is in
    the store's ``refine`` attrs after a run.
    """
    n0, n1 = shape
    n = math.sqrt(n0 * n1)
    coarse = len(_lattice(n0, refine.coarse)) * len(_lattice(n1, refine.coarse))
    split = 0.0
    s = refine.coarse
    while s > refine.final:
        split += 3.0 * (2 * refine.guard + 1) * (n / s) ** dimension
        s //= 2
    total = n0 * n1
    computed = min(total, coarse + split)
    return (computed + refine.audit * (total - computed)) / total
