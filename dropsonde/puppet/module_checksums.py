"""Which files of a Forge-installed module are still as published.

``puppet module install`` and r10k unpack a Forge release together with its
``checksums.json`` (relative path -> MD5 of the file's bytes, written by
``puppet module build``). A file missing from that list, or whose MD5 differs,
was added or edited by the site: exactly what ``puppet module changes``
reports. Such a file is the site's own code, so nothing defined in it may be
reported as public.

A module with no ``checksums.json`` (an r10k ``:git`` install, a vendored
fork, a copy) has no list to compare with, so privacy rule 3 fails closed for
it: only its main class may be reported. The one other trustworthy list is
dpkg's: Debian's ``puppet-module-*`` packages ship no ``checksums.json``, but
dpkg records every file a package installed with its MD5
(``/var/lib/dpkg/info/<package>.md5sums``). Those are root-owned system
records, not part of the code tree a site edits, so a module directory that a
package owns is checked against them exactly as against ``checksums.json``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from dropsonde.tree_files import read_tree_file

CHECKSUMS_FILENAME = "checksums.json"
DPKG_INFO_DIR = Path("/var/lib/dpkg/info")
# The largest real .md5sums (a kernel's) is about 1 MiB.
_MAX_MD5SUMS_BYTES = 16 * 1024 * 1024
#: why a module without a list of its published files reports only its main class
UNLISTED_REASON = f"no {CHECKSUMS_FILENAME}: only the main class is reportable"


@dataclass(frozen=True)
class PublishedFiles:
    """A module's list of published files and their MD5s: absent (so only its
    main class is reportable), usable, or broken. ``source`` names the list."""

    checksums: Optional[Dict[str, str]] = None
    problem: Optional[str] = None
    source: str = CHECKSUMS_FILENAME

    @property
    def listed(self) -> bool:
        """Whether there is a list at all (a broken one counts: it sets every file aside)."""
        return self.checksums is not None or self.problem is not None

    def set_aside(self, module_dir: Path, relative: str, md5: Optional[str] = None) -> Optional[str]:
        """Why ``relative`` (``manifests/x.pp``) is the site's own rather than the
        published module's, or None when it is as published or there is no
        ``checksums.json`` to tell. A broken ``checksums.json`` sets every file
        aside: when in doubt, a class is private. ``md5`` is the file's, when the
        caller has it already (the manifest cache keys parses by it). Without
        any list (:attr:`listed` false) the caller keeps only the main class."""
        if self.problem is not None:
            return f"{self.source} is unusable ({self.problem})"
        if self.checksums is None:
            return None
        expected = self.checksums.get(relative)
        if expected is None:
            return f"not listed in {self.source} (added by the site)"
        try:
            data = b"" if md5 else read_tree_file(module_dir / relative, "manifest", within=str(module_dir))
            actual = md5 or hashlib.md5(data, usedforsecurity=False).hexdigest()
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if actual != expected.lower():
            return f"differs from {self.source} (modified by the site)"
        return None


def read_published_files(module_dir: Path) -> PublishedFiles:
    """The module's ``checksums.json``, if it has one (``module_dir``: its real
    directory; one that cannot be read safely sets every file aside)."""
    path = Path(module_dir) / CHECKSUMS_FILENAME
    try:
        data = read_tree_file(path, CHECKSUMS_FILENAME, within=str(module_dir))
    except FileNotFoundError:
        return PublishedFiles()
    except OSError as exc:
        return PublishedFiles(problem=f"cannot be read: {exc.strerror or exc}")
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


class DpkgRecords:
    """dpkg's record of which package installed which module directory, read
    once per run and only when some module has no ``checksums.json``.

    The index keeps only the ``.../metadata.json`` lines of the packages' file
    lists (a module directory is the directory of its metadata.json), so it
    stays small however many packages are installed.
    """

    def __init__(self, info_dir: Path = DPKG_INFO_DIR) -> None:
        self.info_dir = Path(info_dir)
        self._owners: Optional[Dict[str, str]] = None

    def _index(self) -> Dict[str, str]:
        """Module directory (absolute, as dpkg lists it) -> the ``.list`` file's stem (``package[:arch]``)."""
        if self._owners is None:
            owners: Dict[str, str] = {}
            try:
                lists = sorted(self.info_dir.glob("*.list"))
            except OSError:
                lists = []
            for listing in lists:
                try:
                    with open(listing, "rb") as handle:
                        for line in handle:
                            if line.endswith(b"/metadata.json\n"):
                                directory = line[: -len(b"/metadata.json\n")].decode("utf-8", "replace")
                                owners.setdefault(directory, listing.name[: -len(".list")])
                except OSError:
                    continue
            self._owners = owners
        return self._owners

    def published_files(self, module_dir: Path) -> Optional[PublishedFiles]:
        """The package's MD5s of the files under ``module_dir`` (its real path),
        or None when no package owns that directory."""
        stem = self._index().get(str(module_dir))
        if stem is None:
            return None
        source = f"dpkg's md5sums of {stem.split(':', 1)[0]}"
        try:
            with open(self.info_dir / f"{stem}.md5sums", "rb") as handle:
                data = handle.read(_MAX_MD5SUMS_BYTES + 1)
        except OSError as exc:
            return PublishedFiles(problem=f"cannot be read: {exc.strerror or exc}", source=source)
        if len(data) > _MAX_MD5SUMS_BYTES:
            return PublishedFiles(problem="larger than 16 MiB", source=source)
        prefix = str(module_dir).lstrip("/") + "/"
        checksums: Dict[str, str] = {}
        for line in data.decode("utf-8", "replace").splitlines():
            md5, _, path = line.partition("  ")
            if path.startswith(prefix):
                checksums[path[len(prefix):]] = md5
        return PublishedFiles(checksums=checksums, source=source)
