"""The CUDA kernels' own arithmetic on the host CPU: CUDA's math library (libdevice) and
``rng.cu`` built for x86-64, for tests and measurements without a GPU.

NVRTC links every math function of a kernel (``tan``, ``log``, ``exp``, ``tanh``, ``erf``, ...)
from ``libdevice.10.bc``, LLVM bitcode shipped with the CUDA toolkit. Those functions are plain
IEEE arithmetic (explicit FMAs, integer bit manipulation) plus a handful of NVVM intrinsics.
:func:`build` extracts the functions the kernels call, gives the intrinsics host definitions
(exact ones for the arithmetic; a stated model for the two hardware approximations below),
compiles the bitcode for the host with LLVM's ``llc`` and links it with ``rng.cu`` itself,
compiled as host C++ (the grid-stride loops run as one thread). The result is what the fill
kernels compute, value for value, on any machine with the CUDA toolkit and LLVM (no GPU).

Two intrinsics are hardware approximations whose exact bits NVIDIA does not specify:
``rcp.approx.ftz.f64`` (the seed of Newton steps in ``tan`` and ``log``) and
``ex2.approx.ftz.f32`` (inside ``tanh``/``erf``/``expf``). ``approx="hw"`` models them as the
hardware is documented to work (the reciprocal of the top 32 bits of the argument, returned in
the top 32 bits; exp2 to ~22 bits), ``approx="exact"`` uses correctly rounded values.
A result that differs between the two models depends on bits we cannot know; tests and
benchmarks report that share (for the draws at most 3 of 786 432 per α: the Newton steps
absorb the seed nearly always; BENCHMARKS.md "GPU contracts").

Requirements: ``libdevice.10.bc`` (found next to ``nvcc`` on PATH or under ``CUDA_HOME`` /
``CUDA_PATH``), LLVM's ``llvm-extract`` and ``llc`` (any version that reads the toolkit's
bitcode; LLVM 14 does), and a C++ compiler (``c++``/``g++``). :func:`toolchain_missing` says
which is missing. Builds are cached per input hash in the system's temporary folder.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from pipeline.gpu.kernels import cms_args, cms_mode, kernel_source

__all__ = ["HostKernels", "build", "libdevice_path", "toolchain_missing"]

MATH_FUNCTIONS = (
    "__nv_tan",
    "__nv_log",
    "__nv_exp",
    "__nv_tanh",
    "__nv_erf",
    "__nv_tanhf",
    "__nv_erff",
    "__nv_expf",
)
"""The libdevice functions our kernels call (rng.cu: tan, log, exp; propagate.cu / train.cu:
tanh, erf, exp in float64 and float32)."""

APPROX = ("hw", "exact")


def libdevice_path() -> Path | None:
    """``libdevice.10.bc`` of the CUDA toolkit (next to ``nvcc`` on PATH, or under
    ``CUDA_HOME`` / ``CUDA_PATH``), or None."""
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        real = Path(nvcc).resolve()
        roots.append(str(real.parent.parent))
        # a wrapper script on PATH: look for the toolkit folder it names
        try:
            text = real.read_text(errors="ignore")[:2000]
            roots += re.findall(r"(/[\w./-]*cuda[\w.-]*)/bin/nvcc", text)
        except OSError:
            pass
    roots += sorted(str(p) for p in Path("/usr/local").glob("cuda*"))
    for r in roots:
        if r:
            p = Path(r) / "nvvm" / "libdevice" / "libdevice.10.bc"
            if p.is_file():
                return p
    return None


def _tools() -> dict[str, str | None]:
    return {
        "llvm-extract": shutil.which("llvm-extract"),
        "llc": shutil.which("llc"),
        "c++": shutil.which("c++") or shutil.which("g++"),
    }


def toolchain_missing() -> str | None:
    """Why :func:`build` cannot run here (one line), or None when it can."""
    if libdevice_path() is None:
        return "libdevice.10.bc not found (no CUDA toolkit: nvcc on PATH, CUDA_HOME or CUDA_PATH)"
    missing = [k for k, v in _tools().items() if v is None]
    if missing:
        return f"not on PATH: {', '.join(missing)} (LLVM tools and a C++ compiler)"
    return None


def _run(cmd: list[str], cwd: Path) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd[:2])}... exit {res.returncode}: {res.stderr[-2000:]}")


def _patch_ir(text: str) -> str:
    """libdevice IR for the host: x86-64 target, global address spaces flattened, NVVM
    intrinsics and __nvvm_reflect renamed to the shim's definitions."""
    layout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-f80:128-n8:16:32:64-S128"
    text = re.sub(r"^target datalayout = .*$", f'target datalayout = "{layout}"', text, flags=re.M)
    triple = 'target triple = "x86_64-pc-linux-gnu"'
    text = re.sub(r"^target triple = .*$", triple, text, flags=re.M)
    text = text.replace(" addrspace(1)", "")
    text = re.sub(
        r"@llvm\.nvvm\.([a-z0-9_.]+)", lambda m: "@ps_nvvm_" + m.group(1).replace(".", "_"), text
    )
    text = text.replace("@__nvvm_reflect", "@ps_nvvm_reflect")
    # inline PTX: the 128-bit integer helpers of the trigonometric argument reduction and the
    # float reciprocal seed of tanhf become calls of the shim's definitions
    used = set()

    def asm(m: re.Match[str]) -> str:
        body = m.group(1)
        for key, name in _ASM:
            if key in body:
                used.add(name)
                return "@" + name
        raise RuntimeError(f"libdevice: inline PTX without a host definition: {body[:80]!r}")

    text = re.sub(r'asm (?:sideeffect )?"((?:[^"\\]|\\.)*)", "[^"]*"', asm, text)
    decls = {name: sig for name, sig in _ASM_DECLS.items() if name in used}
    return text + "".join(f"\ndeclare {sig}\n" for sig in decls.values())


