"""The user documentation: every relative link resolves (file and anchor), the README stays
short with the quickstart's two commands at the top, REPRODUCTION's cells stay readable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "REPRODUCTION.md", ROOT / "BENCHMARKS.md",
         *sorted((ROOT / "docs").glob("*.md"))]  # fmt: skip
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return h.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = page.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # no headings inside code blocks
    found = {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}
    return found | set(re.findall(r'<a id="([^"]+)">', text))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    bad = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no such heading in {dest.name}")
    assert not bad, bad


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    assert blocks[0].strip() == "pip install -e . && sweep run workflows/quickstart.yaml"
    assert blocks[1].strip() == 'pip install -e ".[test]" && python -m pytest -q'
    assert text.index("## Quickstart") < text.index("## Commands")


def test_reproduction_cells_stay_readable():
    text = (ROOT / "REPRODUCTION.md").read_text()
    cells = [c for line in text.splitlines() if line.startswith("|") for c in line.split("|")]
    assert cells and max(len(c) for c in cells) <= 400
    for internal in ("issue ", "seed 00", "previous default"):
        assert internal not in text, internal
