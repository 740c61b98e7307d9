"""The release ledger in the store (issue 17 item 4): append-only in the database
itself, appended by aggregate through a connection that may only insert into it,
created in stores that predate it, fed from earlier versions' file ledgers, and
written while `serve` ingests."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time

import pytest

from dropsonde.collector.aggregate import Parameters, PublicationError, publish_week
from dropsonde.collector.release_ledger import LedgerEntry, open_ledger
from dropsonde.collector.render import render_page
from dropsonde.collector.storage import open_store
from dropsonde.collector.store_schema import LEDGER_TABLE
from dropsonde.errors import ExitStatus
from tests.support.cli import assert_clean_error, run_dropsonde
from tests.support.collector_process import MODULE, CollectorProcess, envelope, post
from tests.support.collector_process import site as posted_site
from tests.support.collector_reports import NO_NOISE, WEEK, columns, report

W47 = "2026-11-18T10:00:00.000000+00:00"


def stored_week(db, sites=300, when=W47):
    store = open_store(db, columns())
    store.insert_many([report(n, [("a-x", "1.0.0"), ("b-y", "2.0.0")], when=when, classes=[{"name": "x", "count": 7}])
                       for n in range(sites)])
    return store


def aggregate(db, out, key, *extra, week="2026-W47"):
    return run_dropsonde("collector", "aggregate", "--db", str(db), "--out", str(out), "--week", week,
                         "--noise-key", str(key), *extra)


def published(out):
    """The published numbers (noisy: a fresh draw differs) and the release's identity."""
    summary = json.loads((out / "summary.json").read_text())
    return ((out / "modules.json").read_text(), (out / "classes.json").read_text(), summary["release_context"],
            summary["privacy"]["releases"])


def ledger_of(db):
    return open_ledger(open_store(db, columns(), read_only=True))


def test_the_database_refuses_to_change_or_remove_a_release(db, tmp_path):
    """Even the store's owner's connection (not aggregate's) cannot rewrite history by
    accident: UPDATE, DELETE (and TRUNCATE) of ledger rows raise in the database."""
    store = open_store(db, columns())
    store.insert_many([report(n, [("a-x", "1.0.0")]) for n in range(6)])
    publish_week(store, WEEK, Parameters(NO_NOISE, 1e-6), b"k" * 32, open_ledger(store), tmp_path / "www", render_page)
    before = open_ledger(store).latest(WEEK)
    statements = [f"UPDATE {LEDGER_TABLE} SET context = 'forged'", f"DELETE FROM {LEDGER_TABLE}",
                  f"UPDATE {LEDGER_TABLE} SET released_tables = NULL WHERE week = '{WEEK}'"]
    if "://" in db:
        statements.append(f"TRUNCATE {LEDGER_TABLE}")
    for statement in statements:
        connection = store.connect()
        try:
            with pytest.raises(Exception, match="append-only"):
                connection.cursor().execute(statement)
            connection.rollback()
        finally:
            connection.close()
    assert open_ledger(store).latest(WEEK) == before and before.number == 1 and before.tables["modules"]


def test_aggregates_ledger_connection_may_only_insert_into_the_ledger(tmp_path):
    """SQLite's authorizer: the connection aggregate appends with can read, and
    insert into the ledger; anything else fails before it runs."""
    stored_week(str(tmp_path / "a.db"), sites=6)
    dialect = open_store(str(tmp_path / "a.db"), columns(), read_only=True).dialect.writer()
    connection = dialect.connect()
    dialect.insert_only(connection, LEDGER_TABLE)
    for statement in ("DELETE FROM reports", "UPDATE site_weeks SET week = 'x'", f"DROP TABLE {LEDGER_TABLE}",
                      f"DROP TRIGGER {LEDGER_TABLE}_no_update", "CREATE TABLE other (a)", "PRAGMA writable_schema = 1",
                      "ATTACH DATABASE ':memory:' AS other",
                      "INSERT INTO quarantined_reports VALUES ('m', 's', 'r', '{}')"):
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            connection.execute(statement)
    assert connection.execute("SELECT COUNT(*) FROM reports").fetchone() == (6,)
    connection.close()
    ledger = ledger_of(str(tmp_path / "a.db"))
    appended = ledger.append(LedgerEntry("2026-W40", "c", "k", {}, {"modules": []}, {}, []), after=None)
    assert appended.number == 1 and ledger.released_weeks() == ["2026-W40"]


