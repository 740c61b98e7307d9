"""Weekly aggregates: the SQL queries on both stores, per-site bounds, thresholds on
noisy counts, module pairs, trends, all-or-nothing output, the page in a real browser.
The attacks (crafted sites, republication) are in test_privacy_attacks.py."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
from datetime import date, timedelta

import pytest

from dropsonde.collector.aggregate import Parameters, PublicationError, publish_week, ranking, week_bounds
from dropsonde.collector.normalize import iso_week, week_range
from dropsonde.collector.output import OutputError
from dropsonde.collector.queries import load_queries
from dropsonde.collector.release_ledger import open_ledger
from dropsonde.collector.render import render_page
from dropsonde.collector.storage import open_store
from dropsonde.errors import ExitStatus
from dropsonde.wire import sortable_timestamp
from tests.support.cli import run_dropsonde
from tests.support.collector_reports import NO_NOISE, WEEK, columns, report, tables
from tests.support.paths import EXAMPLE_COLLECTOR, EXAMPLE_SITE

KEY = b"k" * 32


def table(store, name, **options):
    return tables(store, **options)[name]


def test_week_bounds():
    label, start, end = week_bounds("2026-w48")
    assert label == WEEK and start.isoformat() == "2026-11-23T00:00:00+00:00" and (end - start).days == 7
    assert week_bounds(None, today=date(2026, 11, 27))[0] == "2026-W47"  # the last complete week
    with pytest.raises(PublicationError, match="expected YYYY-Www") as raised:
        week_bounds("last week")
    assert raised.value.subject == "week" and "--" not in str(raised.value)  # the CLI names its own option


def test_the_last_complete_week_of_each_day_and_the_stores_range_agree():
    """The weekly job and the store share one week-to-Monday computation (they were twins)."""
    for offset in range(800):
        today = date(2025, 12, 1) + timedelta(days=offset)
        label, start, end = week_bounds(None, today=today)
        assert start.isoweekday() == 1 and 7 <= (today - start.date()).days <= 13
        assert label == iso_week(start.isoformat()) and week_bounds(label.lower()) == (label, start, end)
        assert week_range(label) == (sortable_timestamp(start), sortable_timestamp(end))
    assert week_bounds(None, today=date(2027, 1, 4))[0] == "2026-W53"  # 2026 has 53 ISO weeks


def test_k_anonymity_latest_report_per_site_and_no_site_ids(tmp_path):
    k = 5
    store = open_store(str(tmp_path / "a.db"), columns())
    rows = []
    for n in range(k):  # k sites use apache 12, one of them upgraded mid-week (its latest report counts)
        rows.append(report(n, [("puppetlabs-apache", "11.0.0")], when="2026-11-23T10:00:00.000000+00:00",
                           environment_count=3))
        rows.append(report(n, [("puppetlabs-apache", "12.0.0")], environment_count=3))
    for n in range(k, 2 * k - 1):  # k-1 sites use a rare module
        rows.append(report(n, [("rare-module", "1.0.0"), ("puppetlabs-apache", "12.0.0")], environment_count=40))
    rows.append(report(99, [("puppetlabs-apache", "12.0.0")], when="2026-12-01T10:00:00.000000+00:00"))  # next week
    store.insert_many(rows)
    assert table(store, "modules") == [{"slug": "puppetlabs-apache", "sites": 2 * k - 1}]  # rare-module withheld
    assert table(store, "module_versions") == [{"slug": "puppetlabs-apache", "version": "12.0.0", "sites": 2 * k - 1}]
    assert table(store, "sites") == [{"sites": 2 * k - 1}]
    assert table(store, "environment_counts") == [{"environments": "2-5", "sites": k}]  # 26-50 has k-1: withheld
    out = tmp_path / "out"
    result = run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(out),
                           "--week", WEEK, "--k", str(k), "--epsilon", str(NO_NOISE))
    assert result.returncode == 0, result.stderr
    assert [row["slug"] for row in json.loads((out / "modules.json").read_text())] == ["puppetlabs-apache"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["week"] == WEEK and summary["epsilon"] == NO_NOISE and summary["k"] == k
    published = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "agg-site" not in published and not re.search(r"[0-9a-f]{128}", published)
    assert "rare-module" not in published
    assert (out / "modules.csv").read_text().splitlines()[0] == "slug,sites"


def test_exactly_k_sites_is_published_and_k_minus_one_is_not(tmp_path):
    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([report(n, [("a-x", "1.0.0")]) for n in range(4)])
    assert table(store, "modules") == [] and table(store, "sites") == []
    store.insert_many([report(4, [("a-x", "1.0.0")])])
    assert table(store, "modules") == [{"slug": "a-x", "sites": 5}] and table(store, "sites") == [{"sites": 5}]


def test_every_query_gives_the_same_rows_on_sqlite_and_postgresql(tmp_path, postgres):
    example = tmp_path / "example.jsonl"
    made = run_dropsonde("--confdir", str(EXAMPLE_SITE / "puppet"), "--cachepath", str(EXAMPLE_SITE / "cache"),
                         "dev", "example", "--size", "150", "--filename", str(example))
    assert made.returncode == 0, made.stderr
    rows = [json.loads(line) for line in example.read_text().splitlines()]
    for n, row in enumerate(rows):  # all in one week, with slugs whose order depends on the collation
        row["timestamp"] = f"2026-11-2{n % 5 + 3}T10:00:00.000000+00:00"
        extra = [("a-b", "1.0.0"), ("ab-c", "2.0.0"), ("A-b", "1.0.0"), ("a_b-c", "1.0.0")][: n % 5]
        row["modules"] = row["modules"] + [{"name": s.split("-")[1], "slug": s, "version": v} for s, v in extra]
    postgres.psql("CREATE DATABASE same_results")
    stores = [open_store(str(tmp_path / "same.db"), columns()), open_store(postgres.url("same_results"), columns())]
    for store in stores:
        store.insert_many(rows)
    released = [tables(store) for store in stores]
    for query in load_queries():
        results = [[{c: row[c] for c in query.keys + ("sites",)} for row in r[query.name]] for r in released]
        assert results[0] == results[1], query.name  # the sums carry noise even with NO_NOISE (see below)
        assert results[0], f"{query.name}: the example data should publish rows"
        assert all(tuple(row) == query.columns for row in released[0][query.name]), query.name
    pairs = released[0]["module_pairs"]
    assert ("A-b", "a-b") in {(r["slug_a"], r["slug_b"]) for r in pairs}  # byte order: upper case first


def test_module_pairs_count_sites_using_both_and_every_row_has_k_sites(db):
    store = open_store(db, columns())
    store.insert_many(
        [report(n, [("a-one", "1.0.0"), ("b-two", "1.0.0"), ("c-three", "1.0.0")]) for n in range(5)]
        + [report(n, [("a-one", "1.0.0"), ("a-one", "2.0.0"), ("b-two", "1.0.0")]) for n in range(5, 8)]
        + [report(n, [("c-three", "1.0.0"), ("d-rare", "1.0.0")]) for n in range(8, 12)]
    )
    assert table(store, "module_pairs") == [
        {"slug_a": "a-one", "slug_b": "b-two", "sites": 8},
        {"slug_a": "a-one", "slug_b": "c-three", "sites": 5},
        {"slug_a": "b-two", "slug_b": "c-three", "sites": 5},
    ]  # c-three + d-rare: 4 sites, withheld
    assert table(store, "module_triples") == [{"slug_a": "a-one", "slug_b": "b-two", "slug_c": "c-three", "sites": 5}]
    assert table(store, "module_pairs", k=6) == [{"slug_a": "a-one", "slug_b": "b-two", "sites": 8}]


def test_module_pairs_and_triples_count_each_site_with_a_few_top_ranked_modules(db):
    """F1, issue 17 item 10: six reports naming 250 modules each published C(250, 2)
    = 31,125 pairs (and the join was quadratic); now each site counts with its first
    few modules in the published ranking: C(12, 2) pairs and C(6, 3) triples per site."""
    store = open_store(db, columns())
    many = [(f"a-m{index:03d}", "1.0.0") for index in range(250)]
    store.insert_many([report(n, many) for n in range(6)])
    released = tables(store)
    queries = {q.name: q for q in load_queries()}
    pairs, triples = released["module_pairs"], released["module_triples"]
    assert len(pairs) == queries["module_pairs"].rows_per_site == 66
    assert len(triples) == queries["module_triples"].rows_per_site == 20
    first = ranking(released["modules"], 12)  # ties ranked by slug
    assert {r["slug_a"] for r in pairs} | {r["slug_b"] for r in pairs} == set(first)


def test_the_rankings_come_from_published_counts(db):
    """F12: which modules are paired is decided by the published (noisy) counts."""
    published = [{"slug": "a-one", "sites": 3}, {"slug": "b-two", "sites": 9}, {"slug": "c-three", "sites": 9}]
    assert ranking(published, 2) == ["b-two", "c-three"]


def test_a_site_contributes_at_most_the_clipping_bound_bucketed(tmp_path):
    store = open_store(str(tmp_path / "a.db"), columns())
    counts = [10**9, 1234, 37, 1, 0]
    store.insert_many([report(n, classes=[{"name": "x", "count": c}], puppetfile_ruby_methods=[
        {"name": "mod", "count": c}]) for n, c in enumerate(counts)])
    released = tables(store)  # with NO_NOISE the sums' noise is still a few units (SD ~8): sums are bounded by L2
    (classes,), (methods,) = released["classes"], released["puppetfile_methods"]
    assert classes["sites"] == 5 and abs(classes["nodes"] - (100 + 100 + 20 + 1 + 0)) < 50
    assert methods["sites"] == 5 and abs(methods["calls"] - (100 + 100 + 20 + 1)) < 50


def test_class_names_are_published_in_their_canonical_form(tmp_path):
    """F3: a crafted report chose the case of published text (``::ApAcHe::Visit_Phish``)
    and one class was split over several rows by its spellings."""
    store = open_store(str(tmp_path / "a.db"), columns())
    spellings = ["::ApAcHe::Params", "APACHE::PARAMS", "Apache::Params", "apache::params", "::apache::params"]
    store.insert_many([report(n, classes=[{"name": name, "count": 2}, {"name": "apache::params", "count": 3}],
                              profile_classes=[{"name": name, "count": 1}]) for n, name in enumerate(spellings)])
    (row,) = table(store, "classes")
    assert row["name"] == "apache::params" and row["sites"] == 5 and abs(row["nodes"] - 5 * 5) < 50  # 2 + 3: 5
    assert table(store, "profile_classes") == [{"name": "apache::params", "sites": 5}]


def test_a_rerun_publishes_the_same_numbers_and_another_week_other_noise(tmp_path):
    """F4: every run drew fresh noise, so averaging 40 reruns of one week gave the true value.
    OpenDP's noise cannot be seeded: the release is recorded and re-served."""
    store = open_store(str(tmp_path / "a.db"), columns())
    for when in ("2026-11-11T10:00:00.000000+00:00", "2026-11-18T10:00:00.000000+00:00"):  # W46 and W47, same data
        store.insert_many([report(n, [("a-x", "1.0.0"), ("b-y", "2.0.0")], when=when, classes=[
            {"name": "x", "count": 1000}], environment_count=3) for n in range(400)])

    def numbers(week, out):
        done = run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(out),
                             "--week", week)
        assert done.returncode == 0, done.stderr
        return {p.name: p.read_text() for p in out.iterdir() if p.suffix == ".json" and p.name != "trends.json"}

    first = numbers("2026-W46", tmp_path / "first")
    assert numbers("2026-W46", tmp_path / "second") == first
    key = tmp_path / "a.db.noise-key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    ledger = open_ledger(open_store(str(tmp_path / "a.db"), columns(), read_only=True))
    assert ledger.released_weeks() == ["2026-W46"] and ledger.latest("2026-W46").source == "aggregate"
    assert not [p.name for p in tmp_path.iterdir() if p.suffix == ".releases"]  # the ledger is in the store
    other = numbers("2026-W47", tmp_path / "other")
    assert noisy_numbers(other) != noisy_numbers(first)  # same data, fresh noise: every table at once


