"""Shared by the benchmark scripts: their BENCHMARKS.md sections, the CPU's name, and
running a test file whose log goes beside the results."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# Benchmarks\n\nResults of the scripts in `benchmarks/`. Speeds are ratios measured in one "
    "run against a reference on the same machine.\n\n"
)


def write_section(section: str, text: str) -> None:
    """Replace (or append) ``section`` of BENCHMARKS.md, between the markers
    ``<!-- begin SECTION -->`` and ``<!-- end SECTION -->``."""
    path = ROOT / "BENCHMARKS.md"
    begin, end = f"<!-- begin {section} -->", f"<!-- end {section} -->"
    body = f"{begin}\n{text}\n{end}"
    if path.exists():
        old = path.read_text()
        if begin in old and end in old:
            new = old[: old.index(begin)] + body + old[old.index(end) + len(end) :]
        else:
            new = old.rstrip() + "\n\n" + body + "\n"
    else:
        new = HEADER + body + "\n"
    path.write_text(new)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_tests(args: list[str], out_dir: Path | None, log_name: str) -> int:
    """``python -m pytest ARGS`` in the repository; print its log, keep it in ``out_dir``."""
    cmd = [sys.executable, "-m", "pytest", *args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    log = f"$ {' '.join(cmd)}\nexit {res.returncode}\n{res.stdout}\n{res.stderr}"
    print(log[-6000:], flush=True)
    if out_dir is not None:
        (out_dir / log_name).write_text(log)
    return res.returncode


def machine_line() -> str:
    """CPU, cores, NumPy, BLAS, Python and date: the first line of every CPU section."""
    import os
    import time

    import numpy as np
    from threadpoolctl import threadpool_info

    blas = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    )
    return (
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; NumPy {np.__version__}; BLAS: {blas}; "
        f"Python {platform.python_version()}. Date: {time.strftime('%Y-%m-%d')}."
    )


def interleaved(ref, test, repeats: int) -> tuple[list[float], list[float], list[float]]:
    """Time ``ref()`` and ``test()`` alternately ``repeats`` times (each returns its seconds):
    the two lists of times and the per-pair ratios ref/test, so that machine noise hits both."""
    t_ref, t_test, ratios = [], [], []
    for _ in range(repeats):
        a, b = ref(), test()
        t_ref.append(a)
        t_test.append(b)
        ratios.append(a / b)
    return t_ref, t_test, ratios
