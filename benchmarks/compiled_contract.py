"""The compiled CPU backend's contract, measured: how far ``numba`` is from the NumPy reference.

Trainability (width 16, depth 2, batch 272, tanh and relu, 100 steps, a 40 × 40 plane of
log10 lr_in ∈ [0, 3] × log10 lr_out ∈ [1.8, 2.8], across the convergence boundary),
float64 and float32: the share of points whose class (sign of the score) differs, overall
and among the chaotic points (those whose NumPy score moves by more than 1e-9 relative in
float64, 1e-4 in float32, or changes class, when both learning rates move by one ulp of the
compute dtype: there no tolerance can hold); the share of classes that NumPy itself changes
under that one-ulp move (the baseline); the relative score differences at the non-chaotic
points (median, 99th percentile, largest).

Propagation (erf, α = 2, N = 100, depth 100, pair probe, a 40 × 40 (σ_w, σ_b) plane over
[0, 4]²), float64 and float32: the share of points whose class (sign of λ_L) differs,
overall and among the chaotic points (λ_L > 0 in NumPy), and the relative differences of q
and c at the last layer on the ordered points (λ_L < −0.05).

    python benchmarks/compiled_contract.py          # rewrites its BENCHMARKS.md section
    python benchmarks/compiled_contract.py --quick  # smaller, prints only
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _report import machine_line, write_section  # noqa: E402

from pipeline.experiments.propagation import compiled as prop_compiled
from pipeline.experiments.propagation import reference as prop_ref
from pipeline.experiments.propagation.probes import PairProbe, Probes
from pipeline.experiments.trainability import reference as train_ref

CHAOS = {"float64": 1e-9, "float32": 1e-4}
"""A point is chaotic when a one-ulp change of its learning rates moves its NumPy score by
more than this (relative), or changes its class."""


def spread(rel: np.ndarray) -> str:
    """Median, 99th percentile and largest of relative differences."""
    if not rel.size:
        return "-"
    q50, q99, top = np.nanpercentile(rel, [50, 99, 100])
    return f"{q50:.1e} / {q99:.1e} / {top:.1e}"


def differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Class (sign) differs; NaN counts as a class of its own."""
    sa, sb = np.sign(a), np.sign(b)
    return ~((sa == sb) | (np.isnan(sa) & np.isnan(sb)))


def trainability(side: int, steps: int) -> list[str]:
    a, b = np.meshgrid(np.linspace(0.0, 3.0, side), np.linspace(1.8, 2.8, side), indexing="ij")
    lr_in, lr_out = 10.0 ** a.ravel(), 10.0 ** b.ravel()
    problem = train_ref.make_problem(16, 2, 0, 0.0, "full")
    rows = []
    for act in ("tanh", "relu"):
        for dt in ("float64", "float32"):
            kw = dict(steps=steps, dtype=dt)

            def score(backend: str, li: np.ndarray, lo: np.ndarray, act=act, kw=kw) -> np.ndarray:
                v = train_ref.train_losses(problem, act, li, lo, backend=backend, threads=2, **kw)
                return train_ref.score_trajectory(v)[0]

            ref = score("numpy", lr_in, lr_out)
            t = np.dtype(dt).type  # one ulp of the compute dtype (the rates are cast to it)
            nudged = score(
                "numpy",
                np.nextafter(lr_in.astype(t), t(np.inf)).astype(np.float64),
                np.nextafter(lr_out.astype(t), t(np.inf)).astype(np.float64),
            )
            got = score("numba", lr_in, lr_out)
            with np.errstate(all="ignore"):
                moved = np.abs(nudged / ref - 1)
            chaotic = differ(ref, nudged) | ~(moved <= CHAOS[dt])
            d = differ(got, ref)
            with np.errstate(all="ignore"):
                rel = np.abs(got / ref - 1)[~chaotic]
            rows.append(
                f"| trainability {act} | {dt} | {d.mean():.4f} | "
                f"{differ(nudged, ref).mean():.4f} | {chaotic.mean():.3f} | "
                f"{d[chaotic].mean() if chaotic.any() else 0:.4f} | {spread(rel)} |"
            )
            print(rows[-1], flush=True)
    return rows


def propagation(side: int, depth: int) -> list[str]:
    g = np.linspace(0.0, 4.0, side)
    a, b = np.meshgrid(g, g, indexing="ij")
    sw, sb = a.ravel(), b.ravel()
    rows = []
    for dt in ("float64", "float32"):
        kw = dict(depth=depth, record_layers=[depth], probes=Probes(pair=PairProbe()), dtype=dt)
        ref = prop_ref.propagate_network(100, 2.0, 0, [("erf", sw, sb)], threads=2, **kw)[0]
        got = prop_compiled.propagate_network(100, 2.0, 0, [("erf", sw, sb)], threads=2, **kw)[0]
        lam_r, lam_g = ref["lyapunov"][:, -1], got["lyapunov"][:, -1]
        d = differ(lam_g, lam_r)
        chaotic = lam_r > 0
        ordered = lam_r < -0.05
        rel = np.concatenate(
            [np.abs(got[k][ordered, -1] / ref[k][ordered, -1] - 1) for k in ("q", "c")]
        )
        rows.append(
            f"| propagation erf, N = 100, depth {depth} | {dt} | {d.mean():.4f} | - | "
            f"{chaotic.mean():.3f} | {d[chaotic].mean():.4f} | {spread(rel)} (q, c; ordered) |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small planes, print only")
    args = ap.parse_args()
    side, steps, depth = (12, 40, 30) if args.quick else (40, 100, 100)
    header = [
        "| case | dtype | classes differ (all) | NumPy vs NumPy one ulp away | chaotic share | "
        "classes differ (chaotic) | "
        "relative difference, non-chaotic: median / 99 % / largest |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = trainability(side, steps) + propagation(side, depth)
    text = "\n".join(
        [
            "## Compiled CPU backend: its contract, measured",
            "",
            machine_line(),
            "",
            "Command: `python benchmarks/compiled_contract.py`. Method: the script's docstring "
            f"({side} × {side} planes). The contract this measures is in docs/conventions.md, "
            "section 6.",
            "",
            *header,
            *rows,
        ]
    )
    print(text)
    if not args.quick:
        write_section("compiled-contract", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
