#!/usr/bin/env python3
"""Benchmark the weekly aggregation on PostgreSQL: its cost, and how useful
the differentially private tables are at the default (epsilon, delta).

For each size, a database of SITES sites x 5 weeks of stored reports (by
default 1,000, 10,000 and 100,000 sites) is generated in SQL with
generate_series straight into the narrow tables the weekly queries read
(what ingest writes; posting reports over HTTP would measure ingest, which
bench/collector.py does). Per site and week: 5-45 modules drawn from 2,000
with Zipf-like popularity (P(module m) ~ 1/m, as Forge download counts are),
10 classes, 1-3 platforms (each module on each of them with probability
0.7: the module platforms), 3 dependencies, 3 profile classes, 2 Puppetfile
methods. Then `dropsonde collector aggregate` publishes the week before the
last (as the previous week's publication, whose ranking orders each site's
modules), then the last week; its wall time and peak RSS (the collector
process, from wait4) are printed, and
per table: rows published, rows that exist (true count >= 1), how many of
the true top 20 are published, and the median and 90th-percentile relative
error |published - true| / true of the published rows; for the noisy sums
(classes' nodes, Puppetfile methods' calls) the same error against the true
sum of the per-site bucketed, clipped values.

Usage: bench/aggregate.py [--sites 1000 10000 100000] [--epsilon E]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.puppetdb_server import PostgresServer  # noqa: E402

WEEKS = 5
FIRST_MONDAY = "2026-10-26"  # 2026-W44; the weeks are W44..W48
NARROW = ("site_week_modules", "site_week_classes", "site_week_platforms", "site_week_module_platforms",
          "site_week_dependencies", "site_week_profile_classes", "site_week_puppetfile_methods")


def generate(url: str, sites: int) -> float:
    """Fill the narrow tables for ``sites`` sites x WEEKS weeks; the time it took."""
    import psycopg

    from dropsonde.collector.storage import open_store

    open_store(url)  # the schema, as the collector creates it
    popular = "floor(exp(random() * ln(2000)))::int"  # module m with P ~ 1/m: Zipf-like, a long tail
    statements = [
        "SELECT setseed(0.42)",
        *[f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey" for table in NARROW],  # re-added after loading
        f"""INSERT INTO site_weeks (id, week, site_id, message_id, received, environment_count)
            SELECT (w - 1) * {sites} + s, to_char(date '{FIRST_MONDAY}' + (w - 1) * 7, 'IYYY-"W"IW'),
                   encode(sha512(('site' || s)::bytea), 'hex'), md5(w || '-' || s),
                   to_char(date '{FIRST_MONDAY}' + (w - 1) * 7 + 2, 'YYYY-MM-DD') || 'T10:00:00.000000+00:00',
                   1 + s % 60
            FROM generate_series(1, {WEEKS}) AS w, generate_series(1, {sites}) AS s""",
        f"""INSERT INTO site_week_modules (week, site_week, slug, version)
            SELECT DISTINCT sw.week, sw.id, 'author' || (x.m % 50) || '-module' || x.m, '1.' || ((x.m + sw.id) % 4) || '.0'
            FROM site_weeks AS sw,
                 LATERAL (SELECT {popular} AS m FROM generate_series(1, 5 + (sw.id % 41)::int)) AS x""",
        f"""INSERT INTO site_week_classes (week, site_week, name, nodes)
            SELECT sw.week, sw.id, x.name, max(x.nodes)
            FROM site_weeks AS sw,
                 LATERAL (SELECT 'module' || {popular} || '::class' || (sw.id % 5) AS name,
                                 floor(power(random(), 4) * 5000)::int AS nodes
                          FROM generate_series(1, 10 + (sw.id % 1)::int)) AS x
            GROUP BY sw.week, sw.id, x.name""",
        """INSERT INTO site_week_platforms (week, site_week, platform)
            SELECT DISTINCT sw.week, sw.id, (ARRAY['RedHat', 'Debian', 'windows', 'Suse', 'Archlinux', 'Gentoo',
                                                  'Solaris', 'Darwin'])[1 + floor(8 * power(random(), 2))::int]
            FROM site_weeks AS sw, generate_series(1, 1 + (sw.id % 3)::int)""",
        # each of a site's modules runs on each of the site's families with probability 0.7
        """INSERT INTO site_week_module_platforms (week, site_week, slug, platform, nodes)
            SELECT m.week, m.site_week, m.slug, p.platform, 1 + floor(power(random(), 4) * 2000)::int
            FROM (SELECT DISTINCT week, site_week, slug FROM site_week_modules) AS m
            JOIN site_week_platforms AS p ON p.week = m.week AND p.site_week = m.site_week
            WHERE random() < 0.7""",
        *[f"""INSERT INTO {table} (week, site_week, name)
              SELECT DISTINCT sw.week, sw.id, 'author' || (x.m % 50) || '-module' || x.m
              FROM site_weeks AS sw, LATERAL (SELECT {popular} AS m FROM generate_series(1, 3 + (sw.id % 1)::int)) AS x"""
          for table in ("site_week_dependencies", "site_week_profile_classes")],
        """INSERT INTO site_week_puppetfile_methods (week, site_week, name, calls)
            SELECT sw.week, sw.id, x.name, max(x.calls)
            FROM site_weeks AS sw,
                 LATERAL (SELECT 'method' || floor(30 * power(random(), 2))::int AS name,
                                 1 + floor(200 * random())::int AS calls
                          FROM generate_series(1, 2 + (sw.id % 1)::int)) AS x
            GROUP BY sw.week, sw.id, x.name""",
        *[f"ALTER TABLE {table} ADD PRIMARY KEY (week, site_week, {columns})" for table, columns in (
            ("site_week_modules", "slug, version"), ("site_week_classes", "name"),
            ("site_week_platforms", "platform"), ("site_week_module_platforms", "slug, platform"),
            ("site_week_dependencies", "name"),
            ("site_week_profile_classes", "name"), ("site_week_puppetfile_methods", "name"))],
    ]
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)
        connection.execute("VACUUM ANALYZE")
    return time.perf_counter() - start


def rows(url: str) -> dict:
    import psycopg

    with psycopg.connect(url) as connection:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("site_weeks",) + NARROW}


TRUE_COUNTS = {
    "modules": ("slug",), "module_versions": ("slug", "version"), "module_platforms": ("slug", "platform"),
    "platforms": ("platform",),
    "classes": ("name",), "dependencies": ("name",),
}


def true_counts(url: str, table: str, keys: tuple) -> dict:
    """Sites per row before any bound or noise."""
    import psycopg

    narrow = {"modules": "site_week_modules", "module_versions": "site_week_modules"}.get(table, f"site_week_{table}")
    with psycopg.connect(url) as connection:
        rows = connection.execute(f"SELECT {', '.join(keys)}, COUNT(DISTINCT site_week) FROM {narrow} "
                                  f"WHERE week = '2026-W48' GROUP BY {', '.join(keys)}").fetchall()
    return {tuple(str(v) for v in row[:-1]): row[-1] for row in rows}


def true_pairs(url: str, slugs: list) -> dict:
    import psycopg

    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "WITH m AS (SELECT DISTINCT site_week, slug FROM site_week_modules WHERE week = '2026-W48' "
            "AND slug = ANY(%s)) SELECT a.slug, b.slug, COUNT(*) FROM m a JOIN m b ON a.site_week = b.site_week "
            "AND a.slug < b.slug GROUP BY a.slug, b.slug", (slugs,)).fetchall()
    return {(a, b): n for a, b, n in rows}


BUCKETED = ("CASE WHEN {c} >= 100 THEN 100 WHEN {c} >= 50 THEN 50 WHEN {c} >= 20 THEN 20 WHEN {c} >= 10 THEN 10 "
            "WHEN {c} >= 5 THEN 5 WHEN {c} >= 2 THEN 2 ELSE {c} END")
SUMS = {"classes": "nodes", "puppetfile_methods": "calls"}


def true_sums(url: str, table: str, column: str) -> dict:
    """Each name's sum of the per-site bucketed, clipped values: what the noisy sum estimates."""
    import psycopg

    with psycopg.connect(url) as connection:
        rows = connection.execute(f"SELECT name, SUM({BUCKETED.format(c=column)}) FROM site_week_{table} "
                                  "WHERE week = '2026-W48' GROUP BY name").fetchall()
    return {(name,): total for name, total in rows}


