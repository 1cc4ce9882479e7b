"""The core stays typed and linted: CI runs the same checks a developer runs before pushing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_code_passes_ruff():
    out = _run("ruff", "check", "--no-cache", "workbench", "pages", "tests", "bench", "app.py", "sample_models")
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_core_library_type_checks_with_mypy():
    # Configuration (files, strictness) lives in pyproject.toml's [tool.mypy], the same for a developer and CI.
    out = _run("mypy")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success" in out.stdout