def noisy_numbers(published):
    """Every number of a week's tables, in order, but the week's own labels: one
    table alone (a class row under the threshold both weeks) can come out equal
    by chance, every table at once cannot."""
    def numbers_in(value):
        if isinstance(value, dict):
            return [n for k, v in sorted(value.items()) if "week" not in k for n in numbers_in(v)]
        if isinstance(value, list):
            return [n for v in value for n in numbers_in(v)]
        return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []

    return {name: numbers_in(json.loads(text)) for name, text in sorted(published.items()) if name != "summary.json"}


def test_a_noise_key_that_is_not_a_regular_file_is_an_error_not_a_hang(tmp_path):
    """A FIFO at --noise-key made aggregate wait forever for a writer."""
    import os

    from tests.support.cli import assert_clean_error
    from tests.support.time_limits import never_blocks

    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([report(n, [("a-x", "1.0.0")], when="2026-11-11T10:00:00.000000+00:00") for n in range(6)])
    fifo = tmp_path / "fifo-key"
    os.mkfifo(fifo)
    with never_blocks(30):
        done = run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(tmp_path / "o"),
                             "--week", "2026-W46", "--noise-key", str(fifo))
    assert_clean_error(done, ExitStatus.USAGE, f"--noise-key {fifo}", "not a regular file")
    assert not (tmp_path / "o").exists()


