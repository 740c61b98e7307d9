"""The files the collector's allowlist is read from: the Forge list
(``forge.json``, as `dropsonde update --cachepath` keeps it)."""

from __future__ import annotations

from pathlib import Path

from dropsonde.collector.allowlist import Allowlist
from dropsonde.forge_cache import read_forge_file


def load_allowlist(forge_cache: Path) -> Allowlist:
    """The allowlist from a forge.json; a missing, unreadable or empty list
    stops the collector (fail closed)."""
    return Allowlist(read_forge_file(forge_cache).modules)
