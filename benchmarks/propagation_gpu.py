"""Propagation throughput of the CuPy backend as a fraction of cuBLAS GEMM throughput.

One Dask worker drives one GPU, so this measures one task on one device: the GPU
``propagate_network`` (device Philox + CMS for [Z | ζ], one cuBLAS GEMM per tile, the fused
elementwise kernel, reductions) against ``cupy.matmul`` of the same shape
((rows × N) @ (N × N), same dtype, TF32 as configured) timed in the same run, interleaved,
median of repeats, with CUDA events around device-synchronised work. The useful FLOPs are the
GEMMs, 2·N²·rows per layer; everything else is overhead the fraction charges for.

One command on a GPU machine runs the GPU tests, then the benchmark, and writes the
``propagation-gpu`` section of BENCHMARKS.md (and, when ``$OUT`` is set, the table and the
test log under it)::

    python benchmarks/propagation_gpu.py             # tests + full table + BENCHMARKS.md
    python benchmarks/propagation_gpu.py --quick     # smaller, prints only, no tests
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _report import interleaved, run_tests, write_section  # noqa: E402  (benchmarks/ is on sys.path)

from pipeline.experiments.propagation.probes import PairProbe, Probes
from pipeline.gpu.backend import backend_info, resolve_backend

SECTION = "propagation-gpu"


def one_case(n: int, points: int, dtype: str, depth: int, repeats: int) -> dict:
    import cupy as cp

    from pipeline.experiments.propagation.gpu import propagate_network
    from pipeline.experiments.propagation.ops import CupyOps

    ops = CupyOps()
    sw = np.linspace(0.5, 3.0, points)
    sb = np.full(points, 0.3)
    probes = Probes(pair=PairProbe())
    rows = 3 * points
    flops = 2.0 * n * n * rows * depth
    x = cp.random.standard_normal((rows, n), dtype=np.float32).astype(dtype)
    zt = cp.random.standard_normal((n, n), dtype=np.float32).astype(dtype).T
    out = cp.empty((rows, n), dtype)

    def timed(fn) -> float:
        cp.cuda.Device().synchronize()
        t = time.perf_counter()
        fn()
        cp.cuda.Device().synchronize()
        return time.perf_counter() - t

    def e2e() -> None:
        propagate_network(
            n,
            2.0,
            0,
            [("tanh", sw, sb)],
            depth=depth,
            record_layers=[depth],
            probes=probes,
            dtype=dtype,
            ops=ops,
        )

    def gemm() -> None:
        for _ in range(depth):
            cp.matmul(x, zt, out=out)

    timed(gemm)  # warm up: cuBLAS handles, kernel compilation
    propagate_network(
        n,
        2.0,
        0,
        [("tanh", sw[:8], sb[:8])],
        depth=1,
        record_layers=[1],
        probes=probes,
        dtype=dtype,
        ops=ops,
    )
    t_ref, t_e2e, ratios = interleaved(lambda: timed(gemm), lambda: timed(e2e), repeats)
    return {
        "N": n,
        "points": points,
        "rows": rows,
        "dtype": dtype,
        "depth": depth,
        "gemm_tflops": flops / statistics.median(t_ref) / 1e12,
        "e2e_tflops": flops / statistics.median(t_e2e) / 1e12,
        "fraction": statistics.median(ratios),
    }


def batch_rank_cost(n: int, m: int, repeats: int) -> dict:
    """Time of the batch-probe observables (rank, participation ratio: one SVD per point, which
    CuPy runs as one cuSOLVER call per point for m × N beyond 32 × 32) at one recorded layer
    of a full GPU tile, against that tile's GEMM of the same layer. Their ratio says whether the
    per-point loop matters: a sweep that records every layer pays it every layer."""
    import cupy as cp

    from pipeline.experiments.propagation.gpu import GPU_TILE_ROWS
    from pipeline.numerics.observables import rank_and_participation

    points = GPU_TILE_ROWS // m
    rows = points * m
    xb = cp.random.standard_normal((points, m, n), dtype=np.float32)
    x = cp.random.standard_normal((rows, n), dtype=np.float32)
    zt = cp.random.standard_normal((n, n), dtype=np.float32).T
    out = cp.empty((rows, n), np.float32)

    def timed(fn) -> float:
        cp.cuda.Device().synchronize()
        t = time.perf_counter()
        fn()
        cp.cuda.Device().synchronize()
        return time.perf_counter() - t

    def svd() -> None:
        rank_and_participation(xb.astype(np.float64), np.dtype(np.float32), cp)

    def gemm() -> None:
        cp.matmul(x, zt, out=out)

    timed(svd), timed(gemm)  # warm up
    t_gemm, t_svd, _ = interleaved(lambda: timed(gemm), lambda: timed(svd), repeats)
    return {
        "N": n,
        "m": m,
        "points": points,
        "svd_s": statistics.median(t_svd),
        "gemm_s": statistics.median(t_gemm),
        "ratio": statistics.median(t_svd) / statistics.median(t_gemm),
    }


def free_device_pool() -> None:
    import cupy as cp

    cp.get_default_memory_pool().free_all_blocks()


def table(results: list[dict], info: dict) -> str:
    lines = [
        f"GPU backend on **{info['device']}** (CuPy {info['cupy_version']}, CUDA runtime "
        f"{info['cuda_runtime_version']}, TF32 {'on' if info['tf32'] else 'off'}); "
        "fraction = cuBLAS GEMM time / end-to-end propagation time for the same FLOPs, "
        "pair probe, tanh, α = 2, median of repeats.",
        "",
        "| N | dtype | points per network | probe rows | depth | cuBLAS GEMM TFLOP/s | "
        "propagation TFLOP/s | fraction |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['N']} | {r['dtype']} | {r['points']} | {r['rows']} | {r['depth']} | "
            f"{r['gemm_tflops']:.2f} | {r['e2e_tflops']:.2f} | **{r['fraction']:.2f}** |"
        )
    return "\n".join(lines)


def batch_table(results: list[dict]) -> str:
    lines = [
        "Batch probe (eff_rank, participation_ratio) at one recorded layer of a full tile "
        "(float32), against the same tile's layer GEMM:",
        "",
        "| N | m | points per tile | SVDs (s) | layer GEMM (s) | SVDs / GEMM |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['N']} | {r['m']} | {r['points']} | {r['svd_s']:.4f} | {r['gemm_s']:.5f} | "
            f"**{r['ratio']:.1f}** |"
        )
    return "\n".join(lines)


def run_gpu_tests(out_dir: Path | None) -> int:
    return run_tests(
        ["-q", "-rs", "tests/test_gpu.py", "tests/test_kernels_compile.py"],
        out_dir,
        "gpu_tests.log",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, print only, no tests")
    ap.add_argument("--no-tests", action="store_true", help="skip the GPU test run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    resolve_backend("cupy")  # a clear error when there is no GPU
    info = backend_info("cupy")
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    rc = 0
    if not (args.quick or args.no_tests):
        rc = run_gpu_tests(out_dir)
    if args.quick:
        cases, depth = [(1024, 1024, "float32")], 4
    else:
        # 64 x 64 sigma planes (4096 points, 12288 probe rows), as a default chunk
        cases = [(n, 4096, dt) for dt in ("float32", "float64") for n in (1024, 4096)]
        depth = 20
    results = []
    for n, p, dt in cases:
        r = one_case(n, p, dt, depth, args.repeats)
        free_device_pool()
        print(
            f"N={n} {dt} points={p}: GEMM {r['gemm_tflops']:.2f} TFLOP/s, propagation "
            f"{r['e2e_tflops']:.2f} TFLOP/s, fraction {r['fraction']:.2f}",
            flush=True,
        )
        results.append(r)
    batch = [batch_rank_cost(n, m, args.repeats) for n, m in ((1024, 32), (2048, 64))]
    for r in batch:
        print(f"batch probe N={r['N']} m={r['m']}: SVDs / GEMM {r['ratio']:.1f}", flush=True)
    free_device_pool()
    text = table(results, info) + "\n\n" + batch_table(batch)
    print(text)
    if out_dir is not None:
        (out_dir / "propagation_gpu.md").write_text(text + "\n")
    if not args.quick:
        write_section(
            SECTION,
            "## Propagation, CuPy backend (GPU)\n\n"
            f"Command: `python benchmarks/propagation_gpu.py`. Date: {time.strftime('%Y-%m-%d')}. "
            f"Depth {depth}, observables at the last layer; the reference GEMM is "
            "`cupy.matmul` (cuBLAS) of the same (rows × N) @ (N × N) shape and dtype.\n\n" + text,
        )
    sys.exit(rc)


if __name__ == "__main__":
    main()
