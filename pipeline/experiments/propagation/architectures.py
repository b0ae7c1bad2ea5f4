"""The layer operators of the propagation experiment: dense, Fourier-structured and circulant
(convolutional), one per layer or one shared by every layer, and the two bias laws.

A layer maps its input y (a row of N numbers; y⁰ is the probe input) to

    zˡ = σ_w · A_l(yˡ⁻¹) + σ_b · bˡ,      yˡ = out(zˡ)

with an operator A_l normalised so that Var (A_l y)_i = mean_j y_j² (the variance map of every
architecture is the dense one, q' = σ_w² E φ(z)² + σ_b², and the mean-field line is shared;
docs/conventions.md §2.5):

* ``dense``: A y = W y with W = (2N)^(−1/α) Z, Z the α-stable draws of the ``weight`` stream
  (the draws of the default network, bit for bit); out(z) = φ(z).
* ``struct``: A = F D₂ F D₁, F the orthonormal DFT, D_k = diag(exp(2πi(u − ½))) with u
  uniform (rows 0 and 1 of the ``weight`` stream's uniforms). A is unitary and the state is
  complex; out(z) = √2 φ(Re z) (the √2 restores the half of the variance that Re discards).
* ``conv``: A y = c ⊛ y, the circular convolution with a kernel of N entries N(0, 1/N) (row 0
  of the ``weight`` stream), i.e. the circulant matrix C_ij = c_((i − j) mod N), applied by FFT;
  out(z) = φ(z).

``weight_tying``: ``per_layer`` draws A_l with the layer's key l; ``shared`` draws one operator
(key 1) that every layer reuses (a weight-tied reservoir driven by the bias sequence).
``bias``: ``iid`` bˡ = 2^(−1/α) ζˡ, ζ the ``bias`` stream at layer l (the default network);
``projected`` bˡ = B sˡ with one N × N Gaussian B (``bias_matrix`` stream, shared by every
layer) and a unit-norm Gaussian sˡ per layer (``bias`` stream), as in D'Inverno et al. (2025):
marginally N(0, 1) per unit, but with the fixed covariance B Bᵀ/N in every layer.

Everything is written against an array module ``xp`` (NumPy or CuPy); the draws are made on
the host by :mod:`pipeline.numerics.rng` and copied once per layer (N² numbers at most).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.numerics import rng
from pipeline.numerics.activations import Activation

__all__ = [
    "ARCHITECTURES",
    "BIAS_LAWS",
    "WEIGHT_TYING",
    "Network",
    "Operator",
    "draw_bias",
    "draw_operator",
    "make_operator",
    "operator_flops",
]

ARCHITECTURES = ("dense", "struct", "conv")
"""Layer operators (module docstring)."""
WEIGHT_TYING = ("per_layer", "shared")
"""One operator per layer, or one for every layer."""
BIAS_LAWS = ("iid", "projected")
"""iid N(0, σ_b²) biases per layer, or σ_b B sˡ with one shared B (module docstring)."""

SHARED_KEY = 1
"""The layer key of the one operator of a weight-tied network (the draws of layer 1)."""


@dataclass(frozen=True)
class Network:
    """The network family of a propagation sweep: operator kind, tying and bias law."""

    architecture: str = "dense"
    weight_tying: str = "per_layer"
    bias: str = "iid"

    @property
    def is_default(self) -> bool:
        """The network of docs/conventions.md §2.1 (dense, one operator per layer, iid
        biases), which the fused reference and GPU kernels compute."""
        return self == Network()

    def operator_key(self, layer: int) -> int:
        """The layer key of the operator used at ``layer`` (1-based)."""
        return SHARED_KEY if self.weight_tying == "shared" else layer

    @property
    def complex_state(self) -> bool:
        """Whether z is complex (``struct``)."""
        return self.architecture == "struct"

    def input_scale(self, n: int) -> float:
        """Factor from the unit-norm inputs of D'Inverno et al. (2025), which enter layer 1
        un-activated as their state s⁰, to our y⁰: √N for ``dense`` (their state is
        φ(z)/√N), 1 for ``struct`` and ``conv`` (their state is y)."""
        return math.sqrt(n) if self.architecture == "dense" else 1.0

    def err_weight(self, n: int) -> float:
        """Factor from Σ_i (Δy_i)² to their err = Σ_i (Δs_i)²: 1/N for ``dense``, 1 else."""
        return 1.0 / n if self.architecture == "dense" else 1.0


class Operator:
    """One drawn layer operator A (module docstring), applied to rows of ``y``.

    ``apply(y)``: y (rows, N) real → A y (rows, N), real for ``dense``/``conv``, complex for
    ``struct``. ``matrix()``: A as a dense (N, N) complex NumPy array (for tests and spectra).
    """

    def __init__(self, kind: str, xp: Any, n: int, **arrays: Any) -> None:
        self.kind = kind
        self.xp = xp
        self.n = n
        self.arrays = arrays

    def apply(self, y: Any) -> Any:
        """A y for every row of ``y`` (rows, N)."""
        xp, a = self.xp, self.arrays
        if self.kind == "dense":
            return y @ a["w_t"]
        if self.kind == "struct":
            v = xp.fft.fft(a["d1"] * y, axis=-1, norm="ortho")
            return xp.fft.fft(a["d2"] * v, axis=-1, norm="ortho")
        # conv: C y = ifft(fft(c) fft(y)) (circular convolution theorem)
        yh = xp.fft.rfft(y, axis=-1)
        return xp.fft.irfft(yh * a["c_hat"], n=y.shape[-1], axis=-1)

    def matrix(self) -> np.ndarray:
        """A as a dense complex (N, N) NumPy matrix: column j is A e_j."""
        n = self.n
        eye = self.xp.eye(n, dtype=self.real_dtype)
        cols = self.apply(eye)  # row j of the result is A e_j
        if self.xp is not np:
            cols = self.xp.asnumpy(cols)
        return np.asarray(cols, np.complex128).T

    @property
    def real_dtype(self) -> Any:
        """The real dtype the operator was drawn in."""
        return self.arrays["real"].dtype


def _complex_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.complex64 if np.dtype(dtype) == np.float32 else np.complex128)


def make_operator(kind: str, a: Any, dtype: str | np.dtype, xp: Any = np) -> Operator:
    """The operator of ``kind`` from its defining array ``a`` (NumPy, float64 or complex),
    in ``dtype`` (``struct``: the matching complex dtype) on the array module ``xp``:

    * ``dense``: the matrix W (N, N) of A y = W y;
    * ``conv``: the kernel c (N,) of A y = c ⊛ y (C_ij = c_((i − j) mod N));
    * ``struct``: the diagonals (2, N) of D₁, D₂ in A = F D₂ F D₁.

    Seed-keyed draws (:func:`draw_operator`) and draws read from a file
    (:mod:`.draws`) both make their operators here."""
    dt = np.dtype(dtype)
    marker = xp.zeros(1, dt)  # carries the real dtype
    a = np.asarray(a)
    n = a.shape[-1]
    if kind == "dense":
        w_t = np.ascontiguousarray(a.astype(dt).T)
        return Operator("dense", xp, n, w_t=xp.asarray(w_t), real=marker)
    if kind == "struct":
        d = a.astype(_complex_dtype(dt))
        return Operator("struct", xp, n, d1=xp.asarray(d[0]), d2=xp.asarray(d[1]), real=marker)
    c_hat = np.fft.rfft(a).astype(_complex_dtype(dt))
    return Operator("conv", xp, n, c=xp.asarray(a.astype(dt)), c_hat=xp.asarray(c_hat), real=marker)


def draw_operator(
    network: Network,
    seed: int,
    layer: int,
    n: int,
    alpha: float,
    dtype: str | np.dtype,
    xp: Any = np,
    *,
    philox: str = "numpy",
) -> Operator:
    """The operator of ``layer`` (1-based) of the network (N = ``n``, α, seed), in ``dtype``
    (``struct``: the matching complex dtype) on the array module ``xp``; keyed by
    :meth:`Network.operator_key`, so a weight-tied network gets the same operator at every
    layer. ``struct`` and ``conv`` are Gaussian (α = 2 only; the spec enforces it).
    ``philox``: the generator of the blocks (``rng.stable_block``'s; the same draws)."""
    key = network.operator_key(layer)
    stream = rng.STREAMS["weight"]
    if network.architecture == "dense":
        z = rng.stable_block(seed, stream, key, 0, n, 0, n, alpha, philox=philox)
        w = (z * (2.0 * n) ** (-1.0 / alpha)).astype(np.dtype(dtype))
        return make_operator("dense", w, dtype, xp)
    if network.architecture == "struct":
        u1, _ = rng.uniforms(seed, stream, key, np.arange(2)[:, None], np.arange(n)[None, :])
        return make_operator("struct", np.exp(2j * np.pi * (u1 - 0.5)), dtype, xp)
    c = rng.normal_block(seed, stream, key, 0, 1, 0, n, philox=philox)[0] / math.sqrt(n)
    return make_operator("conv", c, dtype, xp)


def bias_matrix(seed: int, n: int, *, philox: str = "numpy") -> np.ndarray:
    """B of the ``projected`` bias law: (N, N) float64, entries N(0, 1) (``philox``: the
    generator, ``rng.normal_block``'s; the same draws)."""
    return rng.normal_block(seed, rng.STREAMS["bias_matrix"], 0, 0, n, 0, n, philox=philox)


def draw_bias(
    network: Network,
    seed: int,
    layer: int,
    n: int,
    alpha: float,
    b_matrix: np.ndarray | None = None,
    *,
    philox: str = "numpy",
) -> np.ndarray:
    """The unscaled bias bˡ of ``layer``, float64 (N,): the layer's term is σ_b bˡ.

    ``iid``: 2^(−1/α) ζˡ (variance 1 per unit at α = 2). ``projected``: B sˡ with
    sˡ = ξ/|ξ| (``b_matrix``: :func:`bias_matrix`, drawn once per network by the caller).
    ``philox``: the generator of the blocks (``rng.stable_block``'s; the same draws)."""
    stream = rng.STREAMS["bias"]
    if network.bias == "iid":
        zeta = rng.stable_block(seed, stream, layer, 0, n, 0, 1, alpha, philox=philox)
        return zeta[:, 0] * 2.0 ** (-1.0 / alpha)
    s = rng.normal_block(seed, stream, layer, 0, n, 0, 1, philox=philox)[:, 0]
    b = bias_matrix(seed, n, philox=philox) if b_matrix is None else b_matrix
    return b @ (s / np.linalg.norm(s))


def output_map(
    network: Network, act: Activation, z: Any, xp: Any, out: Any = None, *, dphi: bool = False
) -> Any:
    """yˡ = out(zˡ): φ(z) (``dense``, ``conv``) or √2 φ(Re z) (``struct``); with ``dphi`` the
    derivative's diagonal, φ'(z) or √2 φ'(Re z) (real, same shape)."""
    h = z.real if network.complex_state else z
    if dphi:
        d = act.dphi(h, xp)
        return d * math.sqrt(2.0) if network.complex_state else d
    if network.complex_state:
        res = act.phi(h, xp, out=out)
        res *= math.sqrt(2.0)
        return res
    return act.phi(h, xp, out=out)


def operator_flops(architecture: str, n: float) -> float:
    """Floating-point operations of one operator application to one row of N: 2N² (dense
    GEMM); struct two complex FFTs (5 N log₂ N each) and two complex diagonal products;
    conv a real FFT pair (2.5 N log₂ N each) and one complex product."""
    lg = math.log2(max(n, 2))
    if architecture == "dense":
        return 2.0 * n * n
    if architecture == "struct":
        return 2 * 5.0 * n * lg + 2 * 6.0 * n
    return 2 * 2.5 * n * lg + 6.0 * n
