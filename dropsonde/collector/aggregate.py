"""Weekly public aggregates with no individual records.

Each site counts once, by its latest report of the ISO week. Every published
row is backed by at least k distinct sites; rows below that are dropped (not
folded into an "other" row, whose count could be differenced against last
week's to expose a single site). Distributions (environments, modules per
site) are published in buckets, so they obey the same rule. No site id and
no per-site row ever leaves this module. (The upstream aggregation's
class_usage_count grouped by each site's node count, which identifies sites;
we publish only sums over at least k sites.)
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from dropsonde.atomic_file import write_atomic
from dropsonde.errors import DropsondeError

DEFAULT_K = 5
ENVIRONMENT_BUCKETS = [(1, 1), (2, 5), (6, 10), (11, 25), (26, 50), (51, 100), (101, None)]
MODULE_COUNT_BUCKETS = [(0, 0), (1, 10), (11, 25), (26, 50), (51, 100), (101, 200), (201, None)]


def week_bounds(week: Optional[str], today: Optional[date] = None) -> Tuple[str, datetime, datetime]:
    """``YYYY-Www`` (default: the last complete ISO week) as (label, start, end) in UTC."""
    if week is None:
        today = today or datetime.now(timezone.utc).date()
        monday = today - timedelta(days=today.isoweekday() - 1) - timedelta(days=7)
    else:
        try:
            year, number = week.upper().split("-W")
            monday = date.fromisocalendar(int(year), int(number), 1)
        except ValueError:
            raise DropsondeError(f"--week: expected YYYY-Www (for example 2026-W48), got {week!r}") from None
    iso = monday.isocalendar()
    start = datetime(monday.year, monday.month, monday.day, tzinfo=timezone.utc)
    return f"{iso[0]}-W{iso[1]:02d}", start, start + timedelta(days=7)


def _bucket(value: int, buckets: Sequence[Tuple[int, Optional[int]]]) -> str:
    for low, high in buckets:
        if value >= low and (high is None or value <= high):
            return str(low) if low == high else (f"{low}+" if high is None else f"{low}-{high}")
    return "other"


class Tally:
    """Rows keyed by a tuple, with the set of sites and summed measures behind each."""

    def __init__(self, keys: Sequence[str], measures: Sequence[str] = ()) -> None:
        self.keys = list(keys)
        self.measures = list(measures)
        self.sites: Dict[Tuple, Set[str]] = defaultdict(set)
        self.sums: Dict[Tuple, List[int]] = defaultdict(lambda: [0] * len(self.measures))

    def add(self, site: str, key: Tuple, *measures: int) -> None:
        self.sites[key].add(site)
        sums = self.sums[key]
        for index, value in enumerate(measures):
            sums[index] += value

    def rows(self, k: int) -> Tuple[List[Dict[str, Any]], int]:
        """Published rows (at least k sites each, most sites first) and how many were withheld."""
        rows, withheld = [], 0
        for key, sites in self.sites.items():
            if len(sites) < k:
                withheld += 1
                continue
            row = dict(zip(self.keys, key))
            row["sites"] = len(sites)
            row.update(zip(self.measures, self.sums[key]))
            rows.append(row)
        rows.sort(key=lambda r: (-r["sites"], [str(r[k]) for k in self.keys]))
        return rows, withheld


@dataclass
class Aggregates:
    week: str
    k: int
    tables: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    withheld: Dict[str, int] = field(default_factory=dict)


def _records(value: Any) -> Iterable[Dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def aggregate(reports: Iterable[Dict[str, Any]], week: str, k: int) -> Aggregates:
    """The weekly tables from each site's latest report (``reports`` yields one per site)."""
    if k < 1:
        raise DropsondeError(f"--k: expected at least 1, got {k}")
    tallies: Dict[str, Tally] = {
        "modules": Tally(["slug"]),
        "module_versions": Tally(["slug", "version"]),
        "classes": Tally(["name"], ["nodes"]),
        "environment_counts": Tally(["environments"]),
        "modules_per_site": Tally(["modules"]),
        "puppetfile_methods": Tally(["name"], ["calls"]),
        "platforms": Tally(["platform"]),
        "dependencies": Tally(["name"]),
        "profile_classes": Tally(["name"]),
    }
    sites: Set[str] = set()
    for report in reports:
        site = report["site_id"]
        sites.add(site)
        slugs = set()
        for module in _records(report.get("modules")):
            slug, version = module.get("slug"), module.get("version")
            if slug not in slugs:
                tallies["modules"].add(site, (slug,))
                slugs.add(slug)
            tallies["module_versions"].add(site, (slug, version))
        tallies["modules_per_site"].add(site, (_bucket(len(slugs), MODULE_COUNT_BUCKETS),))
        if isinstance(report.get("environment_count"), int):
            tallies["environment_counts"].add(site, (_bucket(report["environment_count"], ENVIRONMENT_BUCKETS),))
        for row in _records(report.get("classes")):
            tallies["classes"].add(site, (row.get("name"),), int(row.get("count") or 0))
        for row in _records(report.get("puppetfile_ruby_methods")):
            tallies["puppetfile_methods"].add(site, (row.get("name"),), int(row.get("count") or 0))
        for platform in {row.get("platform") for row in _records(report.get("class_platforms"))}:
            tallies["platforms"].add(site, (platform,))
        for name in {row.get("name") for row in _records(report.get("dependencies"))}:
            tallies["dependencies"].add(site, (name,))
        for name in {row.get("name") for row in _records(report.get("profile_classes"))}:
            tallies["profile_classes"].add(site, (name,))
    result = Aggregates(week, k)
    for name, tally in tallies.items():
        result.tables[name], result.withheld[name] = tally.rows(k)
    result.tables["sites"] = [{"sites": len(sites)}] if len(sites) >= k else []
    result.withheld["sites"] = 0 if len(sites) >= k else 1
    return result


