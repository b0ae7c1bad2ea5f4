"""Where a result came from: the package version and the git revision of the code.

Recorded in a store's attrs (and in the ``analysis`` group) so that a number can be traced to
the code that made it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["git_revision", "package_version"]


def package_version() -> str:
    """The installed ``phase-sweep`` version, or ``"unknown"`` (a plain checkout)."""
    try:
        from importlib.metadata import version

        return version("phase-sweep")
    except Exception:  # not installed (running from a checkout)
        return "unknown"


def git_revision() -> str | None:
    """``HEAD``'s commit hash of the checkout this package runs from (``-dirty`` when tracked
    files are modified), or None when it does not run from a git checkout (a wheel)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")
