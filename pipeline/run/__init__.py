"""Running sweeps: the plan, where the chunks run, and the run modes over it.

* :mod:`.plan`         the cost of a sweep (sizes, FLOPs, memory), before anything runs
* :mod:`.calibrate`    this machine's rate for a spec, for ``sweep plan``'s time estimate
* :mod:`.context`      the run context: local / scheduler / SLURM cluster kinds (open, close,
                       expected threads, worker memory, backend resolution) and the run's
                       settings
* :mod:`.clients`      local Dask clusters (CPU, one worker per GPU) and scheduler addresses
* :mod:`.resources`    one task's peak memory against a worker's, before anything starts
* :mod:`.submit`       the bounded submission window; chunks fused into tasks
* :mod:`.driving`      the driver's loop shared by the run modes: window, progress, checks
* :mod:`.tasks`        what runs on a worker: a task of chunks (run_chunks), run_chunk
* :mod:`.report`       RunReport: what a run computed, skipped and failed
* :mod:`.execute`      run_sweep, and the sweep strategy: the missing chunks through the window
* :mod:`.refine`       the refined strategy: rounds of points, then the filled chunks
* :mod:`.refine_plan`  refinement rounds: blocks, splits, guard band, audits, fill sources
* :mod:`.zoom`         the zoom strategy: frames halving around a boundary point
* :mod:`.zoom_out`     zoom-out sequences: the final window's widths doubled to 6 decades
* :mod:`.progress`     progress lines without a terminal: rate, ETA, heartbeat
* :mod:`.analyze`      ``sweep analyze`` on a store

Importing this package imports none of its modules; import the one you need.
"""
