"""The package type-checks: plugins are written against this API (py.typed)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.paths import REPO


def test_mypy_strict_finds_nothing():
    """``mypy --strict`` over dropsonde/ (settings in pyproject.toml), as CI runs it."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout


def test_the_built_wheel_says_the_package_is_typed(tmp_path):
    """What a plugin author installs carries ``py.typed`` (PEP 561), so their
    type checker reads our annotations: checked in the wheel pip builds from
    this tree, not in the configuration that should put it there."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=600,
                   env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    [wheel] = tmp_path.glob("dropsonde-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dropsonde/py.typed" in names and "dropsonde/errors.py" in names
