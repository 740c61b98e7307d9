"""Privacy rules for the strings a report may carry.

Free text taken from a site's files is sent only when its shape proves it
carries nothing private; otherwise it is replaced by one fixed placeholder, so
it can still be counted. Every shape is an ASCII-only full match with bounded
sizes: ``$`` would accept a trailing newline and ``\\d`` would accept any
Unicode digit, and an unbounded pattern lets an IP address or a card number
pass for a version range.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional

PRIVATE = "(private)"
DEFAULT_REQUIREMENT = ">= 0.0.0"

# A version component: no leading zero (SemVer), at most 8 digits (room for a date).
_NUMBER = r"(?:0|[1-9][0-9]{0,7})"
# Plain release numbers; a pre-release or build suffix ("1.2.3-acme1") can name the site.
_VERSION_RE = re.compile(rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}", re.ASCII)

# Version requirements: the shapes real metadata.json files use, as
# semantic_puppet's VersionRange reads them (without pre-release or build tags),
# and no more. Measured on every dependency of Debian's puppet-module-* packages
# (see README, "Budgets"): ">= 1.0.0", ">=2.0.0 <6.0.0", ">= 5.1.0 <= 6.2.0", "1.x",
# "3.2.x"; no component has more than 2 digits. Accepted: a full version
# ("1.2.3") or a wildcard ("1.x", "3.2.x", "*") alone, one comparator before a
# full version, a partial one or a wildcard (">=1.0.0", "~> 2.0", "^1.2.3"), or a
# lower bound below an upper bound (">= 4.13.1 < 9.0.0"); at most two such
# ranges joined by "||"; components of at most 3 digits. Anything else could
# carry a subnet, an address or a card number ("192.168 || 1.77",
# ">=4111.1111.1111 <4111.1111.1112 || 1111", "4111 1111 1111", "10.0.0 -
# 10.255.255") and is sent as the placeholder.
_COMPONENT = r"(?:0|[1-9][0-9]{0,2})"
_WILDCARD = r"[xX*]"
_FULL = rf"{_COMPONENT}\.{_COMPONENT}\.{_COMPONENT}"
# "*", "1.x", "1.2.x": a wildcard ends the version
_WILDCARDED = rf"(?:{_WILDCARD}|{_COMPONENT}\.{_WILDCARD}|{_COMPONENT}\.{_COMPONENT}\.{_WILDCARD})"
_PARTIAL = rf"(?:{_FULL}|{_COMPONENT}\.{_COMPONENT}|{_COMPONENT}|{_WILDCARDED})"
_BARE_RE = re.compile(rf"{_FULL}|{_WILDCARDED}", re.ASCII)
_COMPARATOR_RE = re.compile(rf"(>=|<=|~>|>|<|=|~|\^) ?({_PARTIAL})", re.ASCII)
_BOUNDS_RE = re.compile(rf"(>=|>) ?({_PARTIAL}) (<=|<) ?({_PARTIAL})", re.ASCII)
_MAX_ALTERNATIVES = 2
# The longest requirement sent: room for two bounded ranges of real sizes
# (">= 4.13.1 < 9.0.0 || >= 10.0.0 < 12.0.0" is 38); Debian's longest is 18.
_REQUIREMENT_MAX = 48


def _lowest(partial: str) -> "tuple[int, ...]":
    """The smallest version a partial version names (wildcards as 0), for ordering bounds."""
    numbers = [int(part) if part.isdigit() else 0 for part in partial.split(".")]
    return tuple(numbers + [0] * (3 - len(numbers)))


def _is_range(text: str) -> bool:
    """One alternative of a requirement: a bare version, one comparator, or a
    lower bound below an upper bound."""
    if _BARE_RE.fullmatch(text) or _COMPARATOR_RE.fullmatch(text):
        return True
    bounds = _BOUNDS_RE.fullmatch(text)
    return bounds is not None and _lowest(bounds.group(2)) < _lowest(bounds.group(4))


def public_version(version: object) -> str:
    """A module version as sent: ``X.Y.Z``, else the placeholder."""
    if isinstance(version, str) and _VERSION_RE.fullmatch(version):
        return version
    return PRIVATE


def public_requirement(requirement: object) -> str:
    """A dependency's version requirement as sent: as written (blanks collapsed)
    when it has one of the real shapes of version ranges, ``>= 0.0.0`` when
    absent, else the placeholder."""
    if requirement is None or (isinstance(requirement, str) and not requirement.strip()):
        return DEFAULT_REQUIREMENT
    if not isinstance(requirement, str) or not requirement.isascii():
        return PRIVATE
    normalized = " ".join(requirement.split())
    if len(normalized) > _REQUIREMENT_MAX:
        return PRIVATE
    alternatives = [part.strip() for part in normalized.split("||")]
    if len(alternatives) <= _MAX_ALTERNATIVES and all(_is_range(part) for part in alternatives):
        return normalized
    return PRIVATE


# A version a requirement names ("4.13.1", "2.0", "1.x", "*"), in a requirement
# public_requirement already accepted.
_NAMED_VERSION_RE = re.compile(r"[0-9xX*]+(?:\.[0-9xX*]+)*", re.ASCII)
# A bare major boundary: the versions requirements name most (Debian's modules:
# 19 of their 66 distinct named versions, 395 of 479 uses, are X.0.0), and they
# carry no more than a major number. Anything finer names a release.
_MAJOR_BOUNDARY_RE = re.compile(rf"{_COMPONENT}(?:\.0){{0,2}}|{_COMPONENT}(?:\.{_WILDCARD}){{1,2}}|{_WILDCARD}",
                                re.ASCII)


def requirement_versions(requirement: str) -> List[str]:
    """The versions a requirement (as :func:`public_requirement` sends it) names."""
    return _NAMED_VERSION_RE.findall(requirement)


def published_requirement(requirement: object, published: Callable[[str], bool]) -> str:
    """A dependency's version requirement as sent: :func:`public_requirement`'s
    shape, and only if every version it names is a bare major boundary (``4.0.0``,
    ``4.x``) or a release ``published`` says the Forge published for that
    dependency; else the placeholder. A fork pinned at ``12.1.99``, or digits the
    site chose (``>= 411.111.111 < 411.111.112``), must not reach the report
    through the dependencies column when the modules column sends that version
    as ``(private)`` (privacy rule 2)."""
    sent = public_requirement(requirement)
    if sent == PRIVATE:
        return PRIVATE
    for version in requirement_versions(sent):
        if not (_MAJOR_BOUNDARY_RE.fullmatch(version) or (_VERSION_RE.fullmatch(version) and published(version))):
            return PRIVATE
    return sent


# What Puppet accepts as a class name, segment by segment (ASCII only: str.lower
# would turn the Kelvin sign into a "k").
_CLASS_NAME_RE = re.compile(r"(?:::)?[a-z][a-z0-9_]*(?:::[a-z][a-z0-9_]*)*", re.ASCII)
_CLASS_NAME_MAX = 255
# Segments of a class name: the deepest class of Debian's modules has 6
# (mcollective::server::config::connector::activemq::hosts_iteration). Each
# segment is one more file the autoloader would look for.
_CLASS_NAME_MAX_SEGMENTS = 16

# Puppet's own classes and the roles-and-profiles namespaces are site-specific
# by definition, whatever module happens to define them.
_NEVER_REPORTED_NAMESPACES = frozenset({"main", "settings", "profile", "profiles", "role", "roles"})


def class_name(name: object) -> Optional[str]:
    """``name`` as Puppet's autoloader looks it up (lower case, no leading ``::``),
    or None when it is not a class name. Checked before any file lookup, so a
    crafted ``include 'apache::/tmp/evil'`` never becomes a path."""
    if not isinstance(name, str) or not name.isascii() or len(name) > _CLASS_NAME_MAX \
            or name.count("::") > _CLASS_NAME_MAX_SEGMENTS:
        return None
    lowered = name.lower()
    if not _CLASS_NAME_RE.fullmatch(lowered):
        return None
    return lowered.lstrip(":")


def reportable_class(name: str) -> bool:
    """Whether a class name may ever be reported (it must also be defined by a public module):
    a valid name outside Puppet's own and the roles-and-profiles namespaces."""
    canonical = class_name(name)
    return canonical is not None and canonical.split("::", 1)[0] not in _NEVER_REPORTED_NAMESPACES
