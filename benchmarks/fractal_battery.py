"""The calibration battery: every estimator on fields of known boundary dimension.

Each field of ``pipeline.analysis.fractal.battery.BATTERY`` is rendered at 512², 2048² and
8192² pixels, with several realisations (new random fields, or new rotations and placements
of the deterministic ones). At 512² and 2048² every estimator runs in memory; at 8192²
the field is written chunk by chunk to a Zarr array (1024² chunks) and the default estimator
runs on the Zarr array itself (``default_dimension`` reads it in row bands, or through
``count_boxes_lazy`` when it picks box counting),
as it would on a sweep store too big for memory. Per estimator, field and resolution: the
mean estimate, bias (mean − truth), scatter, the largest error and the coverage of the 95 %
interval (share of realisations whose interval holds the truth).

    python benchmarks/fractal_battery.py               # full run (~10 min on 2 cores), rewrites
                                                       # the "fractal-battery" section
    python benchmarks/fractal_battery.py --quick       # 512² and 2048², fewer realisations
    python benchmarks/fractal_battery.py --table-only  # the section from the saved results
    python benchmarks/fractal_battery.py --fields brownian_frontier --reps 8192:12:1 --append
                                                       # more realisations of some fields,
                                                       # merged into the saved results

Raw results go to ``benchmarks/fractal_battery.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _report import machine_line, write_section  # noqa: E402  (benchmarks/ on sys.path)

from pipeline.analysis.fractal import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    default_dimension,
    estimate_dimension,
)
from pipeline.analysis.fractal.battery import BATTERY
from pipeline.errors import PipelineError

RESULTS = Path(__file__).with_name("fractal_battery.json")
# realisations per field: (random fields, deterministic fields) at each resolution
REPS = {512: (8, 3), 2048: (8, 3), 8192: (4, 1)}
QUICK = {512: (8, 3), 2048: (4, 2)}
LAZY_FROM = 8192
CHUNK = 1024


def _lazy(field: np.ndarray) -> dict:
    import dask.array as da
    import zarr

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "f.zarr")
        da.from_array(field, chunks=CHUNK).to_zarr(path, overwrite=True)
        del field
        est = default_dimension(zarr.open_array(path, mode="r"), band_rows=CHUNK)
    return {DEFAULT_ESTIMATOR: (est.estimate, *est.interval)}


def measure(name: str, n: int, seed: int) -> dict:
    """Every estimator on one realisation: {method: (estimate, low, high) or None}."""
    t0 = time.perf_counter()
    field = BATTERY[name].render(n, seed)
    t_render = time.perf_counter() - t0
    out: dict = {"name": name, "n": n, "seed": seed, "render_s": t_render}
    if n >= LAZY_FROM:
        out["estimates"] = _lazy(field)
    else:
        est = {}
        for m in ESTIMATORS:
            try:
                d = estimate_dimension(field, m)
                est[m] = (d.estimate, *d.interval)
            except PipelineError:
                est[m] = None
        out["estimates"] = est
    out["total_s"] = time.perf_counter() - t0
    return out


def run(reps: dict[int, tuple[int, int]], jobs: int, fields: list[str]) -> list[dict]:
    tasks = [
        (name, n, seed)
        for n, (r_rand, r_det) in reps.items()
        for name in fields
        for seed in range(r_rand if BATTERY[name].random else r_det)
    ]
    # the big ones first, so that the pool does not end on one long task
    tasks.sort(key=lambda t: -t[1])
    results = []
    with ProcessPoolExecutor(jobs) as pool:
        for res in pool.map(measure, *zip(*tasks, strict=True)):
            results.append(res)
            print(
                f"{res['name']:22s} {res['n']:5d} seed {res['seed']:2d} "
                f"{res['total_s']:6.1f}s  "
                + " ".join(f"{k}={v[0]:.3f}" for k, v in res["estimates"].items() if v is not None),
                flush=True,
            )
    return results


def _stats(rows: list[dict], method: str, truth: float) -> dict | None:
    vals = [r["estimates"].get(method) for r in rows]
    got = [v for v in vals if v is not None]
    if not got:
        return None
    e = np.array([v[0] for v in got])
    lo = np.array([v[1] for v in got])
    hi = np.array([v[2] for v in got])
    return {
        "n": len(vals),
        "fitted": len(got),
        "mean": float(e.mean()),
        "bias": float(e.mean() - truth),
        "sd": float(e.std(ddof=1)) if e.size > 1 else 0.0,
        "max_err": float(np.abs(e - truth).max()),
        "covered": int(np.count_nonzero((lo <= truth) & (truth <= hi))),
        "half_width": float(np.mean((hi - lo) / 2)),
    }


LABEL = {
    "default": "default",
    "directional-uncertainty": "directional uncertainty",
    "box-counting": "box counting",
    "uncertainty-exponent": "uncertainty exponent",
    "sohl-dickstein-2024": "Sohl-Dickstein 2024",
    "sohl-dickstein-notebook": "Sohl-Dickstein notebook",
    "dinverno-2025": "D'Inverno 2025",
}


def table(results: list[dict]) -> str:
    """The BENCHMARKS.md section from the raw results."""
    sizes = sorted({r["n"] for r in results})
    by = {}
    for r in results:
        by.setdefault((r["name"], r["n"]), []).append(r)
    lines = [
        "## Fractal dimensions: the calibration battery",
        "",
        machine_line(),
        "",
        "Command: `python benchmarks/fractal_battery.py`. Fields of known boundary dimension "
        "(`pipeline/analysis/fractal/battery/`), each rendered at "
        + ", ".join(f"{n}²" for n in sizes)
        + " with several realisations (random fields: new samples; deterministic ones: new "
        "rotation and placement). 8192² goes through the lazy path (a chunked Zarr array "
        "written chunk by chunk, read back in row bands, default estimator only). *Held out*: "
        "fields kept out of the design of box counting's calibrated fit; the default's range "
        "(4 px to 1/16 of the frame) and its thin-class switch were chosen with every field "
        "in view at 2048², so for the default the held-out column is not a held-out test; "
        "so was its rule that a boundary enclosed in the frame is fitted up to 1/16 of its "
        "own extent (it moved only the Brownian frontier, a walk 1/7–1/2 of the frame "
        "across, by more than 0.02). Bias = mean − "
        "truth; cov = realisations whose 95 % interval holds the truth; ±hw = mean half-width "
        "of the interval. The default's flags, its intervals since the swing bound and the "
        'fields built to break it: the next section, "Boundary report: flags and coverage".',
        "",
    ]
    ref = [f for f in BATTERY.values() if not f.stress]
    stress = [f for f in BATTERY.values() if f.stress]
    if stress:
        lines[-2] += (
            " *Stress*: fields whose rendered boundary does not reach its dimension at these "
            "resolutions (why: `BATTERY[name].stress`); they are not part of the acceptance "
            "below."
        )
    lines += ["### Per estimator and resolution (reference fields)", ""]
    lines.append(
        "| estimator | size | largest \\|bias\\| | mean \\|bias\\| | coverage, random fields "
        "| coverage, all | mean ±hw | held out: largest \\|bias\\|, coverage |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for m in ESTIMATORS:
        for n in sizes:
            st = [(f, _stats(by.get((f.name, n), []), m, f.dimension)) for f in ref]
            st = [(f, s) for f, s in st if s is not None]
            if not st:
                continue
            rnd = [s for f, s in st if f.random]
            ho = [s for f, s in st if f.held_out]
            cov_r = sum(s["covered"] for s in rnd), sum(s["fitted"] for s in rnd)
            cov_a = sum(s["covered"] for _, s in st), sum(s["fitted"] for _, s in st)
            ho_txt = (
                f"{max(abs(s['bias']) for s in ho):.3f}, "
                f"{sum(s['covered'] for s in ho)}/{sum(s['fitted'] for s in ho)}"
                if ho
                else "—"
            )
            lines.append(
                f"| {LABEL[m]} | {n}² | {max(abs(s['bias']) for _, s in st):.3f} | "
                f"{np.mean([abs(s['bias']) for _, s in st]):.3f} | "
                f"{cov_r[0]}/{cov_r[1]} ({100 * cov_r[0] / max(cov_r[1], 1):.0f} %) | "
                f"{cov_a[0]}/{cov_a[1]} ({100 * cov_a[0] / max(cov_a[1], 1):.0f} %) | "
                f"{np.mean([s['half_width'] for _, s in st]):.3f} | {ho_txt} |"
            )
    for title, fields in (("Reference fields", ref), ("Stress fields", stress)):
        if not fields:
            continue
        lines += ["", f"### {title}: bias ± scatter (coverage) per estimator", ""]
        head = "| field | D | size | " + " | ".join(LABEL[m] for m in ESTIMATORS) + " |"
        lines += [head, "|---" * (3 + len(ESTIMATORS)) + "|"]
        for f in fields:
            tag = " (held out)" if f.held_out else ""
            for n in sizes:
                rows = by.get((f.name, n), [])
                if not rows:
                    continue
                cells = []
                for m in ESTIMATORS:
                    s = _stats(rows, m, f.dimension)
                    cells.append(
                        "—"
                        if s is None
                        else f"{s['bias']:+.3f} ± {s['sd']:.3f} ({s['covered']}/{s['fitted']})"
                    )
                lines.append(
                    f"| {f.name}{tag} | {f.dimension:.4f} | {n}² | " + " | ".join(cells) + " |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="512² and 2048², fewer realisations")
    p.add_argument("--table-only", action="store_true", help="rewrite the section from JSON")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--fields", default=",".join(BATTERY), help="comma-separated names")
    p.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    p.add_argument(
        "--reps",
        action="append",
        metavar="N:RANDOM:DETERMINISTIC",
        help="realisations at resolution N (repeatable; replaces the default resolutions)",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="merge into the saved results (a rerun realisation replaces the saved one)",
    )
    a = p.parse_args(argv)
    fields = a.fields.split(",")
    unknown = sorted(set(fields) - set(BATTERY))
    if unknown:
        p.error(f"--fields: unknown {unknown}; the battery has {sorted(BATTERY)}")
    reps = QUICK if a.quick else REPS
    if a.reps:
        try:
            reps = {int(n): (int(r), int(d)) for n, r, d in (x.split(":") for x in a.reps)}
        except ValueError:
            p.error(f"--reps: expected N:RANDOM:DETERMINISTIC integers, got {a.reps}")
    if a.table_only:
        results = json.loads(RESULTS.read_text())
    else:
        t0 = time.time()
        results = run(reps, a.jobs, fields)
        print(f"total {time.time() - t0:.0f} s", file=sys.stderr)
        if a.append:
            key = lambda r: (r["name"], r["n"], r["seed"])  # noqa: E731
            new = {key(r) for r in results}
            saved = [r for r in json.loads(RESULTS.read_text()) if key(r) not in new]
            results = saved + results
        if not a.quick or a.append:
            RESULTS.write_text(json.dumps(results))
    text = table(results)
    print(text)
    if not a.quick and not a.no_write:
        write_section("fractal-battery", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
