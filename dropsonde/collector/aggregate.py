"""Weekly public aggregates with no individual records.

The database does the counting: each table is one SQL query in
``queries/`` over the narrow tables, where each site counts once, by its
latest report of the ISO week, and only rows of at least k sites come back.
Python then adds calibrated noise to every number (``noise.py``), withholds
rows whose noisy site count is below k, and writes the rows as they stream
in: memory does not grow with the number of reports.

Why noise and not only k: site ids cost nothing to invent, so k-1 crafted
sites can lift any real site's row over the threshold; with the noise, what
is published about one site's contribution stays uncertain by a known
amount (epsilon) however many crafted sites surround it. Rows below k are
dropped, not folded into an "other" row whose count could be differenced
against last week's. No site id and no per-site row ever leaves the store.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from dropsonde.collector.noise import GeometricNoise
from dropsonde.collector.normalize import week_start
from dropsonde.collector.output import TableWriter, check_replaceable, staging, write_file
from dropsonde.collector.queries import ORDER, Query, expand_lists, load_queries
from dropsonde.collector.storage import Store
from dropsonde.errors import DropsondeError

log = logging.getLogger(__name__)

# module_pairs and module_triples are computed among the most used modules only,
# ranked by their published (noisy) site counts: a week's pairs are at most
# C(200, 2) = 19,900 rows and its triples C(20, 3) = 1,140, whatever crafted
# reports name. 200 covers the modules of any one real site many times over.
PAIR_MODULES = 200
TRIPLE_MODULES = 20
PAGE_ROWS = 50  # rows of each table shown on the page (all are in the files)
ADOPTION_MODULES = 5
TREND_WEEKS = 12
WEEK_RE = re.compile(r"^\d{4}-W\d{2}$")
# Every file a publication holds: an existing --out with anything else is not replaced.
PUBLISHED_FILES = frozenset({f"{name}.{kind}" for name in ORDER + ("trends",) for kind in ("json", "csv")}
                            | {"summary.json", "index.html"})


def week_bounds(week: Optional[str], today: Optional[date] = None) -> Tuple[str, datetime, datetime]:
    """``YYYY-Www`` (default: the last complete ISO week) as (label, start, end) in UTC."""
    if week is None:
        today = today or datetime.now(timezone.utc).date()
        year, number, _ = (today - timedelta(days=7)).isocalendar()
        week = f"{year}-W{number:02d}"
    try:
        start = week_start(week.upper())
    except ValueError:
        raise DropsondeError(f"--week: expected YYYY-Www (for example 2026-W48), got {week!r}") from None
    iso = start.isocalendar()
    return f"{iso[0]}-W{iso[1]:02d}", start, start + timedelta(days=7)


def top_modules(modules: List[Dict[str, Any]]) -> Dict[str, List[str]]:
    """The module lists of module_pairs and module_triples, from the published
    ``modules`` rows: ranked by their noisy site count (then slug), so which
    modules are ranked reveals nothing the published counts do not (ranking by
    the true counts was one more exact comparison an attacker could probe)."""
    ranked = [row["slug"] for row in sorted(modules, key=lambda row: (-row["sites"], row["slug"]))]
    return {"pair_modules": ranked[:PAIR_MODULES], "triple_modules": ranked[:TRIPLE_MODULES]}


def noisy_rows(store: Store, query: Query, parameters: Dict[str, Any], noise: GeometricNoise,
               k: int) -> Iterator[Dict[str, Any]]:
    """The query's rows as published: every measure noised, rows whose noisy
    site count is below k withheld, and noisy sums never below 0. Each number's
    noise is named by (week, table, row key, column): with a keyed ``noise``,
    publishing the week again publishes the same numbers."""
    for row in store.query(*expand_lists(query.sql, parameters)):
        published = {key: row[key] for key in query.keys}
        name = json.dumps([parameters["week"], query.name, [row[key] for key in query.keys]])
        for column, sensitivity in query.sensitivity.items():
            published[column] = max(0, noise.add(row[column], sensitivity, f"{name} {column}"))
        if published["sites"] >= k:
            yield published


@dataclass
class Publication:
    """What the page shows: bounded summaries of the tables, never all rows."""

    week: str
    k: int
    epsilon: float
    sites: Optional[int] = None
    rows: Dict[str, int] = field(default_factory=dict)
    top: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    versions: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    trends: List[Dict[str, Any]] = field(default_factory=list)


class _Top:
    """The ``size`` rows with the most sites, kept in a heap as rows stream by."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.heap: List[Tuple[int, int, Dict[str, Any]]] = []
        self.counter = itertools.count()

    def add(self, row: Dict[str, Any]) -> None:
        item = (row["sites"], -next(self.counter), row)
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, item)
        else:
            heapq.heappushpop(self.heap, item)

    def rows(self) -> List[Dict[str, Any]]:
        return [row for _, _, row in sorted(self.heap, reverse=True)]


