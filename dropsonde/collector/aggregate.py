"""Weekly public aggregates, differentially private per site and week.

The database does the counting: each table is one SQL query in ``queries/``
over the narrow tables, where each site counts once, by its latest report of
the ISO week, and **in at most a fixed number of rows** per table (the
query's ``rows per site``: its top modules, its classes on the most nodes,
...), with sums clipped. No query filters on a true count. OpenDP
(``noise.py``) then noises every count, keeps the rows whose *noisy* count
passes a threshold derived from the table's share of delta, and noises the
sums of the rows kept; all of a week's releases go through one composition
within the week's (epsilon, delta) (``budget.py``).

Why: site ids cost nothing to invent, so k-1 crafted sites can lift any real
site's row over a threshold on true counts — the row's appearance then proves
the real site has it. With thresholds on noisy counts and contributions
bounded, whether a row appears, and every number in it, changes by at most
e^epsilon (plus delta) when any one site is added or removed, however many
crafted sites surround it.

After the release, post-processing (free in privacy) makes the tables agree:
no count above the number of sites, no version, platform, pair or triple of
a module that is not published or above its module's count. The released
tables are appended to the store's release ledger (``release_ledger.py``)
before they are published: a week is released once per context and
re-served after that.
"""

from __future__ import annotations

import hashlib
import hmac
import heapq
import itertools
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from dropsonde.collector.budget import Budget, plan_budget, shared_source_guarantee
from dropsonde.collector.normalize import week_start
from dropsonde.collector.output import (TableWriter, check_replaceable, recover_interrupted_swap, staging,
                                        write_file)
from dropsonde.collector.queries import ORDER, Query, Ranking, expand_lists, load_queries
from dropsonde.collector.release_ledger import LedgerEntry, ReleaseLedger
from dropsonde.collector.storage import Store
from dropsonde.errors import DropsondeError

log = logging.getLogger(__name__)

# module_pairs and module_triples are counted among the most used modules,
# ranked by their published (noisy) site counts; each site counts with its
# first few of them only (the queries' "modules per site").
PAIR_MODULES = 200
TRIPLE_MODULES = 50
RANKING_MODULES = 2000  # of last week's modules, to choose which of a site's modules count
PAGE_ROWS = 50  # rows of each table shown on the page (all are in the files)
ADOPTION_MODULES = 5
TREND_WEEKS = 12
WEEK_RE = re.compile(r"^\d{4}-W\d{2}$")
# Every file and folder a publication holds: an existing output with anything else is not replaced.
PUBLISHED_FILES = frozenset({f"{name}.{kind}" for name in ORDER + ("trends",) for kind in ("json", "csv")}
                            | {"summary.json", "index.html"})
PUBLISHED_FOLDERS = frozenset({"modules", "badges"})


class PublicationError(DropsondeError):
    """Something about one input of the publication (``subject``: "week",
    "out", "epsilon", "delta", "k" or "noise key"); the caller names the
    option. ``forcible``: forcing it would go ahead, at the cost stated."""

    def __init__(self, subject: str, value: Any, problem: str, forcible: str = "") -> None:
        super().__init__(f"{subject} {value}: {problem}")
        self.subject = subject
        self.value = value
        self.problem = problem
        self.forcible = forcible


def week_bounds(week: Optional[str], today: Optional[date] = None) -> Tuple[str, datetime, datetime]:
    """``YYYY-Www`` (default: the last complete ISO week) as (label, start, end) in UTC."""
    if week is None:
        today = today or datetime.now(timezone.utc).date()
        year, number, _ = (today - timedelta(days=7)).isocalendar()
        week = f"{year}-W{number:02d}"
    try:
        start = week_start(week.upper())
    except ValueError:
        raise PublicationError("week", repr(week), "expected YYYY-Www (for example 2026-W48)") from None
    iso = start.isocalendar()
    return f"{iso[0]}-W{iso[1]:02d}", start, start + timedelta(days=7)


