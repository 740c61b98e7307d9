"""Fetching release evidence (:mod:`dropsonde.release_evidence`) from the Forge v3 API.

For each public slug-version a site uses and has no evidence for yet: the
release record ``GET /v3/releases/<slug>-<version>`` (it must name that very
release and give ``file_uri`` and ``file_sha256`` or ``file_md5``), then the
tarball at ``file_uri``, whose digest must match the record, then its
manifests (:mod:`dropsonde.release_archive`), parsed here once for the class
names they define.

The rules of the Forge crawl apply (:mod:`dropsonde.forge_api`): one origin,
that of ``--forge-api`` (``file_uri`` is a path on it, or an absolute URL on
the same origin; anything else is refused), same-origin redirects only, a
deadline and a byte cap on every answer, and ``TOTAL_BUDGET`` for the whole
refresh. A release the Forge does not have (404), or serves in a form we
refuse, is *unavailable* and remembered as such; a failure of the Forge
itself (network, 5xx, 429 after the retries, the budget) stops the refresh
at once, keeps what was proven so far and is one line for the caller to warn
with: an outage costs one failed request, and never blocks a report.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import quote, urlsplit

from dropsonde import http_client
from dropsonde.forge_api import TOTAL_BUDGET, ForgeError, _error_message
from dropsonde.json_input import load_json
from dropsonde.privacy import class_name
from dropsonde.release_archive import ArchiveRefused, read_release_manifests
from dropsonde.errors import BadInput, Failure
from dropsonde.release_evidence import (
    EVIDENCE_FILENAME,
    MAX_BUNDLE_BYTES,
    EvidenceFormatError,
    MAX_EVIDENCE_VALUES,
    NOT_PUBLISHED,
    PublishedManifest,
    Release,
    ReleaseEvidence,
    Unavailable,
    evidence_from_value,
    evidence_json,
    load_evidence,
    release_key,
    release_refusal,
    save_evidence,
)
from dropsonde.tree_files import read_tree_file
from dropsonde.terminal import printable

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir

log = logging.getLogger(__name__)

# A release record with its text fields excluded is a few KB; with them, rarely over 1 MB.
MAX_RECORD_BYTES = 16 * 1024 * 1024
# The Forge's largest releases weigh a few tens of MB.
MAX_TARBALL_BYTES = 64 * 1024 * 1024
RECORD_PARAMS = {"exclude_fields": "readme changelog license reference"}
# The CPU time one release's tarball may take to read and parse (apache's, the largest, about 0.3 s).
RELEASE_CPU_SECONDS = 10.0
# The CPU time deriving every release of one bundle may take on import (Debian's 88
# modules as releases: 0.49 s; the review's 117 KB bundle of six releases each just under
# RELEASE_CPU_SECONDS took 42 s, and one at the size cap would have taken a day).
BUNDLE_CPU_SECONDS = 120.0
# What file_uri may be when relative: a path on the Forge's origin (it sends /v3/files/...).
_FILE_PATH_RE = re.compile(r"/(?![/\\])[^\\@\s?#]*")
_HEX_RE = {"sha256": re.compile(r"[0-9a-fA-F]{64}"), "md5": re.compile(r"[0-9a-fA-F]{32}")}


class ReleaseRefused(Exception):
    """This release cannot be proven (not published, or not in a form we accept)."""


@dataclass
class EvidenceFetch:
    """What one refresh proved, what it found unavailable, and what stopped it (then
    ``not_fetched`` releases, the one that failed included, are left for the next run)."""

    releases: List[Release] = field(default_factory=list)
    unavailable: Dict[str, Unavailable] = field(default_factory=dict)
    failure: Optional[str] = None
    requests: int = 0
    not_fetched: int = 0

    def summary(self) -> str:
        text = (f"Forge release evidence: {len(self.releases)} releases proven, "
                f"{len(self.unavailable)} unavailable, {self.requests} requests")
        if self.failure:
            text += f"; stopped with {self.not_fetched} not fetched: {self.failure}"
        return text


def fetch_releases(base_url: str, wanted: Iterable[Tuple[str, str]], now: datetime,
                   policy: Optional[http_client.HttpPolicy] = None,
                   clock: Callable[[], float] = time.monotonic) -> EvidenceFetch:
    """Ask the Forge at ``base_url`` for each (slug, version) of ``wanted``, in order.
    Never raises for the Forge's sake: a failure is recorded and ends the fetch."""
    result = EvidenceFetch()
    for _proven in _fetch_each(base_url, wanted, now, result, policy, clock):
        pass
    return result


