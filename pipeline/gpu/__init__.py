"""The CuPy backend of the propagation experiment (DESIGN §3) and its multi-GPU cluster.

CUDA C sources live in ``kernels/`` at the repository root (loaded by :mod:`.kernels` with
``cupy.RawModule``); :func:`propagate_network` has the signature and outputs of
:func:`pipeline.propagate.propagate_network` (the readable NumPy reference). Importing this
package does not import CuPy: only launching a kernel does.
"""

from pipeline.gpu.cluster import gpu_local_cluster, visible_devices
from pipeline.gpu.propagate_cupy import (
    GPU_TILE_ROWS,
    device_peak_bytes,
    gpu_tile_points,
    propagate_network,
)

__all__ = [
    "GPU_TILE_ROWS",
    "device_peak_bytes",
    "gpu_local_cluster",
    "gpu_tile_points",
    "propagate_network",
    "visible_devices",
]
