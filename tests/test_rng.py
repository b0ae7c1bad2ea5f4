"""Tests of the counter-based generator (pipeline/rng.py): known answers, laws, keying."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from pipeline import rng

SEED = 0x0123456789ABCDEF  # exercises both key words


# --------------------------------------------------------------------------- Philox


def _philox_python(c, k, rounds=10):
    """Philox4x32 with Python ints, straight from the Random123 round definition."""
    c, (k0, k1) = list(c), k
    for _ in range(rounds):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c[3] ^ k1, p0 & 0xFFFFFFFF]
        k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return c


# Random123 kat_vectors, philox4x32 with 10 rounds: counter, key -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox_known_answers(counter, key, expected):
    out = rng.philox4x32(*counter, *key)
    assert all(isinstance(w, np.ndarray) and w.dtype == np.uint32 and w.shape == () for w in out)
    assert tuple(int(w) for w in out) == expected
    assert tuple(_philox_python(counter, key)) == expected


def test_philox_broadcasts_like_scalar_calls():
    g = np.random.default_rng(0)
    c0 = g.integers(0, 2**32, (6, 1), dtype=np.uint64)
    c1 = g.integers(0, 2**32, (1, 5), dtype=np.uint64)
    c2 = g.integers(0, 2**32, (6, 5), dtype=np.uint64)
    c3, k0, k1 = 7, 0xFFFFFFFF, int(g.integers(0, 2**32))
    words = rng.philox4x32(c0, c1, c2, c3, k0, k1)
    assert all(w.shape == (6, 5) and w.dtype == np.uint32 for w in words)
    for i in range(6):
        for j in range(5):
            ctr = (int(c0[i, 0]), int(c1[0, j]), int(c2[i, j]), c3)
            scalar = [int(w) for w in rng.philox4x32(*ctr, k0, k1)]
            assert scalar == [int(w[i, j]) for w in words]
            assert scalar == _philox_python(ctr, (k0, k1))
    # a different round count is a different function (rounds is honoured)
    assert [int(w) for w in rng.philox4x32(1, 2, 3, 4, 5, 6, rounds=7)] == _philox_python(
        (1, 2, 3, 4), (5, 6), rounds=7
    )


@pytest.mark.parametrize(("bad", "exc"), [(-1, ValueError), (2**32, ValueError), (0.5, TypeError)])
def test_philox_rejects_out_of_range_words(bad, exc):
    with pytest.raises(exc, match="c2"):
        rng.philox4x32(0, 0, bad, 0, 0, 0)


# --------------------------------------------------------------------------- uniforms


def test_uniform_formula_is_exact_and_open():
    rows, cols = np.arange(3)[:, None], np.arange(4)[None, :]
    u1, u2 = rng.uniforms(SEED, 2, 5, rows, cols)
    words = rng.philox4x32(cols, rows, 5, 2, SEED & 0xFFFFFFFF, SEED >> 32)
    for i in range(3):
        for j in range(4):
            w0, w1, w2, w3 = (int(w[i, j]) for w in words)
            for u, hi, lo in ((u1, w0, w1), (u2, w2, w3)):
                n = ((hi << 32) | lo) >> 12
                assert Fraction(float(u[i, j])) == (n + Fraction(1, 2)) / 2**52
    # extreme words stay strictly inside (0, 1), symmetric about 1/2
    lo = rng._u_from_words(np.uint32(0), np.uint32(0))
    hi = rng._u_from_words(np.uint32(0xFFFFFFFF), np.uint32(0xFFFFFFFF))
    assert lo == 2.0**-53 and hi == 1.0 - 2.0**-53 and hi < 1.0 and lo + hi == 1.0


def test_uniform_moments():
    n_side = 1000
    r = np.arange(n_side)
    u1, u2 = rng.uniforms(SEED, rng.STREAMS["input"], 3, r[:, None], r[None, :])
    n = u1.size
    for u in (u1, u2):
        assert u.dtype == np.float64 and u.shape == (n_side, n_side)
        assert u.min() > 0.0 and u.max() < 1.0
        assert np.all(np.mod(u * 2.0**53, 2.0) == 1.0)  # on the grid (2m + 1) 2**-53
        assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
        # Var(sample variance) = (mu4 - sigma^4) / n with mu4 = 1/80, sigma^2 = 1/12
        assert abs(u.var() - 1 / 12) < 5 * math.sqrt((1 / 80 - 1 / 144) / n)
    assert abs(np.corrcoef(u1.ravel(), u2.ravel())[0, 1]) < 5 / math.sqrt(n)


# --------------------------------------------------------------------------- laws


def _moments(x):
    m = x.mean()
    c = x - m
    v = np.mean(c * c)
    return m, v, np.mean(c**4) / v**2


def test_alpha_2_is_normal_with_variance_2():
    n_side = 1000
    x = rng.stable_block(SEED, rng.STREAMS["weight"], 1, 0, n_side, 0, n_side, 2.0)
    n = x.size
    assert x.dtype == np.float64 and x.shape == (n_side, n_side)
    mean, var, kurt = _moments(x)
    assert abs(mean) < 5 * math.sqrt(2.0 / n)
    assert abs(var - 2.0) < 5 * math.sqrt(2 * 2.0**2 / n)  # Var(s^2) = 2 sigma^4 / n
    assert abs(kurt - 3.0) < 5 * math.sqrt(24.0 / n)

    z = rng.normal_block(SEED, rng.STREAMS["weight"], 1, 0, n_side, 0, n_side)
    mean, var, kurt = _moments(z)
    assert abs(mean) < 5 * math.sqrt(1.0 / n)
    assert abs(var - 1.0) < 5 * math.sqrt(2.0 / n)
    assert abs(kurt - 3.0) < 5 * math.sqrt(24.0 / n)
    assert stats.kstest(z[:200].ravel(), "norm").pvalue > 1e-3
    # N(0, 1) is the alpha = 2 draw over sqrt(2), up to one rounding
    np.testing.assert_allclose(z, x / math.sqrt(2.0), rtol=1e-15, atol=0)


def test_alpha_1_is_standard_cauchy():
    x = rng.stable_block(SEED, rng.STREAMS["weight"], 2, 0, 300, 0, 1000, 1.0)
    assert stats.kstest(x.ravel(), stats.cauchy.cdf).pvalue > 1e-3
    # and it is tan(V) draw by draw
    r, c = np.arange(300), np.arange(1000)
    u1, _ = rng.uniforms(SEED, rng.STREAMS["weight"], 2, r[:, None], c[None, :])
    np.testing.assert_allclose(x, np.tan(np.pi * (u1 - 0.5)), rtol=1e-13)


@pytest.mark.slow
def test_alpha_1_5_matches_scipy_levy_stable():
    # scipy's default parameterisation is S1; for beta = 0, scale 1, loc 0 its characteristic
    # function is exp(-|t|^alpha), the S_alpha(1) law drawn here. Check the convention: at
    # alpha = 2 it must be N(0, 2) and at alpha = 1 the standard Cauchy law.
    assert stats.levy_stable.parameterization == "S1"
    pts = np.array([-3.0, -0.7, 0.4, 2.5])
    np.testing.assert_allclose(
        stats.levy_stable.cdf(pts, 2.0, 0.0), stats.norm.cdf(pts, scale=math.sqrt(2)), rtol=1e-6
    )
    np.testing.assert_allclose(
        stats.levy_stable.cdf(pts, 1.0, 0.0), stats.cauchy.cdf(pts), rtol=1e-6
    )

    x = rng.stable_block(SEED, rng.STREAMS["weight"], 3, 0, 20, 0, 1000, 1.5).ravel()
    assert stats.kstest(x, stats.levy_stable(1.5, 0.0).cdf).pvalue > 1e-3


@pytest.mark.parametrize("alpha", [0.5, 1.2, 1.5, 1.9])
def test_empirical_characteristic_function(alpha):
    # E cos(tX) = exp(-|t|^alpha) independently of scipy; |cos| <= 1 so sd <= 1/sqrt(n)
    x = rng.stable_block(SEED, rng.STREAMS["weight"], 4, 0, 400, 0, 1000, alpha)
    n = x.size
    for t in (0.3, 1.0, 2.0):
        phi = np.mean(np.cos(t * x))
        assert abs(phi - math.exp(-(t**alpha))) < 5 / math.sqrt(n)


def _cms_textbook(u1, u2, alpha):
    v = np.pi * (u1 - 0.5)
    w = -np.log(u2)
    return (
        np.sin(alpha * v)
        / np.cos(v) ** (1 / alpha)
        * (np.cos((1 - alpha) * v) / w) ** ((1 - alpha) / alpha)
    )


@pytest.mark.parametrize("alpha", [0.3, 0.8, 1.0, 1.5, 1.99, 2.0])
def test_transform_equals_textbook_formula(alpha):
    r = np.arange(200)
    u1, u2 = rng.uniforms(SEED, 0, 9, r[:, None], r[None, :])
    # include the extreme uniforms 2**-53 and 1 - 2**-53 in both slots
    edge = np.array([2.0**-53, 0.5 - 2.0**-53, 0.5 + 2.0**-53, 1.0 - 2.0**-53])
    u1 = np.concatenate([u1.ravel(), np.repeat(edge, 4)])
    u2 = np.concatenate([u2.ravel(), np.tile(edge, 4)])
    got = rng.stable_from_uniforms(u1, u2, alpha)
    want = _cms_textbook(u1, u2, alpha)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_alpha_2_special_case_is_continuous_with_general_formula():
    r = np.arange(300)
    u1, u2 = rng.uniforms(SEED, 0, 11, r[:, None], r[None, :])
    special = rng.stable_from_uniforms(u1, u2, 2.0)
    general = rng._cms_general(u1, u2, 2.0)
    assert not np.array_equal(special, general)  # two different evaluations ...
    np.testing.assert_allclose(special, general, rtol=1e-12, atol=0)  # ... of one function
    np.testing.assert_allclose(
        special, 2 * np.sin(np.pi * (u1 - 0.5)) * np.sqrt(-np.log(u2)), rtol=1e-12
    )
    near = rng.stable_from_uniforms(u1, u2, 2.0 - 1e-9)
    np.testing.assert_allclose(near, special, rtol=1e-6)


def test_tiny_alpha_keeps_non_finite_values_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = rng.stable_block(SEED, 0, 0, 0, 200, 0, 200, 0.01)
    assert np.isinf(x).any()
    assert not np.isnan(x).any()


# --------------------------------------------------------------------------- keying


def test_block_equals_reference_path_bit_for_bit():
    rows, cols = np.arange(17, 17 + 40), np.arange(2**32 - 70, 2**32)  # columns up to the top
    u1, u2 = rng.uniforms(SEED, 4, 2**32 - 1, rows[:, None], cols[None, :])
    for alpha in (2.0, 1.5, 1.0, 0.6):
        ref = rng.stable_from_uniforms(u1, u2, alpha)
        blk = rng.stable_block(SEED, 4, 2**32 - 1, 17, 40, 2**32 - 70, 70, alpha)
        assert np.array_equal(blk, ref)
    z = rng.normal_block(SEED, 4, 2**32 - 1, 17, 40, 2**32 - 70, 70)
    d, v = u1 - 0.5, u2.copy()
    want = np.empty_like(d)
    rng._cms(d, v, 2.0, np.empty_like(d), np.empty_like(d), want, normal=True)
    assert np.array_equal(z, want)


@pytest.mark.parametrize("alpha", [2.0, 1.5, None])
def test_width_n_is_leading_block_of_width_2n(monkeypatch, alpha):
    monkeypatch.setattr(rng, "_TILE", 1000)  # tile shapes differ between the two widths
    n = 96

    def draw(m):
        if alpha is None:
            return rng.normal_block(SEED, 0, 3, 0, m, 0, m)
        return rng.stable_block(SEED, 0, 3, 0, m, 0, m, alpha)

    small, big = draw(n), draw(2 * n)
    assert np.array_equal(small, big[:n, :n])
    assert not np.array_equal(small, big[n:, n:])


def test_keys_select_different_draws_and_repeat_exactly():
    base = (SEED, 0, 5)
    x = rng.stable_block(*base, 0, 64, 0, 64, 1.5)
    assert np.array_equal(x, rng.stable_block(*base, 0, 64, 0, 64, 1.5))
    variants = [
        (SEED + 1, 0, 5),  # low key word
        (SEED + 2**32, 0, 5),  # high key word
        (SEED, 1, 5),  # stream
        (SEED, 0, 6),  # layer
    ]
    for key in variants:
        y = rng.stable_block(*key, 0, 64, 0, 64, 1.5)
        assert np.mean(x == y) < 1e-3, key
    # rows and columns are not interchangeable
    assert np.mean(x == x.T) < 0.02  # only the diagonal can agree
    # the uniforms do not depend on alpha: the sign of the draw is that of u1 - 1/2
    assert np.array_equal(np.sign(x), np.sign(rng.stable_block(*base, 0, 64, 0, 64, 0.7)))


@pytest.mark.parametrize("tile", [1, 7, 100, 257, 4096, 1 << 15])
@pytest.mark.parametrize("threads", [1, 3])
def test_tiling_and_threads_are_bit_exact(monkeypatch, tile, threads):
    # 13 x 150: tiles of one value, ragged row tiles (257), split columns (100), one tile
    block = (SEED, 2, 1, 5, 13, 11, 150)
    want = rng.stable_block(*block, 1.3)
    z_want = rng.normal_block(*block)
    monkeypatch.setattr(rng, "_TILE", tile)
    monkeypatch.setattr(rng, "_TILE_THREADED", tile)
    assert np.array_equal(rng.stable_block(*block, 1.3, threads=threads), want)
    assert np.array_equal(rng.normal_block(*block, threads=threads), z_want)


def test_default_tiles_single_vs_threaded_agree():
    # with the default sizes, 1 thread and 2 threads tile a 256 x 1024 block differently
    one = rng.stable_block(SEED, 0, 7, 0, 256, 0, 1024, 1.5)
    assert np.array_equal(rng.stable_block(SEED, 0, 7, 0, 256, 0, 1024, 1.5, threads=2), one)


def test_out_argument_float32_and_float64():
    want = rng.stable_block(SEED, 0, 0, 3, 20, 4, 30, 1.7)
    out64 = np.full((20, 30), np.nan)
    assert rng.stable_block(SEED, 0, 0, 3, 20, 4, 30, 1.7, out=out64) is out64
    assert np.array_equal(out64, want)
    out32 = np.empty((20, 30), np.float32)
    assert rng.stable_block(SEED, 0, 0, 3, 20, 4, 30, 1.7, out32) is out32
    assert np.array_equal(out32, want.astype(np.float32))
    big = np.zeros((40, 60))
    view = big[::2, 1::2]  # a strided view is fine
    rng.stable_block(SEED, 0, 0, 3, 20, 4, 30, 1.7, out=view, threads=2)
    assert np.array_equal(view, want)


def test_empty_block():
    assert rng.stable_block(SEED, 0, 0, 0, 0, 0, 5, 1.5).shape == (0, 5)
    assert rng.normal_block(SEED, 0, 0, 0, 4, 0, 0).shape == (4, 0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "field"),
    [
        ({"alpha": 0.0}, ValueError, "alpha"),
        ({"alpha": 2.5}, ValueError, "alpha"),
        ({"alpha": "2"}, TypeError, "alpha"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**64}, ValueError, "seed"),
        ({"stream": 2**32}, ValueError, "stream"),
        ({"layer": 1.0}, TypeError, "layer"),
        ({"col_start": 2**32 - 3}, ValueError, "col_start"),
        ({"out": np.empty((3, 4))}, ValueError, "out"),
        ({"out": np.empty((4, 5), np.int64)}, TypeError, "out"),
        ({"threads": 0}, ValueError, "threads"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, exc, field):
    args = {
        "seed": 1,
        "stream": 0,
        "layer": 0,
        "row_start": 0,
        "n_rows": 4,
        "col_start": 0,
        "n_cols": 5,
        "alpha": 1.5,
    } | kwargs
    with pytest.raises(exc, match=field):
        rng.stable_block(**args)


def test_streams_are_distinct_and_fixed():
    assert rng.STREAMS == {
        "weight": 0,
        "bias": 1,
        "input": 2,
        "tangent": 3,
        "circle": 4,
        "batch": 5,
        "train_weight": 6,
        "train_perturb": 7,
        "train_x": 8,
        "train_y": 9,
        "train_minibatch": 10,
        "bias_matrix": 11,
        "divergence": 12,
    }