def _fetch_each(base_url: str, wanted: Iterable[Tuple[str, str]], now: datetime, result: EvidenceFetch,
                policy: Optional[http_client.HttpPolicy] = None,
                clock: Callable[[], float] = time.monotonic) -> Iterator[Tuple[Release, bytes]]:
    """:func:`fetch_releases` one proven release (and its tarball) at a time, so that a
    bundle holds one tarball in memory, not all of them; ``result`` is filled as it goes."""
    policy = policy or http_client.HttpPolicy.from_environment()
    session = http_client.session(policy)
    deadline = clock() + TOTAL_BUDGET
    todo = list(dict.fromkeys(wanted))
    stamp = now.isoformat(timespec="seconds")
    for index, (slug, version) in enumerate(todo):
        key = release_key(slug, version)
        try:
            if clock() > deadline:
                raise ForgeError(f"fetching release evidence took longer than {TOTAL_BUDGET:g} s")
            release, tarball = _fetch_release(session, base_url, slug, version, policy,
                                              lambda: deadline - clock(), result, stamp)
        except ReleaseRefused as exc:
            log.info("release %s: %s", key, exc)
            result.unavailable[key] = Unavailable(stamp, str(exc))
            continue
        except ForgeError as exc:
            result.failure = str(exc)
            result.not_fetched = len(todo) - index
            return
        result.releases.append(release)
        yield release, tarball


def _fetch_release(session: Any, base_url: str, slug: str, version: str, policy: http_client.HttpPolicy,
                   seconds_left: Callable[[], float], result: EvidenceFetch, stamp: str) -> Tuple[Release, bytes]:
    key = release_key(slug, version)
    record_url = f"{base_url}/v3/releases/{quote(key)}"
    record = _get(session, record_url, policy, seconds_left(), MAX_RECORD_BYTES, RECORD_PARAMS, result)
    if record.status == 404:
        raise ReleaseRefused(NOT_PUBLISHED)
    _raise_unless_ok(record)
    try:
        body = load_json(record.body, MAX_RECORD_BYTES)
    except ValueError as exc:
        raise ForgeError(f"{printable(record.url)}: the answer is {exc}") from None
    file_url, algorithm, digest = _check_record(body, base_url, slug, version)
    tarball = _get(session, file_url, policy, seconds_left(), MAX_TARBALL_BYTES, None, result)
    if tarball.status == 404:
        raise ReleaseRefused("its tarball is missing from the Forge (HTTP 404)")
    _raise_unless_ok(tarball)
    actual = hashlib.new(algorithm, tarball.body).hexdigest()
    if actual != digest.lower():
        raise ReleaseRefused(f"its tarball's {algorithm.upper()} differs from the release record's: refused")
    return release_from_tarball(slug, version, tarball.body, stamp), tarball.body


