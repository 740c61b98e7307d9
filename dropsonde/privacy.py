"""Privacy rule 2 for free-text values: a string taken from a site's files is
sent only when its shape proves it carries nothing private; otherwise it is
replaced by one fixed placeholder, so it can still be counted."""

from __future__ import annotations

import re
from typing import Optional

PRIVATE = "(private)"

# Plain release numbers; a pre-release or build suffix ("1.2.3-acme1") can name the site.
_VERSION_RE = re.compile(r"^\d{1,9}\.\d{1,9}\.\d{1,9}$")
# Version ranges as metadata.json writes them: ">= 4.13.1 < 9.0.0", "1.x", "~> 2.0".
_REQUIREMENT_RE = re.compile(r"^[0-9xX*.<>=~^|\s-]{1,64}$")
DEFAULT_REQUIREMENT = ">= 0.0.0"


def public_version(version: Optional[str]) -> str:
    """A module version as sent: ``X.Y.Z``, else the placeholder."""
    return version if version and _VERSION_RE.match(version) else PRIVATE


def public_requirement(requirement: Optional[str]) -> str:
    """A dependency's version requirement as sent: as written when it is only a
    version range, ``>= 0.0.0`` when absent, else the placeholder."""
    if requirement is None or not requirement.strip():
        return DEFAULT_REQUIREMENT
    requirement = " ".join(requirement.split())
    return requirement if _REQUIREMENT_RE.match(requirement) else PRIVATE


# Puppet's own classes and the roles-and-profiles namespaces are site-specific
# by definition, whatever module happens to define them.
_NEVER_REPORTED_NAMESPACES = frozenset({"main", "settings", "profile", "profiles", "role", "roles"})


def reportable_class(name: str) -> bool:
    """Whether a class name may ever be reported (it must also be defined by a public module)."""
    return name.lower().lstrip(":").split("::", 1)[0] not in _NEVER_REPORTED_NAMESPACES