def test_a_second_run_appending_the_same_release_number_is_refused(tmp_path):
    """Two runs releasing one week at once: the second append finds the number taken."""
    from dropsonde.collector.release_ledger import LedgerError

    stored_week(str(tmp_path / "a.db"), sites=6)
    ledger = ledger_of(str(tmp_path / "a.db"))
    entry = LedgerEntry("2026-W47", "c", "k", {}, {"modules": []}, {}, [])
    ledger.append(entry, after=None)
    with pytest.raises(LedgerError, match="released by another run at the same time"):
        ledger.append(entry, after=None)
    assert [e.number for e in [ledger.latest("2026-W47")]] == [1]


def test_aggregate_runs_with_a_postgresql_role_that_may_only_insert_into_the_ledger(tmp_path, postgres):
    """The least privilege README suggests: SELECT on the store, INSERT on the ledger, nothing else."""
    postgres.psql("CREATE DATABASE ledger_role")
    url = postgres.url("ledger_role")
    stored_week(url)
    role = f"aggregator_{os.getpid()}"
    postgres.psql(f"CREATE ROLE {role} LOGIN")
    postgres.psql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; GRANT INSERT ON {LEDGER_TABLE} TO {role}",
                  database="ledger_role")
    limited = postgres.url("ledger_role", user=role)
    first = aggregate(limited, tmp_path / "www", tmp_path / "key")
    assert first.returncode == 0, first.stderr
    again = aggregate(limited, tmp_path / "www2", tmp_path / "key")
    assert again.returncode == 0, again.stderr
    assert published(tmp_path / "www2") == published(tmp_path / "www")
    import psycopg

    with psycopg.connect(limited) as connection:
        for statement in ("DELETE FROM reports", f"DELETE FROM {LEDGER_TABLE}"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
            connection.rollback()
    assert ledger_of(url).released_weeks() == ["2026-W47"]


def test_a_store_older_than_the_ledger_gets_it_from_aggregate(db, tmp_path):
    """A store written before the ledger moved into it has no table: the first aggregate
    creates it (with its triggers) and appends to it."""
    stored_week(db, sites=6)
    store = open_store(db, columns())
    connection = store.connect()
    connection.cursor().execute(f"DROP TABLE {LEDGER_TABLE}")
    if "://" in db:
        connection.cursor().execute(f"DROP FUNCTION {LEDGER_TABLE}_append_only()")
    connection.commit()
    connection.close()
    assert not ledger_of_table_exists(db)
    done = aggregate(db, tmp_path / "www", tmp_path / "key", "--epsilon", str(NO_NOISE))
    assert done.returncode == 0, done.stderr
    assert ledger_of(db).released_weeks() == ["2026-W47"]
    connection = store.connect()
    with pytest.raises(Exception, match="append-only"):
        connection.cursor().execute(f"DELETE FROM {LEDGER_TABLE}")
    connection.close()


def test_a_ledger_that_cannot_be_created_is_one_clear_line(tmp_path, postgres):
    """An old PostgreSQL store, aggregated by a role that may not create tables."""
    postgres.psql("CREATE DATABASE ledger_uncreated")
    url = postgres.url("ledger_uncreated")
    stored_week(url, sites=6)
    postgres.psql(f"DROP TABLE {LEDGER_TABLE}; DROP FUNCTION {LEDGER_TABLE}_append_only()", database="ledger_uncreated")
    role = f"reader_{os.getpid()}"
    postgres.psql(f"CREATE ROLE {role} LOGIN")
    postgres.psql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}", database="ledger_uncreated")
    refused = aggregate(postgres.url("ledger_uncreated", user=role), tmp_path / "www", tmp_path / "key")
    assert_clean_error(refused, ExitStatus.FAILURE, "release ledger", "predates the release ledger",
                       "permission denied")
    assert not (tmp_path / "www").exists() and not (tmp_path / "key").exists()


def ledger_of_table_exists(db):
    store = open_store(db, columns(), read_only=True)
    connection = store.connect()
    try:
        return store.dialect.has_table(connection, LEDGER_TABLE)
    finally:
        connection.close()


def write_file_ledger(directory, entry: LedgerEntry):
    """An earlier version's ledger, byte for byte as its ReleaseRecords.save wrote it:
    DIR/WEEK.json (format 1, keys sorted, 0600 in a 0700 directory) and weeks.log."""
    directory.mkdir(mode=0o700, exist_ok=True)
    record = {"format": 1, "week": entry.week, "context": entry.context, "noise_key": entry.noise_key,
              "parameters": entry.parameters, "tables": entry.tables, "mechanisms": entry.mechanisms,
              "spent": entry.spent, "complete": entry.complete}
    path = directory / f"{entry.week}.json"
    path.write_bytes(json.dumps(record, sort_keys=True).encode())
    path.chmod(0o600)
    with open(directory / "weeks.log", "a", encoding="utf-8") as log:
        log.write(entry.week + "\n")


