"""The package type-checks: plugins are written against this API (py.typed)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def test_mypy_strict_finds_nothing():
    """``mypy --strict`` over dropsonde/ (settings in pyproject.toml), as CI runs it."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout


def test_the_package_says_it_is_typed():
    assert (REPO / "dropsonde" / "py.typed").is_file()
    assert '"dropsonde" = ["py.typed"]' in (REPO / "pyproject.toml").read_text()
