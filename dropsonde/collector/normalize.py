"""What one report contributes to the narrow tables the weekly queries read.

A report's list columns become rows of tables keyed by (week, site): one
row per distinct module version, class, platform and so on. The weekly
aggregates are then plain GROUP BYs that the database runs where the data
lives, on SQLite, PostgreSQL or a warehouse alike, instead of Python
decoding every stored report.

Class names are stored in their canonical form (``privacy.class_name``:
lower case, no leading ``::``), the form Puppet's autoloader uses: one class
is one row whatever case PuppetDB titles it in, and a crafted report cannot
choose the case (``::ApAcHe::Visit_Phish``) of what is published.

Counts are clamped to 0..10^9 here so that no value a client sent can make
an aggregate overflow or fail: the weekly job must not crash on one report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from dropsonde.privacy import class_name
from dropsonde.wire import parse_timestamp, sortable_timestamp

MAX_COUNT = 10**9


@dataclass(frozen=True)
class NarrowTable:
    """A table of (week, site_week, *columns); ``counts`` are the integer columns."""

    name: str
    columns: Tuple[str, ...]
    counts: Tuple[str, ...] = ()

    @property
    def keys(self) -> Tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.counts)


NARROW_TABLES = (
    NarrowTable("site_week_modules", ("slug", "version")),
    NarrowTable("site_week_classes", ("name", "nodes"), ("nodes",)),
    NarrowTable("site_week_platforms", ("platform",)),
    NarrowTable("site_week_module_platforms", ("slug", "platform", "nodes"), ("nodes",)),
    NarrowTable("site_week_dependencies", ("name",)),
    NarrowTable("site_week_profile_classes", ("name",)),
    NarrowTable("site_week_puppetfile_methods", ("name", "calls"), ("calls",)),
)


def iso_week(timestamp: str) -> str:
    """The ISO week ``YYYY-Www`` (UTC) a stored timestamp falls in."""
    moment = parse_timestamp(timestamp)
    if moment is None:
        raise ValueError(f"not an ISO 8601 time: {timestamp!r:.40}")
    year, week, _ = moment.astimezone(timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


def week_start(week: str) -> datetime:
    """Midnight UTC on the Monday that starts ISO week ``YYYY-Www`` (ValueError when
    it is not one): the one place the store and the weekly job turn a week into times."""
    year, number = week.split("-W")
    return datetime.combine(date.fromisocalendar(int(year), int(number), 1), time(), timezone.utc)


def week_range(week: str) -> Tuple[str, str]:
    """The stored timestamps of ``week`` are those in [start, end), as text."""
    monday = week_start(week)
    return sortable_timestamp(monday), sortable_timestamp(monday + timedelta(days=7))


def clamp(value: Any) -> int:
    """A count as the aggregates see it: an integer in 0..10^9 (anything else is 0)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return min(max(value, 0), MAX_COUNT)


def environment_count(row: Dict[str, Any]) -> Optional[int]:
    value = row.get("environment_count")
    return None if value is None else clamp(value)


def _records(value: Any) -> Iterable[Dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _same(text: str) -> Optional[str]:
    return text


def _texts(value: Any, field: str, canonical: Callable[[str], Optional[str]] = _same) -> List[Tuple[str]]:
    names = (canonical(r[field]) for r in _records(value) if isinstance(r.get(field), str))
    return sorted({(name,) for name in names if name is not None})


def _summed(value: Any, canonical: Callable[[str], Optional[str]] = _same) -> List[Tuple[str, int]]:
    """(name, count) with a name listed twice (in any spelling ``canonical``
    maps to one name) counted once, with the sum of its counts."""
    totals: Dict[str, int] = {}
    for record in _records(value):
        name = canonical(record["name"]) if isinstance(record.get("name"), str) else None
        if name is not None:
            totals[name] = clamp(totals.get(name, 0) + clamp(record.get("count")))
    return sorted(totals.items())


def _module_platforms(modules: List[Tuple[str, str]], value: Any) -> List[Tuple[str, str, int]]:
    """(slug, OS family, nodes) for each module the report lists whose classes
    run on nodes of that family: a class belongs to the modules whose name part
    is its first segment (``apache::vhost`` to ``puppetlabs-apache``; Puppet's
    autoloader finds it there), and ``nodes`` is the most nodes any one of the
    module's classes is declared on in that family (a lower bound of the nodes
    the module runs on, never a sum that counts a node once per class)."""
    slugs: Dict[str, List[str]] = {}
    for slug in sorted({slug for slug, _ in modules if "-" in slug}):
        slugs.setdefault(slug.split("-", 1)[1], []).append(slug)
    nodes: Dict[Tuple[str, str], int] = {}
    for record in _records(value):
        name = class_name(record["name"]) if isinstance(record.get("name"), str) else None
        family = record.get("platform")
        if name is None or not isinstance(family, str):
            continue
        for slug in slugs.get(name.split("::", 1)[0], ()):
            nodes[(slug, family)] = max(nodes.get((slug, family), 0), clamp(record.get("count")))
    return sorted((slug, family, count) for (slug, family), count in nodes.items())


def narrow_rows(row: Dict[str, Any]) -> Dict[str, List[Tuple[Any, ...]]]:
    """The rows one report puts in each narrow table (without week and site_week)."""
    modules = sorted({(r["slug"], r["version"]) for r in _records(row.get("modules"))
                      if isinstance(r.get("slug"), str) and isinstance(r.get("version"), str)})
    return {
        "site_week_modules": modules,
        "site_week_classes": _summed(row.get("classes"), class_name),
        "site_week_platforms": _texts(row.get("class_platforms"), "platform"),
        "site_week_module_platforms": _module_platforms(modules, row.get("class_platforms")),
        "site_week_dependencies": _texts(row.get("dependencies"), "name"),
        "site_week_profile_classes": _texts(row.get("profile_classes"), "name", class_name),
        "site_week_puppetfile_methods": _summed(row.get("puppetfile_ruby_methods")),
    }
