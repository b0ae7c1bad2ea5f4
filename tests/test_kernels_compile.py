"""The CUDA sources of ``kernels/`` without a GPU: they compile (nvcc, sm_80 and sm_90), they
stay NVRTC-compatible, and the integer/float formulation they use reproduces
pipeline.numerics.rng; the
GPU driver loop runs against a NumPy emulation of the kernels and matches the reference."""

from __future__ import annotations

import math
import re

import _nvcc_check
import numpy as np
import pytest
from _gpu_contract import DRAW_BLOCK, check_draws

from pipeline import rng
from pipeline.experiments.propagation.gpu import (
    device_peak_bytes,
    gpu_tile_points,
)
from pipeline.experiments.propagation.gpu import (
    propagate_network as propagate_gpu,
)
from pipeline.experiments.propagation.ops import NumpyOps
from pipeline.experiments.propagation.probes import BatchProbe, CircleProbe, PairProbe, Probes
from pipeline.experiments.propagation.reference import propagate_network
from pipeline.gpu import host_build
from pipeline.gpu.host_build import toolchain_missing
from pipeline.gpu.kernels import cms_args, kernel_source

SOURCES = _nvcc_check.sources()
NVCC = _nvcc_check.NVCC


def test_kernel_sources_exist():
    assert {"rng.cu", "propagate.cu", "train.cu"} <= set(SOURCES)


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH: cannot compile the CUDA kernels")
@pytest.mark.slow
def test_every_kernel_compiles_for_sm80_and_sm90(request):
    """Compile-only, one nvcc call per file and architecture, warnings as errors. The builds
    run in the background from the start of the session (tests/_nvcc_check.py); this test
    waits for them (or, run on its own, starts them)."""
    builds = request.config.stash.get(_nvcc_check.STASH, None)
    own = builds is None
    if own:
        builds = _nvcc_check.start()
    try:
        results = builds.wait(timeout=600)
        assert sorted(results) == sorted((n, sm) for n in SOURCES for sm in _nvcc_check.ARCHS)
        for (name, sm), res in results.items():
            assert res.returncode == 0, f"{name} (sm_{sm}): exit {res.returncode}\n{res.stderr}"
            assert builds.output(name, sm).stat().st_size > 0, (name, sm)
    finally:
        if own:
            builds.stop()


@pytest.mark.parametrize("name", SOURCES)
def test_sources_are_nvrtc_compatible(name):
    """NVRTC has no host headers: only our own quoted headers may be included, and every
    entry point is extern "C" (no name mangling: RawModule.get_function finds it by name)."""
    text = kernel_source(name)
    assert "#include" not in text, f"{name}: unresolved include after inlining"
    for m in re.finditer(r"__global__\s+void", text):
        line = text[text.rfind("\n", 0, m.start()) + 1 : m.end()]
        assert 'extern "C"' in line, f'{name}: kernel without extern "C": {line!r}'


# ---------------------------------------------------------------- NumPy emulation of the kernels


def _umulhi(a: np.ndarray, b: int) -> np.ndarray:
    return ((a.astype(np.uint64) * np.uint64(b)) >> np.uint64(32)).astype(np.uint32)


def _philox_as_in_kernel(c0, c1, c2, c3, k0, k1):
    """philox_cms.cuh's loop: __umulhi for the high words, wrapping uint32 products for the
    low words, uint32 key bumps; (rng.py keeps 64-bit products and masks)."""
    x0, x1, x2, x3 = (np.asarray(v, np.uint32).copy() for v in (c0, c1, c2, c3))
    k0, k1 = np.uint32(k0), np.uint32(k1)
    with np.errstate(over="ignore"):
        for _ in range(10):
            hi0, lo0 = _umulhi(x0, 0xD2511F53), x0 * np.uint32(0xD2511F53)
            hi1, lo1 = _umulhi(x2, 0xCD9E8D57), x2 * np.uint32(0xCD9E8D57)
            x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
            k0 = np.uint32(k0 + np.uint32(0x9E3779B9))
            k1 = np.uint32(k1 + np.uint32(0xBB67AE85))
    return x0, x1, x2, x3