def read_trends(path: Path, week: str) -> List[Dict[str, Any]]:
    """Earlier weeks' module rows from the previous publication's trends.json:
    the public, already noised numbers, so trends cost no privacy and never
    read the private store of old weeks. The last TREND_WEEKS - 1 weeks
    before ``week`` are kept; an unreadable file starts the trends afresh."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("%s: not readable (%s); trends start again from this week", path, str(exc)[:80])
        return []
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and isinstance(r.get("week"), str) and WEEK_RE.match(r["week"])
        and isinstance(r.get("slug"), str) and isinstance(r.get("sites"), int) for r in rows
    ):
        log.warning("%s: not the trends this command writes; trends start again from this week", path)
        return []
    weeks = sorted({r["week"] for r in rows if r["week"] < week})[-(TREND_WEEKS - 1):]
    return [{"week": r["week"], "slug": r["slug"], "sites": r["sites"]} for r in rows if r["week"] in weeks]


def published_rows(out: Path, week: str) -> int:
    """How many rows the publication in ``out`` holds for ``week`` (0 for none or another week)."""
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    if not isinstance(summary, dict) or summary.get("week") != week or not isinstance(summary.get("rows"), dict):
        return 0
    return sum(n for n in summary["rows"].values() if isinstance(n, int))


def publish_week(store: Store, week: str, k: int, noise: GeometricNoise, out: Path,
                 render: Callable[[Publication], str], force: bool = False) -> Publication:
    """Run every weekly query and publish its noisy rows to ``out``, all or
    nothing. An empty result does not replace a non-empty publication of the
    same week unless ``force``: it means a wrong or emptied store far more
    often than a week that lost all its sites."""
    if k < 1:
        raise DropsondeError(f"--k: expected at least 1, got {k}")
    out = Path(out)
    check_replaceable(out, PUBLISHED_FILES)
    publication = Publication(week, k, noise.epsilon)
    earlier = read_trends(out / "trends.json", week)
    parameters: Dict[str, Any] = {"week": week, "k": k}
    with staging(out) as directory:
        this_week: List[Dict[str, Any]] = []
        modules: List[Dict[str, Any]] = []
        for query in load_queries():
            parameters.update(top_modules(modules))
            top = _Top(PAGE_ROWS)
            adoption = {row["slug"] for row in publication.top.get("modules", [])[:ADOPTION_MODULES]}
            with TableWriter(directory, query.name, query.keys + tuple(query.sensitivity)) as writer:
                for row in noisy_rows(store, query, parameters, noise, k):
                    writer.write(row)
                    top.add(row)
                    if query.name == "modules":
                        modules.append(row)
                        this_week.append({"week": week, "slug": row["slug"], "sites": row["sites"]})
                    elif query.name == "module_versions" and row["slug"] in adoption:
                        publication.versions.setdefault(row["slug"], []).append(row)
                publication.rows[query.name] = writer.rows
            publication.top[query.name] = top.rows()
        sites = publication.top["sites"]
        publication.sites = sites[0]["sites"] if sites else None
        publication.trends = earlier + this_week
        with TableWriter(directory, "trends", ("week", "slug", "sites")) as writer:
            for row in publication.trends:
                writer.write(row)
        before = published_rows(out, week)
        if before and not sum(publication.rows.values()) and not force:
            raise DropsondeError(f"--out {out}: already holds {before} rows for {week} and this run found none "
                                 "(the wrong --db?); --force replaces them with the empty publication")
        summary = {"week": week, "k": k, "epsilon": noise.epsilon, "rows": publication.rows,
                   "trend_weeks": sorted({r["week"] for r in publication.trends})}
        write_file(directory, "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
        write_file(directory, "index.html", render(publication))
    return publication
