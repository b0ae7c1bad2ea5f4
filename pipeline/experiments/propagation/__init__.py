"""The ``propagation`` experiment: signal propagation through random finite-width networks.

* :mod:`.spec`       the experiment's hooks: axes, parameters, variables, cost, chunks
* :mod:`.probes`     what a grid point propagates (pair, circle, batch) and its inputs
* :mod:`.reference`  the NumPy reference of one network's propagation
* :mod:`.gpu`        the same on a GPU (CuPy + ``rng.cu``/``propagate.cu``)
* :mod:`.ops`        the device operations of the GPU loop, on CUDA and emulated in NumPy
* :mod:`.summary`    the λ_L sign-change table ``sweep run``/``summary`` print
"""

from pipeline.experiments.propagation.spec import EXPERIMENT, PropagationExperiment

__all__ = ["EXPERIMENT", "PropagationExperiment"]
