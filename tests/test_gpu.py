"""The CuPy backend against the NumPy reference (the same function on every backend).

Tests marked ``gpu`` need CuPy and a CUDA device and skip with the reason otherwise. The
backend seam and the multi-GPU cluster's pinning are tested without a GPU.
"""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from _gpu_contract import DRAW_BLOCK, check_draws

from pipeline import rng
from pipeline.experiments.propagation.probes import PairProbe, Probes
from pipeline.experiments.propagation.reference import propagate_network as propagate_numpy
from pipeline.gpu.backend import (
    backend_info,
    cupy_unavailable_reason,
    numba_unavailable_reason,
    resolve_backend,
)

WHY_NO_GPU = cupy_unavailable_reason()
HOST = "numba" if numba_unavailable_reason() is None else "numpy"  # auto without a GPU
needs_gpu = pytest.mark.skipif(WHY_NO_GPU is not None, reason=f"no GPU backend: {WHY_NO_GPU}")


# ---------------------------------------------------------------- without a GPU


def test_backend_seam():
    assert resolve_backend("numpy") == "numpy"
    assert resolve_backend("auto") == (HOST if WHY_NO_GPU else "cupy")
    with pytest.raises(ValueError, match="allowed: auto, numpy, numba, cupy"):
        resolve_backend("jax")
    info = backend_info("numpy")
    assert info["backend"] == "numpy" and "numpy_version" in info


@pytest.mark.skipif(WHY_NO_GPU is None, reason="a GPU backend is available here")
def test_cupy_unavailable_is_a_clear_error():
    with pytest.raises(ValueError, match="'cupy' is unavailable here: .*(CuPy|device)"):
        resolve_backend("cupy")


class _FakeCupy(types.ModuleType):
    """A CuPy whose device exists but whose CUDA libraries fail as ``fail`` says."""

    float32 = np.float32
    int32 = np.int32

    def __init__(self, fail: str) -> None:
        super().__init__("cupy")
        self.fail = fail
        runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)
        self.cuda = types.SimpleNamespace(runtime=runtime)

    def arange(self, n, dtype=None):
        return np.arange(n, dtype=dtype)

    def asnumpy(self, a):
        return np.asarray(a)

    def RawKernel(self, source, name):  # noqa: N802 (CuPy's name)
        if self.fail == "nvrtc":
            raise RuntimeError("libnvrtc.so.12: cannot open shared object file\nmore detail")

        def launch(grid, block, args):
            x, _ = args
            x[:] = 2 * x + 1

        return launch

    def __getattr__(self, name):
        raise AttributeError(name)


class _BadGemm(np.ndarray):
    def __matmul__(self, other):
        raise RuntimeError("libcublasLt.so.12: cannot open shared object file")


@pytest.mark.parametrize(("fail", "why"), [("nvrtc", "libnvrtc.so.12"), ("cublas", "libcublasLt")])
def test_broken_cuda_stack_falls_back_with_one_line(monkeypatch, caplog, fail, why):
    """CuPy imports and sees a device, but NVRTC (or cuBLAS) is missing: ``auto`` is numpy with
    one warning line naming the library, ``cupy`` is a one-line error, the store's provenance
    says why."""
    from pipeline.gpu import backend

    fake = _FakeCupy(fail)
    if fail == "cublas":
        fake.arange = lambda n, dtype=None: np.arange(n, dtype=dtype).view(_BadGemm)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    backend.cupy_unavailable_reason.cache_clear()
    backend._say_fallback.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="pipeline.gpu"):
            assert resolve_backend("auto") == HOST
            assert resolve_backend("auto") == HOST  # probed and said once per process
        lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.gpu"]
        assert len(lines) == 1 and why in lines[0] and "\n" not in lines[0], lines
        with pytest.raises(ValueError, match=f"'cupy' is unavailable here: .*{why}") as e:
            resolve_backend("cupy")
        assert "\n" not in str(e.value)
        assert why in backend_info("numpy")["cupy_unavailable"]
    finally:
        backend.cupy_unavailable_reason.cache_clear()
        backend._say_fallback.cache_clear()


