"""Spectra of one layer Jacobian of a random network: eigenvalues, right eigenvectors, their
inverse participation ratios, and log|det| (NumPy/LAPACK or CuPy).

Layer Jacobians (Qu, Wardak & Gong 2022), with ``Dˡ = diag φ'(hˡ)``:

* ``pre``:  ``J = Wˡ⁺¹ Dˡ`` (∂hˡ⁺¹/∂hˡ, the pre-activation Jacobian; the paper's theory);
* ``post``: ``J = Dˡ Wˡ`` (∂xˡ/∂xˡ⁻¹, the post-activation Jacobian).

Both are decomposed as ``M = D W`` (W the matrix the kind names) with a general eigensolver
(LAPACK ``geev``). For ``post`` the eigenvectors of M are J's. For ``pre``, ``M u = λ u`` gives
``J (W u) = W D W u = λ (W u)``, so ``v = W u`` is J's right eigenvector: a general eigensolver
is never run on ``W · diag(φ')`` itself, whose column scales span hundreds of decades at α = 1
(φ' of a Cauchy-tailed h underflows) and whose eigenvectors then come back with residuals ~1.
Eigenvectors with ``|λ| < LAMBDA_MIN`` (0.01: near-defective, their directions are noise) are
left out of every eigenvector statistic; the returned residual is
``max ‖J v − λ v‖₂`` over the kept unit-norm v, with J applied as a product (never formed).

``log|det J|`` (the Jacobian average J_log over *all* eigenvalues) comes from ``slogdet`` of W
and the exact ``Σ log φ'(h)`` (:func:`log_dphi`), not from the eigenvalues: the small
eigenvalues are inaccurate in a relative sense, which the log amplifies (at α = 1 the
eigenvalue sum is off by ~1 neper per unit).

IPR: ``IPR_q(v) = Σᵢ |vᵢ|^{2q} / (Σᵢ |vᵢ|²)^q`` (1/N for a delocalised v, 1 for a localised
one); the per-vector fractal dimension is ``D_q = log IPR_q / ((1 − q) ln N)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.errors import PipelineError
from pipeline.numerics.activations import Activation, as_activation

__all__ = [
    "JAC_KINDS",
    "LAMBDA_MIN",
    "LayerSpectrum",
    "f1_average",
    "ipr",
    "layer_spectrum",
    "log_abs_det",
    "log_dphi",
]

JAC_KINDS = ("pre", "post")
"""``pre``: W^{l+1} D^l (default); ``post``: D^l W^l."""

LAMBDA_MIN = 0.01
"""Eigenvalues with |λ| below this are left out of the eigenvector statistics and the f_1
averages (the cavity theory's lower radius, the authors' δr)."""


@dataclass(frozen=True)
class LayerSpectrum:
    """Eigenvalues (all N, complex, shape (N,)), the unit-norm right eigenvectors of the kept
    eigenvalues (|λ| ≥ LAMBDA_MIN; shape (N, K), column k for ``lam[kept][k]``), the mask
    ``kept`` (shape (N,)) and the residual max ‖J v − λ v‖₂ over them (NaN when K = 0).
    Host NumPy arrays."""

    lam: NDArray[np.complex128]
    vectors: NDArray[np.complex128]
    kept: NDArray[np.bool_]
    residual: float


def _check_kind(kind: str) -> str:
    if kind not in JAC_KINDS:
        raise PipelineError(f"jac_kind: unknown value {kind!r} (allowed: {', '.join(JAC_KINDS)})")
    return kind


def _to_host(a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _eig(m: Any, xp: Any) -> tuple[Any, Any]:
    """Eigen-decomposition on ``xp`` when it has a general eigensolver (CuPy with cuSOLVER
    ``geev``), else on the host (LAPACK); returns arrays of ``xp``."""
    if xp is not np and hasattr(xp.linalg, "eig"):
        try:
            return xp.linalg.eig(m)
        except (NotImplementedError, RuntimeError, AttributeError):
            pass
    lam, u = np.linalg.eig(_to_host(m))
    return (xp.asarray(lam), xp.asarray(u)) if xp is not np else (lam, u)


def _apply(w: Any, d: Any, v: Any, kind: str) -> Any:
    """J v without forming J: pre ``W (d ⊙ v)``, post ``d ⊙ (W v)`` (v columns)."""
    if kind == "pre":
        return w @ (d[:, None] * v)
    return d[:, None] * (w @ v)


def layer_spectrum(w: Any, dphi: Any, kind: str = "pre", *, xp: Any = np) -> LayerSpectrum:
    """Eigenvalues and right eigenvectors of the layer Jacobian (module docstring).

    ``w``: (N, N) float, Wˡ⁺¹ for ``pre`` or Wˡ for ``post``; ``dphi``: (N,) φ'(hˡ) ≥ 0;
    ``xp``: the array module of ``w`` (numpy or cupy). Runs in float64/complex128.
    """
    _check_kind(kind)
    w = xp.asarray(w, dtype=xp.float64)
    d = xp.asarray(dphi, dtype=xp.float64)
    n = w.shape[0]
    if w.shape != (n, n) or d.shape != (n,):
        raise PipelineError(f"w, dphi: shapes {w.shape}, {d.shape}; allowed: (N, N) and (N,)")
    lam, u = _eig(d[:, None] * w, xp)
    kept = xp.abs(lam) >= LAMBDA_MIN
    u = u[:, kept]
    lk = lam[kept]
    v = w.astype(xp.complex128) @ u if kind == "pre" else u
    norms = xp.linalg.norm(v, axis=0)
    v = v / xp.where(norms > 0, norms, 1.0)
    if lk.size:
        res = xp.linalg.norm(_apply(w, d, v, kind) - v * lk[None, :], axis=0)
        residual = float(_to_host(res.max()))
    else:
        residual = math.nan
    return LayerSpectrum(_to_host(lam), _to_host(v), _to_host(kept), residual)


def ipr(vectors: NDArray, q: NDArray | list[float] | tuple[float, ...]) -> NDArray[np.float64]:
    """``IPR_q`` of each column of ``vectors`` (N, K) for each q: shape (len(q), K).

    ``Σ|vᵢ|^{2q} / (Σ|vᵢ|²)^q`` (scale-free). q > 0, q ≠ 1 for a D_q (any q is computed).
    """
    p = np.abs(np.asarray(vectors)) ** 2
    p = p / p.sum(axis=0, keepdims=True)
    qs = np.atleast_1d(np.asarray(q, np.float64))
    with np.errstate(divide="ignore"):
        return np.stack([np.sum(np.where(p > 0, p**qq, 0.0), axis=0) for qq in qs])


def f1_average(lam: NDArray, powers: NDArray | list[int] | tuple[int, ...]) -> NDArray:
    """``(1/N) Σ_{|λ| ≥ LAMBDA_MIN} sgn(log|λ|) |log|λ||^L`` for each L in ``powers``: the
    empirical counterpart of the cavity J_{f1,L} (same lower cut, not renormalised).
    ``lam``: (N,) eigenvalues; returns shape (len(powers),)."""
    r = np.abs(np.asarray(lam))
    lr = np.log(r[r >= LAMBDA_MIN])
    n = r.size
    return np.array([float(np.sum(np.sign(lr) * np.abs(lr) ** int(p))) / n for p in powers])


def log_dphi(activation: str | Activation, h: NDArray) -> NDArray[np.float64]:
    """``log φ'(h)`` without underflow (shape of ``h``): tanh ``2 ln 2 − 2|h| −
    2 log1p(e^{−2|h|})``; erf ``ln(2/√π) − h²``; others ``log(φ'(h))`` (−inf where 0)."""
    act = as_activation(activation)
    x = np.asarray(h, np.float64)
    if act.name == "tanh":
        ax = np.abs(x)
        return 2.0 * math.log(2.0) - 2.0 * ax - 2.0 * np.log1p(np.exp(-2.0 * ax))
    if act.name == "erf":
        return math.log(2.0 / math.sqrt(math.pi)) - x * x
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(act.dphi(x, np), np.float64))


def log_abs_det(log_abs_det_w: float, log_dphi_values: NDArray) -> float:
    """``(1/N) ln|det J|`` of either kind from ``ln|det W|`` (``slogdet``) and the N values
    ``ln φ'(hˡ)``: det(W D) = det(D W) = det W · Π φ'. Natural log per unit (nepers)."""
    ld = np.asarray(log_dphi_values, np.float64)
    return (float(log_abs_det_w) + float(ld.sum())) / ld.size
