"""Trainability throughput: points × steps per second (width 16, depth 2, tanh, full dataset).

CPU (default): one Dask worker runs one task on one core, so the NumPy backend
(``pipeline.experiments.trainability.reference.train_points``, one tile of 512 points, one
BLAS thread) is measured against
``numpy.matmul`` on the same batched shapes the reference multiplies each step (forward
(1,B,n)@(P,n,n) and (P,B,n)@(P,n,1); backward (P,n,B)@(P,B,1), (P,B,1)@(P,1,n),
(1,n,B)@(P,B,n)), same dtype, one thread, timed in the same run, interleaved, median of
repeats. Fraction = matmul time / training time for the same steps.

GPU (``--gpu``): runs tests/test_gpu_train.py, then times ``pipeline.experiments.trainability.gpu
.train_points`` on the issue's 256 × 256 plane (65 536 points, 100 steps) end to end (launch,
copies, scoring) and reports it as a fraction of the device's FMA peak for the dtype, and
against the NumPy backend (one core, measured in the same run). Peak = SM count × clock
(``ClockRate``, the boost clock) × FMA per cycle per SM, from the compute capability:
FP32 64 (sm_70, sm_80) or 128 (sm_86+, sm_90, sm_100); FP64 32 (sm_70, sm_80), 64 (sm_90,
sm_100) or 2 (consumer parts: sm_86, sm_89, sm_120). Useful work = the reference's GEMM
multiply-adds, B·(3·params − n²) per point and step (``useful_fma_per_point_step``).

    python benchmarks/trainability.py            # CPU table, rewrites its BENCHMARKS.md section
    python benchmarks/trainability.py --quick    # smaller, prints only
    python benchmarks/trainability.py --gpu      # GPU tests + table, BENCHMARKS.md and $OUT
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _report import cpu_name, interleaved, machine_line, run_tests, write_section  # noqa: E402  (benchmarks/ on sys.path)
from threadpoolctl import threadpool_limits

from pipeline.experiments.trainability.gpu import useful_fma_per_point_step
from pipeline.experiments.trainability.reference import TILE_POINTS, make_problem, train_points

WIDTH, DEPTH, ACT = 16, 2, "tanh"

FMA_PER_CLOCK_PER_SM = {  # (major, minor) -> (float32, float64); assumption, see docstring
    (7, 0): (64, 32),
    (8, 0): (64, 32),
    (8, 6): (128, 2),
    (8, 7): (128, 2),
    (8, 9): (128, 2),
    (9, 0): (128, 64),
    (10, 0): (128, 64),
    (12, 0): (128, 2),
}


def plane(points: int) -> tuple[np.ndarray, np.ndarray]:
    """(lr_in, lr_out) of a square log10 grid over [−3, 6]² with about ``points`` points."""
    side = max(1, round(points**0.5))
    g = np.linspace(-3.0, 6.0, side)
    a, b = np.meshgrid(g, g, indexing="ij")
    return 10.0 ** a.ravel()[:points], 10.0 ** b.ravel()[:points]


def numpy_case(dtype: str, points: int, steps: int, repeats: int) -> dict:
    pr = make_problem(WIDTH, DEPTH, 0, 0.0, "full")
    batch, n = pr.x.shape
    lr_in, lr_out = plane(points)
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((1, batch, n)).astype(dtype)
    w1 = rng.standard_normal((points, n, n)).astype(dtype)
    w2 = rng.standard_normal((points, n, 1)).astype(dtype)
    a1 = rng.standard_normal((points, batch, n)).astype(dtype)
    dz = rng.standard_normal((points, batch, 1)).astype(dtype)
    o_bn = np.empty((points, batch, n), dtype)
    o_b1 = np.empty((points, batch, 1), dtype)
    o_n1 = np.empty((points, n, 1), dtype)
    o_nn = np.empty((points, n, n), dtype)
    a1t, x1t, w2t = np.swapaxes(a1, 1, 2), np.swapaxes(x1, 1, 2), np.swapaxes(w2, 1, 2)

    def gemm() -> float:
        t = time.perf_counter()
        for _ in range(steps):
            np.matmul(x1, w1, out=o_bn)
            np.matmul(a1, w2, out=o_b1)
            np.matmul(a1t, dz, out=o_n1)
            np.matmul(dz, w2t, out=o_bn)
            np.matmul(x1t, a1, out=o_nn)
        return time.perf_counter() - t

    def e2e() -> float:
        t = time.perf_counter()
        train_points(pr, ACT, lr_in, lr_out, steps=steps, dtype=dtype, points_per_tile=TILE_POINTS)
        return time.perf_counter() - t

    with threadpool_limits(limits=1, user_api="blas"):
        gemm()
        train_points(pr, ACT, lr_in[:8], lr_out[:8], steps=2, dtype=dtype)
        t_ref, t_e2e, ratios = interleaved(gemm, e2e, repeats)
    work = points * steps
    fma = useful_fma_per_point_step(WIDTH, DEPTH, batch)
    return {
        "dtype": dtype,
        "points": points,
        "steps": steps,
        "batch": batch,
        "gemm_rate": work / statistics.median(t_ref),
        "e2e_rate": work / statistics.median(t_e2e),
        "gemm_gflops": 2 * fma * work / statistics.median(t_ref) / 1e9,
        "e2e_gflops": 2 * fma * work / statistics.median(t_e2e) / 1e9,
        "fraction": statistics.median(ratios),
    }


def cpu_table(results: list[dict]) -> str:
    lines = [
        "| dtype | points (one tile) | steps | batch | matmul points·steps/s | "
        "matmul GFLOP/s | training points·steps/s | training GFLOP/s | fraction |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['dtype']} | {r['points']} | {r['steps']} | {r['batch']} | "
            f"{r['gemm_rate']:.0f} | {r['gemm_gflops']:.2f} | {r['e2e_rate']:.0f} | "
            f"{r['e2e_gflops']:.2f} | **{r['fraction']:.2f}** |"
        )
    return "\n".join(lines)


def peak_fma_per_s(dtype: str) -> tuple[float | None, str]:
    """The current device's FMA/s peak for ``dtype`` and how it was computed."""
    import cupy as cp

    dev = cp.cuda.Device()
    cc = (int(dev.compute_capability[:-1]), int(dev.compute_capability[-1]))
    n_sm = int(dev.attributes["MultiProcessorCount"])
    try:
        khz = int(dev.attributes["ClockRate"])
    except Exception:  # attribute dropped by a newer CUDA: fall back to the properties
        khz = int(cp.cuda.runtime.getDeviceProperties(dev.id).get("clockRate", 0))
    per_sm = FMA_PER_CLOCK_PER_SM.get(cc) or FMA_PER_CLOCK_PER_SM.get((cc[0], 0))
    if per_sm is None or not khz:
        return None, f"sm_{cc[0]}{cc[1]}: no FMA/clock entry or clock"
    fma = per_sm[0 if dtype == "float32" else 1]
    how = f"{n_sm} SMs × {khz / 1e6:.3f} GHz × {fma} FMA/clock/SM (sm_{cc[0]}{cc[1]})"
    return n_sm * khz * 1e3 * fma, how