def release_from_tarball(slug: str, version: str, tarball: bytes, stamp: str) -> Release:
    """The evidence of a release from its tarball (whose digest the caller checked); ReleaseRefused
    when the archive is refused. What a release proves is always derived here, never taken as given.
    Reading and parsing one release gets RELEASE_CPU_SECONDS in all (a real one takes a fraction
    of a second; 63 hostile manifests of 4 MiB took a minute)."""
    from dropsonde.cpu_budget import OverBudget, cpu_budget

    try:
        with cpu_budget(RELEASE_CPU_SECONDS):
            manifests = read_release_manifests(tarball)
            published = {relative: published_manifest(data) for relative, data in sorted(manifests.items())}
    except ArchiveRefused as exc:
        raise ReleaseRefused(f"its tarball {exc}: refused") from None
    except OverBudget:
        raise ReleaseRefused(f"reading its tarball took more than {RELEASE_CPU_SECONDS:g} s of CPU time: refused") \
            from None
    release = Release(slug, version, hashlib.sha256(tarball).hexdigest(), stamp, published)
    refusal = release_refusal(release)
    if refusal is not None:
        raise ReleaseRefused(f"its evidence {refusal}: refused")
    return release


def published_manifest(data: bytes) -> PublishedManifest:
    """A manifest's digest and the class names it defines (as our reader sees them)."""
    from dropsonde.puppet.manifests import read_manifest_data

    classes = [name for name in read_manifest_data(data).classes if class_name(name) == name]
    return PublishedManifest(hashlib.sha256(data).hexdigest(), tuple(dict.fromkeys(classes)))


def _get(session: Any, url: str, policy: http_client.HttpPolicy, seconds_left: float, cap: int,
         params: Optional[Dict[str, str]], result: EvidenceFetch) -> http_client.Reply:
    """One answer, whole; ForgeError when the Forge cannot give it, ReleaseRefused when it is over its cap."""
    import requests

    if seconds_left <= 0:
        raise ForgeError(f"fetching release evidence took longer than {TOTAL_BUDGET:g} s")
    result.requests += 1
    try:
        return http_client.fetch(session, "GET", url, policy, cap, deadline=seconds_left, params=params,
                                 headers={"Accept": "*/*"} if params is None else None)
    except http_client.AnswerRefused as exc:
        if "larger than" in str(exc):
            raise ReleaseRefused(f"{exc}") from None
        raise ForgeError(http_client.describe_failure(url, exc, policy)) from None
    except (requests.exceptions.RequestException, http_client.RedirectRefused) as exc:
        raise ForgeError(http_client.describe_failure(url, exc, policy)) from None


def _raise_unless_ok(reply: http_client.Reply) -> None:
    """A 4xx other than 404 says the release is not available to us; a 5xx, that the Forge is not."""
    if reply.status == 200:
        return
    message = f"HTTP {reply.status} {_error_message(reply)}".rstrip()
    if 400 <= reply.status < 500 and reply.status != 429:
        raise ReleaseRefused(message)
    raise ForgeError(f"{printable(reply.url)}: {message}")


def _check_record(body: Any, base_url: str, slug: str, version: str) -> Tuple[str, str, str]:
    """(tarball URL, digest algorithm, digest) from a release record that names this
    very release; ReleaseRefused for anything else."""
    if not isinstance(body, dict):
        raise ReleaseRefused("the release record is not an object")
    module = body.get("module")
    module_slug = module.get("slug") if isinstance(module, dict) else slug
    if body.get("slug") != release_key(slug, version) or body.get("version") != version or module_slug != slug:
        raise ReleaseRefused(f"the release record names another release ({printable(str(body.get('slug')))[:100]})")
    file_uri = body.get("file_uri")
    if not isinstance(file_uri, str):
        raise ReleaseRefused("the release record has no file_uri")
    file_url = _file_url(base_url, file_uri)
    size = body.get("file_size")
    if isinstance(size, int) and size > MAX_TARBALL_BYTES:
        raise ReleaseRefused(f"its tarball is larger than {MAX_TARBALL_BYTES} bytes ({size}): not fetched")
    for algorithm in ("sha256", "md5"):
        digest = body.get(f"file_{algorithm}")
        if isinstance(digest, str) and _HEX_RE[algorithm].fullmatch(digest):
            return file_url, algorithm, digest
    raise ReleaseRefused("the release record has neither file_sha256 nor file_md5")