def test_an_earlier_versions_file_ledger_is_imported_once_and_left_in_place(tmp_path):
    """Upgrade: DB.releases/ of an earlier version is imported on the first aggregate that
    sees it (through a symbolic link to the store too): its week is re-served, not drawn
    again; a week only weeks.log lists (record lost) stays released; no key is made."""
    stored_week(str(tmp_path / "a.db"))
    stored_week(str(tmp_path / "a.db"), when="2026-11-11T10:00:00.000000+00:00")  # W46 too
    shutil.copyfile(tmp_path / "a.db", tmp_path / "b.db")  # b: the same store, released by an earlier version
    done = aggregate(tmp_path / "a.db", tmp_path / "www-a", tmp_path / "a.key")
    assert done.returncode == 0, done.stderr
    write_file_ledger(tmp_path / "b.db.releases", ledger_of(str(tmp_path / "a.db")).latest("2026-W47"))
    with open(tmp_path / "b.db.releases" / "weeks.log", "a", encoding="utf-8") as log:
        log.write("2026-W46\n")  # released, its record since lost
    shutil.copyfile(tmp_path / "a.key", tmp_path / "b.key")
    (tmp_path / "link.db").symlink_to(tmp_path / "b.db")
    imported = aggregate(tmp_path / "link.db", tmp_path / "www-b", tmp_path / "b.key")
    assert imported.returncode == 0, imported.stderr
    assert "imported into the store's release ledger" in imported.stderr
    assert published(tmp_path / "www-b") == published(tmp_path / "www-a")  # re-served, not drawn again
    ledger = ledger_of(str(tmp_path / "b.db"))
    assert ledger.released_weeks() == ["2026-W46", "2026-W47"]
    assert ledger.latest("2026-W47").source == f"imported from {tmp_path / 'b.db.releases' / '2026-W47.json'}"
    assert ledger.latest("2026-W46").tables is None
    rows = len(list(open_store(str(tmp_path / "b.db"), columns(), read_only=True).query(
        f"SELECT week FROM {LEDGER_TABLE}", {})))
    again = aggregate(tmp_path / "b.db", tmp_path / "www-c", tmp_path / "b.key")
    assert again.returncode == 0, again.stderr
    assert "imported" not in again.stderr and published(tmp_path / "www-c") == published(tmp_path / "www-a")
    assert len(list(open_store(str(tmp_path / "b.db"), columns(), read_only=True).query(
        f"SELECT week FROM {LEDGER_TABLE}", {}))) == rows == 2  # imported once
    assert sorted(p.name for p in (tmp_path / "b.db.releases").iterdir()) == ["2026-W47.json", "weeks.log"]  # left
    assert_clean_error(aggregate(tmp_path / "b.db", tmp_path / "www-d", tmp_path / "b.key", week="2026-W46"),
                       ExitStatus.USAGE, "--week 2026-W46", "release record is missing", "--force")
    shutil.rmtree(tmp_path / "b.db.releases")  # the files are no longer needed: the store holds the weeks
    assert_clean_error(aggregate(tmp_path / "b.db", tmp_path / "www-d", tmp_path / "new.key"), ExitStatus.USAGE,
                       f"--noise-key {tmp_path / 'new.key'}", "no such key", "2026-W46, 2026-W47")
    forced = aggregate(tmp_path / "b.db", tmp_path / "www-d", tmp_path / "b.key", "--force", week="2026-W46")
    assert forced.returncode == 0, forced.stderr
    assert ledger_of(str(tmp_path / "b.db")).latest("2026-W46").forced


