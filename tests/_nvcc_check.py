"""Compile-only nvcc builds of the CUDA kernels, run in a background thread.

The suite runs on one process, so one of the two cores of a CI machine is mostly idle; the
kernel builds (~90 s of CPU, train.cu alone ~45 s per architecture) are started there when
the session has collected ``test_every_kernel_compiles_for_sm80_and_sm90`` (tests/conftest.py)
and that test only waits for them. One build at a time, at a lower priority, so the tests in
the foreground keep their core. Run on its own, the test starts the builds itself.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.gpu.kernels import NVRTC_OPTIONS, kernel_files, kernel_source

TEST_NAME = "test_every_kernel_compiles_for_sm80_and_sm90"
ARCHS = (80, 90)
NVCC = shutil.which("nvcc")
NICE = ["nice", "-n", "10"] if shutil.which("nice") else []


def sources() -> list[str]:
    """The ``.cu`` files of ``kernels/``, sorted."""
    return sorted(p.name for p in kernel_files().iterdir() if p.name.endswith(".cu"))


@dataclass
class Builds:
    """Every (file, architecture) build: its CompletedProcess once done, in ``results``."""

    folder: Path
    jobs: list[tuple[str, int]]
    results: dict[tuple[str, int], subprocess.CompletedProcess[str]] = field(default_factory=dict)
    thread: threading.Thread | None = None
    current: subprocess.Popen[str] | None = None
    stopped: bool = False

    def output(self, name: str, sm: int) -> Path:
        """The fatbin of ``name`` for ``sm_<sm>``."""
        return self.folder / f"{name}.sm_{sm}.fatbin"

    def _command(self, name: str, sm: int) -> list[str]:
        assert NVCC is not None
        return [
            NVCC,
            "--fatbin",
            *NVRTC_OPTIONS,  # the options NVRTC gets (nvcc spells them the same)
            "-Werror",
            "all-warnings",
            f"-gencode=arch=compute_{sm},code=sm_{sm}",
            "-o",
            str(self.output(name, sm)),
            str(self.folder / name),
        ]

    def _run(self) -> None:
        for job in self.jobs:
            if self.stopped:
                return
            # `nice` the command rather than a preexec_fn: this process has other threads (the
            # Dask clients of the tests), and a preexec_fn may deadlock the fork then
            self.current = subprocess.Popen(
                [*NICE, *self._command(*job)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            out, err = self.current.communicate()
            self.results[job] = subprocess.CompletedProcess(
                self.current.args, self.current.returncode, out, err
            )

    def wait(self, timeout: float) -> dict[tuple[str, int], subprocess.CompletedProcess[str]]:
        """Every build's result (waits up to ``timeout`` s for the thread)."""
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"kernel builds not done in {timeout} s"
        return self.results

    def stop(self) -> None:
        """Kill a build still running and remove the folder."""
        self.stopped = True
        if self.current is not None and self.current.poll() is None:
            self.current.kill()
        if self.thread is not None:
            self.thread.join(30)
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Builds:
    """Write the inlined sources (what NVRTC gets through cupy.RawModule, so an include the
    loader cannot resolve fails too) to a temporary folder and start the builds, train.cu
    first (the longest)."""
    folder = Path(tempfile.mkdtemp(prefix="nvcc-check-"))
    names = sources()
    for name in names:
        (folder / name).write_text(kernel_source(name))
    jobs = [(n, sm) for n in sorted(names, key=lambda n: n != "train.cu") for sm in ARCHS]
    builds = Builds(folder, jobs)
    builds.thread = threading.Thread(target=builds._run, name="nvcc-check", daemon=True)
    builds.thread.start()
    return builds


STASH = pytest.StashKey[Builds]()
"""Where tests/conftest.py keeps the session's builds."""
