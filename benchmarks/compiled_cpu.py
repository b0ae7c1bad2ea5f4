"""The compiled CPU backend (``numba``) against the NumPy reference and the peers, one run.

Trainability (width 16, depth 2, batch 272 = params, tanh, full dataset, one network, a
log10 lr grid over [−3, 6]²): ``reference.train_losses`` on ``numpy`` (one tile of all
points, one BLAS thread) and on ``numba`` with 1 thread and with every core; and, when JAX is
installed, the paper's kind of loop in JAX on the CPU (``jax_enable_x64``): the MSE of the
same mean-field MLP, ``jax.value_and_grad``, an update ``W_k −= lr_k ∇W_k`` per layer,
``jax.vmap`` over the points and ``jax.lax.scan`` over the steps, all under one ``jax.jit``
(written for this benchmark after the notebook's train step), on one XLA thread
(``XLA_FLAGS`` unless already set). Every contender is warmed up first (Numba
JIT or its cache load, XLA compilation), then timed interleaved, median of the repeats.

Propagation (erf, α = 2, pair probe: two inputs and the tangent, N = 100, one network, one
tile of 682 points, the default ``--depth`` 1000 layers, recorded at the last):
``reference.propagate_network`` against ``compiled.propagate_network`` (the same GEMMs and
draws; the compiled epilogue), one core each, float32 and float64. At N = 1024 the compiled
run (4096 points, 2 tiles, a few layers) against ``numpy.matmul`` of the same tiles on one
thread: fraction = matmul time / propagation time for the same GEMM FLOPs (it includes the
N × N weight draws of every layer, as the NumPy section's).

D'Inverno et al.'s network (dense, ``bias: projected``, the divergence probe with
``mean_last`` 10, erf, N = 100, the keyed draws, depth 1000): ``propagate_architecture`` on
``numpy`` against ``numba`` (the same GEMMs and draws, the compiled elementwise pass), one
core, one tile (1024 points) and four tiles (4096 points; the layer's draws are then shared
by four tiles, as in a chunk of a sweep).

Every timing records wall time and the process's CPU time (``time.process_time``; every
contender runs on one thread except ``numba, k threads``): on a loaded machine wall time
counts the waits for a core, CPU time does not, so the ratios are reported both ways.

    python benchmarks/compiled_cpu.py            # full, rewrites its BENCHMARKS.md section
    python benchmarks/compiled_cpu.py --quick    # smaller, prints only
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from _report import interleaved, machine_line, write_section  # noqa: E402
from threadpoolctl import threadpool_limits

from pipeline.experiments.propagation import compiled as prop_compiled
from pipeline.experiments.propagation import reference as prop_ref
from pipeline.experiments.propagation.architectures import Network
from pipeline.experiments.propagation.network import propagate_architecture
from pipeline.experiments.propagation.probes import (
    DivergenceProbe,
    PairProbe,
    Probes,
    augmented_width,
)
from pipeline.experiments.trainability import reference as train_ref

WIDTH, DEPTH, ACT = 16, 2, "tanh"


def lr_plane(points: int) -> tuple[np.ndarray, np.ndarray]:
    """(lr_in, lr_out) of a square log10 grid over [−3, 6]² with ``points`` points."""
    side = max(1, round(points**0.5))
    g = np.linspace(-3.0, 6.0, side)
    a, b = np.meshgrid(g, g, indexing="ij")
    return 10.0 ** a.ravel()[:points], 10.0 ** b.ravel()[:points]


CPU_TIMES: list[tuple[float, float]] = []
"""(wall, CPU) seconds of every :func:`timed` call, in order."""


def timed(fn) -> float:  # noqa: ANN001
    """Wall seconds of ``fn()``; its (wall, CPU) pair is appended to :data:`CPU_TIMES`."""
    c = time.process_time()
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    CPU_TIMES.append((wall, time.process_time() - c))
    return wall


def cpu_interleaved(ref, test, repeats: int) -> tuple[list[float], list[float], float, float]:  # noqa: ANN001
    """:func:`_report.interleaved` with CPU time too: wall times of ref and test, and the
    median ratios ref/test of wall and of CPU time."""
    start = len(CPU_TIMES)
    t_ref, t_test, ratios = interleaved(ref, test, repeats)
    pairs = CPU_TIMES[start:]
    cpu_ratios = [pairs[2 * i][1] / pairs[2 * i + 1][1] for i in range(repeats)]
    return t_ref, t_test, statistics.median(ratios), statistics.median(cpu_ratios)


def jax_trainer(problem: train_ref.Problem, steps: int):  # noqa: ANN201
    """A jitted JAX loop: losses (P, steps) of one network per (lr_in, lr_out), or None."""
    # one XLA thread: the per-core comparison is then a like-for-like one (set before import)
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    n = problem.width
    inv = 1.0 / np.sqrt(n)
    x = jnp.asarray(problem.x)
    y = jnp.asarray(problem.y)
    w0 = tuple(jnp.asarray(w) for w in problem.weights)

    def loss_fn(ws):  # noqa: ANN001, ANN202
        a = x
        for k, w in enumerate(ws):
            z = (a @ w) * inv
            a = jnp.tanh(np.sqrt(2.0) * z) if k < len(ws) - 1 else z
        return jnp.mean((a * inv - y) ** 2)

    value_and_grad = jax.value_and_grad(loss_fn)

    def train_one(lr_in, lr_out):  # noqa: ANN001, ANN202
        lrs = tuple(lr_in if k % 2 == 0 else lr_out for k in range(len(w0)))

        def step(ws, _):  # noqa: ANN001, ANN202
            loss, grads = value_and_grad(ws)
            return tuple(w - lr * g for w, g, lr in zip(ws, grads, lrs, strict=True)), loss

        _, losses = jax.lax.scan(step, w0, None, length=steps)
        return losses

    run = jax.jit(jax.vmap(train_one))

    def call(lr_in: np.ndarray, lr_out: np.ndarray) -> np.ndarray:
        return np.asarray(run(jnp.asarray(lr_in), jnp.asarray(lr_out)).block_until_ready())

    return call, jax.__version__


def trainability(points: int, steps: int, repeats: int) -> tuple[list[str], dict]:
    problem = train_ref.make_problem(WIDTH, DEPTH, 0, 0.0, "full")
    lr_in, lr_out = lr_plane(points)
    cores = os.cpu_count() or 1

    def run(backend: str, threads: int = 1):  # noqa: ANN202
        return lambda: train_ref.train_losses(
            problem,
            ACT,
            lr_in,
            lr_out,
            steps=steps,
            dtype="float64",
            backend=backend,
            threads=threads,
        )

    contenders = {"numpy": run("numpy"), "numba-1": run("numba", 1)}
    if cores > 1:
        contenders[f"numba-{cores}"] = run("numba", cores)
    jx = jax_trainer(problem, steps)
    if jx is not None:
        jcall, jver = jx
        contenders["jax"] = lambda: jcall(lr_in, lr_out)
    t0 = time.perf_counter()
    want = contenders["numpy"]()
    got = contenders["numba-1"]()  # JIT (or cache load) here, not in the timings
    warm = time.perf_counter() - t0
    checks = {"numba": float(np.max(np.abs(got[:, :3] / want[:, :3] - 1)))}
    if jx is not None:
        checks["jax"] = float(np.nanmax(np.abs(contenders["jax"]()[:, :3] / want[:, :3] - 1)))
    for c in contenders.values():
        c()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):  # interleaved: machine noise hits every contender
        for k, c in contenders.items():
            times[k].append(timed(c))
            cpu[k].append(CPU_TIMES[-1][1])
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: points * steps / v for k, v in med.items()}
    cpu_rate = {k: points * steps / statistics.median(v) for k, v in cpu.items()}
    lines = [
        "| contender | cores | points·steps/s (wall) | per core | × NumPy per core (wall) | "
        "× NumPy per core (CPU time) |",
        "|---|---|---|---|---|---|",
    ]
    for k in contenders:
        used = cores if k == f"numba-{cores}" else 1
        name = {
            "numpy": "NumPy reference",
            "numba-1": "numba, 1 thread",
            f"numba-{cores}": f"numba, {cores} threads",
            "jax": f"JAX {jver} (jit, vmap, scan; CPU)" if jx is not None else "",
        }[k]
        per_core = rate[k] / used
        cpu_ratio = cpu_rate[k] / cpu_rate["numpy"]  # CPU time already sums over threads
        lines.append(
            f"| {name} | {used} | {rate[k]:.0f} | {per_core:.0f} | "
            f"**{per_core / rate['numpy']:.2f}** | **{cpu_ratio:.2f}** |"
        )
    info = {
        "rate": rate,
        "cpu_rate": cpu_rate,
        "checks": checks,
        "warm_s": warm,
        "cores": cores,
        "jax": jx is not None,
    }
    return lines, info


def propagation(depth: int, repeats: int) -> tuple[list[str], dict]:
    probes = Probes(pair=PairProbe())
    p = 682  # one tile of 2046 rows
    sw = np.linspace(0.5, 4.0, p)
    sb = np.linspace(0.0, 3.0, p)
    lines = [
        "| N | dtype | points | depth | NumPy s (wall) | numba s (wall) | × NumPy (wall) | "
        "× NumPy (CPU time) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    info: dict = {}
    for dt in ("float32", "float64"):
        kw = dict(depth=depth, record_layers=[depth], probes=probes, dtype=dt)

        def ref(kw=kw):  # noqa: ANN001, ANN202
            return timed(lambda: prop_ref.propagate_network(100, 2.0, 0, [("erf", sw, sb)], **kw))

        def comp(kw=kw):  # noqa: ANN001, ANN202
            return timed(
                lambda: prop_compiled.propagate_network(100, 2.0, 0, [("erf", sw, sb)], **kw)
            )

        small = {**kw, "depth": 3, "record_layers": [3]}
        prop_compiled.propagate_network(100, 2.0, 0, [("erf", sw[:4], sb[:4])], **small)  # JIT
        t_ref, t_comp, r, r_cpu = cpu_interleaved(ref, comp, repeats)
        info[dt] = (r, r_cpu)
        lines.append(
            f"| 100 | {dt} | {p} | {depth} | {statistics.median(t_ref):.2f} | "
            f"{statistics.median(t_comp):.2f} | **{r:.2f}** | **{r_cpu:.2f}** |"
        )
    return lines, info


def propagation_dinverno(
    depth: int, repeats: int, sizes: tuple[int, ...]
) -> tuple[list[str], dict]:
    """D'Inverno et al.'s network on the architecture path: NumPy against numba, one core."""
    net = Network("dense", "per_layer", "projected")
    probes = Probes(divergence=DivergenceProbe(mean_last=10))
    lines = [
        "| N | dtype | points (tiles) | depth | NumPy s (wall) | numba s (wall) | "
        "× NumPy (wall) | × NumPy (CPU time) | classes equal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    info: dict = {}
    for dt, p in [("float64", q) for q in sizes] + [("float32", sizes[0])]:
        side = round(p**0.5)
        sw, sb = (
            a.ravel() for a in np.meshgrid(np.linspace(1.0, 4.0, side), np.linspace(0.0, 3.0, side))
        )
        kw = dict(depth=depth, record_layers=[depth], probes=probes, network=net, dtype=dt)

        def run(backend, kw=kw, sw=sw, sb=sb):  # noqa: ANN001, ANN202
            return propagate_architecture(100, 2.0, 0, [("erf", sw, sb)], backend=backend, **kw)[0]

        out = {}

        def ref(run=run, out=out):  # noqa: ANN001, ANN202
            return timed(lambda: out.__setitem__("numpy", run("numpy")))

        def comp(run=run, out=out):  # noqa: ANN001, ANN202
            return timed(lambda: out.__setitem__("numba", run("numba")))

        small = {**kw, "depth": 2, "record_layers": [2]}
        propagate_architecture(100, 2.0, 0, [("erf", sw[:4], sb[:4])], backend="numba", **small)
        t_ref, t_comp, r, r_cpu = cpu_interleaved(ref, comp, repeats)
        t = probes.divergence.threshold
        same = float(
            np.mean((out["numpy"]["err_mean"][:, -1] > t) == (out["numba"]["err_mean"][:, -1] > t))
        )
        info[(dt, p)] = (r, r_cpu)
        lines.append(
            f"| 100 | {dt} | {p} ({-(-p // 1024)}) | {depth} | {statistics.median(t_ref):.2f} | "
            f"{statistics.median(t_comp):.2f} | **{r:.2f}** | **{r_cpu:.2f}** | {same:.4f} |"
        )
    return lines, info


def propagation_big(points: int, depth: int, repeats: int) -> tuple[list[str], dict]:
    n = 1024
    probes = Probes(pair=PairProbe())
    sw = np.linspace(0.5, 2.0, points)
    sb = np.linspace(0.0, 1.0, points)
    rows = 3 * prop_ref.tile_points(probes, points, prop_ref.TILE_ROWS)
    tiles = -(-points // (rows // 3))
    lines = [
        "| N | dtype | points | tiles × rows | depth | matmul GFLOP/s (1 core) | "
        "propagation GFLOP/s (1 core) | fraction (wall) | fraction (CPU time) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    info: dict = {}
    for dt in ("float32", "float64"):
        kw = dict(depth=depth, record_layers=[depth], probes=probes, dtype=dt)
        k = augmented_width(n)
        x = np.random.default_rng(0).standard_normal((rows, k)).astype(dt)
        z = np.random.default_rng(1).standard_normal((k, n)).astype(dt)
        h = np.empty((rows, n), dt)

        def mm(x=x, z=z, h=h):  # noqa: ANN001, ANN202
            with threadpool_limits(limits=1, user_api="blas"):
                return timed(lambda: [np.matmul(x, z, out=h) for _ in range(tiles * depth)])

        def comp(kw=kw):  # noqa: ANN001, ANN202
            return timed(
                lambda: prop_compiled.propagate_network(n, 2.0, 0, [("erf", sw, sb)], **kw)
            )

        small = {**kw, "depth": 1, "record_layers": [1]}
        prop_compiled.propagate_network(n, 2.0, 0, [("erf", sw[:4], sb[:4])], **small)
        t_mm, t_comp, frac, frac_cpu = cpu_interleaved(mm, comp, repeats)
        flops = 2.0 * rows * k * n * tiles * depth
        info[dt] = (frac, frac_cpu)
        lines.append(
            f"| {n} | {dt} | {points} | {tiles} × {rows} | {depth} | "
            f"{flops / statistics.median(t_mm) / 1e9:.1f} | "
            f"{flops / statistics.median(t_comp) / 1e9:.1f} | **{frac:.2f}** | "
            f"**{frac_cpu:.2f}** |"
        )
    return lines, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, print only")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--depth", type=int, default=1000, help="propagation depth at N = 100")
    args = ap.parse_args()
    points, steps = (64, 20) if args.quick else (512, 100)
    depth = 30 if args.quick else args.depth
    load0 = os.getloadavg()[0]
    t_lines, t_info = trainability(points, steps, args.repeats)
    p_lines, p_info = propagation(depth, args.repeats)
    d_lines, d_info = propagation_dinverno(
        depth, args.repeats, (256,) if args.quick else (1024, 4096)
    )
    b_lines, b_info = propagation_big(
        1024 if args.quick else 4096, 2 if args.quick else 4, args.repeats
    )
    load1 = os.getloadavg()[0]
    cores = t_info["cores"]
    rate = t_info["rate"]
    crate = t_info["cpu_rate"]
    summary = [
        f"Trainability: numba 1 thread **{rate['numba-1'] / rate['numpy']:.2f}×** NumPy "
        f"per core (CPU time: {crate['numba-1'] / crate['numpy']:.2f}×)"
        + (
            f", **{rate['numba-1'] / rate['jax']:.2f}×** JAX per core "
            f"(CPU time: {crate['numba-1'] / crate['jax']:.2f}×)"
            if t_info["jax"]
            else " (JAX not installed: no peer)"
        )
        + (
            f"; {cores} threads / 1 thread = {rate[f'numba-{cores}'] / rate['numba-1']:.2f}"
            if cores > 1
            else ""
        )
        + ". Targets: ≥ 5× NumPy, ≥ 3× JAX per core, near-linear in cores.",
        f"Propagation N = 100, depth {depth}, erf, pair probe: numba "
        f"**{p_info['float32'][0]:.2f}×** NumPy (float32), **{p_info['float64'][0]:.2f}×** "
        f"(float64) in wall time, {p_info['float32'][1]:.2f}× and {p_info['float64'][1]:.2f}× "
        "in CPU time; D'Inverno's network (float64): "
        + ", ".join(
            f"{p} points **{v[0]:.2f}×** wall, **{v[1]:.2f}×** CPU time"
            for (dt, p), v in d_info.items()
            if dt == "float64"
        )
        + "; target ≥ 3×. N = 1024: "
        f"**{b_info['float32'][0]:.2f}** (float32), **{b_info['float64'][0]:.2f}** (float64) of "
        f"one-core matmul in wall time ({b_info['float32'][1]:.2f}, {b_info['float64'][1]:.2f} "
        "in CPU time); target ≥ 0.8.",
    ]
    text = "\n".join(
        [
            "## Compiled CPU backend (`numba`) against NumPy and JAX",
            "",
            machine_line(),
            "",
            f"Command: `python benchmarks/compiled_cpu.py` (propagation depth {depth}). "
            f"Load average {load0:.1f} at the start and {load1:.1f} at the end (the machine is "
            "shared: medians of interleaved repeats, ratios from the same run). Method: the "
            "script's docstring. JIT compilation (or the cache load) happens in a warm-up "
            f"call, never in a timing (trainability's first numba call: {t_info['warm_s']:.1f} "
            "s including the NumPy run). Agreement in the same run: largest relative "
            "difference of the first 3 losses, numba "
            f"{t_info['checks']['numba']:.1e}"
            + (f", JAX {t_info['checks']['jax']:.1e}" if t_info["jax"] else "")
            + ".",
            "",
            f"Trainability, width {WIDTH}, depth {DEPTH}, batch 272, float64, {ACT}, "
            f"{points} points, {steps} steps:",
            "",
            *t_lines,
            "",
            "Propagation, erf, pair probe (two inputs and the tangent), one core:",
            "",
            *p_lines,
            "",
            *b_lines,
            "",
            "D'Inverno et al.'s network (dense, projected bias, divergence probe with "
            "mean_last 10, erf, keyed draws) on the architecture path, one core; classes: "
            "err_mean at the last layer against the threshold 1e-3:",
            "",
            *d_lines,
            "",
            *summary,
        ]
    )
    print(text)
    if not args.quick:
        write_section("compiled-cpu", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