def _file_url(base_url: str, file_uri: str) -> str:
    """``file_uri`` on the Forge's origin: a plain path (what the Forge sends), or an
    absolute URL on that same origin; ReleaseRefused for anything else."""
    if _FILE_PATH_RE.fullmatch(file_uri) and file_uri.isprintable():
        base = urlsplit(base_url)
        return f"{base.scheme}://{base.netloc}{file_uri}"
    if http_client.same_origin(file_uri, base_url):
        return file_uri
    raise ReleaseRefused(f"its file_uri leaves the Forge's origin ({printable(file_uri)[:200]}): not followed")


def refresh_release_evidence(cache: "CacheDir", base_url: str, wanted: Iterable[Tuple[str, str]], now: datetime,
                             ttl: timedelta, policy: Optional[http_client.HttpPolicy] = None) -> EvidenceFetch:
    """Fetch the evidence of the ``wanted`` releases not yet known (proven, or found
    unavailable within ``ttl``) and keep it in the cache directory, atomically. A
    warm run makes no request. The Forge failing stops the fetch (``failure``)."""
    evidence = load_evidence(cache)
    if evidence.problem:
        log.warning("%s: starting it again", evidence.problem)
        evidence = ReleaseEvidence()
    missing = [(slug, version) for slug, version in dict.fromkeys(wanted)
               if not evidence.is_known(slug, version, now, ttl)]
    if not missing:
        return EvidenceFetch()
    log.info("fetching the release evidence of %d releases from %s", len(missing), base_url)
    fetched = fetch_releases(base_url, missing, now, policy)
    if fetched.releases or fetched.unavailable:
        save_evidence(cache, evidence.merged(fetched.releases, fetched.unavailable))
    return fetched


# ---- bundles: evidence carried to an air-gapped site, with the tarballs it was derived from ----
#
# A bundle is the evidence format plus ``tarballs`` (release key -> base64 of the tarball
# as the Forge served it), so the import derives the evidence itself. ``releases build``
# writes it as the releases arrive, one tarball in memory at a time (all of them, and
# their base64, took 3.7 GB for 12 releases of 63 MB), and never writes one that
# ``releases import`` would refuse: at most MAX_BUNDLE_BYTES, evidence that fits in the
# cache's file, and no more CPU time to derive than the import may spend.


# How much of a tarball is base64-encoded at a time (a multiple of 3: the pieces join up).
_BASE64_PIECE = 3 * 1024 * 1024


class BundleRefused(Failure):
    """A bundle that ``releases import`` would refuse: nothing is written."""


def bundle_chunks(base_url: str, wanted: Iterable[Tuple[str, str]], now: datetime, result: EvidenceFetch,
                  policy: Optional[http_client.HttpPolicy] = None, max_bytes: int = MAX_BUNDLE_BYTES,
                  cpu_seconds: float = BUNDLE_CPU_SECONDS) -> Iterator[bytes]:
    """The bundle of ``wanted``, fetched from the Forge and written out as it arrives (for
    :func:`~dropsonde.atomic_file.write_atomic`, which keeps nothing when this raises).
    Failure when the Forge fails (a partial bundle would silently cost classes),
    BundleRefused when the bundle would be one ``releases import`` refuses."""
    import base64
    import json

    start = time.process_time()
    written = 0

    def counted(chunk: bytes) -> bytes:
        nonlocal written
        written += len(chunk)
        if written > max_bytes:
            raise BundleRefused(f"the bundle would be larger than {max_bytes} bytes, what `releases import` "
                                "reads (MAX_BUNDLE_BYTES): nothing written; split the release list")
        if time.process_time() - start > cpu_seconds:
            raise BundleRefused(f"its releases took more than {cpu_seconds:g} s of CPU time to read, more than "
                                "`releases import` may spend (BUNDLE_CPU_SECONDS): nothing written; "
                                "split the release list")
        return chunk

    yield counted(b'{"tarballs": {')
    separator = b"\n"
    for release, tarball in _fetch_each(base_url, wanted, now, result, policy):
        yield counted(separator + json.dumps(release.key).encode("ascii") + b': "')
        for start in range(0, len(tarball), _BASE64_PIECE):  # pieces of 3n bytes encode alone
            yield counted(base64.b64encode(tarball[start:start + _BASE64_PIECE]))
        yield counted(b'"')
        separator = b",\n"
    if result.failure:
        raise Failure(f"the Forge failed, no bundle written: {result.failure}")
    evidence = ReleaseEvidence().merged(result.releases, result.unavailable)
    if len(evidence.releases) < len(result.releases):
        raise BundleRefused(f"the evidence of these releases would not fit in {EVIDENCE_FILENAME} "
                            "(MAX_EVIDENCE_BYTES): nothing written; split the release list")
    yield counted(b"},\n" + evidence_json(evidence)[1:].lstrip())