def ranking(modules: Iterable[Dict[str, Any]], size: int) -> Ranking:
    """Slugs by published (noisy) site count, then slug: public numbers only,
    so which modules are ranked reveals nothing the published counts do not."""
    ranked = sorted(modules, key=lambda row: (-row["sites"], row["slug"]))
    return Ranking(row["slug"] for row in ranked[:size])


@dataclass(frozen=True)
class Parameters:
    """What the operator chooses for a week: the budget and the least published count."""

    epsilon: float
    delta: float
    k: int = 5  # no row with a noisy count below k, whatever the threshold (post-processing)


@dataclass
class Publication:
    """What the page shows: bounded summaries of the tables, never all rows."""

    week: str
    budget: Budget
    k: int
    sites: Optional[int] = None
    rows: Dict[str, int] = field(default_factory=dict)
    top: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    versions: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    trends: List[Dict[str, Any]] = field(default_factory=list)
    mechanisms: Dict[str, Any] = field(default_factory=dict)
    spent: List[Dict[str, float]] = field(default_factory=list)  # one entry per release of the week

    @property
    def epsilon(self) -> float:
        return sum(release["epsilon"] for release in self.spent) or self.budget.epsilon

    @property
    def delta(self) -> float:
        return sum(release["delta"] for release in self.spent) or self.budget.delta


def key_fingerprint(key: bytes) -> str:
    """Names the noise key in ``summary.json`` without revealing it."""
    return hmac.new(key, b"dropsonde noise key fingerprint", hashlib.sha256).hexdigest()[:16]


def release_context(week: str, parameters: Parameters, budget: Budget, queries: List[Query],
                    module_ranking: List[str]) -> Dict[str, Any]:
    """Everything that changes what a week's release is: the budget and its
    split, k, the query files, the rankings' sizes and the ranking used, the
    library's version. Two runs with the same context re-serve one release."""
    return {
        "week": week, "k": parameters.k, "budget": budget.digest(),
        "queries": {q.name: hashlib.sha256(q.sql.encode()).hexdigest()[:16] + f"/{q.rows_per_site}/{q.sums}"
                    for q in queries},
        "rankings": [PAIR_MODULES, TRIPLE_MODULES, RANKING_MODULES],
        "module_ranking": hashlib.sha256(json.dumps(module_ranking).encode()).hexdigest()[:16],
        "opendp": metadata.version("opendp"),
    }


def context_fingerprint(key: bytes, context: Dict[str, Any]) -> str:
    return hmac.new(key, json.dumps(context, sort_keys=True).encode(), hashlib.sha256).hexdigest()[:32]


class Stop:
    """Set (by the command's SIGTERM handler) to stop a release: a query
    running in SQLite is interrupted at once rather than when it ends."""

    requested = threading.Event()
    status = 0

    @classmethod
    def request(cls, status: int) -> None:
        cls.status = status
        cls.requested.set()


