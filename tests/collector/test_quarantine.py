"""Reports over --sites-per-source: kept apart, one row per week and site,
bounded per source, and pruned once their week can no longer be published
by default (#17.8: one client posting forever grew the store without bound)."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from dropsonde.collector.rate_limiter import RateLimiter, SiteVerdict
from dropsonde.collector.report_upsert import QUARANTINED
from dropsonde.collector.sql_dialect import dialect_for
from dropsonde.collector.storage import open_store
from tests.support.collector_process import MODULE, CollectorProcess, envelope, post, rows, site

COLUMNS = ["modules", "environment_count"]


def quarantined(n: int, when: datetime, message: int = 0) -> dict:
    """A report as the server hands it to the store when its source is over its cap."""
    return {"message_id": f"m{n}-{message}", "site_id": f"{n:0128x}", "product": "popularity-module",
            "version": "1.0.0", "timestamp": when.isoformat(timespec="microseconds"), "ip": None,
            "environment_count": message, "modules": MODULE, QUARANTINED: True}


FRIDAY_W48 = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


def test_a_thousand_over_cap_reports_of_one_site_keep_one_row_the_latest(db):
    store = open_store(db, COLUMNS, clock=lambda: FRIDAY_W48)
    for batch in range(10):
        store.insert_many([quarantined(1, FRIDAY_W48 + timedelta(seconds=batch * 100 + n), batch * 100 + n)
                           for n in range(100)])
    store.insert_many([quarantined(1, FRIDAY_W48 - timedelta(hours=1), 5000)])  # late and older: not kept
    kept = list(store.query("SELECT week, site_id, message_id, report FROM quarantined_reports", {}))
    assert [(r["week"], r["site_id"], r["message_id"]) for r in kept] == [("2026-W48", f"{1:0128x}", "m1-999")]
    assert json.loads(kept[0]["report"])["environment_count"] == 999
    assert store.count() == 0  # nothing of it among the reports that are published


def test_quarantined_rows_of_weeks_no_longer_published_by_default_are_pruned(db):
    """Kept: the current week and the last complete one (what `aggregate` publishes by
    default); older weeks' rows are deleted, on the store's clock, by the next write."""
    now = [FRIDAY_W48 - timedelta(weeks=2)]
    store = open_store(db, COLUMNS, clock=lambda: now[0])
    store.insert_many([quarantined(1, now[0])])  # 2026-W46
    now[0] = FRIDAY_W48 - timedelta(weeks=1)
    store.insert_many([quarantined(2, now[0])])  # 2026-W47: W46 is the last complete week, kept
    assert {r["week"] for r in store.query("SELECT week FROM quarantined_reports", {})} == {"2026-W46", "2026-W47"}
    now[0] = FRIDAY_W48
    store.insert_many([quarantined(3, now[0])])  # 2026-W48: W46 goes
    weeks = sorted(r["week"] for r in store.query("SELECT week FROM quarantined_reports", {}))
    assert weeks == ["2026-W47", "2026-W48"]
    now[0] = FRIDAY_W48 + timedelta(weeks=5)
    open_store(db, COLUMNS, clock=lambda: now[0])  # opening prunes too: a quiet collector keeps nothing old
    assert list(store.query("SELECT week FROM quarantined_reports", {})) == []


def test_a_store_with_one_quarantined_row_per_post_is_brought_to_one_per_week_and_site(db):
    """The layout before this one: message_id the key, every post a row."""
    connection = dialect_for(db).connect()
    connection.cursor().execute("CREATE TABLE quarantined_reports (message_id TEXT PRIMARY KEY, "
                                "site_id TEXT NOT NULL, received TEXT NOT NULL, report TEXT NOT NULL)")
    for n in range(50):
        when = (FRIDAY_W48 + timedelta(minutes=n)).isoformat(timespec="microseconds")
        connection.cursor().execute(dialect_for(db).sql(
            "INSERT INTO quarantined_reports VALUES (:message_id, :site_id, :received, :report)"),
            {"message_id": f"m{n}", "site_id": f"{n % 2:0128x}", "received": when, "report": f'{{"n": {n}}}'})
    connection.commit()
    connection.close()
    store = open_store(db, COLUMNS, clock=lambda: FRIDAY_W48)
    kept = list(store.query("SELECT week, site_id, message_id FROM quarantined_reports ORDER BY site_id", {}))
    assert [(r["week"], r["site_id"], r["message_id"]) for r in kept] == [
        ("2026-W48", f"{0:0128x}", "m48"), ("2026-W48", f"{1:0128x}", "m49")]


def test_one_source_quarantines_at_most_as_many_sites_as_it_may_count(tmp_path):
    limiter = RateLimiter(str(tmp_path / "rate.db"), 60, sites_per_week=2, clock=lambda: 1000.0).create()
    verdicts = [limiter.admit_site("2001:db8:7::1", site(n), "2026-W48") for n in range(6)]
    assert verdicts == [SiteVerdict.COUNTED] * 2 + [SiteVerdict.QUARANTINED] * 2 + [SiteVerdict.DISCARDED] * 2
    assert limiter.admit_site("2001:db8:7:1::5", site(0), "2026-W48") is SiteVerdict.COUNTED  # the same /48
    assert limiter.admit_site("2001:db8:7::1", site(3), "2026-W48") is SiteVerdict.QUARANTINED  # again, replaced
    assert limiter.admit_site("2001:db8:7::1", site(5), "2026-W49") is SiteVerdict.COUNTED  # a new week


def test_one_client_posting_over_its_cap_for_ever_keeps_a_bounded_quarantine(tmp_path):
    """HTTP end to end: 1,000 over-cap posts for one site keep one row; new site ids
    beyond twice the cap are answered alike and not stored at all."""
    with CollectorProcess(str(tmp_path / "r.db"), "--sites-per-source", "2", "--rate", "1000000") as collector:
        answers = {post(collector, envelope(site(n), MODULE)) for n in (0, 1)}
        answers |= {post(collector, envelope(site(5), MODULE)) for _ in range(1000)}
        answers |= {post(collector, envelope(site(n), MODULE)) for n in range(6, 40)}
        counted = rows(collector.db, "SELECT site_id FROM site_weeks")
        kept_apart = rows(collector.db, "SELECT site_id FROM quarantined_reports")
    assert len(answers) == 1 and next(iter(answers))[0] == 200  # every post answered alike
    assert sorted(counted) == sorted((site(n),) for n in (0, 1))
    assert sorted(kept_apart) == sorted((site(n),) for n in (5, 6))


def published_sites(limiter: RateLimiter, arrivals) -> set:
    """The sites the publication counts after ``arrivals`` ((source, site) in order):
    those with a report COUNTED (a quarantined later report never replaces it)."""
    return {site_id for source, site_id in arrivals
            if limiter.admit_site(source, site_id, "2026-W48") is SiteVerdict.COUNTED}


def test_a_site_reporting_from_many_sources_keeps_at_most_one_other_site_out(tmp_path):
    """Review F4: V reporting from three full sources took a slot in each and kept
    three honest sites out of the publication (a group of four for V's guarantee).
    A site counted by one source now takes no slot in another."""
    honest = [("192.0.2.1", site(1)), ("192.0.2.2", site(2)), ("192.0.2.3", site(3))]
    victim = [(source, site(0)) for source, _ in honest]
    without = published_sites(RateLimiter(str(tmp_path / "a.db"), 60, sites_per_week=1).create(), honest)
    with_victim = published_sites(RateLimiter(str(tmp_path / "b.db"), 60, sites_per_week=1).create(), victim + honest)
    assert without == {site(1), site(2), site(3)}
    assert with_victim == {site(0), site(2), site(3)}  # main: {site(0)}


@settings(max_examples=150, deadline=None)
@given(arrivals=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6)), max_size=24),
       positions=st.lists(st.tuples(st.integers(0, 24), st.integers(0, 3)), min_size=1, max_size=4),
       cap=st.integers(1, 3))
def test_adding_one_sites_reports_changes_the_counted_sites_by_at_most_two(arrivals, positions, cap):
    """The bound README states (a group of two): whatever the others send, in any
    order, from any sources, adding all of one site's reports (anywhere in the
    sequence, from any sources) changes the set of counted sites by that site and
    at most one other."""
    others = [(f"192.0.2.{source}", site(n)) for source, n in arrivals]
    with_victim = list(others)
    for position, source in sorted(positions, reverse=True):
        with_victim.insert(min(position, len(with_victim)), (f"192.0.2.{source}", site(0)))
    with tempfile.TemporaryDirectory() as scratch:
        without = published_sites(RateLimiter(f"{scratch}/a.db", 60, sites_per_week=cap).create(), others)
        added = published_sites(RateLimiter(f"{scratch}/b.db", 60, sites_per_week=cap).create(), with_victim)
    assert len((without ^ added) - {site(0)}) <= 1, (without, added)