def gpu_case(dtype: str, points: int, steps: int, repeats: int, numpy_rate: float) -> dict:
    import cupy as cp

    from pipeline.experiments.trainability.gpu import train_points as train_gpu

    pr = make_problem(WIDTH, DEPTH, 0, 0.0, "full")
    lr_in, lr_out = plane(points)
    train_gpu(pr, ACT, lr_in[:8], lr_out[:8], steps=2, dtype=dtype)  # compile, warm up
    times = []
    for _ in range(repeats):
        cp.cuda.Device().synchronize()
        t = time.perf_counter()
        train_gpu(pr, ACT, lr_in, lr_out, steps=steps, dtype=dtype)
        times.append(time.perf_counter() - t)
    t = statistics.median(times)
    rate = points * steps / t
    peak, how = peak_fma_per_s(dtype)
    fma = useful_fma_per_point_step(WIDTH, DEPTH, pr.x.shape[0])
    return {
        "dtype": dtype,
        "points": points,
        "steps": steps,
        "rate": rate,
        "tflops": 2 * fma * rate / 1e12,
        "fraction_peak": fma * rate / peak if peak else float("nan"),
        "peak_how": how,
        "numpy_rate": numpy_rate,
        "speedup_1core": rate / numpy_rate,
        "speedup_host": rate / (numpy_rate * (os.cpu_count() or 1)),
    }


