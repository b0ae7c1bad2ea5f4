"""Pure numerics shared by the experiments and the analysis (NumPy/SciPy; no I/O, no Dask).

* :mod:`.rng`          Philox4x32-10 counter-based draws, α-stable by Chambers–Mallows–Stuck
* :mod:`.activations`  the one table of activation functions φ, φ', φ'' and kernel ids
* :mod:`.observables`  per-point observables (circle CV, batch rank) on NumPy or CuPy arrays
* :mod:`.fixed_point`  the fixed point of an increasing map (both mean-field theories)
* :mod:`.theory`       Gaussian mean field: q*, χ1, c*, χ_c, ξ_q, ξ_c, the critical line
* :mod:`.levy`         Lévy (α-stable) mean field: the q map and the ordered transition
* :mod:`.cavity`       cavity theory of the layer-Jacobian spectrum: ρ(r), r_cut, J_f, the
                       ordered line r_cut = 1 (Monte Carlo)
* :mod:`.jacobian`     spectra of one layer Jacobian: eigenvalues, IPR_q, log|det| (NumPy/CuPy)
"""
