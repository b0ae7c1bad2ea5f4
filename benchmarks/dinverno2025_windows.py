"""D'Inverno et al. (2025) frontiers at a chosen resolution: run a workflow's windows and
measure each frontier's dimension with their estimator and with the calibrated one.

For every (workflow, window scale) the workflow's spec is taken at that scale, its two σ axes
re-sampled to ``--size`` points (same window) and ``--depth`` layers, run with the NumPy
backend, and the deepest layer's err field measured:

* their estimator: :func:`~pipeline.analysis.fractal.estimators.dinverno_dimension` with
  ``distance=True`` (class err <= t, least squares over 1-49 px, max over 32 thresholds);
* the calibrated report (:func:`~pipeline.analysis.fractal.boundary.boundary_dimension`) of
  the class boundary at the probe's threshold (1e-3) and at the threshold their estimator
  picked.

One JSON line per run is appended to ``--json`` (REPRODUCTION.md cites them). Usage::

    python benchmarks/dinverno2025_windows.py --out /scratch/dinverno --size 512 \\
        --workflow workflows/dinverno2025_dense_per_layer.yaml --scales zoom1 zoom2 zoom3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pipeline import parse_spec, run_sweep
from pipeline.analysis.fractal.boundary import boundary_dimension
from pipeline.analysis.fractal.estimators import dinverno_dimension
from pipeline.errors import PipelineError
from pipeline.spec.workflow import load_workflow


def _calibrated(err: np.ndarray, t: float) -> dict[str, Any]:
    with np.errstate(divide="ignore"):
        rep = boundary_dimension(np.log(err / t))
    est = rep.estimate
    return {
        "threshold": t,
        "ordered_share": float(np.mean(err <= t)),
        "estimate": None if est is None else round(float(est.estimate), 4),
        "interval": None if est is None else [round(float(v), 4) for v in est.interval],
        "too_small": bool(rep.too_small) if est is not None else None,
        "drifting": bool(rep.drifting) if est is not None else None,
        "text": rep.text(),
    }


def measure(err: np.ndarray) -> dict[str, Any]:
    """Both estimators on one err field (σ_w × σ_b)."""
    out: dict[str, Any] = {"calibrated_1e-3": _calibrated(err, 1e-3)}
    try:
        th = dinverno_dimension(err, distance=True)
        t_best = float(th.extra["threshold"])
        out["theirs"] = {
            "estimate": round(float(th.estimate), 4),
            "threshold": t_best,
            "per_threshold": [None if np.isnan(v) else round(float(v), 4)
                              for v in th.extra["per_threshold"]],
        }  # fmt: skip
        out["calibrated_at_their_t"] = _calibrated(err, t_best)
    except PipelineError as e:
        out["theirs"] = {"estimate": None, "reason": str(e)}
    return out


def recentre(spec: Any, threshold: float, points: int = 4001) -> tuple[float, float]:
    """Shift of σ_w that centres the window on this network's frontier: along the window's
    middle σ_b row, over ±5, then ±50, then ±500 window widths of σ_w (within σ_w >= 0) at
    ``points`` points, the crossing of err_L = ``threshold`` nearest to the window's centre.
    Returns (shift, crossing)."""
    for reach in (5, 50, 500):
        found = _crossing_near(spec, threshold, points, reach)
        if found is not None:
            return found
    raise SystemExit("no frontier along the window's middle row")


def _crossing_near(
    spec: Any, threshold: float, points: int, reach: float
) -> tuple[float, float] | None:
    from pipeline.experiments.propagation.network import propagate_architecture

    sw_ax, sb_ax = spec.axis("sigma_w").values, spec.axis("sigma_b").values
    lo, hi = float(sw_ax[0]), float(sw_ax[-1])
    mid, width = (lo + hi) / 2, hi - lo
    sw = np.linspace(max(0.0, mid - reach * width), mid + reach * width, points)
    sb = np.full(points, float(sb_ax[len(sb_ax) // 2]))
    p = spec.params
    (res,) = propagate_architecture(
        int(spec.axis("width").values[0]), 2.0, int(spec.axis("seed").values[0]),
        [(str(spec.axis("activation").values[0]), sw, sb)], depth=p.depth,
        record_layers=[p.depth], probes=p.probes, network=p.network, dtype=spec.dtype,
    )  # fmt: skip
    chaotic = res["err"][:, 0] > threshold
    flips = np.flatnonzero(chaotic[1:] != chaotic[:-1])
    if not len(flips):
        return None
    at = sw[flips[np.argmin(np.abs(sw[flips] - mid))]]
    return float(at - mid), float(at)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workflow", required=True)
    ap.add_argument("--scales", nargs="+", required=True, help="window scales ('base': full)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--depth", type=int, default=None, help="default: the workflow's")
    ap.add_argument("--out", required=True, help="folder for the stores")
    ap.add_argument("--json", default=str(Path(__file__).with_name("dinverno2025_windows.json")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--with-pair",
        action="store_true",
        help="add the pair probe and measure the λ_L sign boundary of the same network too",
    )
    ap.add_argument(
        "--recentre",
        action="store_true",
        help="shift each window along σ_w onto this network's frontier (err_L = 1e-3)",
    )
    args = ap.parse_args()
    for scale in args.scales:
        spec = load_workflow(args.workflow, None if scale == "base" else scale)
        raw = spec.to_dict()
        raw.pop("scale", None)
        shift, crossing = (0.0, None)
        if args.recentre:
            shift, crossing = recentre(spec, 1e-3)
        for ax in ("sigma_w", "sigma_b"):
            v = spec.axis(ax).values
            d = shift if ax == "sigma_w" else 0.0
            raw["axes"][ax] = {"linspace": [float(v[0]) + d, float(v[-1]) + d], "count": args.size}
        if args.depth:
            raw["depth"] = args.depth
        if args.with_pair:
            raw["probes"] = {**raw["probes"], "pair": {"q0": 1.0, "c0": 0.0}}
        c = min(128, args.size)
        raw["chunks"] = {"sigma_w": c, "sigma_b": c}
        spec = parse_spec(raw)
        tag = ("_recentred" if args.recentre else "") + ("_pair" if args.with_pair else "")
        stem = Path(args.workflow).stem
        store = Path(args.out) / f"{stem}_{scale}{tag}_{args.size}_L{spec.params.depth}.zarr"
        load0 = os.getloadavg()[0]
        t0 = time.time()
        run_sweep(spec, store, n_workers=1, threads=args.threads, backend="numpy", progress=False)
        wall = time.time() - t0
        ds = xr.open_zarr(store)
        err = np.asarray(ds.err.isel(layer=-1).squeeze().transpose("sigma_w", "sigma_b"), float)
        row = {
            "workflow": Path(args.workflow).stem,
            "scale": scale,
            "recentred_sigma_w_shift": round(shift, 6) if args.recentre else None,
            "size": args.size,
            "depth": spec.params.depth,
            "network": dataclasses.asdict(spec.params.network),
            "window": [list(map(float, (spec.axis(a).values[0], spec.axis(a).values[-1])))
                       for a in ("sigma_w", "sigma_b")],
            "wall_s": round(wall, 1),
            "load_1min_at_start": round(load0, 2),
            "err_percentiles_0_50_100": [float(v) for v in np.nanpercentile(err, [0, 50, 100])],
            **measure(err),
        }  # fmt: skip
        if args.with_pair:
            lam = np.asarray(
                ds.lyapunov.isel(layer=-1).squeeze().transpose("sigma_w", "sigma_b"), float
            )
            rep = boundary_dimension(lam)
            row["lambda_sign"] = {
                "ordered_share": float(np.mean(lam <= 0)),
                "calibrated": rep.text(),
                "theirs_single_fit": round(float(dinverno_dimension(lam).estimate), 4),
                "pixels_err_class_differs": float(np.mean((lam > 0) != (err > 1e-3))),
            }
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{row['workflow']} {scale} {args.size}^2 L={row['depth']}: {wall:.0f} s; theirs "
            f"{row['theirs'].get('estimate')} (t={row['theirs'].get('threshold')}); calibrated "
            f"1e-3: {row['calibrated_1e-3']['text']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
