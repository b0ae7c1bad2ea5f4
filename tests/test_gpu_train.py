"""The trainability kernel (kernels/train.cu) against the NumPy reference (pipeline.train).

Without a GPU: the kernel's per-lane algorithm, emulated in NumPy
(:func:`pipeline.experiments.trainability.emulate.run_train_kernel`), reproduces the
reference's trajectories, and
the wrapper validates its limits. Tests marked ``gpu`` need CuPy and a CUDA device and skip
with the reason otherwise: the device kernel against the emulation (every entry point) and
the parity of a 256 × 256 trainability image with the NumPy backend (issue 6).
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.experiments import get_experiment
from pipeline.experiments.trainability.emulate import run_train_kernel
from pipeline.experiments.trainability.gpu import (
    kernel_args,
    lanes_per_point,
    useful_fma_per_point_step,
)
from pipeline.experiments.trainability.gpu import train_points as train_gpu
from pipeline.experiments.trainability.reference import make_problem, n_params, train_points
from pipeline.gpu.backend import cupy_unavailable_reason
from pipeline.spec import parse_spec

WHY_NO_GPU = cupy_unavailable_reason()
needs_gpu = pytest.mark.skipif(WHY_NO_GPU is not None, reason=f"no GPU backend: {WHY_NO_GPU}")

# log10 learning rates away from the trainability boundary (trajectories are not chaotic),
# both classes represented
LR_IN = 10.0 ** np.array([-1.0, 0.0, 0.5, 1.0, -2.0, 2.5])
LR_OUT = 10.0 ** np.array([0.0, -1.0, 1.0, 0.3, 3.0, 2.5])
OFFSET = np.array([0.0, 0.2, -0.1, 0.5, 0.0, 1.0])


# ---------------------------------------------------------------- without a GPU


@pytest.mark.parametrize(
    ("width", "depth", "act", "dataset"),
    [
        (8, 2, "tanh", "full"),
        (5, 3, "sigmoid", "full"),  # padded lanes (5 of 8), one hidden matrix
        (6, 4, "relu", "minibatch"),
        (3, 2, "identity", "single"),
        (16, 2, "tanh", "minibatch"),
    ],
)
def test_emulated_kernel_matches_reference_trajectories(width, depth, act, dataset):
    pr = make_problem(width, depth, 1, 0.1, dataset)
    kw = {"steps": 12, "keep_trajectory": True}
    ref = train_points(pr, act, LR_IN, LR_OUT, OFFSET, **kw)
    got = train_gpu(pr, act, LR_IN, LR_OUT, OFFSET, runner=run_train_kernel, **kw)
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-10, atol=1e-300)
    np.testing.assert_array_equal(got["converged"], ref["converged"])
    np.testing.assert_allclose(got["score"], ref["score"], rtol=1e-10)
    np.testing.assert_allclose(got["final_loss"], ref["final_loss"], rtol=1e-10)


def test_emulated_kernel_float32_and_both_classes():
    pr = make_problem(8, 2, 0, 0.0, "full")
    lr = 10.0 ** np.linspace(-1, 3, 7)
    kw = {"steps": 25, "dtype": "float32"}
    ref = train_points(pr, "tanh", lr, lr[::-1], **kw)
    got = train_gpu(pr, "tanh", lr, lr[::-1], runner=run_train_kernel, **kw)
    np.testing.assert_array_equal(got["converged"], ref["converged"])
    assert set(ref["converged"].tolist()) == {0, 1}
    # float32 rounding differs (sequential vs pairwise sums): small, but amplified at lr 1e3
    np.testing.assert_allclose(got["score"][:-1], ref["score"][:-1], rtol=1e-4)
    np.testing.assert_allclose(got["score"], ref["score"], rtol=1e-2)


def test_limits_are_clear_errors():
    assert [lanes_per_point(w) for w in (1, 4, 5, 8, 9, 16, 17, 32)] == [4, 4, 8, 8, 16, 16, 32, 32]
    with pytest.raises(ValueError, match="supports 1..32 hidden units, got 33"):
        lanes_per_point(33)
    lr = np.ones(2)
    with pytest.raises(ValueError, match="supports 2..4 weight matrices, got 5"):
        kernel_args(make_problem(4, 5, 0, 0.0, "full"), "tanh", lr, lr, None, 3, "float64")
    with pytest.raises(ValueError, match="activation: unknown value 'erf'"):
        kernel_args(make_problem(4, 2, 0, 0.0, "full"), "erf", lr, lr, None, 3, "float64")
    with pytest.raises(TypeError, match="expected float32 or float64"):
        kernel_args(make_problem(4, 2, 0, 0.0, "full"), "tanh", lr, lr, None, 3, "float16")
    args = kernel_args(make_problem(12, 3, 0, 0.0, "minibatch"), "relu", lr, lr, None, 5, "float32")
    assert args["name"] == "ps_train_f32_n16_d3" and args["mb"].shape == (5 * 16,)
    assert args["w0"].size == n_params(12, 3) and args["x"].dtype == np.float32


def test_useful_fma_count_is_the_reference_gemms():
    # depth 2: forward B(n² + n), weight gradients B(n² + n), dL/da of the output layer B n
    assert useful_fma_per_point_step(16, 2, 272) == 272 * (2 * 256 + 3 * 16)


@pytest.mark.skipif(WHY_NO_GPU is None, reason="a GPU backend is available here")
def test_cupy_backend_without_gpu_is_a_clear_error():
    spec = parse_spec({"experiment": "trainability", "axes": {"lr_in": [0.0], "lr_out": [0.0]}})
    coords = {a.name: a.values for a in spec.axes}
    with pytest.raises(ValueError, match="'cupy' is unavailable here"):
        get_experiment("trainability").compute_chunk(spec, coords, backend="cupy")
    out = get_experiment("trainability").compute_chunk(spec, coords, backend="auto")
    assert out["score"].shape == (1,) * 7


# ---------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("width", [3, 8, 13, 32])
def test_device_kernel_matches_emulation(width, depth, dtype):
    """Every entry point (lanes 4, 8, 16, 32 × depth 2..4 × dtype), both datasets. With
    --fmad=false the kernel's arithmetic is the emulation's except for tanh (CUDA's vs
    NumPy's, 1-2 ulp apart). The emulation run with CUDA's own tanh (the host build) differs
    from it with NumPy's, over these 48 cases, by ≤ 5.2e-16 (float64) and ≤ 2.9e-7 (float32)
    relative at the first three points (moderate learning rates); the last three (lr up to
    10^3) amplify that to 1.3e-7 / 0.11 (BENCHMARKS.md "GPU contracts"), so there only the
    classes are compared."""
    for dataset, act in (("full", "tanh"), ("minibatch", "sigmoid")):
        pr = make_problem(width, depth, 2, 0.05, dataset)
        kw = {"steps": 8, "dtype": dtype, "keep_trajectory": True}
        want = train_gpu(pr, act, LR_IN, LR_OUT, OFFSET, runner=run_train_kernel, **kw)
        got = train_gpu(pr, act, LR_IN, LR_OUT, OFFSET, **kw)
        tol = 1e-13 if dtype == "float64" else 1e-5
        np.testing.assert_allclose(got["loss"][:3], want["loss"][:3], rtol=tol, atol=1e-300)
        np.testing.assert_array_equal(got["converged"], want["converged"])


def _issue_grid(dtype: str) -> tuple:
    spec = parse_spec(
        {
            "experiment": "trainability",
            "axes": {
                "width": [8],
                "depth": [2],
                "activation": ["tanh"],
                "lr_in": {"linspace": [-3, 6], "count": 256},
                "lr_out": {"linspace": [-3, 6], "count": 256},
            },
            "steps": 100,
            "dtype": dtype,
        }
    )
    coords = {a.name: a.values for a in spec.axes}
    exp = get_experiment("trainability")
    return spec, exp.compute_chunk(spec, coords, backend="cupy"), exp.compute_chunk(spec, coords)


@pytest.mark.gpu
@needs_gpu
def test_256x256_parity_with_numpy_float64():
    """Classes agree at ≥ 99.9 % of the points; scores agree to 1e-6 relative at ≥ 99 % of
    the non-chaotic points (those whose NumPy score moves by < 1e-9 when lr_in moves by one
    ulp). Near the boundary trajectories are chaotic: a last-bit difference (tanh, summation
    order) changes the score at any tolerance. The kernel's emulation (the kernel's
    arithmetic, --fmad=false, NumPy's tanh) against NumPy, 64 × 64 of this grid: classes
    0.99976, scores within 1e-6 at 0.911 of all points and at 1.000 of the 0.902 non-chaotic
    ones (largest 1.1e-8); BENCHMARKS.md "GPU contracts"."""
    _, gpu_chunk, ref_chunk = _issue_grid("float64")  # the sweep's path: classes
    same_class = np.mean((gpu_chunk["score"] < 0) == (ref_chunk["score"] < 0))
    assert np.mean(gpu_chunk["converged"] == ref_chunk["converged"]) >= 0.999, same_class
    assert same_class >= 0.999
    g = 10.0 ** np.linspace(-3, 6, 256)  # the same plane, point by point: scores
    li, lo = np.repeat(g, 256), np.tile(g, 256)
    pr = make_problem(8, 2, 0, 0.0, "full")
    ref = train_points(pr, "tanh", li, lo, steps=100)
    nudged = train_points(pr, "tanh", np.nextafter(li, np.inf), lo, steps=100)
    gpu = train_gpu(pr, "tanh", li, lo, steps=100)
    assert (ref["converged"] == 1).any() and (ref["converged"] == 0).any()
    stable = np.abs(nudged["score"] - ref["score"]) <= 1e-9 * np.abs(ref["score"])
    close = np.abs(gpu["score"] - ref["score"]) <= 1e-6 * np.abs(ref["score"])
    assert stable.mean() >= 0.8, stable.mean()
    assert np.mean(close[stable]) >= 0.99, np.mean(close[stable])


@pytest.mark.gpu
@needs_gpu
def test_256x256_classes_float32():
    """float32 trajectories near the boundary are chaotic; the classes still agree almost
    everywhere (the issue's 99.9 % is for the default float64)."""
    _, gpu, ref = _issue_grid("float32")
    assert np.mean(gpu["converged"] == ref["converged"]) >= 0.99
