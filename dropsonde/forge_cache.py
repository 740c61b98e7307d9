"""The Forge module cache: the list of public module slugs that decides what
may be reported, as it is kept on disk (reading, writing, importing). The
crawl of the Forge API that fills it is :mod:`dropsonde.forge_api`.

``$cachepath/forge.json`` is ``{"timestamp": ..., "modules": ["author-name", ...]}``,
the Ruby client's file, so an existing cache is reused; we add
``"forge_updated_at"``, the newest Forge ``updated_at`` seen, where the next
incremental refresh stops (the Ruby client ignores the extra key). Privacy rule 1 lives
here: a module is public only if its slug is listed, and a missing, corrupt
or empty cache makes nothing public (fail closed) and says why.

Timestamps in the future are refused, in the cache as in an imported file:
a ``9999-12-31`` watermark would stop every incremental refresh at once and
an expiry that never comes would keep the list from ever being refreshed.
``CLOCK_SKEW`` is tolerated, for a file made on a machine whose clock runs a
little ahead; the current time is always a parameter, so tests set it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Iterable, Optional

from dropsonde.errors import BadInput, Failure
from dropsonde.json_input import load_json
from dropsonde.tree_files import LIMITS, read_tree_file
from dropsonde.vocabulary import normalize_slug
from dropsonde.wire import parse_timestamp

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir

CACHE_FILENAME = "forge.json"
log = logging.getLogger(__name__)
CLOCK_SKEW = timedelta(hours=1)
#: The most modules the list may hold: ten times today's Forge, and what a crawl
#: can read (``forge_api.MAX_PAGES`` pages of ``forge_api.PAGE_SIZE`` modules).
MAX_FORGE_MODULES = 100_000
#: The longest slug: Debian's longest is 26 characters (openstack-openstack_extras).
#: With MAX_FORGE_MODULES it bounds the file (about 14 MB) far under the reader's cap.
MAX_SLUG_LENGTH = 128


class CacheTooLarge(Failure):
    """A list that the cache's own reader would refuse: never written."""


def forge_slug(name: object) -> Optional[str]:
    """``name`` as a slug the cache may hold (``author-name``, at most MAX_SLUG_LENGTH), or None."""
    if not isinstance(name, str) or len(name) > MAX_SLUG_LENGTH:
        return None
    return normalize_slug(name)


@dataclass(frozen=True)
class ForgeCache:
    """Public module slugs, and why the list is empty when it is.

    ``problem`` names no path: it is shown in the preview, which must not
    reveal the site's file layout.
    """

    path: Path
    modules: FrozenSet[str]
    timestamp: Optional[str] = None
    problem: Optional[str] = None
    forge_updated_at: Optional[str] = None

    def is_public(self, slug: Optional[str]) -> bool:
        """Whether ``slug`` (``author-name`` or ``author/name``) is a Forge module."""
        if not slug:
            return False
        normalized = normalize_slug(slug)
        return normalized is not None and normalized in self.modules

    def age(self, now: datetime) -> Optional[timedelta]:
        """How old the list is, or None when its timestamp is missing or unreadable."""
        stamp = parse_timestamp(self.timestamp)
        return now - stamp if stamp is not None else None

    def is_due_for_refresh(self, now: datetime, ttl_days: int) -> bool:
        """Whether a report should refresh the list first: missing, unusable, or
        ``ttl_days`` old. A pure decision: the clock is the caller's."""
        age = self.age(now)
        return age is None or age.days >= ttl_days or self.problem is not None

    def watermark(self) -> Optional[datetime]:
        """Where an incremental refresh may stop: the newest Forge ``updated_at``
        seen, else (a Ruby client's file) the time the list was written."""
        return parse_timestamp(self.forge_updated_at) or parse_timestamp(self.timestamp)


def future_timestamp(data: Dict[str, Any], now: datetime) -> Optional[str]:
    """The first of ``timestamp`` / ``forge_updated_at`` later than ``now`` + CLOCK_SKEW, as "key value"."""
    for key in ("timestamp", "forge_updated_at"):
        stamp = parse_timestamp(data.get(key)) if isinstance(data.get(key), str) else None
        if stamp is not None and stamp > now + CLOCK_SKEW:
            return f"{key} {data[key]!r:.60}"
    return None


def load_forge_cache(cache: "CacheDir", now: Optional[datetime] = None) -> ForgeCache:
    """Read ``forge.json`` in the cache directory; never raises: a defect yields an empty list and a problem.
    ``now`` (default: the clock) decides which timestamps lie in the future. -v logs what was read."""
    forge = _read_forge_cache(cache, now or datetime.now(timezone.utc))
    if forge.problem:
        log.info("Forge module cache %s: %s", forge.path, forge.problem)
    else:
        log.info("Forge module cache %s: %d public modules, updated %s", forge.path, len(forge.modules),
                 forge.timestamp or "(unknown)")
    return forge


