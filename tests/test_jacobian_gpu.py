"""The jacobian experiment's CuPy path against NumPy. Cases marked ``gpu`` need CuPy and a
CUDA device and skip with the reason otherwise; the host fallback (an array module without a
general eigensolver hands the decomposition to LAPACK) is tested without a GPU."""

from __future__ import annotations

import types

import numpy as np
import pytest

from pipeline.experiments import get_experiment
from pipeline.gpu.backend import cupy_unavailable_reason
from pipeline.numerics.jacobian import layer_spectrum
from pipeline.spec.sweep import parse_spec

WHY_NO_GPU = cupy_unavailable_reason()
needs_gpu = pytest.mark.skipif(WHY_NO_GPU is not None, reason=f"no GPU backend: {WHY_NO_GPU}")

RAW = {
    "name": "jac-gpu",
    "experiment": "jacobian",
    "store": "unused.zarr",
    "axes": {
        "width": [96],
        "alpha": [1.0, 2.0],
        "seed": [0, 1],
        "activation": ["tanh"],
        "sigma_w": [0.8, 1.5],
    },  # fmt: skip
    "depth": 6,
    "record_layers": [5, 6],
    "jac_kinds": ["pre", "post"],
    "q": [0.5, 2.0],
    "dtype": "float64",
}
# summaries of the spectrum: independent of eigenvalue order and eigenvector phase
ORDER_FREE = ("spectral_radius", "abs_quantile", "share_above_one", "share_below_min",
              "j_id", "j_log", "j_f1", "mean_log_ipr", "mean_ipr", "class_share")  # fmt: skip


class _NoEigLinalg:
    """numpy.linalg without ``eig`` (like a CuPy whose cuSOLVER has no geev)."""

    def __getattr__(self, name: str):
        if name == "eig":
            raise AttributeError(name)
        return getattr(np.linalg, name)


def test_array_module_without_eig_falls_back_to_lapack():
    xp = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("_")})
    xp.linalg = _NoEigLinalg()
    rng = np.random.default_rng(3)
    w = rng.standard_normal((40, 40)) / np.sqrt(40)
    d = rng.uniform(0.1, 1.0, 40)
    ref = layer_spectrum(w, d, "pre")
    got = layer_spectrum(w, d, "pre", xp=xp)
    np.testing.assert_allclose(np.sort(np.abs(got.lam)), np.sort(np.abs(ref.lam)), rtol=1e-12)
    assert got.residual < 1e-10


@pytest.mark.gpu
@needs_gpu
def test_cupy_chunk_equals_numpy():
    spec = parse_spec(RAW)
    exp = get_experiment("jacobian")
    coords = {a.name: np.asarray(a.values) for a in spec.axes}
    ref = exp.compute_chunk(spec, coords, backend="numpy")
    got = exp.compute_chunk(spec, coords, backend="cupy")
    for name in ORDER_FREE:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-7, atol=1e-9, err_msg=name)
    assert np.nanmax(got["residual"]) < 1e-6  # α = 1 included (the bound)