_ASM = (
    ("rcp.approx.ftz.f32", "ps_asm_rcp_approx_ftz_f"),
    ("add.cc.u32", "ps_asm_add128"),
    ("sub.cc.u32", "ps_asm_sub128"),
    ("mad.lo.cc.u32   r0", "ps_asm_mad128"),
    ("mul.lo.u32", "ps_asm_mul128"),
)
_ASM_DECLS = {
    "ps_asm_rcp_approx_ftz_f": "float @ps_asm_rcp_approx_ftz_f(float)",
    "ps_asm_add128": "{ i64, i64 } @ps_asm_add128(i64, i64, i64, i64)",
    "ps_asm_sub128": "{ i64, i64 } @ps_asm_sub128(i64, i64, i64, i64)",
    "ps_asm_mad128": "{ i64, i64 } @ps_asm_mad128(i64, i64, i64)",
    "ps_asm_mul128": "{ i64, i64 } @ps_asm_mul128(i64, i64)",
}


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    why = toolchain_missing()
    if why is not None:
        raise RuntimeError(f"cannot build the kernels for the host: {why}")
    libdevice = libdevice_path()
    assert libdevice is not None
    tools = _tools()
    rng_src = kernel_source("rng.cu")
    shim = files("pipeline.gpu").joinpath("host_shim.cpp").read_text()
    key = hashlib.sha256(
        libdevice.read_bytes() + shim.encode() + rng_src.encode() + str(tools).encode()
    ).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"phase-sweep-host-kernels-{key}"
    lib = out / "libpshost.so"
    if not lib.is_file():
        work = Path(tempfile.mkdtemp(prefix="phase-sweep-host-build-"))
        funcs = [f"--func={f}" for f in MATH_FUNCTIONS]
        _run(
            [tools["llvm-extract"], "--recursive", *funcs, "--rglob=.*", "-S", str(libdevice),
             "-o", "ext.ll"],
            work,
        )  # fmt: skip
        (work / "host.ll").write_text(_patch_ir((work / "ext.ll").read_text()))
        _run([tools["llc"], "-O2", "-filetype=obj", "-relocation-model=pic", "host.ll",
              "-o", "libdevice_host.o"], work)  # fmt: skip
        (work / "shim.cpp").write_text(shim + "\n" + rng_src)
        flags = ["-O2", "-std=c++14", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC"]
        _run([tools["c++"], *flags, "shim.cpp", "libdevice_host.o", "-o", "libpshost.so"], work)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".libpshost.{os.getpid()}.so"
        shutil.copy(work / "libpshost.so", tmp)
        os.replace(tmp, lib)  # atomic: concurrent builders agree
        shutil.rmtree(work, ignore_errors=True)
    return ctypes.CDLL(str(lib))


class HostKernels:
    """CUDA's math functions and the fill kernels of ``rng.cu``, run on the host.

    ``approx``: the model of the two hardware approximations (``"hw"`` or ``"exact"``, see the
    module docstring); ``ftz``: flush float32 subnormals as ``-ftz=true`` would (our kernels
    are compiled with ``-ftz=false``).
    """

    def __init__(self, approx: str = "hw", ftz: bool = False) -> None:
        if approx not in APPROX:
            raise ValueError(f"approx: expected one of {APPROX}, got {approx!r}")
        self.lib = _library()
        self.approx, self.ftz = approx, ftz

    def _mode(self) -> None:
        self.lib.ps_set_mode(int(self.approx == "hw"), int(self.ftz))

    def _vec(self, name: str, x: np.ndarray, dtype: type) -> np.ndarray:
        a = np.ascontiguousarray(x, dtype)
        y = np.empty_like(a)
        self._mode()
        getattr(self.lib, name)(
            a.ctypes.data_as(ctypes.c_void_p),
            y.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_longlong(a.size),
        )
        return y

    def math(self, name: str, x: np.ndarray) -> np.ndarray:
        """CUDA's ``name`` (``tan``, ``log``, ``exp``, ``tanh``, ``erf`` in float64; ``tanhf``,
        ``erff``, ``expf`` in float32) elementwise on ``x``; same shape."""
        dtype = np.float32 if name.endswith("f") and name != "erf" else np.float64
        return self._vec(f"ps_v_{name}", x, dtype)

    def tanh(self, x: np.ndarray) -> np.ndarray:
        """CUDA's ``tanhf`` (float32 input) or ``tanh`` (float64), same shape and dtype: what
        the kernels' ``tanh`` of that dtype computes."""
        a = np.asarray(x)
        name = "tanhf" if a.dtype == np.float32 else "tanh"
        return self.math(name, a).reshape(a.shape)

    def fill_stable(
        self,
        seed: int,
        stream: int,
        layer: int,
        row_start: int,
        n_rows: int,
        col_start: int,
        n_cols: int,
        alpha: float,
        dtype: type = np.float64,
        normal: bool = False,
    ) -> np.ndarray:
        """What ``ps_fill_stable_f32/f64`` writes for the (n_rows, n_cols) block: the
        draws keyed (seed, stream, layer, row_start + r, col_start + c), as ``dtype``."""
        out = np.zeros((n_rows, n_cols), dtype)
        suffix = "f32" if np.dtype(dtype) == np.float32 else "f64"
        fn = getattr(self.lib, f"ps_fill_stable_{suffix}")
        cu = ctypes.c_uint
        self._mode()
        fn(
            out.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_longlong(0),
            ctypes.c_longlong(n_cols),
            cu(seed & 0xFFFFFFFF),
            cu(seed >> 32),
            cu(stream),
            cu(layer),
            cu(row_start),
            cu(n_rows),
            cu(col_start),
            cu(n_cols),
            *(ctypes.c_double(float(v)) for v in cms_args(alpha, normal)),
            ctypes.c_int(cms_mode(alpha, normal)),
        )
        return out

    def uniforms(
        self, seed: int, stream: int, layer: int, row_start: int, n_rows: int, col_start: int,
        n_cols: int,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """What ``ps_uniforms_block`` writes: (u1, u2), float64 (n_rows, n_cols)."""
        u1 = np.zeros((n_rows, n_cols))
        u2 = np.zeros((n_rows, n_cols))
        cu = ctypes.c_uint
        self.lib.ps_uniforms_block(
            u1.ctypes.data_as(ctypes.c_void_p),
            u2.ctypes.data_as(ctypes.c_void_p),
            cu(seed & 0xFFFFFFFF),
            cu(seed >> 32),
            cu(stream),
            cu(layer),
            cu(row_start),
            cu(n_rows),
            cu(col_start),
            cu(n_cols),
        )
        return u1, u2


def build(approx: str = "hw", ftz: bool = False) -> HostKernels:
    """The host build (compiled once per process and cached on disk); raises RuntimeError
    with :func:`toolchain_missing`'s reason where it cannot be built."""
    return HostKernels(approx, ftz)
