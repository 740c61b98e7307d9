#!/usr/bin/env python3
"""Benchmark the weekly aggregation on PostgreSQL and print figures.

For each size, a database of SITES sites x 5 weeks of stored reports (by
default 20,000 x 5 = 100,000 and 200,000 x 5 = 1,000,000) is generated in
SQL with generate_series straight into the narrow tables the weekly queries
read (what ingest writes; posting a million reports over HTTP would measure
ingest, which bench/collector.py does). Per site and week: 5-25 modules
drawn from 2,000 with a skewed popularity (so pairs and triples have real
work), 10 classes, 1-3 platforms, 3 dependencies, 3 profile classes, 2
Puppetfile methods. Then `dropsonde collector aggregate` publishes the last
week; its wall time and peak RSS (the collector process, from wait4) are
printed. The RSS must not grow with the number of reports.

Usage: bench/aggregate.py [--sites 20000 200000]
"""

from __future__ import annotations

import argparse
import os
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
NARROW = ("site_week_modules", "site_week_classes", "site_week_platforms", "site_week_dependencies",
          "site_week_profile_classes", "site_week_puppetfile_methods")


def generate(url: str, sites: int) -> float:
    """Fill the narrow tables for ``sites`` sites x WEEKS weeks; the time it took."""
    import psycopg

    from dropsonde.collector.storage import open_store

    open_store(url)  # the schema, as the collector creates it
    popular = "floor(2000 * power(random(), 3))::int"  # module m: a few very common, a long tail
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
                 LATERAL (SELECT {popular} AS m FROM generate_series(1, 5 + (sw.id % 21)::int)) AS x""",
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
            ("site_week_platforms", "platform"), ("site_week_dependencies", "name"),
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


def aggregate(url: str, out: Path) -> tuple:
    """Wall time, the collector's CPU time (the rest is PostgreSQL's), peak RSS in MiB and the summary line of `collector aggregate` on the last week."""
    start = time.perf_counter()
    process = subprocess.Popen([shutil.which("dropsonde"), "collector", "aggregate", "--db", url, "--out", str(out),
                                "--week", "2026-W48", "--noise-key", str(out.parent / "noise-key")], stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        sys.exit("collector aggregate failed")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.stdout.read().decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[20_000, 200_000])
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
            elapsed, cpu, rss, line = aggregate(url, root / f"out{sites}")
            narrow = sum(v for k, v in counts.items() if k != "site_weeks")
            print(f"{counts['site_weeks']:,} stored reports ({sites:,} sites x {WEEKS} weeks, {narrow:,} narrow rows, "
                  f"generated in {made:.0f} s): aggregate of one week {elapsed:.1f} s "
                  f"(collector CPU {cpu:.1f} s), peak RSS {rss:.0f} MiB; {line}",
                  flush=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
