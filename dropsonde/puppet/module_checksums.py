"""Which files of a Forge-installed module are still as published.

``puppet module install`` and r10k unpack a Forge release together with its
``checksums.json`` (relative path -> MD5 of the file's bytes, written by
``puppet module build``). A file missing from that list, or whose MD5 differs,
was added or edited by the site: exactly what ``puppet module changes``
reports. Such a file is the site's own code, so nothing defined in it may be
reported as public.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

CHECKSUMS_FILENAME = "checksums.json"
# A real one lists a few hundred files; anything far larger is not one.
_MAX_CHECKSUMS_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class PublishedFiles:
    """A module's ``checksums.json``: absent (nothing to compare with), usable, or broken."""

    checksums: Optional[Dict[str, str]] = None
    problem: Optional[str] = None

    def set_aside(self, module_dir: Path, relative: str, md5: Optional[str] = None) -> Optional[str]:
        """Why ``relative`` (``manifests/x.pp``) is the site's own rather than the
        published module's, or None when it is as published or there is no
        ``checksums.json`` to tell. A broken ``checksums.json`` sets every file
        aside: when in doubt, a class is private. ``md5`` is the file's, when the
        caller has it already (the manifest cache keys parses by it)."""
        if self.problem is not None:
            return f"{CHECKSUMS_FILENAME} is unusable ({self.problem})"
        if self.checksums is None:
            return None
        expected = self.checksums.get(relative)
        if expected is None:
            return f"not listed in {CHECKSUMS_FILENAME} (added by the site)"
        try:
            actual = md5 or hashlib.md5((module_dir / relative).read_bytes(), usedforsecurity=False).hexdigest()
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if actual != expected.lower():
            return f"differs from {CHECKSUMS_FILENAME} (modified by the site)"
        return None


def read_published_files(module_dir: Path) -> PublishedFiles:
    """The module's ``checksums.json``, if it has one."""
    path = Path(module_dir) / CHECKSUMS_FILENAME
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_CHECKSUMS_BYTES + 1)
    except FileNotFoundError:
        return PublishedFiles()
    except OSError as exc:
        return PublishedFiles(problem=f"cannot be read: {exc.strerror or exc}")
    if len(data) > _MAX_CHECKSUMS_BYTES:
        return PublishedFiles(problem="larger than 8 MiB")
    try:
        checksums = json.loads(data)
    except ValueError:
        return PublishedFiles(problem="not valid JSON")
    if not isinstance(checksums, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in checksums.items()
    ):
        return PublishedFiles(problem="not an object of file paths to MD5 sums")
    return PublishedFiles(checksums={_normalize(k): v for k, v in checksums.items()})


def _normalize(relative: str) -> str:
    """``./manifests/a.pp`` as ``manifests/a.pp`` (both spellings occur in old releases)."""
    while relative.startswith("./"):
        relative = relative[2:]
    return relative