def run_gpu_tests(out_dir: Path | None) -> int:
    return run_tests(["-q", "-m", "gpu", "tests/test_gpu_train.py"], out_dir, "test_gpu_train.log")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, print only")
    ap.add_argument("--gpu", action="store_true", help="GPU tests and table (needs CuPy)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    steps = 5 if args.quick else 100
    results = []
    for dt in ("float64", "float32"):
        r = numpy_case(dt, TILE_POINTS, steps, args.repeats)
        results.append(r)
        print(
            f"numpy {dt}: matmul {r['gemm_rate']:.0f} points·steps/s "
            f"({r['gemm_gflops']:.2f} GFLOP/s), training {r['e2e_rate']:.0f} "
            f"({r['e2e_gflops']:.2f} GFLOP/s), fraction {r['fraction']:.2f}",
            flush=True,
        )
    if args.gpu:
        from pipeline.gpu.backend import backend_info, resolve_backend

        out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        rc = run_gpu_tests(out_dir)
        info = backend_info(resolve_backend("cupy"))
        g = [gpu_case(r["dtype"], 256 * 256, 100, args.repeats, r["e2e_rate"]) for r in results]
        lines = [
            "## Trainability, GPU backend (kernels/train.cu)",
            "",
            f"Device: **{info['device']}** (CuPy {info['cupy_version']}, CUDA runtime "
            f"{info['cuda_runtime_version']}); host {cpu_name()}, {os.cpu_count()} cores. "
            f"Date: {time.strftime('%Y-%m-%d')}. GPU tests (tests/test_gpu_train.py -m gpu): "
            f"exit {rc}.",
            "",
            "Command: `python benchmarks/trainability.py --gpu`. Width 16, depth 2, tanh, full "
            "dataset (batch 272), 256 × 256 log10 lr plane over [−3, 6]², 100 steps, end to "
            "end (copies, launch, scoring), median of repeats. Peak: " + g[0]["peak_how"] + ". "
            "The kernel is compiled with --fmad=false (pipeline/gpu/kernels.py: its emulation "
            "then pins its arithmetic), so a useful multiply-add costs a multiply and an add: "
            "0.5 of the FMA peak is the ceiling of this column.",
            "",
            "| dtype | points·steps/s | useful TFLOP/s | fraction of FMA peak | "
            "NumPy (1 core) points·steps/s | × 1 core | × whole host |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in g:
            lines.append(
                f"| {r['dtype']} | {r['rate']:.3g} | {r['tflops']:.2f} | "
                f"**{r['fraction_peak']:.3f}** | {r['numpy_rate']:.0f} | "
                f"{r['speedup_1core']:.0f} | {r['speedup_host']:.1f} |"
            )
        text = "\n".join(lines)
        print(text)
        if not args.quick:
            write_section("trainability-gpu", text)
        if out_dir is not None:
            (out_dir / "trainability_gpu.md").write_text(text + "\n")
        return
    if args.quick:
        return
    text = "\n".join(
        [
            "## Trainability, NumPy backend (CPU)",
            "",
            machine_line(),
            "",
            "Command: `python benchmarks/trainability.py`. Width 16, depth 2, tanh, full dataset "
            f"(batch = params = 272), one tile of {TILE_POINTS} points on a log10 lr grid over "
            f"[−3, 6]², {steps} steps, one core and one BLAS thread (a Dask worker's share). "
            "The matmul reference is `numpy.matmul` on the five batched shapes the reference "
            "multiplies per step (same dtype, preallocated outputs); FLOPs = 2 × the useful "
            "multiply-adds B·(3·params − n²) per point and step; fraction = matmul time / "
            f"training time, median of {args.repeats} interleaved repeats.",
            "",
            cpu_table(results),
            "",
            "What the fraction pays for besides the GEMMs: φ and φ′ (tanh) on (P, B, n), the "
            "elementwise residual and scaling passes, the weight updates, the loss reduction; "
            "the GEMMs themselves are tiny (n = 16) and batched, far from the BLAS peak.",
        ]
    )
    write_section("trainability-numpy", text)
    print("wrote BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