def write_outputs(result: Aggregates, out: Path, render: Callable[[Aggregates], str]) -> List[Path]:
    """JSON and CSV per table, a summary and the HTML page, published all or nothing.

    Everything is written into a fresh directory beside ``out`` and renamed into
    place only once complete, so a failure part-way (a full disk, a rendering
    bug) leaves the previous week's output as it was, with no half-written
    directory next to it.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        names = _write_files(result, staging, render)
        staging.chmod(0o755)  # published: readable by the web server
        _replace_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / name for name in names]


def _write_files(result: Aggregates, directory: Path, render: Callable[[Aggregates], str]) -> List[str]:
    files: Dict[str, bytes] = {}
    for name, rows in result.tables.items():
        files[f"{name}.json"] = (json.dumps(rows, indent=2) + "\n").encode("utf-8")
        files[f"{name}.csv"] = csv_text(rows).encode("utf-8")
    summary = {"week": result.week, "k": result.k, "tables": sorted(result.tables), "rows_withheld": result.withheld}
    files["summary.json"] = (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8")
    files["index.html"] = render(result).encode("utf-8")
    for name, data in files.items():
        write_atomic(directory / name, data)
    return list(files)


def _replace_directory(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; an existing ``out`` is moved aside first and
    removed after, so readers see the old or the new directory (the gap
    between the two renames is two system calls)."""
    if not out.exists() and not out.is_symlink():
        os.rename(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / "previous")
    os.rename(new, out)
    shutil.rmtree(old, ignore_errors=True)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading quote
    (OWASP's advice for CSV injection); numbers are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_text(rows: List[Dict[str, Any]]) -> str:
    """The rows as CSV, header first, every text cell formula-safe."""
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else ["sites"]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(column) for column in columns])
    writer.writerows([csv_cell(row.get(column)) for column in columns] for row in rows)
    return buffer.getvalue()