def test_a_week_not_ended_is_published_only_with_force(tmp_path):
    from tests.support.cli import assert_clean_error

    week = date.today().isocalendar()
    current = f"{week[0]}-W{week[1]:02d}"
    refused = run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(tmp_path / "o"),
                            "--week", current)
    assert_clean_error(refused, ExitStatus.USAGE, f"--week {current}", "has not ended")


def test_aggregate_never_creates_a_store_and_reads_only_a_collectors_one(tmp_path, postgres):
    """F8: a mistyped --db created an empty store, whose empty publication replaced the real one."""
    from tests.support.cli import assert_clean_error

    typo = tmp_path / "typo.db"
    missing = run_dropsonde("collector", "aggregate", "--db", str(typo), "--out", str(tmp_path / "o"), "--week", "2026-W47")
    assert_clean_error(missing, ExitStatus.USAGE, f"--db {typo}", "no such store")
    assert not typo.exists() and not (tmp_path / "o").exists()
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    assert_clean_error(run_dropsonde("collector", "aggregate", "--db", str(other), "--out", str(tmp_path / "o"),
                                     "--week", "2026-W47"), ExitStatus.USAGE, "no site_weeks")
    postgres.psql("CREATE DATABASE not_a_store")
    assert_clean_error(run_dropsonde("collector", "aggregate", "--db", postgres.url("not_a_store"), "--out",
                                     str(tmp_path / "o"), "--week", "2026-W47"), ExitStatus.USAGE, "no site_weeks")