def test_working_fake_stack_passes_the_probe(monkeypatch):
    """The probe checks numbers, not only that calls return: the fake above, unbroken, passes
    (so the failures above are the libraries', not the probe's)."""
    from pipeline.gpu import backend

    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy("none"))
    backend.cupy_unavailable_reason.cache_clear()
    try:
        assert backend.cupy_unavailable_reason() is None
    finally:
        backend.cupy_unavailable_reason.cache_clear()


def test_cuda_libraries_load_and_nvrtc_compiles_without_a_device(tmp_path):
    """With the gpu-cuda12 / gpu-cuda13 extra installed: NVRTC and cuBLAS load from NVIDIA's
    wheels (no device needed), and NVRTC compiles every kernel with the project's options into
    the kernel cache (a second call is a cache hit)."""
    pathfinder = pytest.importorskip(
        "cuda.pathfinder", reason="the gpu-cuda12/gpu-cuda13 extra is not installed here"
    )
    pytest.importorskip("cupy", reason="CuPy is not installed here")
    from pipeline.experiments.trainability.gpu import entry_defines
    from pipeline.gpu.kernels import compile_to_cache

    for lib in ("nvrtc", "cublas", "cublasLt"):
        assert Path(pathfinder.load_nvidia_dynamic_lib(lib).abs_path).is_file(), lib
    built = [
        compile_to_cache("rng.cu", 90, cache_dir=str(tmp_path)),
        compile_to_cache("propagate.cu", 90, cache_dir=str(tmp_path)),
        compile_to_cache(
            "train.cu", 90, entry_defines("ps_train_f64_n8_d2"), cache_dir=str(tmp_path)
        ),
    ]
    for path in built:
        assert path.suffix == ".cubin" and path.stat().st_size > 1000
    assert b"ps_train_f64_n8_d2" in built[2].read_bytes()
    assert b"ps_train_f32_n8_d2" not in built[2].read_bytes()  # one entry point per module
    mtime = built[0].stat().st_mtime_ns
    assert compile_to_cache("rng.cu", 90, cache_dir=str(tmp_path)) == built[0]
    assert built[0].stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_gpu_cluster_pins_one_device_per_worker():
    """One single-threaded worker per listed device, each seeing only its device."""
    from distributed import Client

    from pipeline.run.clients import gpu_local_cluster

    with (
        gpu_local_cluster(["0", "1"], env={"CUPY_CACHE_DIR": "/tmp/x"}) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=60)
        seen = client.run(lambda: __import__("os").environ["CUDA_VISIBLE_DEVICES"])
        assert sorted(seen.values()) == ["0", "1"]
        assert set(client.nthreads().values()) == {1}
        cache = client.run(lambda: __import__("os").environ["CUPY_CACHE_DIR"])
        assert set(cache.values()) == {"/tmp/x"}
    with pytest.raises(ValueError, match="no visible GPU"):
        gpu_local_cluster([])


# ---------------------------------------------------------------- on a GPU


@pytest.fixture(scope="module")
def ops():
    if WHY_NO_GPU is not None:
        pytest.skip(f"no GPU backend: {WHY_NO_GPU}")
    from pipeline.experiments.propagation.ops import CupyOps

    return CupyOps()


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("seed", [0, 12345, 2**40 + 3, 2**64 - 1])
def test_device_uniforms_bit_identical(ops, seed):
    cp = ops.xp
    for stream, layer, r0, nr, c0, nc in [(0, 1, 0, 300, 0, 301), (1, 7, 2**32 - 40, 40, 5, 3)]:
        u1, u2 = ops.uniforms(seed, stream, layer, r0, nr, c0, nc)
        rows = np.arange(r0, r0 + nr, dtype=np.uint64)[:, None]
        cols = np.arange(c0, c0 + nc, dtype=np.uint64)[None, :]
        w1, w2 = rng.uniforms(seed, stream, layer, rows, cols)
        assert np.array_equal(cp.asnumpy(u1).view(np.uint64), w1.view(np.uint64))
        assert np.array_equal(cp.asnumpy(u2).view(np.uint64), w2.view(np.uint64))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("alpha", [2.0, 1.5, 1.0, 0.5, 0.2])
