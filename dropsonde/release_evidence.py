"""Release evidence: what the Forge published, per release, as dropsonde keeps it.

A class is public only when the Forge published it (privacy rule 3). The proof
is the release as the Forge serves it: its record (``/v3/releases/<slug>-<version>``)
and its tarball, whose digest matched the record. Of that tarball only the
manifests are kept: per release, the path of each ``manifests/**.pp`` whose
path Puppet's autoloader can load, with the SHA-256 of its bytes and the
classes it defines. Nothing the site can write (``checksums.json``, dpkg's
``.md5sums``) is evidence: the site can build either.

This module is the data format and its reading and writing, with no Forge
client and no Puppet reader, so the collector can use the same evidence (which
classes each release publishes) without the probe's readers. The fetching is
:mod:`dropsonde.forge_releases`; the verdict per class is
:mod:`dropsonde.publicness`.

On disk, ``$cachepath/forge-releases.json`` (and the same format for an
air-gapped site's bundle, ``dropsonde releases build``)::

    {"format": 1,
     "releases": {"puppetlabs-ntp-10.0.0": {
         "slug": "puppetlabs-ntp", "version": "10.0.0",
         "file_sha256": "<hex of the tarball>", "fetched_at": "2026-12-06T23:00:00+00:00",
         "manifests": {"init.pp": {"sha256": "<hex>", "classes": ["ntp"]},
                       "config.pp": {"sha256": "<hex>", "classes": ["ntp::config"]}}}},
     "unavailable": {"acme-apache-99.0.0": {"checked_at": "...", "reason": "not a published release"}}}

``manifests`` paths are relative to the module's ``manifests`` directory.
``unavailable`` remembers releases the Forge does not publish (or served in a
form we refuse) so a warm run asks nothing; they are asked again after the
Forge cache's lifetime (``--ttl``). Releases are immutable, so a release once
proven is never fetched again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from dropsonde.errors import BadInput, Failure
from dropsonde.json_input import load_json
from dropsonde.privacy import class_name
from dropsonde.tree_files import LIMITS, read_tree_file
from dropsonde.vocabulary import normalize_slug
from dropsonde.wire import parse_timestamp

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir

EVIDENCE_FILENAME = "forge-releases.json"
FORMAT = 1
#: The reason kept for a release the Forge answered does not exist (the others are refusals).
NOT_PUBLISHED = "not a release the Forge published"
MiB = 1024 * 1024
# What one release may keep (README, "Budgets"; Debian's 82 modules with manifests
# as releases: at most 148 manifests (collectd), paths of at most 51 bytes
# (mcollective), 25 KB in the file (collectd)). Only paths and classes are kept, so
# a release of 20,000 empty manifests with 4 KiB paths, within every archive rule,
# kept 80 MB: four such pushed the file past its reader's cap, losing all evidence.
#: Autoloadable manifests one release may keep.
MAX_RELEASE_MANIFESTS = 2_000
#: A kept manifest's path under ``manifests/``, in bytes.
MAX_MANIFEST_PATH_BYTES = 255
#: What one release's entry may take in the file.
MAX_RELEASE_EVIDENCE_BYTES = 1 * MiB
#: The whole file, written and read: a release that would take it past this is
#: refused (the others are kept). Debian's 82 releases take 300 KB: room for some
#: 20,000 releases, and a warm run reads a full one in 3 s of CPU and 400 MB.
MAX_EVIDENCE_BYTES = 64 * MiB
#: The file's values (a small value costs at least 8 bytes of it as we write it).
MAX_EVIDENCE_VALUES = MAX_EVIDENCE_BYTES // 8
#: A bundle (``releases build``): the evidence with each release's tarball in base64.
MAX_BUNDLE_BYTES = LIMITS[EVIDENCE_FILENAME]
# Versions asked of the Forge and kept: plain X.Y.Z with components of at most 4 digits
# (room for "2015.4.0"); a "1.2.3-acme1" may name the site, and so may a long run of
# digits the site chose ("41111111.11111111.1111"): neither is ever sent to the Forge.
_VERSION_RE = re.compile(r"(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})", re.ASCII)
_SHA256_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
# A manifest path the autoloader can load: class-name segments, ".pp".
_SEGMENT_RE = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)
_MAX_REASON = 300


def release_key(slug: str, version: str) -> str:
    """``puppetlabs-ntp-10.0.0``: the Forge's name for a release (its URL's last segment)."""
    return f"{slug}-{version}"


def published_version(version: object) -> Optional[str]:
    """``version`` when it is a plain ``X.Y.Z`` of at most 4 digits a component (the only
    kind we ask the Forge about), else None."""
    return version if isinstance(version, str) and _VERSION_RE.fullmatch(version) else None


def parse_release_key(text: str) -> Optional[Tuple[str, str]]:
    """(slug, version) from ``author-name-X.Y.Z``, or None when it is not one."""
    head, _, version = text.strip().rpartition("-")
    slug = normalize_slug(head) if head else None
    if slug is None or published_version(version) is None or slug != head:
        return None
    return slug, version


def autoloadable_path(relative: str) -> bool:
    """Whether ``relative`` (under ``manifests``) is a file Puppet's autoloader can
    load: class-name segments joined by ``/``, ending in ``.pp``. No other file can
    hold a reportable class, and no such path can be absolute or climb with ``..``."""
    if not relative.endswith(".pp"):
        return False
    return all(_SEGMENT_RE.fullmatch(part) for part in relative[:-3].split("/"))


@dataclass(frozen=True)
class PublishedManifest:
    """One manifest of a release: the SHA-256 of its bytes and the classes it defines."""

    sha256: str
    classes: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Release:
    """A release as the Forge published it (only its autoloadable manifests)."""

    slug: str
    version: str
    file_sha256: str
    fetched_at: str
    manifests: Mapping[str, PublishedManifest] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return release_key(self.slug, self.version)

    def public_classes(self) -> FrozenSet[str]:
        """The classes this release publishes where the autoloader finds them: in
        the module's namespace, in a file Puppet would load for the name (what the
        collector may accept for this release)."""
        module = self.slug.split("-", 1)[1]
        return frozenset(
            name for relative, manifest in self.manifests.items() for name in manifest.classes
            if name.split("::", 1)[0] == module and relative in autoload_files(name)
        )


@dataclass(frozen=True)
class Unavailable:
    """A release we asked for and could not prove: not published, or refused (and why)."""

    checked_at: str
    reason: str


@dataclass(frozen=True)
class ReleaseEvidence:
    """Every release proven so far, and those found unavailable; ``problem`` says
    why the kept file could not be used (then nothing is proven: fail closed)."""

    releases: Mapping[str, Release] = field(default_factory=dict)
    unavailable: Mapping[str, Unavailable] = field(default_factory=dict)
    problem: Optional[str] = None

    def release(self, slug: str, version: str) -> Optional[Release]:
        return self.releases.get(release_key(slug, version))

    def is_known(self, slug: str, version: str, now: datetime, ttl: timedelta) -> bool:
        """Whether asking the Forge again would be wasted: proven (releases are
        immutable), or found unavailable less than ``ttl`` ago."""
        key = release_key(slug, version)
        if key in self.releases:
            return True
        gone = self.unavailable.get(key)
        checked = parse_timestamp(gone.checked_at) if gone is not None else None
        return checked is not None and now - ttl < checked <= now + ttl

    def merged(self, releases: Iterable[Release], unavailable: Mapping[str, Unavailable],
               limit: int = MAX_EVIDENCE_BYTES) -> "ReleaseEvidence":
        """This evidence with ``releases`` and ``unavailable`` added. A release proven already
        is kept as it is (releases are immutable: nothing carried in may replace what was
        fetched), and a proven release is never un-proven. A new release that would take
        the file past ``limit`` bytes (or MAX_EVIDENCE_VALUES) is refused, remembered as
        unavailable with the reason, so the file stays one its reader accepts."""
        proven = dict(self.releases)
        missing = {k: v for k, v in self.unavailable.items() if k not in proven}
        added: Dict[str, Release] = {}
        for release in releases:
            if release.key not in proven:
                added.setdefault(release.key, release)
        missing.update((k, v) for k, v in unavailable.items() if k not in proven and k not in added)
        size, values = _encoded_cost(evidence_json(ReleaseEvidence(proven, missing)))
        for release in added.values():
            entry_size, entry_values = _encoded_cost(_entry_json(release))
            if size + entry_size + _UNAVAILABLE_RESERVE > limit or values + entry_values > MAX_EVIDENCE_VALUES:
                reason = f"refused: keeping it would make {EVIDENCE_FILENAME} larger than {limit} bytes"
                missing[release.key] = Unavailable(release.fetched_at, reason)
                size, values = size + _UNAVAILABLE_RESERVE, values + 3
                continue
            proven[release.key] = release
            missing.pop(release.key, None)
            size, values = size + entry_size, values + entry_values
        return ReleaseEvidence(proven, missing)


def autoload_files(name: str) -> Tuple[str, ...]:
    """The manifests Puppet's autoloader tries for class ``name``, in its order,
    relative to the module's ``manifests`` directory (Puppet's TypeLoader:
    ``a::b::c`` -> ``b/c.pp``, ``b.pp``, ``init.pp``). ``name`` must already
    have passed :func:`~dropsonde.privacy.class_name`, so no segment is a path."""
    parts = name.split("::")
    return tuple("/".join(parts[1:i]) + ".pp" for i in range(len(parts), 1, -1)) + ("init.pp",)


# ---- JSON ----

def _entry(release: Release) -> Dict[str, Any]:
    """A release's entry in the on-disk format."""
    return {
        "slug": release.slug, "version": release.version, "file_sha256": release.file_sha256,
        "fetched_at": release.fetched_at,
        "manifests": {relative: {"sha256": m.sha256, "classes": list(m.classes)}
                      for relative, m in sorted(release.manifests.items())},
    }


