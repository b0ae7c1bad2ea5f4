"""What the CUDA kernels promise against the NumPy reference (docs/backends.md, "GPUs"), in one
place:
the host build of the kernels (tests/test_kernels_compile.py) shows each bound is met, the
device tests (tests/test_gpu.py, tests/test_gpu_train.py) hold the device to it."""

from __future__ import annotations

import numpy as np

DRAW_BLOCK = {"seed": 99, "layer": 3, "n": 512}
"""The block both test files draw: weights (n × n, stream ``weight``) and the bias column."""


def draw_ulp_bounds(alpha: float) -> tuple[float, float]:
    """(least share within 2 ulp, largest ulp) of float64 α-stable draws, CUDA vs NumPy.

    Only tan/log/exp differ (CUDA's are not correctly rounded, ≤ 2 ulp; NumPy's neither), and
    the CMS formula multiplies the exponent's error by ~(1 − α)/α, so the tail grows like 1/α.
    Measured with the host build on 3 blocks of 512 × 512 (BENCHMARKS.md "GPU contracts"):
    within 2 ulp 1.0000 (α = 2), 0.991-0.993 (1 ≤ α < 2), 0.955-0.981 (0.5 ≤ α < 1), 0.84-0.93
    (0.1 ≤ α < 0.5); largest 3, 10-16, 27-31, 45-226 ulp. The bounds keep a margin.
    """
    share = 0.999 if alpha == 2.0 else 0.99 if alpha >= 1.0 else 0.94 if alpha >= 0.5 else 0.8
    return share, 32.0 / alpha


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got − want| in units of the last place of ``want`` (float64 arithmetic)."""
    return np.abs(got.astype(np.float64) - want.astype(np.float64)) / np.spacing(
        np.abs(want)
    ).astype(np.float64)


def check_draws(got: np.ndarray, want: np.ndarray, alpha: float, dtype: type) -> str | None:
    """None when device/host-build draws ``got`` keep the contract against the NumPy draws
    ``want`` (float64): float32 bit-identical; float64 the same non-finite pattern and
    :func:`draw_ulp_bounds`. Otherwise what is broken."""
    w = want.astype(dtype)
    if dtype == np.float32:
        same = got.view(np.uint32) == w.view(np.uint32)
        return None if same.all() else f"alpha={alpha}: {np.sum(~same)} float32 draws differ"
    fin = np.isfinite(w)
    if not np.array_equal(fin, np.isfinite(got)):
        return f"alpha={alpha}: the non-finite draws differ"
    u = ulps(got[fin], w[fin])
    share, largest = draw_ulp_bounds(alpha)
    if np.mean(u <= 2) < share or u.max() > largest:
        return (
            f"alpha={alpha}: {np.mean(u <= 2):.4f} within 2 ulp (need {share}), "
            f"max {u.max():.0f} ulp (allowed {largest:.0f})"
        )
    return None