def _read_forge_cache(cache: "CacheDir", now: datetime) -> ForgeCache:
    path = cache / CACHE_FILENAME
    try:
        data = load_json(cache.read_bytes(CACHE_FILENAME, LIMITS[CACHE_FILENAME]), LIMITS[CACHE_FILENAME])
    except FileNotFoundError:
        return ForgeCache(path, frozenset(), problem="no Forge module cache yet")
    except OSError as exc:
        return ForgeCache(path, frozenset(), problem=f"Forge module cache unreadable ({exc.strerror or exc})")
    except ValueError as exc:
        return ForgeCache(path, frozenset(), problem=f"Forge module cache is {exc}")
    modules = data.get("modules") if isinstance(data, dict) else None
    if not isinstance(modules, list):
        return ForgeCache(path, frozenset(), problem="Forge module cache has no 'modules' list")
    if len(modules) > MAX_FORGE_MODULES:
        return ForgeCache(path, frozenset(), problem=f"Forge module cache lists more than {MAX_FORGE_MODULES} modules")
    future = future_timestamp(data, now)
    if future is not None:
        return ForgeCache(path, frozenset(), problem=f"Forge module cache is dated in the future ({future})")
    slugs = frozenset(s for s in map(forge_slug, modules) if s)
    timestamp = data.get("timestamp")
    timestamp = str(timestamp) if timestamp is not None else None
    watermark = data.get("forge_updated_at")
    watermark = watermark if isinstance(watermark, str) else None
    if not slugs:
        return ForgeCache(path, slugs, timestamp, "Forge module cache lists no modules", watermark)
    return ForgeCache(path, slugs, timestamp, forge_updated_at=watermark)


def save_forge_cache(cache: "CacheDir", modules: Iterable[str], now: datetime,
                     forge_updated_at: Optional[datetime]) -> Path:
    """Write the cache atomically (a kill -9 leaves the old file or the new one, never half).
    A list its reader would refuse is never written (CacheTooLarge): a file the probe
    wrote itself must not make nothing public on every later run."""
    listed = sorted(set(modules))
    if len(listed) > MAX_FORGE_MODULES:
        raise CacheTooLarge(f"the list of public modules has {len(listed)} entries, "
                            f"more than {MAX_FORGE_MODULES} modules (MAX_FORGE_MODULES): not saved")
    data = {
        "timestamp": now.isoformat(timespec="seconds"),
        "modules": listed,
        "forge_updated_at": forge_updated_at.isoformat() if forge_updated_at else None,
    }
    encoded = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    if len(encoded) > LIMITS[CACHE_FILENAME]:
        raise CacheTooLarge(f"the list of public modules takes {len(encoded)} bytes, "
                            f"more than the {LIMITS[CACHE_FILENAME]} its reader accepts: not saved")
    return cache.write(CACHE_FILENAME, encoded)


def read_forge_file(source: Path) -> ForgeCache:
    """A forge.json made elsewhere, checked strictly (for an import, and for the
    collector's allowlist): BadInput naming the file and the first bad
    entry, rather than the probe cache's silent fail-closed reading."""
    try:
        data = load_json(read_tree_file(source, CACHE_FILENAME), LIMITS[CACHE_FILENAME])
    except OSError as exc:
        raise BadInput(f"{source}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BadInput(f"{source}: {exc}") from None
    modules = data.get("modules") if isinstance(data, dict) else None
    if not isinstance(modules, list) or not modules:
        raise BadInput(f"{source}: expected an object with a non-empty 'modules' list of author-name slugs")
    if len(modules) > MAX_FORGE_MODULES:
        raise BadInput(f"{source}: lists {len(modules)} entries, more than {MAX_FORGE_MODULES} modules "
                       "(MAX_FORGE_MODULES; ten times the Forge's)")
    slugs = []
    for index, entry in enumerate(modules):
        slug = forge_slug(entry)
        if slug is None:
            raise BadInput(f"{source}: modules[{index}] is not an author-name slug: {entry!r:.80}")
        slugs.append(slug)
    timestamp, watermark = data.get("timestamp"), data.get("forge_updated_at")
    return ForgeCache(Path(source), frozenset(slugs), str(timestamp) if timestamp is not None else None,
                      forge_updated_at=watermark if isinstance(watermark, str) else None)


def import_forge_file(source: Path, cache: "CacheDir", now: datetime) -> int:
    """Replace the cache with a forge.json made elsewhere (an air-gapped site's
    way in), after checking it; BadInput naming the file and the first
    bad entry otherwise, and the current cache is left as it was."""
    imported = read_forge_file(source)
    future = future_timestamp({"timestamp": imported.timestamp, "forge_updated_at": imported.forge_updated_at}, now)
    if future is not None:
        raise BadInput(f"{source}: {future} lies in the future (now {now.isoformat(timespec='seconds')})")
    save_forge_cache(cache, imported.modules, parse_timestamp(imported.timestamp) or now,
                     parse_timestamp(imported.forge_updated_at))
    return len(imported.modules)