def read_bundle(source: Path, cpu_seconds: float = BUNDLE_CPU_SECONDS) -> ReleaseEvidence:
    """An evidence bundle made by ``releases build``, checked as a fetch is: each release's
    tarball must be in the bundle with the SHA-256 its entry records (the digest the Forge's
    record vouched for when it was built), and what the release proves (its manifests'
    digests and classes) is derived again from that tarball with the archive rules; the
    bundle's own ``manifests`` are never taken as given. Deriving them all may take
    ``cpu_seconds`` of CPU time (each release RELEASE_CPU_SECONDS; a release started
    before it ran out may finish). BadInput naming the file and the first bad entry;
    nothing is imported then."""
    try:
        return _read_bundle(source, cpu_seconds)
    except MemoryError:  # third review: a 240 MiB bundle under a memory limit was an internal error
        raise BadInput(f"{source}: not imported: reading it takes more memory than this process may use") from None


def _read_bundle(source: Path, cpu_seconds: float) -> ReleaseEvidence:
    from dropsonde.cpu_budget import RunBudget

    try:
        raw = load_json(read_tree_file(source, EVIDENCE_FILENAME), MAX_BUNDLE_BYTES, max_values=MAX_EVIDENCE_VALUES)
    except OSError as exc:
        raise BadInput(f"{source}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BadInput(f"{source}: {exc}") from None
    tarballs = raw.pop("tarballs", None) if isinstance(raw, dict) else None
    try:
        evidence = evidence_from_value(raw)
    except EvidenceFormatError as exc:
        raise BadInput(f"{source}: {exc}") from None
    if not isinstance(tarballs, dict):
        raise BadInput(f"{source}: no 'tarballs': a bundle carries each release's tarball (`dropsonde releases build`)")
    budget = RunBudget(cpu_seconds)
    derived = []
    for done, (key, release) in enumerate(sorted(evidence.releases.items())):
        if budget.exhausted:
            raise BadInput(f"{source}: not imported: deriving the evidence of its releases took more than "
                           f"{cpu_seconds:g} s of CPU time (BUNDLE_CPU_SECONDS; {done} of {len(evidence.releases)} "
                           "done): build smaller bundles (split the release list)")
        with budget.charge():
            derived.append(_derived(source, key, release, tarballs.pop(key, None)))
    return ReleaseEvidence().merged(derived, evidence.unavailable)


def _derived(source: Path, key: str, release: Release, encoded: object) -> Release:
    """One release of a bundle, derived again from the tarball it carries."""
    import base64
    import binascii

    try:
        tarball = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else None
    except (binascii.Error, ValueError):
        tarball = None
    if tarball is None or len(tarball) > MAX_TARBALL_BYTES:
        raise BadInput(f"{source}: releases[{key!r}]: its tarball is missing or not base64 (or over "
                       f"{MAX_TARBALL_BYTES} bytes)")
    if hashlib.sha256(tarball).hexdigest() != release.file_sha256:
        raise BadInput(f"{source}: releases[{key!r}]: its tarball's SHA-256 is not the one recorded")
    try:
        return release_from_tarball(release.slug, release.version, tarball, release.fetched_at)
    except ReleaseRefused as exc:
        raise BadInput(f"{source}: releases[{key!r}]: {exc}") from None
