"""CUDA C sources of the GPU backends, shipped as package data (read by pipeline.gpu.kernels)."""
