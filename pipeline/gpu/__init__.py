"""The array backends and the CUDA kernel machinery (importing this package imports no CuPy).

* :mod:`.backend`  which backend computes a chunk (``numpy``, or ``cupy`` where a GPU is
  usable), resolved on the process that runs the chunk, and what a store records about it
* :mod:`.kernels`  the CUDA C sources (package data ``pipeline.kernels``), their compilation
  with NVRTC (``--fmad=false -ftz=false``) and the node-shared kernel cache
* :mod:`.host_build`  the kernels' arithmetic on the CPU (CUDA's libdevice and ``rng.cu``
  built for the host with LLVM and a C++ compiler), for tests and measurements without a GPU

The GPU code of each experiment lives with the experiment (``experiments/<name>/gpu.py``).
"""
