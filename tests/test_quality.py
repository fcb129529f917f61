"""The code itself: formatted, lint-clean and strictly typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "format", "--check", "."),
        ("ruff", "check", "."),
        ("mypy",),
    ],
    ids=["ruff-format", "ruff-lint", "mypy-strict"],
)
def test_the_tree_passes(command: tuple[str, ...]) -> None:
    """ruff format at 88, ruff lint and mypy --strict on src/ all pass."""
    result = _run(*command)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_python_file_postpones_annotations() -> None:
    """Each module starts with ``from __future__ import annotations``."""
    missing = [
        str(path.relative_to(ROOT))
        for folder in ("src", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if path.stat().st_size
        and "from __future__ import annotations" not in path.read_text()
    ]

    assert missing == []
