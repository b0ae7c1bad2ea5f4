"""Gate for tests marked ``slurm``: they need the local SLURM cluster (slurm/local-cluster.sh).

Outside CI they are skipped with the reason when the cluster does not answer; in CI (``CI`` set
to anything but ``false``/``0``) they fail instead, so they cannot silently stop running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache

import pytest

LOCAL_SLURM_CONF = os.path.join(os.environ.get("SWEEP_SLURM_DIR", "/tmp/sweep-slurm"), "slurm.conf")
if "SLURM_CONF" not in os.environ and os.path.isfile(LOCAL_SLURM_CONF):
    os.environ["SLURM_CONF"] = LOCAL_SLURM_CONF  # clients (and the jobs) find the test cluster


@cache
def _slurm_unreachable() -> str | None:
    if shutil.which("sinfo") is None:
        return "SLURM client commands not on PATH (run slurm/local-cluster.sh install && start)"
    try:
        out = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo timed out: is slurmctld running? (slurm/local-cluster.sh start)"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s in ("idle", "mixed", "allocated") for s in states):
        return (
            f"local SLURM cluster not usable (sinfo exit {out.returncode}, states {states}, "
            f"{out.stderr.strip()!r}); start it with slurm/local-cluster.sh start"
        )
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the background kernel builds (tests/_nvcc_check.py) when their test is selected."""
    import _nvcc_check

    if _nvcc_check.NVCC is not None and any(
        it.name == _nvcc_check.TEST_NAME for it in session.items
    ):
        session.config.stash[_nvcc_check.STASH] = _nvcc_check.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    import _nvcc_check

    builds = config.stash.get(_nvcc_check.STASH, None)
    if builds is not None:
        builds.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is None:
        return
    reason = _slurm_unreachable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI runs the SLURM tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def client():
    """A local Dask cluster for a test module: 2 single-threaded worker processes."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=50,
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c
