"""The bias of D'Inverno et al.'s estimator on err-like fields of known boundary dimension.

Their number is the largest least-squares slope (box sizes 1-49 px) over 32 thresholds
t ∈ [1e-5, 1] of the class err <= t. A frontier image has a converged side (err ~ 0) and a
chaotic side whose err is pixel-to-pixel noise of order 1e-3..1 (neighbouring σ's decorrelate
in the chaotic phase). This builds such fields around battery boundaries of known dimension
D: err = 1e-12 on the battery's ordered side and, on the other, independent log-uniform
values in [10^lo, 1] (``--noise-decades``: lo = −decades), and reports per field and
resolution their estimate, the threshold it picked, and their single-threshold fit at
t = 1e-6 (a threshold below the noise: the boundary alone). One JSON line per field and
resolution goes to ``--json``.

    python benchmarks/dinverno2025_estimator_bias.py --sizes 512 1000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline.analysis.fractal.battery import BATTERY
from pipeline.analysis.fractal.estimators import dinverno_dimension

FIELDS = ("smooth_blob", "koch_snowflake", "minkowski_sausage", "weierstrass_h0.25")


def err_field(ordered: np.ndarray, decades: float, rng: np.random.Generator) -> np.ndarray:
    """1e-12 where ``ordered``, else 10^U(−decades, 0) per pixel."""
    noise = 10.0 ** rng.uniform(-decades, 0.0, ordered.shape)
    return np.where(ordered, 1e-12, noise)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1000])
    ap.add_argument("--noise-decades", type=float, default=3.0)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument(
        "--json", default=str(Path(__file__).with_name("dinverno2025_estimator_bias.json"))
    )
    args = ap.parse_args()
    for name in FIELDS:
        field = BATTERY[name]
        for n in args.sizes:
            for seed in range(args.seeds):
                f = np.asarray(field.render(n, seed))
                ordered = ~(f > 0)
                err = err_field(ordered, args.noise_decades, np.random.default_rng(seed))
                theirs = dinverno_dimension(err, distance=True)
                below = dinverno_dimension(err, distance=True, thresholds=(1e-6,))
                row = {
                    "field": name,
                    "true_dimension": field.dimension,
                    "size": n,
                    "seed": seed,
                    "noise_decades": args.noise_decades,
                    "theirs_max_over_t": round(float(theirs.estimate), 4),
                    "their_t": float(theirs.extra["threshold"]),
                    "theirs_at_1e-6": round(float(below.estimate), 4),
                }
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(row, flush=True)


if __name__ == "__main__":
    main()