def _entry_json(release: Release) -> bytes:
    """A release's entry as it is written inside the file, one level deeper than here:
    :func:`_encoded_cost` of it is at least what it adds to the file."""
    text = json.dumps({release.key: _entry(release)}, indent=1, sort_keys=True)
    return (text + "\n" * (text.count("\n") + 2)).encode("utf-8")


def _encoded_cost(data: bytes) -> Tuple[int, int]:
    """(bytes, values) of encoded JSON, values counted as :func:`~dropsonde.json_input.load_json` counts them."""
    return len(data), data.count(b",") + data.count(b"[") + data.count(b"{")


# What a release refused for the file's sake adds to it as an unavailable entry, at most.
_UNAVAILABLE_RESERVE = 1024


def release_refusal(release: Release) -> Optional[str]:
    """Why ``release`` keeps more than one release may (MAX_RELEASE_MANIFESTS,
    MAX_MANIFEST_PATH_BYTES, MAX_RELEASE_EVIDENCE_BYTES), or None."""
    if len(release.manifests) > MAX_RELEASE_MANIFESTS:
        return f"keeps {len(release.manifests)} manifests, more than {MAX_RELEASE_MANIFESTS}"
    if any(len(relative.encode("utf-8")) > MAX_MANIFEST_PATH_BYTES for relative in release.manifests):
        return f"keeps a manifest path longer than {MAX_MANIFEST_PATH_BYTES} bytes"
    size = len(_entry_json(release))
    if size > MAX_RELEASE_EVIDENCE_BYTES:
        return f"would take {size} bytes of {EVIDENCE_FILENAME}, more than {MAX_RELEASE_EVIDENCE_BYTES}"
    return None


