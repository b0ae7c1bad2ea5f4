"""Writers of draws files: the papers' own random networks, drawn by the papers' own
procedures, for the ``draws: {file: PATH}`` field of a spec (:mod:`pipeline.spec.draws`).

* :mod:`.sohl_dickstein`  Sohl-Dickstein (2024)'s notebook (JAX; the ``draws-jax`` extra)

``sweep draws PAPER -o FOLDER`` runs them.
"""
