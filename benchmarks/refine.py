"""Adaptive boundary refinement against the full computation, on the same machine, same run.

For each case the plane is computed twice with the same local cluster settings: in full
(every pixel) and refined (``refine:`` coarse 16, 4 levels, guard 1, audit 1 %, seed 0), and
compared:

- class agreement: share of pixels whose class (sign of the experiment's signed field,
  ``> 0`` / ``<= 0``, NaN its own class) is the same in both stores;
- boundary dimension: ``pipeline.analysis.fractal.box_counting_dimension`` of both fields
  (the calibrated fit: its interval includes the range choice), and whether the refined estimate
  lies in the full field's 95 % interval;
- evaluated fraction: computed pixels / all pixels (the store's ``refine`` attrs), and the
  refined run's wall time as a fraction of the full run's (both end to end: cluster start,
  planning, filling; measured in the same run, back to back).

Cases: ``tanh512`` / ``tanh1024`` (workflows/trainability_tanh_w8.yaml at 512² / 1024²,
100 steps) and ``erf1024`` (workflows/dinverno2025_erf_frontier.yaml at 1024², N = 100,
L = 100). Full stores are kept in ``--work`` and reused when complete (the comparison is
then against the stored full field, and its time is the one recorded then).

    python benchmarks/refine.py --case tanh512 --case tanh1024 --case erf1024 --write
    python benchmarks/refine.py --case tanh128       # quick look, prints only

``--timing CASE --steps S``: the time of a refined run against the evaluated fraction, all
three runs fresh and back to back in this one run (own section ``refine-time``): the full
run, the refined run as it schedules its rounds (about one task per worker thread), and the
refined run with one task per store chunk and round (how rounds were scheduled before; the
same points, the same values: the script checks that both refined stores are equal). The
target: refined time <= 2 x evaluated fraction x full time + 30 s.

    nice -n 5 python benchmarks/refine.py --timing tanh1024 --steps 20 --write
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _report import machine_line, write_section  # noqa: E402  (benchmarks/ on sys.path)

from pipeline.analysis.fractal import box_counting_dimension
from pipeline.experiments import get_experiment
from pipeline.run.execute import run_sweep
from pipeline.run.refine_plan import codes_of
from pipeline.spec.sweep import parse_spec
from pipeline.spec.workflow import load_workflow
from pipeline.store.points import ATTR
from pipeline.store.sweep import missing_keys, open_sweep

ROOT = Path(__file__).resolve().parent.parent
REFINE = {"coarse": 16, "levels": 4, "guard": 1, "audit": 0.01, "audit_seed": 0}


def case_spec(case: str, refine: bool) -> dict:
    """The raw spec of ``case`` (``tanh<n>`` or ``erf<n>``), refined or not."""
    if case.startswith("tanh"):
        n = int(case[4:])
        raw = load_workflow(ROOT / "workflows/trainability_tanh_w8.yaml").to_dict()
        raw["axes"]["lr_in"] = np.linspace(-3, 6, n).tolist()
        raw["axes"]["lr_out"] = np.linspace(-3, 6, n).tolist()
        raw["chunks"] = {"lr_in": min(n, 128), "lr_out": min(n, 128)}
    elif case.startswith("erf"):
        n = int(case[3:])
        raw = load_workflow(ROOT / "workflows/dinverno2025_erf_frontier.yaml").to_dict()
        raw["axes"]["sigma_w"] = np.linspace(0, 4, n).tolist()
        raw["axes"]["sigma_b"] = np.linspace(0, 4, n).tolist()
        raw["axes"]["width"] = [100]
        raw["depth"] = 100
        raw["record_layers"] = [100]
        raw["chunks"] = {"sigma_w": min(n, 128), "sigma_b": min(n, 128)}
    else:
        raise SystemExit(f"unknown case {case!r}")
    raw.pop("figure", None)
    raw.pop("scale", None)
    if refine:
        raw["refine"] = dict(REFINE)
    return raw


def _run(raw: dict, store: Path, workers: int) -> float:
    spec = parse_spec(raw)
    if store.exists() and not missing_keys(spec, store):
        meta = store / "bench_seconds.json"
        return json.loads(meta.read_text())["seconds"] if meta.exists() else float("nan")
    t0 = time.perf_counter()
    report = run_sweep(spec, store, n_workers=workers, backend="numpy", progress=False)
    seconds = time.perf_counter() - t0
    if not report.complete:
        raise SystemExit(f"{store}: {len(report.failed)} chunks failed")
    (store / "bench_seconds.json").write_text(json.dumps({"seconds": seconds}))
    return seconds


def _field(store: Path) -> tuple[np.ndarray, object]:
    ds = open_sweep(store)
    spec = parse_spec(ds.attrs["sweep_spec"])
    field = get_experiment(spec.experiment).signed_field(spec, ds)
    return np.asarray(field.squeeze().values, np.float64), ds


def measure(case: str, work: Path, workers: int, full_too: bool | str = True) -> dict:
    """Full and refined runs of ``case`` and their comparison (a table row's numbers);
    ``full_too=False``: the refined run alone (no agreement, no full D); ``"partial"``: the
    refined run against the chunks an interrupted full run finished (agreement only)."""
    work.mkdir(parents=True, exist_ok=True)
    t_ref = _run(case_spec(case, True), work / f"{case}_refined.zarr", workers)
    ref, ds = _field(work / f"{case}_refined.zarr")
    attrs = ds.attrs[ATTR]
    d_ref = box_counting_dimension(ref)
    row = {
        "case": case,
        "pixels": int(ref.size),
        "d_refined": d_ref.estimate,
        "d_refined_interval": list(d_ref.interval),
        "evaluated_fraction": attrs["evaluated_fraction"],
        "audits": attrs["audits"],
        "surprises": attrs["surprises"],
        "rounds": attrs["rounds"],
        "t_refined": t_ref,
    }
    if not full_too:
        return row
    if full_too == "partial":
        return {**row, **_partial(work / f"{case}_full.zarr", ref)}
    t_full = _run(case_spec(case, False), work / f"{case}_full.zarr", workers)
    full, _ = _field(work / f"{case}_full.zarr")
    d_full = box_counting_dimension(full)
    lo, hi = d_full.interval
    return {
        **row,
        "agreement": float(np.mean(codes_of(full) == codes_of(ref))),
        "d_full": d_full.estimate,
        "d_full_interval": [lo, hi],
        "d_inside": bool(lo <= d_ref.estimate <= hi),
        "t_full": t_full,
    }


def _partial(store: Path, ref: np.ndarray) -> dict:
    """Class agreement of ``ref`` with the chunks of the full store ``store`` that are done."""
    from pipeline.store.grid import chunk_slices, flat_to_key
    from pipeline.store.sweep import done_state, read_spec

    spec = read_spec(store)
    state = done_state(store, spec)
    done = np.ones(state.total, bool)
    done[np.asarray(state.missing(), np.int64)] = False
    full, _ = _field(store)
    inside = np.zeros(full.shape, bool)
    for flat in np.flatnonzero(done):
        sl = chunk_slices(spec, flat_to_key(int(flat), state.counts))
        inside[tuple(s for s, n in zip(sl, spec.shape, strict=True) if n > 1)] = True
    same = codes_of(full[inside]) == codes_of(ref[inside])
    return {"partial_pixels": int(inside.sum()), "agreement": float(same.mean())}


def table(rows: list[dict], note: str = "") -> str:
    """The BENCHMARKS.md section (``note``: how the machine was loaded, what did not fit)."""
    lines = [
        "## Adaptive boundary refinement (`benchmarks/refine.py`)",
        "",
        machine_line(),
        "",
        f"Refined with `refine: {json.dumps(REFINE)}`; the full field computed in the same "
        "run on the same local cluster (2 worker processes, NumPy). Class = sign of the "
        "signed field; D = box-counting dimension of the boundary "
        "(`box_counting_dimension`: this branch has no calibrated `boundary_dimension`).",
        "",
        "| plane | pixels | class agreement | D full [95 %] | D refined | in interval | "
        "evaluated fraction | audits (surprises) | time refined / full |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "partial_pixels" in r:
            rl, rh = r["d_refined_interval"]
            lines.append(
                f"| {r['case']} (full run stopped) | {r['pixels']:,} | "
                f"{100 * r['agreement']:.3f} % on the {r['partial_pixels']:,} pixels of the "
                f"full run's finished chunks | not measured | {r['d_refined']:.3f} "
                f"[{rl:.3f}, {rh:.3f}] | – | {r['evaluated_fraction']:.3f} | "
                f"{r['audits']:,} ({r['surprises']}) | – |"
            )
            continue
        if "t_full" not in r:
            rl, rh = r["d_refined_interval"]
            lines.append(
                f"| {r['case']} (refined only) | {r['pixels']:,} | not measured | "
                f"not measured | {r['d_refined']:.3f} [{rl:.3f}, {rh:.3f}] | – | "
                f"{r['evaluated_fraction']:.3f} | {r['audits']:,} ({r['surprises']}) | – |"
            )
            continue
        lo, hi = r["d_full_interval"]
        lines.append(
            f"| {r['case']} | {r['pixels']:,} | {100 * r['agreement']:.3f} % | "
            f"{r['d_full']:.3f} [{lo:.3f}, {hi:.3f}] | {r['d_refined']:.3f} | "
            f"{'yes' if r['d_inside'] else 'no'} | {r['evaluated_fraction']:.3f} | "
            f"{r['audits']:,} ({r['surprises']}) | {r['t_refined'] / r['t_full']:.2f} |"
        )
    return "\n".join(lines + ([""] + [note] if note else []))


def _fresh(raw: dict, store: Path, workers: int) -> float:
    """Seconds of one run of ``raw`` into a new store ``store`` (end to end)."""
    import shutil

    shutil.rmtree(store, ignore_errors=True)
    return _run(raw, store, workers)


def timing(case: str, steps: int | None, work: Path, workers: int) -> dict:
    """Full, refined and refined-per-chunk runs of ``case`` (``steps``: the trainability
    steps, default the workflow's), fresh, in this order; their times and the target check."""
    import pipeline.run.refine as refine_mod

    work.mkdir(parents=True, exist_ok=True)
    raws = [case_spec(case, False), case_spec(case, True)]
    if steps is not None:
        for raw in raws:
            raw["steps"] = steps
    t_full = _fresh(raws[0], work / f"{case}_t_full.zarr", workers)
    t_ref = _fresh(raws[1], work / f"{case}_t_refined.zarr", workers)
    packed = refine_mod.pack_chunks
    refine_mod.pack_chunks = lambda sizes, n, cap: [[i] for i in range(len(sizes))]
    try:
        t_chunk = _fresh(raws[1], work / f"{case}_t_per_chunk.zarr", workers)
    finally:
        refine_mod.pack_chunks = packed
    a = open_sweep(work / f"{case}_t_refined.zarr")
    b = open_sweep(work / f"{case}_t_per_chunk.zarr")
    same = all(
        np.array_equal(a[v].values, b[v].values, equal_nan=a[v].dtype.kind == "f")
        for v in a.data_vars
    )
    frac = a.attrs[ATTR]["evaluated_fraction"]
    return {
        "case": case,
        "steps": raws[0].get("steps"),
        "workers": workers,
        "evaluated_fraction": frac,
        "rounds": a.attrs[ATTR]["rounds"],
        "t_full": t_full,
        "t_refined": t_ref,
        "t_per_chunk": t_chunk,
        "same_values": same,
        "bound_s": 2 * frac * t_full + 30.0,
        "bound_without_30s": 2 * frac * t_full,
    }


def timing_table(rows: list[dict], note: str = "") -> str:
    """The ``refine-time`` section of BENCHMARKS.md."""
    lines = [
        "## Refinement time against the evaluated fraction (`benchmarks/refine.py --timing`)",
        "",
        machine_line(),
        "",
        f"Refined with `refine: {json.dumps(REFINE)}`. Three fresh runs of the same plane, back "
        "to back in one script run on the same local cluster settings (NumPy backend, "
        "single-threaded worker processes: the workers column), each timed end to end "
        "(cluster start, rounds, filling the store): the full run, the refined run, and the "
        "refined run with one task per store chunk and round (how rounds were scheduled "
        "before they were packed into about one task per worker thread). Target: refined "
        "time <= 2 x evaluated fraction x full time + 30 s.",
        "",
        "| plane | steps | workers | evaluated fraction | rounds | refined / full | "
        "per-chunk tasks / full | 2 x fraction | target met | refined values = per-chunk |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['steps']} | {r['workers']} | {r['evaluated_fraction']:.3f} | "
            f"{r['rounds']} | {r['t_refined'] / r['t_full']:.3f} | "
            f"{r['t_per_chunk'] / r['t_full']:.3f} | {2 * r['evaluated_fraction']:.3f} | "
            f"{'yes' if r['t_refined'] <= r['bound_s'] else 'no'} "
            f"({r['t_refined'] / r['t_full']:.3f} <= {r['bound_s'] / r['t_full']:.3f}) | "
            f"{'yes' if r['same_values'] else 'NO'} |"
        )
    return "\n".join(lines + ([""] + [note] if note else []))


def main(argv: list[str] | None = None) -> int:
    """Measure the cases, print the table (and write BENCHMARKS.md with ``--write``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", default=[], help="tanh<n> or erf<n>")
    ap.add_argument("--refined-only", action="append", default=[], help="a case run refined only")
    ap.add_argument(
        "--partial-full",
        action="append",
        default=[],
        help="a case compared with the finished chunks of a full run stopped midway",
    )
    ap.add_argument("--timing", action="append", default=[], help="a case timed (see above)")
    ap.add_argument("--steps", type=int, default=None, help="trainability steps for --timing")
    ap.add_argument("--work", default="refine_bench", help="folder for the stores")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="rewrite the BENCHMARKS.md section")
    ap.add_argument("--note", default="", help="a paragraph under the table")
    args = ap.parse_args(argv)
    if args.timing:
        trows = []
        for case in args.timing:
            trows.append(timing(case, args.steps, Path(args.work), args.workers))
            print(json.dumps(trows[-1]), flush=True)
            if args.write:
                write_section("refine-time", timing_table(trows, args.note))
        print(timing_table(trows, args.note))
        return 0
    rows = []
    cases = [(c, True) for c in args.case] + [(c, False) for c in args.refined_only]
    cases += [(c, "partial") for c in args.partial_full]
    for case, full_too in cases:
        rows.append(measure(case, Path(args.work), args.workers, full_too))
        print(json.dumps(rows[-1]), flush=True)
        if args.write:  # after every case: a long run keeps what it measured
            write_section("refine", table(rows, args.note))
    print(table(rows, args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
