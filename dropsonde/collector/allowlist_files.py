"""The files the collector's allowlist is read from: the Forge list
(``forge.json``, as `dropsonde update --cachepath DIR` keeps it) and, beside
it, the release evidence (``forge-releases.json``, the format of
:mod:`dropsonde.release_evidence`): which releases of each module the Forge
published and which classes each defines. The collector is given the
directory, or the forge.json in it."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, FrozenSet, Tuple

from dropsonde.collector.allowlist import Allowlist
from dropsonde.errors import BadInput
from dropsonde.forge_cache import CACHE_FILENAME, read_forge_file
from dropsonde.release_evidence import EVIDENCE_FILENAME, ReleaseEvidence, read_evidence_file


def allowlist_paths(forge_cache: Path) -> Tuple[Path, Path]:
    """(forge.json, forge-releases.json) for a directory or a forge.json in one."""
    directory = forge_cache if forge_cache.is_dir() else forge_cache.parent
    forge = directory / CACHE_FILENAME if forge_cache.is_dir() else forge_cache
    return forge, directory / EVIDENCE_FILENAME


def load_allowlist(forge_cache: Path) -> Allowlist:
    """The allowlist from the Forge list and its release evidence; either
    missing, unreadable or malformed stops the collector (fail closed)."""
    forge, evidence = allowlist_paths(forge_cache)
    slugs = read_forge_file(forge).modules
    if not evidence.is_file():
        raise BadInput(f"{evidence}: no release evidence beside the Forge list: the collector accepts only "
                       "releases it can name (fail closed)")
    return Allowlist(slugs, releases_by_slug(read_evidence_file(evidence)))


def releases_by_slug(evidence: ReleaseEvidence) -> Dict[str, Dict[str, FrozenSet[str]]]:
    """For each module, its proven versions and the classes each publishes."""
    releases: Dict[str, Dict[str, FrozenSet[str]]] = {}
    for release in evidence.releases.values():
        releases.setdefault(release.slug, {})[release.version] = release.public_classes()
    return releases
