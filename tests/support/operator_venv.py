"""A virtualenv made exactly as README tells a collector's operator:
``python3 -m venv`` and ``pip install 'dropsonde[collector]'`` (from this
source tree), nothing else. The collector's end-to-end tests run the
``dropsonde`` it installs, so a runtime dependency missing from the
``collector`` extra fails them, as it would fail an operator; the test
virtualenv, with the test extras, would hide it (gunicorn's gevent worker
imports ``packaging``, which only ``wheel`` pulled in)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from tests.support.paths import REPO

_made: Optional[Path] = None


def operator_dropsonde() -> Path:
    """The operator virtualenv's ``dropsonde``, made on first use in this test
    session (about 40 s, with pip's cache) and removed when the session ends."""
    global _made
    if _made is None:
        directory = Path(tempfile.mkdtemp(prefix="dropsonde-operator-venv-"))
        atexit.register(shutil.rmtree, directory, True)
        _made = build_operator_venv(directory / "venv")
    return _made


def build_operator_venv(directory: Path) -> Path:
    """Make the virtualenv in ``directory``; its ``dropsonde`` script."""
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(directory)], check=True, capture_output=True, timeout=300)
    installed = subprocess.run([str(directory / "bin" / "pip"), "install", "-q", f"{REPO}[collector]"],
                               capture_output=True, text=True, timeout=1200,
                               env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if installed.returncode != 0:
        raise RuntimeError(f"pip install '.[collector]' failed:\n{installed.stderr[-3000:]}")
    return directory / "bin" / "dropsonde"
