"""SLURM: worker jobs for a sweep through dask-jobqueue, and the driver as a batch job.

* :mod:`.commands`  one helper for every ``sbatch``/``scancel``/``squeue`` call
* :mod:`.profiles`  dask-jobqueue profiles (the user's, and the shipped ``gpu``/``cpu``)
* :mod:`.scripts`   job scripts rendered by pure functions; sbatch time/memory syntax
* :mod:`.cluster`   start, keep and stop the worker jobs of a sweep; submit the driver

Only the run context's :class:`pipeline.run.context.Slurm` kind (which calls
:func:`.cluster.slurm_client`) and the command line use this package.
"""

from pipeline.errors import SlurmCommandError, SlurmError
from pipeline.slurm.cluster import SlurmOptions, check_submittable, slurm_client, submit_driver
from pipeline.slurm.commands import parse_job_id, queue_states, slurm_command
from pipeline.slurm.profiles import PROFILE_FILE, SlurmProfile, load_profile
from pipeline.slurm.scripts import (
    check_memory,
    check_walltime,
    render_driver_script,
    render_worker_script,
)

__all__ = [
    "PROFILE_FILE",
    "SlurmCommandError",
    "SlurmError",
    "SlurmOptions",
    "SlurmProfile",
    "check_memory",
    "check_submittable",
    "check_walltime",
    "load_profile",
    "parse_job_id",
    "queue_states",
    "render_driver_script",
    "render_worker_script",
    "slurm_client",
    "slurm_command",
    "submit_driver",
]