def _uniform_as_in_kernel(hi, lo):
    n = (hi.astype(np.uint64) << np.uint64(32) | lo.astype(np.uint64)) >> np.uint64(12)
    return (n.astype(np.float64) + 0.5) * 2.220446049250313080847263336181640625e-16


@pytest.mark.parametrize("seed", [0, 1, 2**32 + 7, 2**64 - 1])
def test_kernel_philox_formulation_matches_rng(seed):
    rows = np.arange(0, 40, dtype=np.uint32)[:, None] * np.uint32(104729)
    cols = np.arange(0, 50, dtype=np.uint32)[None, :] * np.uint32(7919) + np.uint32(2**32 - 60)
    rows, cols = np.broadcast_arrays(rows, cols)
    layer, stream = 3, rng.STREAMS["bias"]
    w = _philox_as_in_kernel(cols, rows, layer, stream, seed & 0xFFFFFFFF, seed >> 32)
    u1, u2 = rng.uniforms(seed, stream, layer, rows, cols)
    assert np.array_equal(_uniform_as_in_kernel(w[0], w[1]), u1)
    assert np.array_equal(_uniform_as_in_kernel(w[2], w[3]), u2)


def test_kernel_philox_known_answer():
    """Random123's published Philox4x32-10 vector (pi digits), through the kernel loop."""
    w = _philox_as_in_kernel(
        [0x243F6A88], [0x85A308D3], [0x13198A2E], [0x03707344], 0xA4093822, 0x299F31D0
    )
    assert [int(v[0]) for v in w] == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


@pytest.mark.parametrize("alpha", [2.0, 1.5, 1.0, 0.7])
def test_cms_kernel_constants_are_rng_constants(alpha):
    k = rng._cms_constants(alpha, False)
    got = cms_args(alpha)
    want = (k["pi"], k["pi_1ma"], k["pi_a2"], k["c_t"], k["c_s"])
    assert all(float(a) == float(b) for a, b in zip(got, want, strict=True))
    assert math.pi == float(got[0])


# ---------------------------------------------------------------- the GPU driver, emulated