def test_a_postgresql_ledger_kept_beside_the_noise_key_is_imported(tmp_path, postgres):
    """Upgrade, PostgreSQL: the earlier version kept the ledger in KEY.releases."""
    for name in ("ledger_import_a", "ledger_import_b"):
        postgres.psql(f"CREATE DATABASE {name}")
        stored_week(postgres.url(name))
    done = aggregate(postgres.url("ledger_import_a"), tmp_path / "www-a", tmp_path / "a.key")
    assert done.returncode == 0, done.stderr
    write_file_ledger(tmp_path / "b.key.releases", ledger_of(postgres.url("ledger_import_a")).latest("2026-W47"))
    shutil.copyfile(tmp_path / "a.key", tmp_path / "b.key")
    fresh = tmp_path / "fresh.key"
    assert_clean_error(aggregate(postgres.url("ledger_import_b"), tmp_path / "www-b", tmp_path / "b.key", "--epsilon",
                                 "2"), ExitStatus.USAGE, "--week 2026-W47", "other parameters")
    assert_clean_error(aggregate(postgres.url("ledger_import_b"), tmp_path / "www-b", fresh), ExitStatus.USAGE,
                       f"--noise-key {fresh}", "no such key")  # imported: the store has released weeks now
    served = aggregate(postgres.url("ledger_import_b"), tmp_path / "www-b", tmp_path / "b.key")
    assert served.returncode == 0, served.stderr
    assert published(tmp_path / "www-b") == published(tmp_path / "www-a")


def test_a_damaged_file_ledger_record_is_one_clear_line_not_a_new_release(tmp_path):
    stored_week(str(tmp_path / "a.db"), sites=6)
    (tmp_path / "a.db.releases").mkdir()
    (tmp_path / "a.db.releases" / "2026-W47.json").write_text("{not json")
    refused = aggregate(tmp_path / "a.db", tmp_path / "www", tmp_path / "key")
    assert_clean_error(refused, ExitStatus.FAILURE, str(tmp_path / "a.db.releases" / "2026-W47.json"), "not readable",
                       "never published")
    assert not (tmp_path / "www").exists() and ledger_of(str(tmp_path / "a.db")).released_weeks() == []


def test_aggregate_while_serve_is_ingesting(db, tmp_path):
    """SQLite in WAL mode with a busy timeout, and PostgreSQL: aggregate reads and appends
    to the ledger while `serve` commits reports, and neither fails nor loses anything."""
    stored_week(db)
    statuses: list = []
    stop = threading.Event()
    with CollectorProcess(db, "--rate", "1000000") as collector:
        def ingest():
            deadline = time.monotonic() + 300
            while not stop.is_set() and time.monotonic() < deadline:
                statuses.append(post(collector, envelope(posted_site(len(statuses)), MODULE))[0])

        thread = threading.Thread(target=ingest)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while len(statuses) < 5 and time.monotonic() < deadline and thread.is_alive():
                time.sleep(0.01)
            assert len(statuses) >= 5, "serve did not ingest"
            posted_before = len(statuses)
            first = aggregate(db, tmp_path / "www", tmp_path / "key")
            second = aggregate(db, tmp_path / "www2", tmp_path / "key")
            posted_during = len(statuses) - posted_before
        finally:
            stop.set()
            thread.join(timeout=60)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert published(tmp_path / "www2") == published(tmp_path / "www")
    assert posted_during > 0 and set(statuses) == {200}, statuses
    assert open_store(db, columns(), read_only=True).count() == 300 + len(statuses)
    assert ledger_of(db).released_weeks() == ["2026-W47"]


def test_a_draw_after_an_early_release_is_recorded_before_its_rows_are_judged(db, tmp_path):
    """Review F6: after an early (forced) release, the release of the ended week was
    refused when it had no rows (--out holding the early release's) BEFORE it was
    recorded, so each cron retry drew again until a draw had rows: a release
    conditioned on its content, each refused draw spent and counted nowhere. Now
    the draw is in the ledger first; a rerun re-serves it (refused alike), never redraws."""
    store = stored_week(db, sites=300)
    out, key = tmp_path / "www", b"k" * 32
    early = publish_week(store, "2026-W47", Parameters(NO_NOISE, 1e-6), key, open_ledger(store), out, render_page,
                         force=True, week_ended=False)
    assert early.rows["modules"] == 2
    for _ in range(3):  # a k no noisy count reaches: the draw has no rows
        with pytest.raises(PublicationError, match="no rows"):
            publish_week(store, "2026-W47", Parameters(4.0, 1e-6, 2**31 - 1), key, open_ledger(store), out, render_page)
    releases = [(r["number"], r["complete"], any(json.loads(r["released_tables"]).values())) for r in store.query(
        "SELECT number, complete, released_tables FROM release_ledger ORDER BY number", {})]
    assert releases == [(1, False, True), (2, True, False)]  # main: only the early one — 3 draws, none recorded
    assert json.loads((out / "summary.json").read_text())["rows"]["modules"] == 2  # the early publication stays
