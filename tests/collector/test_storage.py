"""Both stores behave alike: SQLite by default, PostgreSQL for several collectors."""

from __future__ import annotations

import json
import threading

import pytest

from dropsonde.collector.storage import open_store

COLUMNS = ["modules", "environment_count"]


def row(n: int, when: str, version: str = "1.0.0", message: int = 0):
    return {"message_id": f"m{n}-{message}-{when}", "site_id": f"{n:0128x}", "product": "popularity-module", "version": "1.0.0",
            "timestamp": when, "ip": None, "environment_count": n,
            "modules": [{"name": "x", "slug": "a-x", "version": version}]}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "reports.db")
    postgres = request.getfixturevalue("postgres")
    name = f"collector_{abs(hash(str(tmp_path))) % 10**8}"
    postgres.psql(f"CREATE DATABASE {name}")
    return postgres.url(name)


def test_group_commit_from_many_threads_and_latest_per_site(db):
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
    assert store.count() == (200, 200)
    latest = list(store.latest_per_site("2026-11-23T00:00:00.000000+00:00", "2026-11-30T00:00:00.000000+00:00"))
    assert len(latest) == 20
    assert all(isinstance(r["modules"], list) and r["environment_count"] < 20 for r in latest)


def test_a_duplicate_message_id_fails_only_itself(db):
    store = open_store(db, COLUMNS)
    store.start_writer()
    store.insert(row(1, "2026-11-25T10:00:00.000000+00:00"))
    with pytest.raises(Exception):
        store.insert(row(1, "2026-11-25T10:00:00.000000+00:00"))
    store.insert(row(2, "2026-11-25T10:00:00.000000+00:00"))
    store.close()
    assert store.count() == (2, 2)


def test_new_plugin_columns_are_added_to_an_existing_store(db):
    open_store(db, ["modules"]).insert_many([{**row(1, "2026-11-25T10:00:00.000000+00:00"), "environment_count": None}])
    store = open_store(db, COLUMNS)
    store.insert_many([row(2, "2026-11-25T11:00:00.000000+00:00")])
    latest = {r["site_id"]: r for r in store.latest_per_site("2026-11-23", "2026-11-30")}
    assert latest[f"{2:0128x}"]["environment_count"] == 2
    assert latest[f"{1:0128x}"]["environment_count"] is None
    assert json.dumps(latest[f"{1:0128x}"]["modules"])


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


def test_an_existing_store_readable_by_others_is_made_private(tmp_path):
    path = tmp_path / "reports.db"
    open_store(str(path), COLUMNS)
    path.chmod(0o644)
    open_store(str(path), COLUMNS)
    assert path.stat().st_mode & 0o777 == 0o600
