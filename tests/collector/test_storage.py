"""Both stores behave alike: SQLite by default, PostgreSQL for several collectors."""

from __future__ import annotations

import json
import threading

import pytest

from dropsonde.collector.allowlist import Allowlist
from dropsonde.collector.storage import open_store

COLUMNS = ["modules", "environment_count"]


def row(n: int, when: str, version: str = "1.0.0", message: int = 0):
    return {"message_id": f"m{n}-{message}-{when}", "site_id": f"{n:0128x}", "product": "popularity-module", "version": "1.0.0",
            "timestamp": when, "ip": None, "environment_count": n,
            "modules": [{"name": "x", "slug": "a-x", "version": version}]}


def test_group_commit_from_many_threads_keeps_each_sites_latest_report_of_the_week(db):
    store = open_store(db, COLUMNS)
    store.start_writer()
    errors = []

    def insert(n: int) -> None:
        try:
            store.insert(row(n % 20, f"2026-11-2{n % 3 + 3}T10:00:{n % 60:02d}.000000+00:00", f"1.0.{n}", message=n))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert errors == []
    assert store.count() == 20  # one raw report per site and week: the newest
    newest = {}
    for n in range(200):
        when = f"2026-11-2{n % 3 + 3}T10:00:{n % 60:02d}.000000+00:00"
        newest[f"{n % 20:0128x}"] = max(newest.get(f"{n % 20:0128x}", ("", "")), (when, f"1.0.{n}"))
    kept = list(store.query("SELECT w.site_id, w.received, m.version FROM site_weeks AS w JOIN site_week_modules "
                            "AS m ON m.site_week = w.id WHERE w.week = :week", {"week": "2026-W48"}))
    assert {r["site_id"]: (r["received"], r["version"]) for r in kept} == newest and len(kept) == 20


def test_a_duplicate_message_id_fails_only_itself(db):
    store = open_store(db, COLUMNS)
    store.start_writer()
    store.insert(row(1, "2026-11-25T10:00:00.000000+00:00"))
    with pytest.raises(Exception):
        store.insert(row(1, "2026-11-25T10:00:00.000000+00:00"))
    store.insert(row(2, "2026-11-25T10:00:00.000000+00:00"))
    store.close()
    assert store.count() == 2


def test_new_plugin_columns_are_added_to_an_existing_store(db):
    open_store(db, ["modules"]).insert_many([{**row(1, "2026-11-25T10:00:00.000000+00:00"), "environment_count": None}])
    store = open_store(db, COLUMNS)
    store.insert_many([row(2, "2026-11-25T11:00:00.000000+00:00")])
    latest = {r["site_id"]: r for r in store.query("SELECT * FROM site_weeks", {})}
    assert latest[f"{2:0128x}"]["environment_count"] == 2
    assert latest[f"{1:0128x}"]["environment_count"] is None
    stored = list(store.query("SELECT modules FROM reports WHERE site_id = :site", {"site": f"{1:0128x}"}))
    assert json.loads(stored[0]["modules"])[0]["slug"] == "a-x"


def test_a_late_older_report_does_not_replace_the_newer_one_and_counts_are_clamped(db):
    store = open_store(db, ["modules", "classes", "environment_count"])
    newer = {**row(1, "2026-11-26T10:00:00.000000+00:00", "2.0.0"), "environment_count": -4,
             "classes": [{"name": "x", "count": 10**40}, {"name": "x", "count": 3}, {"name": "y", "count": -9}]}
    store.insert_many([newer, row(1, "2026-11-25T10:00:00.000000+00:00", "1.0.0"),
                       row(1, "2026-12-01T10:00:00.000000+00:00", "3.0.0")])  # the last one is next week's
    versions = list(store.query("SELECT week, version FROM site_week_modules ORDER BY week", {}))
    assert versions == [{"week": "2026-W48", "version": "2.0.0"}, {"week": "2026-W49", "version": "3.0.0"}]
    classes = list(store.query("SELECT name, nodes FROM site_week_classes WHERE week = :week ORDER BY name",
                               {"week": "2026-W48"}))
    assert classes == [{"name": "x", "nodes": 10**9}, {"name": "y", "nodes": 0}]
    assert [r["environment_count"] for r in store.query("SELECT * FROM site_weeks ORDER BY week", {})] == [0, 1]