def _compare(a, b, rtol, atol):
    for ga, gb in zip(a, b, strict=True):
        assert ga.keys() == gb.keys()
        for k in ga:
            x, y = ga[k].astype(np.float64), gb[k].astype(np.float64)
            assert x.shape == y.shape, k
            assert np.array_equal(np.isnan(x), np.isnan(y)), k
            np.testing.assert_allclose(y, x, rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize(("dtype", "alpha"), [("float64", 2.0), ("float64", 1.3), ("float32", 1.8)])
def test_gpu_driver_with_emulated_kernels_matches_reference(dtype, alpha):
    probes = Probes(pair=PairProbe(c0=0.3), circle=CircleProbe(K=6), batch=BatchProbe(m=3))
    sw, sb = np.r_[0.0, np.linspace(0.6, 2.8, 4)], np.linspace(0.0, 0.8, 5)  # σ_w = 0: λ = −∞
    groups = [("tanh", sw, sb), ("relu", sw[:3], sb[:3]), ("erf", sw, sb)]
    kw = {"depth": 5, "record_layers": [1, 4, 5], "probes": probes, "dtype": dtype}
    ref = propagate_network(48, alpha, 11, groups, **kw)
    got = propagate_gpu(48, alpha, 11, groups, ops=NumpyOps(), points_per_tile=2, **kw)
    # float32: the kernels sum in float64, the reference in float32 (log growth near 0 is
    # compared in absolute terms)
    _compare(ref, got, *((1e-10, 1e-13) if dtype == "float64" else (2e-4, 2e-6)))


def test_gpu_tiles_and_peak_bytes():
    probes = Probes(pair=PairProbe())
    assert gpu_tile_points(probes, 64 * 64) == 2048  # 2 balanced tiles of 6144 rows
    assert gpu_tile_points(probes, 10) == 10
    b32 = device_peak_bytes(1024, probes, 2048, 2, 10, "float32")
    b64 = device_peak_bytes(1024, probes, 2048, 2, 10, "float64")
    # the two tiles' augmented inputs (2 x 6144 x 1040 values), one h, Z
    assert 2 * 6144 * 1040 * 4 < b32 < 2 * 2 * 6144 * 1040 * 4
    assert b64 > 1.9 * b32


def test_chunk_device_peak_bytes_from_spec():
    from pipeline.experiments.propagation.gpu import chunk_device_peak_bytes
    from pipeline.spec import parse_spec

    spec = parse_spec(
        {
            "axes": {
                "width": [512, 1024],
                "sigma_w": {"linspace": [0.5, 3.0], "count": 64},
                "sigma_b": {"linspace": [0.0, 1.0], "count": 64},
            },
            "depth": 10,
            "record_layers": "last",
        }
    )
    got = chunk_device_peak_bytes(spec, spec.chunks)
    ppt = gpu_tile_points(spec.params.probes, 64 * 64)
    want = device_peak_bytes(1024, spec.params.probes, ppt, -(-4096 // ppt), 1, spec.dtype)
    assert got == want > 4096 * 3 * 1040 * np.dtype(spec.dtype).itemsize


# ---------------------------------------------------------------- the host build of the kernels

HOST_BUILD_MISSING = toolchain_missing()
needs_host_build = pytest.mark.skipif(
    HOST_BUILD_MISSING is not None, reason=f"no host build of the kernels: {HOST_BUILD_MISSING}"
)


@needs_host_build
def test_host_built_uniforms_are_rngs():
    """rng.cu's uniforms kernel, built for the host, equals rng.uniforms bit for bit (the
    Philox words are integer arithmetic, the uniforms exact)."""
    hk = host_build.build()
    for seed, r0, c0 in [(0, 0, 0), (2**64 - 1, 2**32 - 40, 7)]:
        u1, u2 = hk.uniforms(seed, 1, 7, r0, 40, c0, 33)
        w1, w2 = rng.uniforms(
            seed, 1, 7, np.arange(r0, r0 + 40)[:, None], np.arange(c0, c0 + 33)[None, :]
        )
        assert np.array_equal(u1.view(np.uint64), w1.view(np.uint64))
        assert np.array_equal(u2.view(np.uint64), w2.view(np.uint64))


@needs_host_build
@pytest.mark.parametrize("alpha", [2.0, 1.5, 1.0, 0.5, 0.2])
@pytest.mark.slow
def test_host_built_draws_keep_the_contract(alpha):
    """rng.cu with CUDA's own tan/log/exp (libdevice) on the block of test_gpu.py: float32
    bit-identical to NumPy, float64 within tests/_gpu_contract.py's ulp bounds, and the same
    whichever model of the hardware's approximate reciprocal (the Newton steps absorb it), so
    the device should compute exactly these values."""
    seed, layer, n = DRAW_BLOCK["seed"], DRAW_BLOCK["layer"], DRAW_BLOCK["n"]
    hw, exact = host_build.build("hw"), host_build.build("exact")
    blocks = ((rng.STREAMS["weight"], n), (rng.STREAMS["bias"], 1))  # [Z | ζ], as the GEMM's
    want = np.hstack([rng.stable_block(seed, s, layer, 0, n, 0, c, alpha) for s, c in blocks])
    for dtype in (np.float64, np.float32):
        got = np.hstack(
            [hw.fill_stable(seed, s, layer, 0, n, 0, c, alpha, dtype) for s, c in blocks]
        )
        assert check_draws(got, want, alpha, dtype) is None
        other = [exact.fill_stable(seed, s, layer, 0, n, 0, c, alpha, dtype) for s, c in blocks]
        assert np.array_equal(got, np.hstack(other), equal_nan=True)


# ---------------------------------------------------------------- overflow, underflow, order


@pytest.mark.parametrize(
    ("act", "sigma_w", "dtype", "want"),
    [
        ("relu", 1e3, "float32", "overflow"),
        ("relu", 1e30, "float64", "overflow"),
        ("tanh", 1e5, "float32", "underflow"),
        ("erf", 1e5, "float32", "underflow"),
        ("tanh", 1e10, "float64", "underflow"),
        ("tanh", 0.0, "float32", "ordered"),
        ("relu", 0.0, "float64", "ordered"),
        ("tanh", 1.5, "float32", "finite"),
    ],
)
def test_overflow_and_underflow_are_flagged_never_ordered(act, sigma_w, dtype, want):
    """Overflow (nonfinite_layer) and a tangent lost to underflow of φ' (underflow_layer) give
    λ = NaN, never −∞ (ordered); σ_w = 0 gives λ = −∞ with no flag. The GPU loop on the
    emulated kernels flags the same points at the same layers and gives the same NaN / −∞."""
    kw = {"depth": 8, "record_layers": [4, 8], "probes": Probes(pair=PairProbe()), "dtype": dtype}
    groups = [(act, np.array([sigma_w, 1.0]), np.array([0.3, 0.3]))]  # point 1: a plain one
    (ref,) = propagate_network(32, 2.0, 3, groups, **kw)
    (emu,) = propagate_gpu(32, 2.0, 3, groups, ops=NumpyOps(), **kw)
    for res in (ref, emu):
        lam = res["lyapunov"][0, -1]
        nonfinite, underflow = res["nonfinite_layer"][0], res["underflow_layer"][0]
        if want == "overflow":
            assert nonfinite > 0 and np.isnan(lam), (nonfinite, lam)
        elif want == "underflow":
            assert underflow > 0 and nonfinite == 0 and np.isnan(lam), (underflow, lam)
        elif want == "ordered":
            assert lam == -np.inf and nonfinite == 0 and underflow == 0
        else:
            assert np.isfinite(lam) and nonfinite == 0 and underflow == 0
        assert np.isfinite(res["lyapunov"][1]).all() and res["underflow_layer"][1] == 0
    for k in ("nonfinite_layer", "underflow_layer"):
        np.testing.assert_array_equal(emu[k], ref[k], err_msg=k)
    np.testing.assert_array_equal(np.isnan(emu["lyapunov"]), np.isnan(ref["lyapunov"]))
    np.testing.assert_array_equal(np.isneginf(emu["lyapunov"]), np.isneginf(ref["lyapunov"]))


def test_summary_counts_ordered_overflowed_and_saturated_networks():
    """The propagation summary names each kind with its count: −∞ (ordered), overflow
    (nonfinite_layer > 0), saturation (underflow_layer > 0); −1 (not computed) is none."""
    import xarray as xr

    from pipeline.experiments.propagation.summary import flag_notes

    lam = xr.DataArray([-np.inf, -np.inf, np.nan, np.nan, np.nan, 0.1, -0.2], dims="p")
    ds = xr.Dataset(
        {
            "nonfinite_layer": ("p", [0, 0, 3, 0, 0, 0, -1]),
            "underflow_layer": ("p", [0, 0, 0, 2, 5, 0, -1]),
        }
    )
    notes = flag_notes(ds, lam)
    assert len(notes) == 3
    assert notes[0].startswith("2 of 7 networks have λ_L = −∞") and "ordered" in notes[0]
    assert notes[1].startswith("1 of 7 networks overflowed") and "never" not in notes[1]
    assert notes[2].startswith("2 of 7 networks saturated")
    assert flag_notes(ds.drop_vars("underflow_layer"), lam)[-1].startswith("1 of 7 networks over")
