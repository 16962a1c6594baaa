"""The repository documents itself: every docs/*.md it names exists, and nothing points to notes
outside it (a fresh clone has no reference/ or DESIGN.md beside it)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = {".venv", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", "out",
        "build"}
SUFFIXES = {".py", ".md", ".toml", ".sh", ".service", ".txt"}
OUTSIDE = re.compile(r"reference/\w+\.md|\bDESIGN(\.md)?\b|\bSTYLE\.md\b")
DOC = re.compile(r"docs/([\w-]+\.md)")


def _texts() -> list[Path]:
    return [p for p in REPO.rglob("*") if p.is_file() and not SKIP & set(p.parts)
            and not any(part.endswith(".egg-info") for part in p.parts)
            and (p.suffix in SUFFIXES or p.name == "Makefile") and p != Path(__file__)]


def test_nothing_points_outside_the_repository() -> None:
    found = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in _texts()
             for m in OUTSIDE.finditer(p.read_text(errors="replace"))]
    assert found == []


def test_every_named_doc_exists() -> None:
    named = {m.group(1) for p in _texts() for m in DOC.finditer(p.read_text(errors="replace"))}
    assert {"safety-requirements.md", "virtual-patient.md", "pressure.md", "pumps.md"} <= named
    assert sorted(n for n in named if not (REPO / "docs" / n).is_file()) == []
