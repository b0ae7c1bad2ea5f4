"""Where each architecture's frontier crosses σ_b = 0 (D'Inverno et al.'s sanity value).

For every (architecture, weight tying) of the workflows (erf, N = 100, projected biases; at
σ_b = 0 the bias law does not matter), σ_w runs over 2001 points in [0.5, 1.5] on one network
with the pair probe (q0 = 1, c0 = 0) and the divergence probe, depth 100 (``--depth``), seeds
0-3. Reported per seed: the first σ_w where λ_L > 0 and the first where err_L > 1e-3, against
mean field √π/2 ≈ 0.886 (their structured N = 100, depth-100 run crosses at ≈ 0.90). One JSON
line per (architecture, tying, seed) goes to ``--json``.

    python benchmarks/dinverno2025_sigma_b0.py
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from pipeline.experiments.propagation.architectures import ARCHITECTURES, WEIGHT_TYING, Network
from pipeline.experiments.propagation.network import propagate_architecture
from pipeline.experiments.propagation.probes import DivergenceProbe, PairProbe, Probes


def first_above(sw: np.ndarray, v: np.ndarray, level: float) -> float | None:
    """The first σ_w with v > level (None if none)."""
    idx = np.flatnonzero(v > level)
    return float(sw[idx[0]]) if len(idx) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--json", default=str(Path(__file__).with_name("dinverno2025_sigma_b0.json")))
    args = ap.parse_args()
    sw = np.linspace(0.5, 1.5, 2001)
    probes = Probes(pair=PairProbe(q0=1.0, c0=0.0), divergence=DivergenceProbe())
    for arch in ARCHITECTURES:
        for tying in WEIGHT_TYING:
            for seed in range(args.seeds):
                (res,) = propagate_architecture(
                    args.width, 2.0, seed, [("erf", sw, np.zeros_like(sw))], depth=args.depth,
                    record_layers=[args.depth], probes=probes,
                    network=Network(arch, tying, "projected"), dtype="float32",
                )  # fmt: skip
                row = {
                    "architecture": arch,
                    "weight_tying": tying,
                    "seed": seed,
                    "width": args.width,
                    "depth": args.depth,
                    "lambda_crossing": first_above(sw, res["lyapunov"][:, 0], 0.0),
                    "err_crossing_1e-3": first_above(sw, res["err"][:, 0], 1e-3),
                    "mean_field": math.sqrt(math.pi) / 2,
                }
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(row, flush=True)


if __name__ == "__main__":
    main()