def _rows(store: Store, query: Query, parameters: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    bounds = {"rows_per_site": query.rows_per_site, "modules_per_site": query.modules_per_site}
    try:
        yield from store.query(*expand_lists(query.sql, {**parameters, **bounds}), interrupted=Stop.requested.is_set)
    except Exception:
        if Stop.requested.is_set():  # the driver's "interrupted" error: the stop that was asked for
            raise SystemExit(Stop.status) from None
        raise


def release_week(store: Store, week: str, parameters: Parameters, budget: Budget, queries: List[Query],
                 module_ranking: Ranking) -> Tuple[Dict[str, List[Dict[str, Any]]], Dict[str, Any]]:
    """A fresh release of every table (noised, selected on noisy counts), in the plan's order."""
    from dropsonde.collector.noise import Release, row_key

    release = Release(budget)
    tables: Dict[str, List[Dict[str, Any]]] = {}
    sql_parameters: Dict[str, Any] = {"week": week, "module_ranking": module_ranking,
                                      "unranked": RANKING_MODULES + 1}
    for query in queries:
        if query.name == "sites":
            total = sum(int(row["sites"]) for row in _rows(store, query, sql_parameters))
            if total == 0:  # the operator's own store: telling them costs no privacy
                log.warning("no site reported in %s: its tables hold noise only (the wrong store or week?)", week)
            noisy = release.total(total)
            tables["sites"] = [{"sites": noisy}] if noisy >= parameters.k else []
            continue
        if query.name == "module_pairs":
            published = ranking(tables["modules"], PAIR_MODULES)
            sql_parameters.update(pair_ranking=published, triple_ranking=Ranking(published[:TRIPLE_MODULES]))
        keys: Dict[str, Tuple[Any, ...]] = {}
        counts: Dict[str, int] = {}
        sums: Dict[str, Dict[str, int]] = {column: {} for column in query.sums}
        for row in _rows(store, query, sql_parameters):
            values = tuple(row[key] for key in query.keys)
            name = row_key(values)
            keys[name], counts[name] = values, int(row["sites"])
            for column in query.sums:
                sums[column][name] = int(row[column] or 0)
        selected = release.select(query.name, counts, query.rows_per_site, parameters.k)
        kept = [name for name in keys if name in selected]  # the query's order, which counts do not decide
        noisy_sums = {column: release.sums(query.name, kept, sums[column], query.rows_per_site, clip)
                      for column, clip in query.sums.items()}
        tables[query.name] = [
            {**dict(zip(query.keys, keys[name])), "sites": selected[name],
             **{column: noisy_sums[column][name] for column in query.sums}} for name in kept]
    return make_consistent(tables, {q.name: q for q in queries}), release.spent()


def make_consistent(tables: Dict[str, List[Dict[str, Any]]],
                    queries: Dict[str, Query]) -> Dict[str, List[Dict[str, Any]]]:
    """Post-processing of released numbers (no privacy cost): no count above
    the number of sites; versions, platforms, pairs and triples only of
    published modules and never above them; sums between 0 and count x clip."""
    total = tables["sites"][0]["sites"] if tables.get("sites") else None
    modules = {row["slug"]: row["sites"] for row in tables.get("modules", [])}
    pairs = {(row["slug_a"], row["slug_b"]): row["sites"] for row in tables.get("module_pairs", [])}

    def cap(row: Dict[str, Any], *bounds: Optional[int]) -> Dict[str, Any]:
        row = dict(row)
        row["sites"] = min([row["sites"]] + [b for b in bounds if b is not None])
        return row

    result: Dict[str, List[Dict[str, Any]]] = {"sites": tables.get("sites", [])}
    for name, rows in tables.items():
        if name == "sites":
            continue
        if name in ("module_versions", "module_platforms"):
            rows = [cap(r, total, modules[r["slug"]]) for r in rows if r["slug"] in modules]
        elif name == "module_pairs":
            rows = [cap(r, total, modules[r["slug_a"]], modules[r["slug_b"]]) for r in rows
                    if r["slug_a"] in modules and r["slug_b"] in modules]
        elif name == "module_triples":
            rows = [cap(r, total, *(pairs.get(p, modules[p[0]] if p[0] in modules else 0) for p in
                                    ((r["slug_a"], r["slug_b"]), (r["slug_a"], r["slug_c"]),
                                     (r["slug_b"], r["slug_c"]))))
                    for r in rows if {r["slug_a"], r["slug_b"], r["slug_c"]} <= set(modules)]
        else:
            rows = [cap(r, total) for r in rows]
        for row in rows:
            for column, clip in queries[name].sums.items():
                row[column] = max(0, min(row[column], row["sites"] * clip))
        result[name] = rows
    return result


class _Top:
    """The ``size`` rows with the most sites, kept in a heap as rows go by."""

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
    """The last TREND_WEEKS - 1 weeks before ``week`` in a previous
    publication's trends.json (public, already noised numbers): the history
    of weeks released before the release records existed. An unreadable
    file adds nothing."""
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


def trend_history(ledger: ReleaseLedger, out: Path, week: str) -> List[Dict[str, Any]]:
    """The last TREND_WEEKS - 1 released weeks before ``week``: from the
    release ledger, and from the published trends.json for older weeks."""
    recorded = ledger.module_history(week, TREND_WEEKS - 1)
    weeks = {row["week"] for row in recorded}
    rows = [row for row in read_trends(out / "trends.json", week) if row["week"] not in weeks] + recorded
    kept = sorted({row["week"] for row in rows})[-(TREND_WEEKS - 1):]
    return sorted((row for row in rows if row["week"] in kept), key=lambda row: (row["week"], row["slug"]))


def published_summary(out: Path) -> Dict[str, Any]:
    """The summary.json of the publication in ``out`` ({} for none)."""
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def _check_republication(out: Path, week: str, context: Dict[str, Any], fingerprint: str, key: str,
                         record: Optional[LedgerEntry], force: bool) -> None:
    """A week is released once per context: refuse another release of it
    (other parameters, another key, a lost record) unless forced."""
    if force:
        return
    if record is not None and record.tables is None:
        raise PublicationError("week", week, f"was released (the release ledger says so, {record.source}) but its "
                               "release record is missing", "a new release spends the week's budget again (see README)")
    if record is not None and record.context != fingerprint:
        recorded = record.parameters
        different = sorted(name for name in set(recorded) | set(context) if recorded.get(name) != context.get(name))
        if record.noise_key != key:
            different.append("noise key")
        raise PublicationError("week", week, "was already released with other parameters or another noise key"
                               + (f" ({', '.join(different)})" if different else ""),
                               "a new release spends the week's budget again (see README)")
    summary = published_summary(out)
    if summary.get("week") != week:
        return
    if summary.get("noise_key") not in (None, key):
        raise PublicationError("week", week, f"is published in {out} under another noise key "
                               f"({summary.get('noise_key')}, this one is {key})",
                               "a new release spends the week's budget again (see README)")
    if record is None:
        raise PublicationError("week", week, f"is published in {out} but its release record is missing",
                               "a new release spends the week's budget again (see README)")


def _spent_before(record: Optional[LedgerEntry], out: Path, week: str) -> List[Dict[str, float]]:
    """The week's earlier releases: from the ledger, or, when this store never
    released the week (another store's publication in ``out``) or its record
    was lost before the ledger moved into the store, from the publication of
    the week in ``out`` — a forced release must add to what was spent, not
    start the count again."""
    if record is not None and record.spent:
        return list(record.spent)
    summary = published_summary(out)
    releases = summary.get("privacy", {}).get("releases") if summary.get("week") == week else None
    if isinstance(releases, list) and all(isinstance(r, dict) and isinstance(r.get("epsilon"), (int, float))
                                          and isinstance(r.get("delta"), (int, float)) for r in releases):
        return [{"epsilon": float(r["epsilon"]), "delta": float(r["delta"])} for r in releases]
    return []


def publish_week(store: Store, week: str, parameters: Parameters, key: bytes, ledger: ReleaseLedger, out: Path,
                 render: Callable[[Publication], str], force: bool = False, week_ended: bool = True) -> Publication:
    """Release the week (or re-serve its release) and publish it to ``out``, all
    or nothing. A release made before the week ended (forced) is not re-served
    once it has: the week is released again, and that release is counted too."""
    if parameters.k < 1:
        raise PublicationError("k", parameters.k, "expected at least 1")
    out = Path(out)
    recover_interrupted_swap(out)
    check_replaceable(out, PUBLISHED_FILES, PUBLISHED_FOLDERS)
    budget = plan_budget(parameters.epsilon, parameters.delta)
    queries = load_queries()
    history = trend_history(ledger, out, week)
    last_week = max((row["week"] for row in history), default=None)
    module_ranking = ranking((row for row in history if row["week"] == last_week), RANKING_MODULES)
    context = release_context(week, parameters, budget, queries, module_ranking)
    fingerprint, key_name = context_fingerprint(key, context), key_fingerprint(key)
    record = ledger.latest(week)
    early = record is not None and not record.complete and week_ended
    if not early:
        _check_republication(out, week, context, fingerprint, key_name, record, force)
    if record is not None and record.tables is not None and record.context == fingerprint and not early:
        columns = {q.name: q.columns for q in queries}  # an imported record's JSON has its keys sorted
        tables = {name: [{c: row[c] for c in columns[name]} for row in rows] for name, rows in record.tables.items()}
        mechanisms, spent = record.mechanisms, record.spent
    else:
        tables, mechanisms = release_week(store, week, parameters, budget, queries, module_ranking)
        spent = _spent_before(record, out, week) + [{"epsilon": budget.epsilon, "delta": budget.delta}]
        # recorded before anything is judged of its content: a draw is spent once made
        ledger.append(LedgerEntry(week, fingerprint, key_name, context, tables, mechanisms, spent,
                                  complete=week_ended, forced=force), after=record)
    _refuse_empty_over_rows(out, week, tables, force)
    publication = Publication(week, budget, parameters.k, mechanisms=mechanisms, spent=spent)
    publication.trends = history + [{"week": week, "slug": r["slug"], "sites": r["sites"]}
                                    for r in tables.get("modules", [])]
    write_publication(out, publication, tables, context, fingerprint, key_name, render)
    return publication


def _refuse_empty_over_rows(out: Path, week: str, tables: Dict[str, List[Dict[str, Any]]], force: bool) -> None:
    """Refuse to replace a publication of ``week`` that has rows with a release
    that has none (the wrong store?) unless ``force``. Judged only once the
    release is in the ledger: refusing a draw unrecorded let the next run draw
    again, so an early release's week was released as "draw until non-empty",
    each refused draw spent and counted nowhere (outside review F6). Now a rerun
    re-serves the recorded empty release, and is refused alike."""
    before = published_summary(out)
    if not any(tables.values()) and before.get("week") == week and any(before.get("rows", {}).values()) and not force:
        raise PublicationError("week", week, f"{out} holds a publication of it and the release of this store "
                               "(recorded in its ledger) has no rows (the wrong store?)", "the empty release replaces it")


def write_publication(out: Path, publication: Publication, tables: Dict[str, List[Dict[str, Any]]],
                      context: Dict[str, Any], fingerprint: str, key_name: str,
                      render: Callable[[Publication], str]) -> None:
    from dropsonde.collector.module_pages import write_module_files

    queries = {q.name: q for q in load_queries()}
    adoption = {row["slug"] for row in sorted(tables.get("modules", []), key=lambda r: -r["sites"])[:ADOPTION_MODULES]}
    with staging(out) as directory:
        for name in ORDER:
            top = _Top(PAGE_ROWS)
            with TableWriter(directory, name, queries[name].columns) as writer:
                for row in tables.get(name, []):
                    writer.write(row)
                    top.add(row)
                    if name == "module_versions" and row["slug"] in adoption:
                        publication.versions.setdefault(row["slug"], []).append(row)
                publication.rows[name] = writer.rows
            publication.top[name] = top.rows()
        sites = tables.get("sites", [])
        publication.sites = sites[0]["sites"] if sites else None
        with TableWriter(directory, "trends", ("week", "slug", "sites")) as writer:
            for row in publication.trends:
                writer.write(row)
        write_module_files(directory, publication, tables)
        summary = {"week": publication.week, "k": publication.k,
                   "privacy": {**publication.budget.describe(), "releases_of_this_week": len(publication.spent),
                               "releases": publication.spent,
                               "spent": {"epsilon": publication.epsilon, "delta": publication.delta},
                               "shared_source": shared_source_guarantee(publication.epsilon, publication.delta),
                               "mechanisms": publication.mechanisms},
                   "epsilon": publication.epsilon, "delta": publication.delta,
                   "release_context": fingerprint, "parameters": context, "noise_key": key_name,
                   "rows": publication.rows, "trend_weeks": sorted({r["week"] for r in publication.trends})}
        write_file(directory, "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
        write_file(directory, "index.html", render(publication))
