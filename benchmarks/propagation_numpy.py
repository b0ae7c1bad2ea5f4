"""Propagation throughput of the NumPy backend as a fraction of this machine's matmul rate.

One Dask worker runs one task on one core (the local cluster starts one single-threaded
worker per core), so the benchmark measures exactly that: ``propagate_network`` with one
thread and one BLAS thread, against a one-thread ``numpy.matmul`` of the same shape
((rows × N) @ (N × N), same dtype) timed in the same run, interleaved, median of repeats.
The useful FLOPs are the GEMMs, 2·N²·rows per layer; everything else (drawing the α-stable
weight matrix, the elementwise pass, reductions) is overhead the fraction charges for.

    python benchmarks/propagation_numpy.py            # full table, rewrites BENCHMARKS.md
    python benchmarks/propagation_numpy.py --quick    # smaller, prints only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from _report import interleaved, machine_line, write_section  # noqa: E402  (benchmarks/ is on sys.path)
from threadpoolctl import threadpool_limits

from pipeline.experiments.propagation.probes import PairProbe, Probes
from pipeline.experiments.propagation.reference import propagate_network

SECTION = "propagation-numpy"


def one_case(n: int, points: int, dtype: str, depth: int, repeats: int) -> dict:
    sw = np.linspace(0.5, 3.0, points)
    sb = np.full(points, 0.3)
    probes = Probes(pair=PairProbe())
    rows = 3 * points
    flops = 2.0 * n * n * rows * depth
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, n)).astype(dtype)
    zt = rng.standard_normal((n, n)).astype(dtype).T
    out = np.empty((rows, n), dtype)

    def e2e() -> float:
        t = time.perf_counter()
        propagate_network(
            n,
            2.0,
            0,
            [("tanh", sw, sb)],
            depth=depth,
            record_layers=[depth],
            probes=probes,
            dtype=dtype,
            threads=1,
        )
        return time.perf_counter() - t

    def gemm() -> float:
        t = time.perf_counter()
        for _ in range(depth):
            np.matmul(x, zt, out=out)
        return time.perf_counter() - t

    with threadpool_limits(limits=1, user_api="blas"):
        gemm()  # warm up
        propagate_network(
            n,
            2.0,
            0,
            [("tanh", sw[:8], sb[:8])],
            depth=1,
            record_layers=[1],
            probes=probes,
            dtype=dtype,
        )
        t_ref, t_e2e, ratios = interleaved(gemm, e2e, repeats)
    return {
        "N": n,
        "points": points,
        "rows": rows,
        "dtype": dtype,
        "depth": depth,
        "gemm_gflops": flops / statistics.median(t_ref) / 1e9,
        "e2e_gflops": flops / statistics.median(t_e2e) / 1e9,
        "fraction": statistics.median(ratios),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| N | dtype | points per network | probe rows | matmul GFLOP/s (1 core) | "
        "propagation GFLOP/s (1 core) | fraction |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['N']} | {r['dtype']} | {r['points']} | {r['rows']} | "
            f"{r['gemm_gflops']:.1f} | {r['e2e_gflops']:.1f} | **{r['fraction']:.2f}** |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, print only")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.quick:
        cases = [(256, 1024, "float32"), (1024, 1024, "float32")]
        depth = 4
    else:
        cases = [
            (n, p, dt) for dt in ("float32", "float64") for n in (256, 1024) for p in (4096, 16384)
        ]
        depth = 20
    results = []
    for n, p, dt in cases:
        r = one_case(n, p, dt, depth, args.repeats)
        results.append(r)
        print(
            f"N={n:5d} {dt} points={p:6d}: matmul {r['gemm_gflops']:7.1f} GFLOP/s, "
            f"propagation {r['e2e_gflops']:7.1f} GFLOP/s, fraction {r['fraction']:.2f}",
            flush=True,
        )
    if args.quick:
        return
    text = "\n".join(
        [
            "## Propagation, NumPy backend (CPU)",
            "",
            machine_line(),
            "",
            f"Command: `python benchmarks/propagation_numpy.py`. tanh, α = 2, pair probe (3 rows "
            f"per point), depth {depth}, observables recorded at the last layer, one network "
            f"per chunk. Both columns are one core and one BLAS thread (a Dask worker's share); "
            f"fraction = matmul time / propagation time for the same GEMM FLOPs, median of "
            f"{args.repeats} interleaved repeats. The matmul reference is "
            "`numpy.matmul` of the same (rows × N) @ (N × N) shape and dtype.",
            "",
            table(results),
            "",
            "What the fraction pays for besides the GEMMs: drawing the N×N α-stable matrix and the "
            "bias vector every layer (Philox + CMS, O(N²) per layer, amortised over the rows), the "
            "elementwise pass (φ, φ′, tangent, σ_w pre-scaling; the bias rides in the GEMM as an "
            "extra column) and the per-row reductions. It grows "
            "with the points per network (more rows share one drawn matrix) and with N (GEMM work "
            "per element is 2N FLOPs, elementwise work is constant).",
        ]
    )
    write_section(SECTION, text)
    print("wrote BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
