"""The ``jacobian`` experiment: spectra of the layer Jacobians of heavy-tailed random networks
(Qu, Wardak & Gong 2022).

* :mod:`.spec`         the experiment's hooks: axes, parameters, variables, cost, chunks
* :mod:`.network`      one bias-free network: quenched weights, pre-activations
* :mod:`.observables`  the variables of one layer Jacobian
"""

from pipeline.experiments.jacobian.spec import EXPERIMENT, JacobianExperiment

__all__ = ["EXPERIMENT", "JacobianExperiment"]