def test_device_stable_draws_keep_the_contract(ops, alpha):
    """float32 draws bit-identical; float64 within the ulp bounds of
    tests/_gpu_contract.py, which the host build of rng.cu meets on this very block
    (test_kernels_compile.py::test_host_built_draws_keep_the_contract)."""
    cp = ops.xp
    seed, layer, n = DRAW_BLOCK["seed"], DRAW_BLOCK["layer"], DRAW_BLOCK["n"]
    k = n + 16
    want = np.hstack(
        [
            rng.stable_block(seed, rng.STREAMS["weight"], layer, 0, n, 0, n, alpha),
            rng.stable_block(seed, rng.STREAMS["bias"], layer, 0, n, 0, 1, alpha),
        ]
    )
    for dtype in (np.float64, np.float32):
        z = cp.zeros((n, k), dtype)
        ops.fill_stable(z, 0, k, seed, rng.STREAMS["weight"], layer, 0, n, 0, n, alpha)
        ops.fill_stable(z, n, k, seed, rng.STREAMS["bias"], layer, 0, n, 0, 1, alpha)
        got = cp.asnumpy(z)
        assert check_draws(np.ascontiguousarray(got[:, : n + 1]), want, alpha, dtype) is None
        assert not got[:, n + 1 :].any()  # padding untouched


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_step_is_its_emulation_bit_for_bit(ops, dtype):
    """propagate.cu against ops.NumpyOps on the same inputs: with φ = identity (no math
    library involved) the sums (kernel order, --fmad=false) and the next inputs are
    bit-identical, including a lost tangent (NaN) and a vanished one (0)."""
    from pipeline.experiments.propagation.ops import NumpyOps

    cp = ops.xp
    g = np.random.default_rng(1)
    p, r, n, k = 37, 5, 700, 716
    h = g.standard_normal((p * r, n)).astype(dtype)
    h[2 * r + 2] = 0  # point 2: the tangent vanished
    h[3 * r + 2, 5] = np.inf  # point 3: the tangent is lost
    ws = g.uniform(0.1, 2.0, p).astype(dtype)
    want = {
        "x": np.zeros((p * r, k), dtype),
        "stats": np.zeros((p, 5)),
        "bad": np.zeros(p, np.int32),
    }
    NumpyOps().layer_step(h, want["x"], r, True, ws, "linear", want["stats"], want["bad"])
    x, stats, bad = cp.zeros((p * r, k), dtype), cp.zeros((p, 5)), cp.zeros(p, cp.int32)
    ops.layer_step(cp.asarray(h), x, r, True, cp.asarray(ws), "linear", stats, bad)
    for name, got in (("x", x), ("stats", stats), ("bad", bad)):
        np.testing.assert_array_equal(cp.asnumpy(got), want[name], err_msg=name)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize(("act", "alpha"), [("tanh", 2.0), ("relu", 2.0), ("erf", 1.5)])
def test_q_and_lyap_growth_match_numpy_float64(ops, act, alpha):
    from pipeline.experiments.propagation.gpu import propagate_network as propagate_cupy

    sw, sb = np.linspace(0.8, 2.5, 12), np.linspace(0.0, 0.6, 12)
    kw = {"depth": 12, "record_layers": range(1, 13), "probes": Probes(pair=PairProbe())}
    (ref,) = propagate_numpy(256, alpha, 5, [(act, sw, sb)], dtype="float64", **kw)
    (got,) = propagate_cupy(256, alpha, 5, [(act, sw, sb)], dtype="float64", ops=ops, **kw)
    np.testing.assert_array_equal(got["nonfinite_layer"], ref["nonfinite_layer"])
    # the GEMM's summation order is cuBLAS's, not OpenBLAS's: the emulated loop with another
    # blocking (points_per_tile=5) differs from NumPy here by <= 1.6e-13 relative
    for name in ("q", "lyap_growth", "c", "dist"):
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.gpu
@needs_gpu
def test_lyapunov_class_agrees_on_64x64_grid_float32(ops):
    from pipeline.experiments.propagation.gpu import propagate_network as propagate_cupy

    sw = np.repeat(np.linspace(0.5, 4.0, 64), 64)
    sb = np.tile(np.linspace(0.0, 1.5, 64), 64)
    kw = {"depth": 30, "record_layers": [30], "probes": Probes(pair=PairProbe())}
    (ref,) = propagate_numpy(256, 2.0, 2, [("tanh", sw, sb)], dtype="float32", threads=8, **kw)
    (got,) = propagate_cupy(256, 2.0, 2, [("tanh", sw, sb)], dtype="float32", ops=ops, **kw)
    agree = np.mean(np.sign(got["lyapunov"][:, -1]) == np.sign(ref["lyapunov"][:, -1]))
    assert agree >= 0.995, f"ordered/chaotic class agrees at {agree:.4f} of 4096 points"


