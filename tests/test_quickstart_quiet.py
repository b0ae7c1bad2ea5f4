"""The quickstart's run, analyze and figures print no warning (a user reads every stderr line
as trouble): only the run's own progress lines reach stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parent.parent / "workflows" / "quickstart.yaml"


@pytest.mark.slow
def test_quickstart_run_analyze_figures_print_no_warning(tmp_path):
    def sweep(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    runs = [
        sweep("run", str(QUICKSTART), "--no-progress", "--workers", "1"),
        sweep("analyze", "quickstart.zarr"),
        sweep("figures", "quickstart.zarr"),
    ]
    for r in runs:
        assert r.returncode == 0, r.stderr
        text = r.stderr.lower()
        assert "warning" not in text and "traceback" not in text, r.stderr
    assert "written: group 'analysis'" in runs[1].stdout
    assert (tmp_path / "quickstart.zarr-figures" / "frontier.png").exists()
