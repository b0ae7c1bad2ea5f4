"""The ``trainability`` experiment: gradient descent on small MLPs over a learning-rate plane.

* :mod:`.spec`       the experiment's hooks: axes, parameters, variables, cost, chunks
* :mod:`.reference`  the NumPy reference: training, the score of a trajectory
* :mod:`.gpu`        the same on a GPU (``train.cu``: one network per lane group)
* :mod:`.emulate`    a NumPy twin of the training kernel's arithmetic (tests, no GPU)
* :mod:`.summary`    converged share and boundary dimension per image
"""

from pipeline.experiments.trainability.spec import EXPERIMENT, TrainabilityExperiment

__all__ = ["EXPERIMENT", "TrainabilityExperiment"]