@pytest.mark.gpu
@needs_gpu
def test_gpu_results_do_not_depend_on_chunking(ops):
    """Same tile shape ⇒ a point's numbers are bit-identical whatever its neighbours."""
    from pipeline.experiments.propagation.gpu import propagate_network as propagate_cupy

    sw, sb = np.linspace(0.5, 3.0, 40), np.linspace(0.0, 1.0, 40)
    kw = {"depth": 6, "record_layers": [3, 6], "probes": Probes(pair=PairProbe())}
    (full,) = propagate_cupy(128, 1.7, 1, [("tanh", sw, sb)], points_per_tile=16, ops=ops, **kw)
    (part,) = propagate_cupy(
        128, 1.7, 1, [("tanh", sw[17:29], sb[17:29])], points_per_tile=16, ops=ops, **kw
    )
    for k in part:
        np.testing.assert_array_equal(part[k], full[k][17:29], err_msg=k)


@pytest.mark.gpu
@needs_gpu
def test_backend_info_on_gpu():
    assert resolve_backend("cupy") == "cupy"
    info = backend_info("cupy")
    assert info["device"] and info["cupy_version"] and info["tf32"] in (True, False)


def test_kernel_cache_compiles_once_for_all_workers_of_a_node(monkeypatch, tmp_path):
    """Four workers asking for the same kernel at once: one compiles (under the node's file
    lock), the others wait and load its binary; another option set is another binary."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.gpu import kernels

    calls = []
    lock = threading.Lock()

    class FakeNvrtc:
        class NVRTCError(Exception):
            pass

        @staticmethod
        def getVersion():  # noqa: N802 (CuPy's names)
            return (12, 9)

        @staticmethod
        def getSupportedArchs():  # noqa: N802
            return (80, 90)

        @staticmethod
        def createProgram(src, name, headers, include_names):  # noqa: N802
            return name

        @staticmethod
        def compileProgram(prog, options):  # noqa: N802
            with lock:
                calls.append(tuple(options))
            time.sleep(0.3)  # long enough for the other workers to arrive

        @staticmethod
        def getCUBIN(prog):  # noqa: N802
            return b"cubin of " + prog.encode()

        @staticmethod
        def destroyProgram(prog):  # noqa: N802
            pass

    monkeypatch.setattr(kernels, "_nvrtc", lambda: FakeNvrtc)
    with ThreadPoolExecutor(4) as pool:  # flock excludes separate opens, threads included
        paths = list(
            pool.map(lambda _: kernels.compile_to_cache("rng.cu", 90, (), str(tmp_path)), range(4))
        )
    assert len(set(paths)) == 1 and len(calls) == 1
    assert paths[0].read_bytes() == b"cubin of rng.cu" and paths[0].suffix == ".cubin"
    assert "--fmad=false" in calls[0] and "-ftz=false" in calls[0]
    assert "--gpu-architecture=sm_90" in calls[0]
    other = kernels.compile_to_cache("rng.cu", 90, ("X=1",), str(tmp_path))
    assert other != paths[0] and len(calls) == 2 and "-DX=1" in calls[1]
    ptx = kernels._target(100)  # a device newer than this NVRTC: PTX for the newest it knows
    assert ptx == ("compute_90", "ptx")
