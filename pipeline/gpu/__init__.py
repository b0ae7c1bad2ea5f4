"""The array backends and the CUDA kernel machinery (importing this package imports no CuPy).

* :mod:`.backend`  which backend computes a chunk (``numpy``, or ``cupy`` where a GPU is
  usable), resolved on the process that runs the chunk, and what a store records about it
* :mod:`.kernels`  the CUDA C sources (package data ``pipeline.kernels``), their compilation
  with CuPy ``RawModule`` and the kernel cache

The GPU code of each experiment lives with the experiment (``experiments/<name>/gpu.py``).
"""
