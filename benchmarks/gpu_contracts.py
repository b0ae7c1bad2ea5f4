"""The measurements behind the GPU contracts of docs/backends.md (no GPU needed).

* float64/float32 α-stable draws of ``rng.cu`` built for the host with CUDA's libdevice
  (:mod:`pipeline.gpu.host_build`) against NumPy's ``rng.stable_block``: ulp distribution per α
  over 3 blocks of 512 × 512, and whether the result depends on the model of the hardware's
  approximate reciprocal;
* the training kernel's emulation (its arithmetic, ``--fmad=false``) against the NumPy
  reference on 64 × 64 points of the issue grid (width 8, depth 2, tanh, 100 steps, float64):
  classes, scores within 1e-6 overall and at non-chaotic points (score moves < 1e-9 under a
  one-ulp change of lr_in);
* register spills of the training kernel's entry points (``nvcc -Xptxas -v``, sm_90).

Writes the ``gpu-contracts`` section of BENCHMARKS.md::

    python benchmarks/gpu_contracts.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import write_section  # noqa: E402  (benchmarks/ is on sys.path)

from pipeline import rng
from pipeline.gpu.host_build import build, toolchain_missing
from pipeline.gpu.kernels import kernel_source

ALPHAS = (2.0, 1.9, 1.5, 1.2, 1.0, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1)
BLOCKS = ((99, 3), (1, 1), (2**40 + 3, 17))


def draws() -> list[str]:
    hw, exact = build("hw"), build("exact")
    rows = [
        "| α | draws | within 1 ulp | within 2 ulp | within 4 ulp | 99.9 % quantile | max ulp | "
        "float32 identical | depends on the rcp model |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in ALPHAS:
        us, same32, n, model = [], 0, 0, 0
        for seed, layer in BLOCKS:
            want = rng.stable_block(seed, 0, layer, 0, 512, 0, 512, a)
            got = hw.fill_stable(seed, 0, layer, 0, 512, 0, 512, a)
            model += int(np.sum(got != exact.fill_stable(seed, 0, layer, 0, 512, 0, 512, a)))
            ok = np.isfinite(want) & (want != 0)
            us.append(np.abs(got[ok] - want[ok]) / np.spacing(np.abs(want[ok])))
            g32 = hw.fill_stable(seed, 0, layer, 0, 512, 0, 512, a, np.float32)
            with np.errstate(over="ignore"):
                same32 += int(
                    np.sum(g32.view(np.uint32) == want.astype(np.float32).view(np.uint32))
                )
            n += want.size
        u = np.concatenate(us)
        rows.append(
            f"| {a} | {u.size} | {np.mean(u <= 1):.4f} | {np.mean(u <= 2):.4f} | "
            f"{np.mean(u <= 4):.4f} | {np.quantile(u, 0.999):.0f} | {u.max():.0f} | "
            f"{same32} / {n} | {model} |"
        )
    return rows


def training() -> str:
    from pipeline.experiments.trainability.emulate import run_train_kernel
    from pipeline.experiments.trainability.gpu import train_points as train_gpu
    from pipeline.experiments.trainability.reference import make_problem, train_points

    g = 10.0 ** np.linspace(-3, 6, 64)
    li, lo = np.repeat(g, 64), np.tile(g, 64)
    pr = make_problem(8, 2, 0, 0.0, "full")
    ref = train_points(pr, "tanh", li, lo, steps=100)
    nudged = train_points(pr, "tanh", np.nextafter(li, np.inf), lo, steps=100)
    emu = train_gpu(pr, "tanh", li, lo, steps=100, runner=run_train_kernel)
    cls = np.mean((emu["score"] < 0) == (ref["score"] < 0))
    rel = np.abs(emu["score"] - ref["score"]) / np.abs(ref["score"])
    stable = np.abs(nudged["score"] - ref["score"]) <= 1e-9 * np.abs(ref["score"])
    return (
        f"Training kernel's emulation vs NumPy, 64 × 64 points (width 8, depth 2, tanh, 100 "
        f"steps, float64): classes agree at {cls:.5f}; scores within 1e-6 relative at "
        f"{np.mean(rel <= 1e-6):.4f} of all points; {stable.mean():.4f} of the points are "
        f"non-chaotic, and there {np.mean(rel[stable] <= 1e-6):.4f} agree within 1e-6 "
        f"(largest {rel[stable].max():.1e})."
    )


def training_tanh() -> list[str]:
    """The device test's 48 cases (tests/test_gpu_train.py): the emulation with NumPy's tanh
    against the emulation with CUDA's (= the kernel's arithmetic), worst relative loss
    difference per point."""
    import functools

    from pipeline.experiments.trainability.emulate import run_train_kernel
    from pipeline.experiments.trainability.gpu import train_points as train_gpu
    from pipeline.experiments.trainability.reference import make_problem

    cuda = functools.partial(run_train_kernel, tanh=build().tanh)
    lr_in = 10.0 ** np.array([-1.0, 0.0, 0.5, 1.0, -2.0, 2.5])
    lr_out = 10.0 ** np.array([0.0, -1.0, 1.0, 0.3, 3.0, 2.5])
    offset = np.array([0.0, 0.2, -0.1, 0.5, 0.0, 1.0])
    worst = {"float64": np.zeros(6), "float32": np.zeros(6)}
    classes = True
    for dtype in worst:
        for width in (3, 8, 13, 32):
            for depth in (2, 3, 4):
                for dataset, act in (("full", "tanh"), ("minibatch", "sigmoid")):
                    pr = make_problem(width, depth, 2, 0.05, dataset)
                    kw = {"steps": 8, "dtype": dtype, "keep_trajectory": True}
                    a = train_gpu(pr, act, lr_in, lr_out, offset, runner=run_train_kernel, **kw)
                    b = train_gpu(pr, act, lr_in, lr_out, offset, runner=cuda, **kw)
                    with np.errstate(all="ignore"):
                        rel = np.nan_to_num(np.abs(a["loss"] - b["loss"]) / np.abs(b["loss"]))
                    worst[dtype] = np.maximum(worst[dtype], rel.max(axis=1))
                    classes &= bool(np.array_equal(a["converged"], b["converged"]))
    head = " | ".join(f"lr_in 10^{np.log10(a):g}, lr_out 10^{np.log10(b):g}" for a, b in
                      zip(lr_in, lr_out, strict=True))  # fmt: skip
    return [
        "Training kernel, the device test's 48 cases (widths 3-32, depths 2-4, tanh/full and "
        "sigmoid/minibatch, 8 steps): the emulation with NumPy's tanh against the emulation "
        "with CUDA's tanh (the kernel's arithmetic), largest relative loss difference per "
        f"point; converged flags equal in every case: {classes}.",
        "",
        f"| dtype | {head} |",
        "|---" * 7 + "|",
        *(f"| {k} | " + " | ".join(f"{v:.1e}" for v in w) + " |" for k, w in worst.items()),
    ]


def spills() -> list[str]:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return ["(nvcc not on PATH: no spill statistics)"]
    rows = ["| entry point | registers | stack | spill stores / loads |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "train.cu"
        src.write_text(kernel_source("train.cu"))
        out = subprocess.run(
            [nvcc, "-cubin", "-std=c++14", "--fmad=false", "-arch=sm_90", "-Xptxas", "-v",
             "-o", str(Path(tmp) / "t.cubin"), str(src)],
            capture_output=True, text=True, check=True,
        ).stderr  # fmt: skip
    pat = re.compile(
        r"Function properties for (ps_train_\w+)\n\s+(\d+) bytes stack frame, (\d+) bytes spill "
        r"stores, (\d+) bytes spill loads\n.*?Used (\d+) registers",
        re.S,
    )
    for name, stack, st, ld, regs in pat.findall(out):
        if int(st) or int(ld):
            rows.append(f"| {name} | {regs} | {stack} B | {st} / {ld} B |")
    rows.append("(entry points not listed: no spills)")
    return rows


def main() -> None:
    why = toolchain_missing()
    if why is not None:
        raise SystemExit(f"cannot build the kernels for the host: {why}")
    t = time.time()
    text = "\n".join(
        [
            "## GPU contracts (host build of the kernels, no GPU)",
            "",
            f"Date: {time.strftime('%Y-%m-%d')}. Command: `python benchmarks/gpu_contracts.py`. "
            "`rng.cu` and CUDA's libdevice (tan/log/exp) built for the host "
            "(`pipeline/gpu/host_build.py`) against NumPy's `rng.stable_block` on this CPU, "
            "3 blocks of 512 × 512 (weights, seeds 99, 1, 2⁴⁰ + 3). 'depends on the rcp model': "
            "draws that differ between the two models of the hardware's approximate reciprocal.",
            "",
            *draws(),
            "",
            training(),
            "",
            *training_tanh(),
            "",
            "Register spills of the training kernel (nvcc -Xptxas -v, sm_90, --fmad=false):",
            "",
            *spills(),
            "",
            f"({time.time() - t:.0f} s.)",
        ]
    )
    print(text)
    write_section("gpu-contracts", text)


if __name__ == "__main__":
    main()
