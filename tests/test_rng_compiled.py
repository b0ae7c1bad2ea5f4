"""The compiled Philox generator (pipeline/numerics/rng_compiled.py) against the NumPy one:
integer arithmetic and exact float64 steps, so the uniforms and the draws must be equal bit
for bit, at every key, counter and tile shape. Skips without Numba."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.gpu import backend
from pipeline.numerics import rng

WHY_NO_NUMBA = backend.numba_unavailable_reason()
needs_numba = pytest.mark.skipif(
    WHY_NO_NUMBA is not None, reason=f"no compiled CPU backend: {WHY_NO_NUMBA}"
)

TOP = 2**32


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float64).view(np.uint64)


def _tile(gen, seed, stream, layer, row0, n_rows, col0, n_cols):  # noqa: ANN001, ANN202
    """(u1 − 1/2, u2) of one tile by ``gen``, in fresh buffers filled with garbage."""
    bufs = tuple(np.full((n_rows, n_cols), 0xDEADBEEF, np.uint64) for _ in range(4))
    d, u2, _, _ = gen(rng._key_schedule(seed), stream, layer, row0, n_rows, col0, n_cols, bufs)
    return d.copy(), u2.copy()


def _cases() -> list[tuple[int, ...]]:
    """(seed, stream, layer, row0, n_rows, col0, n_cols): edge words, offsets ending at 2**32,
    odd shapes, and random keys and counters (seeds up to 2**64 − 1)."""
    cases = [
        (0, 0, 0, 0, 1, 0, 1),
        (2**64 - 1, TOP - 1, TOP - 1, TOP - 1, 1, TOP - 1, 1),  # every word at its top
        (2**32, 0, 1, 0, 7, 0, 13),  # seed's high word only
        (2**32 - 1, 3, 5, TOP - 7, 7, TOP - 300, 300),  # rows and columns up to 2**32 − 1
        (0x0123456789ABCDEF, 4, TOP - 1, 17, 40, TOP - 70, 70),
        (12345, 0, 3, 0, 100, 0, 100),  # the N = 100 weight block
        (12345, 1, 3, 0, 100, 0, 1),  # a bias column
        (99, 2, 8, 5, 1, 11, 257),  # one row
        (99, 2, 8, 5, 257, 11, 1),  # one column
        (2**63 + 5, 12, 2**31, 2**31 - 3, 6, 2**31 - 2, 5),  # offsets across 2**31
    ]
    g = np.random.default_rng(20251208)
    for _ in range(60):
        n_rows, n_cols = (int(v) for v in g.integers(1, 40, 2))
        cases.append(
            (
                int(g.integers(0, 2**64, dtype=np.uint64)),
                int(g.integers(0, TOP)),
                int(g.integers(0, TOP)),
                int(g.integers(0, TOP - n_rows + 1)),
                n_rows,
                int(g.integers(0, TOP - n_cols + 1)),
                n_cols,
            )
        )
    return cases


@needs_numba
@pytest.mark.parametrize("case", _cases())
def test_tile_uniforms_equal_numpy_bit_for_bit(case):
    from pipeline.numerics.rng_compiled import tile_uniforms

    want = _tile(rng._philox_tile_uniforms, *case)
    got = _tile(tile_uniforms, *case)
    for g, w, name in zip(got, want, ("u1 - 1/2", "u2"), strict=True):
        assert np.array_equal(_bits(g), _bits(w)), name


@needs_numba
def test_tile_uniforms_equal_the_readable_reference():
    """Against :func:`rng.uniforms` (the element-wise Philox of the known-answer tests) too."""
    from pipeline.numerics.rng_compiled import tile_uniforms

    seed, stream, layer = 2**64 - 2**32 + 7, 9, TOP - 2
    rows, cols = np.arange(TOP - 5, TOP), np.arange(3, 40)
    u1, u2 = rng.uniforms(seed, stream, layer, rows[:, None], cols[None, :])
    d, v = _tile(tile_uniforms, seed, stream, layer, TOP - 5, 5, 3, 37)
    assert np.array_equal(_bits(d), _bits(u1 - 0.5))
    assert np.array_equal(_bits(v), _bits(u2))
    assert d.min() > -0.5 and d.max() < 0.5 and v.min() > 0 and v.max() < 1


@needs_numba
@pytest.mark.parametrize("alpha", [2.0, 1.7, 1.0, 0.5, None])
@pytest.mark.parametrize(("tile", "threads"), [(None, 1), (None, 2), (7, 1), (100, 3)])
def test_blocks_equal_numpy_bit_for_bit(monkeypatch, alpha, tile, threads):
    """stable_block / normal_block with ``philox="numba"``: the NumPy path's draws, for any
    tiling (ragged tiles, split columns) and thread count, into float64 and float32."""
    if tile is not None:
        monkeypatch.setattr(rng, "_TILE", tile)
        monkeypatch.setattr(rng, "_TILE_THREADED", tile)
    block = (0xFEDCBA9876543210, 0, TOP - 1, TOP - 23, 23, TOP - 150, 150)

    def draw(philox: str, out: np.ndarray | None = None) -> np.ndarray:
        if alpha is None:
            return rng.normal_block(*block, out, threads=threads, philox=philox)
        return rng.stable_block(*block, alpha, out, threads=threads, philox=philox)

    want = draw("numpy")
    assert np.array_equal(_bits(draw("numba")), _bits(want))
    out32 = np.empty((23, 150), np.float32)
    assert np.array_equal(draw("numba", out32), want.astype(np.float32))


def test_unknown_generator_names_the_field():
    with pytest.raises(PipelineError, match=r"philox: expected one of numpy, numba, got 'c'"):
        rng.stable_block(1, 0, 0, 0, 2, 0, 2, 1.5, philox="c")