def error_line(label: str, published: dict, truth: dict) -> str:
    errors = sorted(abs(n - truth[key]) / truth[key] for key, n in published.items() if truth.get(key))
    median = statistics.median(errors) if errors else float("nan")
    p90 = errors[math.ceil(0.9 * len(errors)) - 1] if errors else float("nan")
    return f"  {label}: {len(published):,} rows, relative error median {median:.1%}, p90 {p90:.1%}"


def usefulness(url: str, out: Path) -> list:
    """One line per table: published rows against the truth."""
    lines = []
    for table, keys in list(TRUE_COUNTS.items()) + [("module_pairs", ("slug_a", "slug_b"))]:
        published = {tuple(str(row[k]) for k in keys): row["sites"]
                     for row in json.loads((out / f"{table}.json").read_text())}
        if table == "module_pairs":
            top = [row["slug"] for row in sorted(json.loads((out / "modules.json").read_text()),
                                                 key=lambda r: -r["sites"])[:30]]
            truth = true_pairs(url, top)
            published = {key: n for key, n in published.items() if set(key) <= set(top)}
            label = "module_pairs (among the top 30 modules)"
        else:
            truth, label = true_counts(url, table, keys), table
        errors = sorted(abs(n - truth[key]) / truth[key] for key, n in published.items() if truth.get(key))
        top20 = sorted(truth, key=lambda key: -truth[key])[:20]
        median = statistics.median(errors) if errors else float("nan")
        p90 = errors[math.ceil(0.9 * len(errors)) - 1] if errors else float("nan")
        lines.append(f"  {label}: {len(published):,} rows published of {len(truth):,}; true top {len(top20)} "
                     f"published: {sum(key in published for key in top20)}; relative error median {median:.1%}, "
                     f"p90 {p90:.1%}")
    for table, column in SUMS.items():
        published = {(row["name"],): row[column] for row in json.loads((out / f"{table}.json").read_text())}
        lines.append(error_line(f"{table}.{column} (noisy sums)", published, true_sums(url, table, column)))
    return lines


