"""Loading and compiling the raw CUDA kernels, shipped as package data; the kernel cache.

The CUDA C sources are the package ``pipeline.kernels`` (``*.cu`` entry points, ``*.cuh``
shared device code; ``kernels/`` at the repository root points there), read with
:mod:`importlib.resources`, so an installed wheel has them. ``#include "x.cuh"`` lines are
inlined before compilation, so the cache key (a hash of the text) sees a header change.

Compilation (:func:`compiled_module`) calls NVRTC through CuPy's binding with
:data:`NVRTC_OPTIONS`, decided here rather than inherited from CuPy (whose own compile path
appends ``-ftz=true``):

* ``--fmad=false``: no contraction of ``a*b + c`` into an FMA, so every multiply and add of
  our kernels rounds as written, and the NumPy emulations (``ops.NumpyOps``,
  ``trainability/emulate.py``), which round the same way, pin the kernels' arithmetic. (The
  math library's internal FMAs are explicit and unaffected.) Cost: the training kernel issues
  a multiply and an add where an FMA would do; ``benchmarks/trainability.py`` reports the rate
  against the device's FMA peak.
* ``-ftz=false``: float32 subnormals are kept, as NumPy keeps them (CuPy's default flushes
  them, which changes float32 results once |h| < 1.2e-38, e.g. α-stable tails at α < 0.1).

The binary (cubin for the device's architecture, else PTX for the newest one NVRTC knows) is
written to :func:`kernel_cache_dir` under a name made of the source's hash, the options, the
architecture and the NVRTC version. A file lock around compile-and-write makes the first
process of a node compile and every other worker wait and load the file, so a node pays the
compilation once (``train.cu`` is compiled per entry point, a few seconds each, not the
~44 s of all 24). The cache is CuPy's folder (``CUPY_CACHE_DIR``, default
``~/.cupy/kernel_cache``); :func:`set_kernel_cache_dir` moves it, e.g. to node-local
scratch on a cluster.

The launch wrappers (in the experiments' ``ops``/``gpu`` modules) validate their arguments,
normalise dtypes and contiguity, pass explicit ``np.int32`` / ``np.int64`` / ``np.uint32`` /
``np.float64`` scalars (CuPy would otherwise guess the C type of a Python int) and launch
grid-stride kernels; :func:`grid_blocks` and :func:`dtype_suffix` are their helpers.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ACTIVATION_IDS_HEADER",
    "CMS_ALPHA2",
    "CMS_GENERAL",
    "CMS_NORMAL",
    "NVRTC_OPTIONS",
    "activation_ids_header",
    "cms_args",
    "cms_mode",
    "compile_to_cache",
    "compiled_module",
    "dtype_suffix",
    "grid_blocks",
    "kernel_cache_dir",
    "kernel_files",
    "kernel_source",
    "set_kernel_cache_dir",
]


def kernel_files() -> Traversable:
    """The installed kernel sources: the package-data folder ``pipeline.kernels``."""
    return files("pipeline.kernels")


CMS_GENERAL, CMS_ALPHA2, CMS_NORMAL = 0, 1, 2
"""``mode`` of the fill kernel (PS_CMS_* in philox_cms.cuh)."""

_INCLUDE = re.compile(r'^#include "([A-Za-z0-9_.]+)"\s*$', re.MULTILINE)


ACTIVATION_IDS_HEADER = "activation_ids.cuh"
"""The kernels' activation ids: generated from the one table (:func:`activation_ids_header`);
the file of that name in ``kernels/`` is the same text, for nvcc builds of the files."""


def activation_ids_header() -> str:
    """The text of ``activation_ids.cuh``: one ``#define PS_ACT_<NAME> <id>`` per entry of
    :data:`pipeline.numerics.activations.ACTIVATIONS` (its ``kernel_id``), in id order.
    NVRTC builds use this text; a test checks the shipped file is it."""
    from pipeline.numerics.activations import ACTIVATIONS

    lines = [
        "// Activation ids shared by every kernel, generated from the one activation table,",
        "// pipeline/numerics/activations.py (ACTIVATIONS[name].kernel_id), by",
        "// pipeline.gpu.kernels.activation_ids_header(); compilations through NVRTC use that",
        "// text, and a test checks that this file is it.",
        "#pragma once",
        "",
    ]
    for name, act in sorted(ACTIVATIONS.items(), key=lambda kv: kv[1].kernel_id):
        lines.append(f"#define PS_ACT_{name.upper()} {act.kernel_id}")
    return "\n".join(lines) + "\n"


def kernel_source(name: str) -> str:
    """Text of the kernel source ``name`` (e.g. ``"rng.cu"``) with its ``#include "..."``
    headers inlined (one level deep, each header once; ``#pragma once`` lines dropped);
    ``activation_ids.cuh`` is generated from the activation table
    (:func:`activation_ids_header`)."""
    root = kernel_files()
    text = root.joinpath(name).read_text()
    seen: set[str] = set()

    def inline(m: re.Match[str]) -> str:
        header = m.group(1)
        if header in seen:
            return ""
        seen.add(header)
        if header == ACTIVATION_IDS_HEADER:
            body = activation_ids_header()
        else:
            body = root.joinpath(header).read_text()
        return body.replace("#pragma once\n", "")

    return _INCLUDE.sub(inline, text)


def kernel_cache_dir() -> str:
    """Where CuPy keeps compiled kernels (``CUPY_CACHE_DIR`` or CuPy's default)."""
    return os.environ.get("CUPY_CACHE_DIR") or str(Path.home() / ".cupy" / "kernel_cache")


def set_kernel_cache_dir(path: str | os.PathLike[str]) -> str:
    """Point CuPy's kernel cache at ``path`` (created if missing); call before the first
    kernel compiles in this process (a Dask worker: in a worker plugin or its environment).
    Returns the absolute path."""
    p = Path(path).expanduser().resolve()
    p.mkdir(parents=True, exist_ok=True)
    os.environ["CUPY_CACHE_DIR"] = str(p)
    return str(p)


def cms_args(alpha: float, normal: bool = False) -> tuple[np.float64, ...]:
    """(pi, pi_1ma, pi_a2, c_t, c_s) of ``rng._cms_constants`` as float64 kernel scalars
    (the same Python-float expressions, so the same bits)."""
    return (
        np.float64(math.pi),
        np.float64(math.pi * (1.0 - alpha)),
        np.float64(0.5 * math.pi * alpha),
        np.float64(0.5 / alpha),
        np.float64(0.5 * (1.0 - alpha) / alpha),
    )


def cms_mode(alpha: float, normal: bool = False) -> int:
    """Which evaluation rng._cms runs for this α (the α = 2 special case, or general)."""
    if normal:
        return CMS_NORMAL
    return CMS_ALPHA2 if alpha == 2.0 else CMS_GENERAL


def grid_blocks(total: int, block: int, device_blocks: int) -> int:
    """Blocks for a grid-stride loop over ``total`` items: enough to fill the device, at
    most one per ``block`` items."""
    return max(1, min(-(-total // block), device_blocks))


NVRTC_OPTIONS = ("--std=c++14", "--fmad=false", "-ftz=false")
"""NVRTC options of every kernel (see the module docstring for why each)."""


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing), shared by the processes of a
    node (and of every node where the file system honours flock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _nvrtc() -> Any:
    from cupy.cuda import nvrtc

    return nvrtc


def _target(major_minor: int) -> tuple[str, str]:
    """(``-arch`` value, ``cubin`` or ``ptx``) for a device of compute capability
    ``major_minor`` (e.g. 90): a cubin where NVRTC knows the architecture, else PTX for the
    newest one it knows (the driver compiles that)."""
    try:
        archs = [int(a) for a in _nvrtc().getSupportedArchs()]
    except Exception:  # old NVRTC without the query: assume it knows the device
        archs = [major_minor]
    if major_minor in archs:
        return f"sm_{major_minor}", "cubin"
    return f"compute_{max(a for a in archs if a <= major_minor)}", "ptx"


def compile_to_cache(
    name: str, arch: int, defines: tuple[str, ...] = (), cache_dir: str | None = None
) -> Path:
    """Compile kernel source ``name`` with :data:`NVRTC_OPTIONS` (plus ``-D`` ``defines``) for
    compute capability ``arch`` (e.g. 90) into the kernel cache, once per node; return the
    binary's path. Needs NVRTC (CuPy's binding), not a device."""
    source = kernel_source(name)
    options = (*NVRTC_OPTIONS, *(f"-D{d}" for d in defines))
    target, kind = _target(arch)
    nvrtc = _nvrtc()
    version = ".".join(map(str, nvrtc.getVersion()))
    key = hashlib.sha256("\0".join((source, *options, target, version)).encode()).hexdigest()[:24]
    root = Path(cache_dir or kernel_cache_dir())
    path = root / f"phase-sweep-{Path(name).stem}-{key}.{kind}"
    if path.is_file():
        return path
    with _file_lock(root / f".phase-sweep-{key}.lock"):
        if path.is_file():  # another worker compiled it while we waited
            return path
        prog = nvrtc.createProgram(source, name, (), ())
        try:
            try:
                nvrtc.compileProgram(prog, (*options, f"--gpu-architecture={target}"))
            except nvrtc.NVRTCError as e:
                log = nvrtc.getProgramLog(prog)
                raise RuntimeError(f"NVRTC failed on {name}: {e}\n{log}") from e
            binary = nvrtc.getCUBIN(prog) if kind == "cubin" else nvrtc.getPTX(prog)
        finally:
            nvrtc.destroyProgram(prog)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(binary if isinstance(binary, bytes) else binary.encode())
        os.replace(tmp, path)  # readers see the whole file or none
    return path


@lru_cache(maxsize=32)
def compiled_module(name: str, device_id: int, defines: tuple[str, ...] = ()) -> Any:
    """The ``cupy.RawModule`` of kernel source ``name`` (with ``-D`` ``defines``) on device
    ``device_id``: loaded once per process from the kernel cache, compiled there first by
    whichever process of the node gets the lock (:func:`compile_to_cache`)."""
    import cupy as cp

    with cp.cuda.Device(device_id) as dev:
        # CuPy spells the capability as one number: "90" for 9.0, "120" for 12.0
        path = compile_to_cache(name, int(dev.compute_capability), defines)
        return cp.RawModule(path=str(path))


def dtype_suffix(dtype: np.dtype) -> str:
    """``f32`` or ``f64``: the suffix of a kernel entry point for ``dtype``."""
    if dtype == np.float32:
        return "f32"
    if dtype == np.float64:
        return "f64"
    raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