def test_only_the_latest_raw_report_of_a_site_and_week_is_kept(db):
    """F5: every report was kept forever, so one address could fill the disk by resending."""
    store = open_store(db, COLUMNS)
    store.insert_many([row(1, "2026-11-25T10:00:00.000000+00:00", "1.0.0", message=1)])
    store.insert_many([row(1, "2026-11-26T10:00:00.000000+00:00", "2.0.0", message=2)])  # supersedes message 1
    store.insert_many([row(1, "2026-11-24T10:00:00.000000+00:00", "0.1.0", message=3)])  # late and older: not kept
    store.insert_many([row(1, "2026-11-30T10:00:00.000000+00:00", "3.0.0", message=4),  # next week: kept too
                       row(2, "2026-11-25T10:00:00.000000+00:00", "1.0.0", message=5)])  # another site: kept
    kept = [r["message_id"] for r in store.query("SELECT message_id FROM reports ORDER BY message_id", {})]
    assert [m.split("-", 2)[:2] for m in kept] == [["m1", "2"], ["m1", "4"], ["m2", "5"]]
    assert sorted(r["message_id"] for r in store.query("SELECT message_id FROM site_weeks", {})) == kept


def test_the_sqlite_store_and_its_wal_are_private_to_the_collector(tmp_path):
    path = tmp_path / "reports.db"
    store = open_store(str(path), COLUMNS)
    store.start_writer()
    store.insert(row(1, "2026-11-25T10:00:00.000000+00:00"))
    files = sorted(tmp_path.iterdir())
    modes = {f.name: f.stat().st_mode & 0o777 for f in files}
    store.close()
    assert {"reports.db", "reports.db-wal", "reports.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_an_existing_store_readable_by_others_is_made_private(tmp_path, mode):
    """#17.14: a store readable by its group (0640) was left so."""
    path = tmp_path / "reports.db"
    open_store(str(path), COLUMNS)
    for name in ("reports.db", "reports.db-wal", "reports.db-shm"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(mode)
    open_store(str(path), COLUMNS)
    assert {f.name: f.stat().st_mode & 0o777 for f in tmp_path.iterdir()} == \
        {f.name: 0o600 for f in tmp_path.iterdir()}


def test_every_sqlite_commit_is_synchronous_full(tmp_path, monkeypatch):
    """#17.14: with WAL, synchronous=NORMAL may lose acknowledged reports on power loss.
    This SQLite's build defaults to FULL; some builds default WAL databases to NORMAL
    (SQLITE_DEFAULT_WAL_SYNCHRONOUS=1): such a build is played here, so the test also
    fails if the store stops asking for FULL itself."""
    import sqlite3

    real_connect = sqlite3.connect

    def normal_by_default(*args, **kwargs):
        connection = real_connect(*args, **kwargs)
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    monkeypatch.setattr(sqlite3, "connect", normal_by_default)
    store = open_store(str(tmp_path / "r.db"), COLUMNS)
    connection = store.connect()
    try:
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_a_store_from_before_the_narrow_tables_gets_them_filled_on_open(db):
    store = open_store(db, COLUMNS)
    store.insert_many([row(n, "2026-11-25T10:00:00.000000+00:00", f"1.0.{n}") for n in range(3)])
    connection = store.connect()
    for table in ("site_weeks", "site_week_modules"):
        connection.cursor().execute(f"DELETE FROM {table}")  # as a store written by the previous release
    connection.commit()
    connection.close()
    allowlist = Allowlist(["a-x"], {"a-x": {f"1.0.{n}": [] for n in range(3)}})
    reopened = open_store(db, COLUMNS, allowlist=allowlist)  # the migration checks what it publishes
    versions = list(reopened.query("SELECT version FROM site_week_modules ORDER BY version", {}))
    assert versions == [{"version": "1.0.0"}, {"version": "1.0.1"}, {"version": "1.0.2"}]
    assert [r["environment_count"] for r in reopened.query("SELECT * FROM site_weeks ORDER BY id", {})] == [0, 1, 2]


def test_a_narrow_table_added_by_an_upgrade_is_filled_from_the_kept_reports(db):
    """site_week_module_platforms is new: a store from before it gets it filled, on open, from each
    site-week's kept raw report, so the weeks stored before the upgrade publish module platforms too."""
    columns = COLUMNS + ["class_platforms"]
    store = open_store(db, columns)
    store.insert_many([{**row(n, "2026-11-25T10:00:00.000000+00:00", message=m),
                        "class_platforms": [{"name": "x::y", "platform": family, "count": 10 * n + m}]}
                       for n in range(3) for m, family in enumerate(("Debian", "RedHat"))])  # the RedHat one is kept
    connection = store.connect()
    connection.cursor().execute("DROP TABLE site_week_module_platforms")  # as a store of the previous release
    connection.commit()
    connection.close()
    reopened = open_store(db, columns)
    rows = list(reopened.query("SELECT slug, platform, nodes FROM site_week_module_platforms ORDER BY nodes", {}))
    assert rows == [{"slug": "a-x", "platform": "RedHat", "nodes": 10 * n + 1} for n in range(3)]
    assert list(open_store(db, columns).query("SELECT COUNT(*) AS n FROM site_week_module_platforms", {})) == [{"n": 3}]


def test_an_open_killed_between_creating_a_new_table_and_filling_it_fills_it_next_time(db):
    """The table used to be filled only by the open that created it: killed between the two, the next
    open found it present and left it empty for good. What is owed is recorded before the table exists."""
    from dropsonde.collector.store_migration import missing_tables, owe_fills
    from dropsonde.collector.store_schema import create_tables

    columns = COLUMNS + ["class_platforms"]
    store = open_store(db, columns)
    store.insert_many([{**row(n, "2026-11-25T10:00:00.000000+00:00"),
                        "class_platforms": [{"name": "x::y", "platform": "Debian", "count": n + 1}]} for n in range(3)])
    connection = store.connect()
    connection.cursor().execute("DROP TABLE site_week_module_platforms")  # as a store of the previous release
    connection.commit()
    owe_fills(store.dialect, connection, missing_tables(store.dialect, connection))  # what the killed open did
    create_tables(store.dialect, connection, columns)
    connection.close()
    assert list(store.query("SELECT COUNT(*) AS n FROM site_week_module_platforms", {})) == [{"n": 0}]
    reopened = open_store(db, columns)
    assert [r["nodes"] for r in reopened.query("SELECT nodes FROM site_week_module_platforms ORDER BY nodes", {})] \
        == [1, 2, 3]
    assert list(reopened.query("SELECT name FROM store_upgrades WHERE name LIKE 'fill %'", {})) == []


def test_the_abstract_bases_cannot_be_made():
    from dropsonde.collector.sql_dialect import Dialect
    from dropsonde.collector.storage import Store

    with pytest.raises(TypeError):
        Store([])
    with pytest.raises(TypeError):
        Dialect()  # type: ignore[abstract]


def test_the_reports_table_is_declared_once():
    from pathlib import Path

    import dropsonde

    package = Path(dropsonde.__file__).parent
    declared = [path.name for path in package.rglob("*.py")
                if "CREATE TABLE IF NOT EXISTS reports" in path.read_text(encoding="utf-8")]
    assert declared == ["store_schema.py"]


def test_a_query_stops_when_it_is_interrupted(tmp_path):
    import sqlite3

    store = open_store(str(tmp_path / "r.db"), COLUMNS)
    calls = []

    def interrupted() -> bool:
        calls.append(1)
        return len(calls) > 3

    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) AS c FROM n"
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        list(store.query(endless, {}, interrupted))
    assert len(calls) == 4