def aggregate(url: str, out: Path, epsilon: str, week: str = "2026-W48") -> tuple:
    """Wall time, the collector's CPU time (the rest is PostgreSQL's), peak RSS in MiB and the summary line of `collector aggregate` on the last week."""
    start = time.perf_counter()
    process = subprocess.Popen([shutil.which("dropsonde"), "collector", "aggregate", "--db", url, "--out", str(out),
                                "--week", week, "--noise-key", str(out.parent / f"noise-key-{out.name}"),
                                *(["--epsilon", epsilon] if epsilon else [])],
                               stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit("collector aggregate failed")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.stdout.read().decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--epsilon", default="", help="the week's epsilon [default: aggregate's]")
    options = parser.parse_args()
    if not shutil.which("dropsonde"):
        sys.exit("dropsonde is not on PATH (activate .venv)")
    root = Path(tempfile.mkdtemp(prefix="dropsonde-bench-pg-"))
    server = PostgresServer(root)
    try:
        server.start()
        for sites in options.sites:
            database = f"bench_{sites}"
            server.psql(f"CREATE DATABASE {database}")
            url = server.url(database)
            made = generate(url, sites)
            counts = rows(url)
            aggregate(url, root / f"out{sites}", options.epsilon, "2026-W47")  # the ranking W48 starts from
            elapsed, cpu, rss, line = aggregate(url, root / f"out{sites}", options.epsilon)
            narrow = sum(v for k, v in counts.items() if k != "site_weeks")
            print(f"{counts['site_weeks']:,} stored reports ({sites:,} sites x {WEEKS} weeks, {narrow:,} narrow rows, "
                  f"generated in {made:.0f} s): aggregate of one week {elapsed:.1f} s "
                  f"(collector CPU {cpu:.1f} s), peak RSS {rss:.0f} MiB; {line}",
                  flush=True)
            print("\n".join(usefulness(url, root / f"out{sites}")), flush=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