def test_a_wrong_store_does_not_replace_a_publication_of_the_same_week_unless_forced(tmp_path):
    """F8: an empty store's publication replaced the real one. The release ledger is the
    store's: another store has not released the week, whatever the key, and is refused."""
    from tests.support.cli import assert_clean_error

    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([report(n, [("a-x", "1.0.0")], when="2026-11-18T10:00:00.000000+00:00") for n in range(6)])
    open_store(str(tmp_path / "empty.db"), columns())
    out = tmp_path / "www"

    def aggregate(db, *extra):
        return run_dropsonde("collector", "aggregate", "--db", str(tmp_path / db), "--out", str(out),
                             "--week", "2026-W47", "--epsilon", str(NO_NOISE), *extra)

    assert aggregate("a.db").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert json.loads(before["modules.json"]) == [{"slug": "a-x", "sites": 6}]
    assert_clean_error(aggregate("empty.db"), ExitStatus.USAGE, "--week 2026-W47", "another noise key", "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".www.")] == []
    same_key = aggregate("empty.db", "--noise-key", str(tmp_path / "a.db.noise-key"))  # its ledger: not released
    assert_clean_error(same_key, ExitStatus.USAGE, "--week 2026-W47", "release record is missing", "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert aggregate("empty.db", "--force").returncode == 0
    assert json.loads((out / "modules.json").read_text()) == []


def test_the_store_is_opened_read_only(tmp_path):
    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([report(1, [("a-x", "1.0.0")])])
    reader = open_store(str(tmp_path / "a.db"), columns(), read_only=True)
    connection = reader.connect()
    with pytest.raises(Exception, match="readonly"):
        connection.execute("DELETE FROM reports")
    connection.close()
    assert store.count() == 1


def publish(store, out, week=WEEK, render=render_page, epsilon=NO_NOISE, force=False):
    return publish_week(store, week, Parameters(epsilon, 1e-6), KEY, open_ledger(store), out, render, force)


def test_a_failure_part_way_leaves_the_previous_output_intact_and_no_partial_directory(tmp_path):
    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([report(n, [("a-x", "1.0.0")]) for n in range(5)]
                      + [report(n, [("b-y", "1.0.0")], when="2026-12-01T10:00:00.000000+00:00") for n in range(6)])
    out = tmp_path / "www" / "telemetry"
    publish(store, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def broken_render(result):
        raise RuntimeError("the page could not be drawn")

    with pytest.raises(RuntimeError):
        publish(store, out, week="2026-W49", render=broken_render)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert [p.name for p in out.parent.iterdir()] == ["telemetry"]  # no staging directory left behind
    publish(store, out, week="2026-W49")
    assert json.loads((out / "modules.json").read_text()) == [{"slug": "b-y", "sites": 6}]
    assert [p.name for p in out.parent.iterdir()] == ["telemetry"] and out.stat().st_mode & 0o777 == 0o755


def test_an_out_that_is_not_a_publication_is_never_replaced(tmp_path):
    """F9: --out pointing at a web root removed its other pages; a symbolic link became a directory."""
    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([report(n, [("a-x", "1.0.0")]) for n in range(5)])
    webroot = tmp_path / "webroot"
    webroot.mkdir()
    (webroot / "other-site-page.html").write_text("precious")
    with pytest.raises(OutputError, match="no summary.json"):  # OutputError: the CLI adds --out
        publish(store, webroot)
    publish(store, tmp_path / "www")
    (tmp_path / "www" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="'notes.txt', which aggregate does not write"):
        publish(store, tmp_path / "www")
    (tmp_path / "link").symlink_to(webroot)
    with pytest.raises(OutputError, match="symbolic link"):
        publish(store, tmp_path / "link")
    assert (webroot / "other-site-page.html").read_text() == "precious" and (tmp_path / "link").is_symlink()
    assert (tmp_path / "www" / "notes.txt").read_text() == "mine"
    (tmp_path / "www" / "notes.txt").unlink()
    publish(store, tmp_path / "www")  # a previous publication is replaced
    (tmp_path / "empty").mkdir()
    publish(store, tmp_path / "empty")  # and so is an empty directory
    assert (tmp_path / "empty" / "summary.json").exists()


def test_staging_directories_left_by_a_killed_run_are_removed(tmp_path):
    """F13: each SIGKILLed or timed-out run left its staging directory behind."""
    import os

    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([report(n, [("a-x", "1.0.0")]) for n in range(5)])
    stale = [tmp_path / ".www.abc123.tmp", tmp_path / ".www.def456.old"]
    for path in stale + [tmp_path / ".www.fresh.tmp", tmp_path / ".other.abc.tmp"]:
        path.mkdir()
        (path / "modules.json").write_text("[]")
    for path in stale + [tmp_path / ".other.abc.tmp"]:
        os.utime(path, (0, 0))  # left long ago
    publish(store, tmp_path / "www")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [".other.abc.tmp", ".www.fresh.tmp", "www"]


def test_sigterm_during_a_query_stops_aggregate_and_leaves_nothing(tmp_path, postgres):
    """F13: Python's default SIGTERM action skipped the cleanup. The run is held in its
    first query by a lock on the table it reads; SIGTERM ends it with nothing left behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psycopg

    postgres.psql("CREATE DATABASE held")
    url = postgres.url("held")
    open_store(url, columns()).insert_many([report(n, [("a-x", "1.0.0")]) for n in range(5)])
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
        holder.execute("LOCK TABLE site_weeks IN ACCESS EXCLUSIVE MODE")
        process = subprocess.Popen([sys.executable, "-m", "dropsonde", "collector", "aggregate", "--db", url,
                                    "--out", str(tmp_path / "www"), "--week", WEEK,
                                    "--noise-key", str(tmp_path / "noise-key")],
                                   stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        waiting = 0
        while not waiting and time.monotonic() < deadline and process.poll() is None:
            waiting = watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]
            time.sleep(0.05)
        assert waiting, process.stderr.read() if process.poll() is not None else "the query never waited"
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        holder.rollback()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise-key"]  # no output, no staging
    assert open_ledger(open_store(url, columns(), read_only=True)).released_weeks() == []  # and no release


def test_no_csv_cell_starts_a_spreadsheet_formula(tmp_path):
    store = open_store(str(tmp_path / "a.db"), columns())
    hostile = ["=HYPERLINK(\"http://x.example\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "plain"]
    store.insert_many([report(n, puppetfile_ruby_methods=[{"name": name, "count": 1} for name in hostile])
                       for n in range(5)])  # stored as they are (class names are made canonical)
    out = tmp_path / "out"
    publish(store, out)
    cells = [cell for line in csv.reader((out / "puppetfile_methods.csv").open()) for cell in line]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    assert "'=HYPERLINK(\"http://x.example\")" in cells and "plain" in cells
    assert {row["name"] for row in json.loads((out / "puppetfile_methods.json").read_text())} == set(hostile)


def test_trends_show_the_last_twelve_published_weeks_from_the_published_output(tmp_path):
    store = open_store(str(tmp_path / "a.db"), columns())
    out = tmp_path / "www"
    weeks = [f"2026-W{n:02d}" for n in range(35, 49)]  # 14 weeks
    for index, week in enumerate(weeks):
        monday = date.fromisocalendar(2026, int(week[-2:]), 1)
        store.insert_many([report(n, [("a-x", "1.0.0")], when=f"{monday.isoformat()}T10:00:00.{index:06d}+00:00")
                           for n in range(5 + index)])
        publication = publish(store, out, week=week)
    trends = json.loads((out / "trends.json").read_text())
    assert sorted({row["week"] for row in trends}) == weeks[-12:]
    assert json.loads((out / "summary.json").read_text())["trend_weeks"] == weeks[-12:]
    assert publication.trends == trends
    # The earlier weeks come from what was released then, not from the private store: remove them from the store,
    # and the published output too, and publish the last week again: the trends are unchanged.
    for week in weeks[:-1]:
        with store.connect() as connection:
            connection.execute("DELETE FROM site_week_modules WHERE week = ?", (week,))
    shutil.rmtree(out)
    publish(store, out, week=weeks[-1])
    assert json.loads((out / "trends.json").read_text()) == trends
    page = (out / "index.html").read_text()
    assert 'id="trends"' in page and page.count('class="point mark"') == 12


def test_example_data_loads_and_the_page_renders_in_chromium(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("needs Debian's chromium package: run tests/run (it installs it)")
    example = tmp_path / "example.jsonl"
    made = run_dropsonde("--confdir", str(EXAMPLE_SITE / "puppet"), "--cachepath", str(EXAMPLE_SITE / "cache"),
                         "dev", "example", "--size", "200", "--filename", str(example))
    assert made.returncode == 0, made.stderr
    db = tmp_path / "c.db"
    loaded = run_dropsonde("collector", "load", str(example), "--db", str(db), "--forge-cache", str(EXAMPLE_COLLECTOR))
    assert loaded.stdout.strip() == "200 rows loaded"
    week = date.today().isocalendar()
    out = tmp_path / "out"
    done = run_dropsonde("collector", "aggregate", "--db", str(db), "--out", str(out),
                         "--week", f"{week[0]}-W{week[1]:02d}", "--k", "5", "--epsilon", "100", "--force")
    assert done.returncode == 0, done.stderr
    assert 190 < int(re.search(r"(\d+) sites", done.stdout).group(1)) < 210  # 200, with noise
    page = out / "index.html"
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # nothing fetched: works offline
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    rendered = dict(re.findall(r'<figure class="chart" id="([\w-]+)" data-rendered="(\d+)"', dom))
    assert set(rendered) == {"top-modules", "adoption", "platforms", "trends"}
    modules = json.loads((out / "modules.json").read_text())
    assert int(rendered["top-modules"]) == min(20, len(modules)) > 0
    assert int(rendered["adoption"]) > 0 and int(rendered["platforms"]) > 0
    assert int(rendered["trends"]) == min(8, len(modules))  # one point per module: the first published week


def test_a_store_or_output_that_cannot_be_opened_is_one_clear_line(tmp_path, postgres):
    from tests.support.cli import assert_clean_error

    out = str(tmp_path / "out")
    assert_clean_error(run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "no" / "such.db"), "--out", out),
                       ExitStatus.USAGE, "--db", "no/such.db")
    refused = run_dropsonde("collector", "aggregate", "--db", "postgresql://u:secret@127.0.0.1:1/db", "--out", out)
    assert_clean_error(refused, ExitStatus.FAILURE, "--db postgresql://u:***@127.0.0.1:1/db")
    assert "secret" not in refused.stderr
    (tmp_path / "file").write_text("")
    open_store(str(tmp_path / "a.db"), columns())
    assert_clean_error(run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out",
                                     str(tmp_path / "file" / "out")), ExitStatus.FAILURE, "--out", "file/out")
    assert_clean_error(run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", out,
                                     "--epsilon", "0"), ExitStatus.USAGE, "--epsilon")


def test_an_existing_noise_key_readable_by_others_is_made_private(tmp_path):
    """Issue 17 item 14: a key left 0644 (restored from a backup, copied by hand) is tightened to 0600."""
    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([report(n, [("a-x", "1.0.0")], when="2026-11-11T10:00:00.000000+00:00") for n in range(6)])
    key = tmp_path / "a.db.noise-key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o644)
    done = run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(tmp_path / "o"),
                         "--week", "2026-W46")
    assert done.returncode == 0, done.stderr
    assert key.stat().st_mode & 0o777 == 0o600 and key.read_bytes() == b"k" * 32


# One report's rows in each table: (report columns for ``count`` distinct keys).
MANY_ROWS = {
    "modules": lambda count: {"modules": [{"name": f"m{i:03d}", "slug": f"a-m{i:03d}", "version": "1.0.0"}
                                          for i in range(count)]},
    "module_versions": lambda count: {"modules": [{"name": f"m{i:03d}", "slug": f"a-m{i:03d}", "version": "1.0.0"}
                                                  for i in range(count)]},
    "module_platforms": lambda count: {
        "modules": [{"name": f"m{i:03d}", "slug": f"a-m{i:03d}", "version": "1.0.0"} for i in range(count)],
        "class_platforms": [{"name": f"m{i:03d}", "platform": "RedHat", "count": 3} for i in range(count)]},
    "classes": lambda count: {"classes": [{"name": f"c{i:03d}", "count": 3} for i in range(count)]},
    "platforms": lambda count: {"class_platforms": [{"platform": f"p{i:03d}"} for i in range(count)]},
    "dependencies": lambda count: {"dependencies": [{"name": f"a-d{i:03d}"} for i in range(count)]},
    "profile_classes": lambda count: {"profile_classes": [{"name": f"c{i:03d}", "count": 1} for i in range(count)]},
    "puppetfile_methods": lambda count: {"puppetfile_ruby_methods": [{"name": f"m{i:03d}", "count": 1}
                                                                     for i in range(count)]},
}


@pytest.mark.parametrize("name", sorted(MANY_ROWS))
def test_a_site_counts_in_at_most_its_tables_rows_per_site(tmp_path, name):
    """The bound OpenDP's privacy map is given (rows per site) is what the query enforces:
    sites reporting more rows than it count in exactly that many."""
    query = {q.name: q for q in load_queries()}[name]
    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([{**report(n), **MANY_ROWS[name](query.rows_per_site + 7)} for n in range(5)])
    assert len(table(store, name)) == query.rows_per_site


FAMILIES = ("Debian", "RedHat", "Suse", "windows", "Darwin")  # the site's nodes: most on Debian, then RedHat...


def many_platforms(n, modules=200):
    """Site ``n`` running ``modules`` modules, each on the 5 FAMILIES (its classes on fewer nodes the
    later the family and the higher the module's number)."""
    slugs = [f"a-m{i:03d}" for i in range(modules)]
    return report(n, [(slug, "1.0.0") for slug in slugs], class_platforms=[
        {"name": slug.split("-")[1], "platform": family, "count": 10_000 - 10 * i - rank}
        for i, slug in enumerate(slugs) for rank, family in enumerate(FAMILIES)])


def test_a_site_with_200_modules_on_5_platforms_counts_in_at_most_40_module_platform_rows(tmp_path):
    """Issue 17 item 6: one site's (module, OS family) rows are bounded like every table's: 200 modules
    x 5 families count in 40 rows, its modules first in the published ranking (then by its own node
    counts), each with its families on the most nodes first."""
    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([many_platforms(n) for n in range(5)])
    query = {q.name: q for q in load_queries()}["module_platforms"]
    assert query.rows_per_site == 40
    by_nodes = table(store, "module_platforms", k=1)  # no ranking yet: the site's own node counts decide
    assert sum(row["sites"] for row in by_nodes) == 5 * 40 and all(row["sites"] == 5 for row in by_nodes)
    assert [(row["slug"], row["platform"]) for row in by_nodes] == sorted(
        (f"a-m{i:03d}", family) for i in range(8) for family in FAMILIES)
    first = ["a-m150", "a-m199", "a-m007", "a-m100", "a-m042", "a-m011", "a-m190", "a-m023"]
    ranked = table(store, "module_platforms", k=1, module_ranking=first + ["a-m000"])
    assert sorted((row["slug"], row["platform"]) for row in ranked) == sorted(
        (slug, family) for slug in first for family in FAMILIES)  # a-m000, ranked 9th: its rows are 41st-45th


def test_module_platforms_never_exceed_their_modules_count():
    """Post-processing: a (module, family) row only of a published module, never above its count."""
    from dropsonde.collector.aggregate import make_consistent

    queries = {q.name: q for q in load_queries()}
    released = make_consistent({"sites": [{"sites": 500}], "modules": [{"slug": "a-x", "sites": 140}],
                                "module_platforms": [{"slug": "a-x", "platform": "Debian", "sites": 151},
                                                     {"slug": "a-x", "platform": "RedHat", "sites": 137},
                                                     {"slug": "b-y", "platform": "Debian", "sites": 160}]}, queries)
    assert released["module_platforms"] == [{"slug": "a-x", "platform": "Debian", "sites": 140},
                                            {"slug": "a-x", "platform": "RedHat", "sites": 137}]


def test_a_module_platform_row_is_selected_on_its_noisy_count(tmp_path):
    """Issue 17 items 2 and 14 for module_platforms: over 400 releases at the default budget (the
    mechanism and calibration ``Release.select`` uses, on the query's counts), a
    (module, family) row that one site backs is never published (OpenDP's bound: at most the
    table's delta share, 3e-8, per release), a row backed by exactly threshold sites about half of
    the time and one backed by threshold - 1 sites too (a threshold on true counts would publish the
    first always and the second never; 4 standard deviations of slack), and the counts vary."""
    from dropsonde.collector.aggregate import _rows
    from dropsonde.collector.budget import plan_budget
    from dropsonde.collector.noise import count_measurement, selection_mechanism
    from dropsonde.collector.queries import Ranking

    budget = plan_budget(4.0, 1e-6)
    query = {q.name: q for q in load_queries()}["module_platforms"]
    mechanism = selection_mechanism(query.name, budget.share(query.name), query.rows_per_site, 1)
    threshold = mechanism.threshold

    def site(n, slug, family):
        return report(n, [(slug, "1.0.0")], class_platforms=[{"name": slug.split("-")[1], "platform": family,
                                                              "count": 7}])

    store = open_store(str(tmp_path / "a.db"), columns())
    store.insert_many([site(n, "a-x", "Debian") for n in range(threshold)]
                      + [site(n, "b-y", "RedHat") for n in range(threshold, 2 * threshold - 1)]
                      + [site(5000, "c-z", "windows")])
    counts = {f'["{row["slug"]}","{row["platform"]}"]': row["sites"] for row in _rows(
        store, query, {"week": WEEK, "module_ranking": Ranking(), "unranked": 1})}
    assert counts == {'["a-x","Debian"]': threshold, '["b-y","RedHat"]': threshold - 1, '["c-z","windows"]': 1}
    runs, seen = 400, {key: [] for key in counts}
    for _ in range(runs):
        for key, value in count_measurement(query.rows_per_site, mechanism.scale, threshold)(counts).items():
            seen[key].append(value)
            assert value >= threshold
    assert seen['["c-z","windows"]'] == []
    half, slack = runs / 2, 4 * math.sqrt(runs / 4)
    assert half - slack < len(seen['["a-x","Debian"]']) < half + slack + 10  # P(noise >= 0) ~ 0.51
    assert half - slack - 10 < len(seen['["b-y","RedHat"]']) < half + slack  # P(noise >= 1) ~ 0.49
    assert len(set(seen['["a-x","Debian"]'])) > 5


def test_every_tables_threshold_is_on_noisy_counts(tmp_path):
    """Issue 17 item 14 (dropping HAVING from platforms.sql survived the old tests):
    with k = 1 and the default budget, in every table a row one site backs is never
    published and a row 600 sites back always is (the thresholds are 40-210); the
    published counts vary."""
    store = open_store(str(tmp_path / "a.db"), columns())

    def site_rows(keys, count):
        return {"modules": [{"name": k.split("-")[1], "slug": k, "version": "1.0.0"} for k in keys],
                "classes": [{"name": k.split("-")[1], "count": count} for k in keys],
                "class_platforms": [{"name": m.split("-")[1], "platform": k, "count": count} for m in keys
                                    for k in keys],
                "dependencies": [{"name": k} for k in keys],
                "profile_classes": [{"name": k.split("-")[1], "count": 1} for k in keys],
                "puppetfile_ruby_methods": [{"name": k, "count": count} for k in keys]}

    common, lonely = ["a-x", "b-y", "e-v"], ["c-z", "d-w", "e-v"]
    rows = [{**report(n, environment_count=3), **site_rows(common, 5)} for n in range(600)]  # pairs: 12 SD over their threshold
    rows += [{**report(n, environment_count=3), **site_rows(["c-z"], 5)} for n in range(600, 900)]
    rows += [{**report(n, environment_count=3), **site_rows(["d-w"], 5)} for n in range(900, 1200)]
    rows += [{**report(5000, environment_count=500), **site_rows(lonely, 5)}]  # the only site with 101+ environments
    store.insert_many(rows)
    seen = {}
    for _ in range(5):
        for name, released in tables(store, k=1, epsilon=4.0).items():
            for row in released:
                key = tuple(v for c, v in row.items() if c not in ("sites", "nodes", "calls"))
                seen.setdefault((name, key), []).append(row["sites"])
    names = {name for name, _ in seen}
    assert names == {q.name for q in load_queries()}, names
    for name, key in seen:
        assert not ({"c-z", "d-w"} <= set(key) or key == ("101+",)), (name, key)  # one site: never published
    for name in ("modules", "classes", "platforms", "dependencies", "profile_classes", "puppetfile_methods",
                 "module_platforms"):
        counts = seen[(name, ("a-x",) if name in ("modules", "platforms", "dependencies", "puppetfile_methods")
                          else ("a-x", "b-y") if name == "module_platforms" else ("x",))]
        assert len(counts) == 5 and len(set(counts)) > 1, (name, counts)  # always published, never exact
    assert len(seen[("module_pairs", ("a-x", "b-y"))]) == 5 and len(seen[("module_triples", ("a-x", "b-y", "e-v"))]) == 5


def big_sqlite_store(path, sites, modules=30, pool=500):
    """``sites`` sites with ``modules`` modules each (of ``pool``: a-m0 ...), written straight
    into the narrow tables of week 2026-W46 (posting them would take minutes)."""
    import sqlite3

    open_store(str(path), columns())
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO site_weeks (id, week, site_id, message_id, received, environment_count) "
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {sites}) "
            "SELECT n, '2026-W46', printf('%0128d', n), 'm' || n, '2026-11-11T10:00:00.000000+00:00', 3 FROM s")
        connection.execute(
            "INSERT INTO site_week_modules (week, site_week, slug, version) "
            f"WITH RECURSIVE m(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM m WHERE k < {modules - 1}) "
            f"SELECT '2026-W46', w.id, 'a-m' || ((w.id * 7 + m.k * 13) % {pool}), '1.0.0' FROM site_weeks AS w, m")


def test_sigterm_interrupts_a_long_sqlite_query(tmp_path):
    """Issue 17 item 10: SIGTERM was not honoured while SQLite ran a query (Python runs
    its handler only between the query's steps). The run is signalled a second of CPU
    into its first large query, which needs several more: it must stop at once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "big.db"
    big_sqlite_store(db, 150_000)
    process = subprocess.Popen([sys.executable, "-m", "dropsonde", "collector", "aggregate", "--db", str(db),
                                "--out", str(tmp_path / "www"), "--week", "2026-W46"], stderr=subprocess.PIPE)

    def cpu():
        fields = open(f"/proc/{process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reading_store():
        return any(os.readlink(f"/proc/{process.pid}/fd/{fd}") == str(db) for fd in os.listdir(f"/proc/{process.pid}/fd"))

    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not (cpu() >= 3.0 and reading_store()):
        time.sleep(0.02)
    assert process.poll() is None, process.stderr.read()
    at_signal = cpu()
    os.kill(process.pid, signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 128 + signal.SIGTERM, process.stderr.read()
    assert usage.ru_utime + usage.ru_stime - at_signal < 1.0  # the query would have needed several seconds more
    assert b"Traceback" not in process.stderr.read()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith((".www", "www"))]
    assert open_ledger(open_store(str(db), columns(), read_only=True)).released_weeks() == []  # nothing released


def test_pairs_and_triples_take_time_linear_in_the_sites(tmp_path):
    """Issue 17 item 10: 250 crafted reports naming 250 modules took 215 s in the pairs
    query (each site's modules joined with all of its others). With each site counted
    with its first 12 ranked modules, four times the sites cost about four times the CPU."""
    import time

    from dropsonde.collector.queries import Ranking, expand_lists

    queries = {q.name: q for q in load_queries()}
    ranking_ = Ranking(f"a-m{index}" for index in range(200))
    cpu = {}
    for sites in (60, 240):
        store = open_store(str(tmp_path / f"s{sites}.db"), columns())
        big_sqlite_store(tmp_path / f"s{sites}.db", sites, modules=250, pool=250)
        start = time.process_time()
        for name in ("module_pairs", "module_triples"):
            query = queries[name]
            parameters = {"week": "2026-W46", "pair_ranking": ranking_, "triple_ranking": Ranking(ranking_[:50]),
                          "rows_per_site": query.rows_per_site, "modules_per_site": query.modules_per_site}
            assert len(list(store.query(*expand_lists(query.sql, parameters)))) >= query.rows_per_site
        cpu[sites] = time.process_time() - start
    assert cpu[240] < 5.0  # 240 such reports took minutes before
    assert cpu[240] < 8 * max(cpu[60], 0.05)  # linear: about 4 (quadratic per site was the problem, not sites)