def evidence_json(evidence: ReleaseEvidence) -> bytes:
    """The evidence in its on-disk format (sorted, so equal evidence is equal bytes)."""
    data = {
        "format": FORMAT,
        "releases": {key: _entry(release) for key, release in sorted(evidence.releases.items())},
        "unavailable": {key: {"checked_at": gone.checked_at, "reason": gone.reason}
                        for key, gone in sorted(evidence.unavailable.items())},
    }
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8")


class EvidenceFormatError(ValueError):
    """The evidence is not in the expected format; the text names the first bad entry."""


def evidence_from_json(data: bytes, max_bytes: int = MAX_EVIDENCE_BYTES,
                       max_values: int = MAX_EVIDENCE_VALUES) -> ReleaseEvidence:
    """Evidence from its on-disk format, checked entry by entry; EvidenceFormatError naming the first bad one."""
    try:
        raw = load_json(data, max_bytes, max_values=max_values)
    except ValueError as exc:
        raise EvidenceFormatError(str(exc)) from None
    return evidence_from_value(raw)


def evidence_from_value(raw: Any) -> ReleaseEvidence:
    """Evidence from its decoded on-disk format (see :func:`evidence_from_json`)."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise EvidenceFormatError(f"not release evidence of format {FORMAT}")
    releases, unavailable = raw.get("releases", {}), raw.get("unavailable", {})
    if not isinstance(releases, dict) or not isinstance(unavailable, dict):
        raise EvidenceFormatError("'releases' and 'unavailable' must be objects")
    proven = {key: _release(key, value) for key, value in releases.items()}
    missing = {key: _unavailable(key, value) for key, value in unavailable.items()}
    return ReleaseEvidence(proven, missing)


def _release(key: str, raw: Any) -> Release:
    where = f"releases[{key!r:.80}]"
    if not isinstance(raw, dict):
        raise EvidenceFormatError(f"{where} is not an object")
    slug, version = raw.get("slug"), raw.get("version")
    if not isinstance(slug, str) or normalize_slug(slug) != slug or published_version(version) is None \
            or release_key(slug, str(version)) != key:
        raise EvidenceFormatError(f"{where}: slug and version must be an author-name and X.Y.Z naming the key")
    file_sha256, fetched_at, manifests = raw.get("file_sha256"), raw.get("fetched_at"), raw.get("manifests")
    if not isinstance(file_sha256, str) or not _SHA256_RE.fullmatch(file_sha256):
        raise EvidenceFormatError(f"{where}: file_sha256 is not a SHA-256")
    if not isinstance(fetched_at, str) or parse_timestamp(fetched_at) is None:
        raise EvidenceFormatError(f"{where}: fetched_at is not a timestamp")
    if not isinstance(manifests, dict):
        raise EvidenceFormatError(f"{where}: manifests is not an object")
    return Release(slug, str(version), file_sha256, fetched_at,
                   {relative: _manifest(where, relative, value) for relative, value in manifests.items()})


def _manifest(where: str, relative: str, raw: Any) -> PublishedManifest:
    if not autoloadable_path(relative):
        raise EvidenceFormatError(f"{where}: {relative!r:.80} is not an autoloadable manifest path")
    sha256 = raw.get("sha256") if isinstance(raw, dict) else None
    classes = raw.get("classes") if isinstance(raw, dict) else None
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise EvidenceFormatError(f"{where}: {relative}: sha256 is not a SHA-256")
    if not isinstance(classes, list) or not all(isinstance(c, str) and class_name(c) == c for c in classes):
        raise EvidenceFormatError(f"{where}: {relative}: classes must be a list of class names")
    return PublishedManifest(sha256, tuple(classes))


def _unavailable(key: str, raw: Any) -> Unavailable:
    where = f"unavailable[{key!r:.80}]"
    if parse_release_key(key) is None:
        raise EvidenceFormatError(f"{where}: not an author-name-X.Y.Z release")
    checked_at = raw.get("checked_at") if isinstance(raw, dict) else None
    reason = raw.get("reason") if isinstance(raw, dict) else None
    if not isinstance(checked_at, str) or parse_timestamp(checked_at) is None or not isinstance(reason, str):
        raise EvidenceFormatError(f"{where}: needs a checked_at timestamp and a reason")
    return Unavailable(checked_at, reason[:_MAX_REASON])


# ---- the cache directory's copy, and files carried in ----

def load_evidence(cache: "CacheDir") -> ReleaseEvidence:
    """The evidence kept in the cache directory; never raises: a missing file is
    no evidence, a damaged one is no evidence with a ``problem`` (fail closed)."""
    try:
        data = cache.read_bytes(EVIDENCE_FILENAME, MAX_EVIDENCE_BYTES)
    except FileNotFoundError:
        return ReleaseEvidence()
    except OSError as exc:
        return ReleaseEvidence(problem=f"{EVIDENCE_FILENAME} is unreadable ({exc.strerror or exc})")
    try:
        return evidence_from_json(data)
    except EvidenceFormatError as exc:
        return ReleaseEvidence(problem=f"{EVIDENCE_FILENAME} is unusable ({exc})")


class EvidenceTooLarge(Failure):
    """Evidence its own reader would refuse: never written."""


def save_evidence(cache: "CacheDir", evidence: ReleaseEvidence) -> Path:
    """Write the evidence atomically (a kill -9 leaves the old file or the new one).
    Never a file its reader would refuse (:meth:`ReleaseEvidence.merged` keeps it
    under the caps; the unavailable entries, only saved requests, are dropped first)."""
    data = evidence_json(evidence)
    if _over_caps(data):
        data = evidence_json(ReleaseEvidence(evidence.releases))
    if _over_caps(data):
        raise EvidenceTooLarge(f"{EVIDENCE_FILENAME}: {len(data)} bytes of evidence, more than "
                               f"{MAX_EVIDENCE_BYTES} (MAX_EVIDENCE_BYTES): not saved")
    return cache.write(EVIDENCE_FILENAME, data, mode=0o644)


def _over_caps(data: bytes) -> bool:
    size, values = _encoded_cost(data)
    return size > MAX_EVIDENCE_BYTES or values > MAX_EVIDENCE_VALUES


def read_release_list(source: Path) -> List[Tuple[str, str]]:
    """(slug, version) of each line of a release list (``dropsonde releases list``'s
    output; blank lines and ``#`` comments are skipped); BadInput naming the
    file and line of the first entry that is not ``author-name-X.Y.Z``."""
    try:
        text = read_tree_file(source, "release list").decode("utf-8")
    except OSError as exc:
        raise BadInput(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{source}: not UTF-8 text") from None
    wanted: List[Tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parsed = parse_release_key(line)
        if parsed is None:
            raise BadInput(f"{source}, line {number}: not an author-name-X.Y.Z release: {line.strip()!r:.80}")
        wanted.append(parsed)
    return wanted


def read_evidence_file(source: Path) -> ReleaseEvidence:
    """An evidence bundle made elsewhere (an air-gapped site's import), checked
    strictly: BadInput naming the file and the first bad entry."""
    try:
        data = read_tree_file(source, EVIDENCE_FILENAME)
    except OSError as exc:
        raise BadInput(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        return evidence_from_json(data, MAX_BUNDLE_BYTES)
    except EvidenceFormatError as exc:
        raise BadInput(f"{source}: {exc}") from None
