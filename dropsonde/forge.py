"""The Forge module cache: the list of public module slugs that decides what
may be reported.

``$cachepath/forge.json`` is ``{"timestamp": ..., "modules": ["author-name", ...]}``,
the Ruby client's file, so an existing cache is reused. Privacy rule 1 lives
here: a module is public only if its slug is listed, and a missing, corrupt
or empty cache makes nothing public (fail closed) and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import FrozenSet, Optional

from dropsonde.puppet.environments import normalize_slug

CACHE_FILENAME = "forge.json"


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

    def is_public(self, slug: Optional[str]) -> bool:
        """Whether ``slug`` (``author-name`` or ``author/name``) is a Forge module."""
        if not slug:
            return False
        normalized = normalize_slug(slug)
        return normalized is not None and normalized in self.modules

    def age(self, now: datetime) -> Optional[timedelta]:
        """How old the list is, or None when its timestamp is missing or unreadable."""
        if not self.timestamp:
            return None
        try:
            stamp = datetime.fromisoformat(self.timestamp.replace("Z", "+00:00"))
        except ValueError:
            return None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return now - stamp


def load_forge_cache(cachepath: Path) -> ForgeCache:
    """Read ``forge.json`` under ``cachepath``; never raises: a defect yields an empty list and a problem."""
    path = Path(cachepath) / CACHE_FILENAME
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return ForgeCache(path, frozenset(), problem="no Forge module cache yet")
    except OSError as exc:
        return ForgeCache(path, frozenset(), problem=f"Forge module cache unreadable ({exc.strerror or exc})")
    except (UnicodeDecodeError, ValueError):
        return ForgeCache(path, frozenset(), problem="Forge module cache is not valid JSON")
    modules = data.get("modules") if isinstance(data, dict) else None
    if not isinstance(modules, list):
        return ForgeCache(path, frozenset(), problem="Forge module cache has no 'modules' list")
    slugs = frozenset(s for s in (normalize_slug(m) for m in modules if isinstance(m, str)) if s)
    timestamp = data.get("timestamp")
    timestamp = str(timestamp) if timestamp is not None else None
    if not slugs:
        return ForgeCache(path, slugs, timestamp, problem="Forge module cache lists no modules")
    return ForgeCache(path, slugs, timestamp)
