"""A store written by an earlier release is migrated through the allowlist
serve starts with, or not at all (#17.8: the migration published whatever
the old store held)."""

from __future__ import annotations

import pytest

from dropsonde.collector.allowlist import Allowlist
from dropsonde.collector.storage import StoreError, open_store

COLUMNS = ["modules", "classes", "environment_count"]
ALLOWLIST = Allowlist(["puppetlabs-ntp"], {"puppetlabs-ntp": {"10.0.0": ["ntp", "ntp::config"]}})
NTP = [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "10.0.0"}]


def row(n: int, modules=NTP, classes=({"name": "ntp::config", "count": 2},)) -> dict:
    return {"message_id": f"m{n}", "site_id": f"{n:0128x}", "product": "popularity-module", "version": "1.0.0",
            "timestamp": "2026-11-25T10:00:00.000000+00:00", "ip": None, "environment_count": n,
            "modules": modules, "classes": list(classes)}


def earlier_release_store(db: str, reports: list) -> None:
    """Reports stored as an earlier release did: raw rows only, no narrow rows."""
    store = open_store(db, COLUMNS)
    store.insert_many(reports)
    connection = store.connect()
    for table in ("site_weeks", "site_week_modules", "site_week_classes"):
        connection.cursor().execute(f"DELETE FROM {table}")
    connection.commit()
    connection.close()


def published(db: str, table: str, column: str) -> set:
    """What the weekly queries would read (they read the narrow tables only)."""
    return {r[column] for r in open_store(db, COLUMNS, read_only=True).query(f"SELECT {column} FROM {table}", {})}


def test_rows_the_allowlist_refuses_are_not_migrated(db):
    invented_class = row(2, classes=[{"name": "ntp::buy_cheap_pills", "count": 9}])
    invented_version = row(3, modules=[{"name": "ntp", "slug": "puppetlabs-ntp", "version": "77.7.7"}])
    unlisted = row(4, modules=[{"name": "x", "slug": "phish-visit_example", "version": "1.0.0"}])
    earlier_release_store(db, [row(1), invented_class, invented_version, unlisted])
    store = open_store(db, COLUMNS, allowlist=ALLOWLIST)
    assert published(db, "site_weeks", "site_id") == {f"{1:0128x}"}
    assert published(db, "site_week_classes", "name") == {"ntp::config"}
    assert published(db, "site_week_modules", "version") == {"10.0.0"}
    assert [r["message_id"] for r in store.query("SELECT message_id FROM reports", {})] == ["m1"]


def test_an_earlier_release_store_is_not_migrated_without_an_allowlist(db):
    earlier_release_store(db, [row(1), row(2, classes=[{"name": "ntp::buy_cheap_pills", "count": 9}])])
    with pytest.raises(StoreError, match="checked against the collector.s allowlist"):
        open_store(db, COLUMNS)
    assert published(db, "site_weeks", "site_id") == set()


def unchecked_store(db: str, reports: list) -> None:
    """Reports stored and normalized by a release that did not check them against
    release evidence (any class under a listed namespace, any X.Y.Z), before the
    narrow table of module platforms existed: no record that its reports were checked."""
    store = open_store(db, COLUMNS + ["class_platforms"])
    store.insert_many(reports)
    connection = store.connect()
    connection.cursor().execute("DELETE FROM store_upgrades")
    connection.cursor().execute("DROP TABLE site_week_module_platforms")
    connection.commit()
    connection.close()


def test_what_an_earlier_release_normalized_unchecked_is_checked_once_and_refused_rows_unpublished(db):
    """Item 3: a store whose narrow rows were filled before the release-evidence allowlist
    published them as they were, and the new module-platforms table was filled from them too."""
    pills = [{"name": "ntp::buy_cheap_pills", "count": 9}]
    invented = [row(1, classes=[{"name": "ntp", "count": 1}]), row(2, classes=pills),
                row(3, modules=[{"name": "ntp", "slug": "puppetlabs-ntp", "version": "77.7.7"}])]
    for report in invented:
        report["class_platforms"] = [{"name": report["classes"][0]["name"], "platform": "Debian", "count": 5}]
    unchecked_store(db, invented)
    with pytest.raises(StoreError, match="checked against the collector.s allowlist"):
        open_store(db, COLUMNS + ["class_platforms"])
    store = open_store(db, COLUMNS + ["class_platforms"], allowlist=ALLOWLIST)
    assert published(db, "site_weeks", "site_id") == {f"{1:0128x}"}
    assert published(db, "site_week_classes", "name") == {"ntp"}
    assert published(db, "site_week_modules", "version") == {"10.0.0"}
    assert published(db, "site_week_module_platforms", "nodes") == {5}
    assert list(store.query("SELECT COUNT(*) AS n FROM site_week_module_platforms", {})) == [{"n": 1}]
    assert [r["message_id"] for r in store.query("SELECT message_id FROM reports", {})] == ["m1"]
    open_store(db, COLUMNS + ["class_platforms"])  # checked once: no allowlist needed to open it again


def test_a_migrated_store_publishes_none_of_what_the_allowlist_refuses(tmp_path):
    """End to end: 100 sites of an earlier release's store report an invented class
    and 100 an invented version; once migrated and published (with next to no
    noise), neither appears, while what the allowlist accepts is published."""
    from dropsonde.collector.allowlist import Allowlist
    from tests.support.cli import run_dropsonde
    from tests.support.collector_reports import NO_NOISE, WEEK

    db = str(tmp_path / "old.db")
    pills = [{"name": "ntp::buy_cheap_pills", "count": 9}]
    invented = [row(1000 + n, classes=pills) for n in range(100)]
    invented += [row(2000 + n, modules=[{"name": "ntp", "slug": "puppetlabs-ntp", "version": "77.7.7"}])
                 for n in range(100)]
    earlier_release_store(db, [row(n) for n in range(100)] + invented)
    open_store(db, allowlist=Allowlist(ALLOWLIST.slugs, {"puppetlabs-ntp": {"10.0.0": ["ntp", "ntp::config"]}}))
    out = tmp_path / "out"
    result = run_dropsonde("collector", "aggregate", "--db", db, "--out", str(out), "--week", WEEK,
                           "--epsilon", str(NO_NOISE))
    assert result.returncode == 0, result.stderr
    published = "".join(path.read_text() for path in out.rglob("*.json"))
    assert "ntp::config" in published and "10.0.0" in published  # the accepted ones are
    assert "buy_cheap_pills" not in published and "77.7.7" not in published
