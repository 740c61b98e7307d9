"""The attacks of issue 17 on the published dataset, as an outside reviewer ran them.

* Crafted sites (Sybils), end to end over HTTP through the real collector: one
  client invents sites so that a row naming a victim's rare module R sits right
  at the publication threshold; whether the row appears must then be (nearly)
  as likely whether or not the victim uses X. On the old code (HAVING on the
  true count) the row appeared exactly when the victim used X.
* Republication: another --epsilon on the same week gave back exact values
  (2*y2 - y1); deleting the noise key silently republished with fresh noise.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3

import pytest

from dropsonde.collector.aggregate import Parameters, release_week
from dropsonde.collector.budget import DEFAULT_DELTA, DEFAULT_EPSILON, plan_budget
from dropsonde.collector.noise import selection_mechanism
from dropsonde.collector.queries import Ranking, load_queries
from dropsonde.collector.storage import open_store
from dropsonde.errors import ExitStatus
from tests.support.cli import assert_clean_error, run_dropsonde
from tests.support.collector_process import FORGE_MODULES, CollectorProcess, envelope, write_forge_cache
from tests.support.collector_reports import columns, report

RARE, SECRET = "victim-rare", "victim-secret"
RELEASES = 300  # per world: enough to see a membership advantage of 0.15 at 4 standard errors


def sybil_id(n: int) -> str:
    return hashlib.sha512(f"sybil{n}".encode()).hexdigest()


def pair_threshold() -> int:
    """What the attacker reads in summary.json: the pairs' noisy-count threshold at the defaults."""
    budget = plan_budget(DEFAULT_EPSILON, DEFAULT_DELTA)
    pairs = {q.name: q for q in load_queries()}["module_pairs"]
    return selection_mechanism("module_pairs", budget.share("module_pairs"), pairs.rows_per_site, 5).threshold


def world(tmp_path, name: str, victim_uses_secret: bool) -> str:
    """The store after the attack: threshold - 1 invented sites report R and X, so the
    pair (R, X) has exactly the threshold's count if the victim uses X too."""
    forge = write_forge_cache(tmp_path / f"{name}-forge", FORGE_MODULES + [RARE, SECRET])
    db = tmp_path / f"{name}.db"
    modules = [{"name": "rare", "slug": RARE, "version": "1.0.0"}, {"name": "secret", "slug": SECRET, "version": "1.0.0"}]
    victim = [modules[0], {"name": "ntp", "slug": "puppetlabs-ntp", "version": "10.0.0"}]
    if victim_uses_secret:
        victim.append(modules[1])
    import http.client

    with CollectorProcess(str(db), "--rate", "100000", "--forge-cache", str(forge)) as collector:
        bodies = [envelope(sybil_id(n), modules) for n in range(pair_threshold() - 1)]
        bodies.append(envelope(hashlib.sha512(b"the victim").hexdigest(), victim))
        for body in bodies:
            connection = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
            connection.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200, response.read()
            connection.close()
    return str(db)


def publication_rates(db: str, releases: int):
    """How often each row naming R or X is published, over ``releases`` fresh releases."""
    with sqlite3.connect(db) as connection:
        (week,), = connection.execute("SELECT DISTINCT week FROM site_weeks").fetchall()
    store = open_store(db, columns(), read_only=True)
    budget = plan_budget(DEFAULT_EPSILON, DEFAULT_DELTA)
    queries = load_queries()
    seen: dict = {}
    for _ in range(releases):
        tables, _ = release_week(store, week, Parameters(DEFAULT_EPSILON, DEFAULT_DELTA), budget, queries, Ranking())
        for name, rows in tables.items():
            for row in rows:
                keys = tuple(str(v) for k, v in row.items() if k not in ("sites", "nodes", "calls"))
                if RARE in keys or SECRET in keys:
                    seen[(name, keys)] = seen.get((name, keys), 0) + 1
    return {key: count / releases for key, count in seen.items()}


def test_crafted_sites_cannot_tell_whether_the_victim_uses_a_module(tmp_path):
    """The membership advantage stays within e^epsilon * P + delta, with statistical slack
    (4 standard errors); and in fact far below it: the row is noise-dominated."""
    with_secret = publication_rates(world(tmp_path, "with", True), RELEASES)
    without = publication_rates(world(tmp_path, "without", False), RELEASES)
    pair = ("module_pairs", (RARE, SECRET))
    assert 0.2 < with_secret.get(pair, 0) < 0.8  # the attack puts the row right at the threshold
    slack = 4 * math.sqrt(0.25 / RELEASES)
    bound = math.exp(DEFAULT_EPSILON)
    for key in set(with_secret) | set(without):
        p1, p0 = with_secret.get(key, 0.0), without.get(key, 0.0)
        assert p1 <= bound * p0 + DEFAULT_DELTA + slack and p0 <= bound * p1 + DEFAULT_DELTA + slack, key
        assert abs(p1 - p0) < 0.15, (key, p1, p0)  # with HAVING on true counts: 1.0 against 0.0


@pytest.fixture
def published_week(tmp_path):
    store = open_store(str(tmp_path / "a.db"), columns())
    when = "2026-11-18T10:00:00.000000+00:00"  # 2026-W47
    store.insert_many([report(n, [("a-x", "1.0.0"), ("b-y", "2.0.0")], when=when, classes=[
        {"name": "x", "count": 7}], environment_count=3) for n in range(300)])
    out = tmp_path / "www"

    def aggregate(*extra):
        return run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(out),
                             "--week", "2026-W47", *extra)

    first = aggregate()
    assert first.returncode == 0, first.stderr
    return aggregate, out


def files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_republishing_with_another_epsilon_is_refused_unless_forced_and_then_counted(published_week):
    """2*y2 - y1 gave back exact values when the same noise was scaled by another epsilon."""
    aggregate, out = published_week
    before = files(out)
    assert aggregate().returncode == 0
    assert files(out) == before  # the same parameters: the recorded release, re-served
    refused = aggregate("--epsilon", "2")
    assert_clean_error(refused, ExitStatus.USAGE, "--week 2026-W47", "already released with other parameters", "budget", "--force")
    assert files(out) == before
    forced = aggregate("--epsilon", "2", "--force")
    assert forced.returncode == 0, forced.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["privacy"]["releases_of_this_week"] == 2
    assert summary["epsilon"] == pytest.approx(DEFAULT_EPSILON + 2) and summary["delta"] == pytest.approx(2 * DEFAULT_DELTA)
    assert "released 2 times" in (out / "index.html").read_text()


def test_a_new_noise_key_does_not_silently_republish_a_week(published_week, tmp_path):
    aggregate, out = published_week
    before = files(out)
    key = tmp_path / "a.db.noise-key"
    recorded = json.loads((out / "summary.json").read_text())["noise_key"]
    key.unlink()  # no new key is made where weeks were released: it would release them again
    assert_clean_error(aggregate(), ExitStatus.USAGE, f"--noise-key {key}", "no such key", "released weeks (2026-W47)")
    assert_clean_error(aggregate("--force"), ExitStatus.USAGE, f"--noise-key {key}", "no such key")  # never
    assert not key.exists()
    other = tmp_path / "elsewhere" / "key"  # another key path: the store's ledger still knows the week
    other.parent.mkdir()
    assert_clean_error(aggregate("--noise-key", str(other)), ExitStatus.USAGE, "--noise-key", "no such key")
    other.write_bytes(b"o" * 32)  # a key the operator made: the week is still refused without --force
    other.chmod(0o600)
    assert_clean_error(aggregate("--noise-key", str(other)), ExitStatus.USAGE, "--week 2026-W47",
                       "other parameters or another noise key", "noise key", "--force")
    assert files(out) == before
    assert json.loads((out / "summary.json").read_text())["noise_key"] == recorded
    forced = aggregate("--noise-key", str(other), "--force")  # the earlier release still counts
    assert forced.returncode == 0, forced.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["noise_key"] != recorded and summary["privacy"]["releases_of_this_week"] == 2
    assert summary["epsilon"] == pytest.approx(2 * DEFAULT_EPSILON)


def test_another_output_directory_gets_the_same_release(published_week, tmp_path):
    """Reviewer: a new --out drew fresh noise (30 releases averaged to 250.37 +- 2.74 of 250)."""
    aggregate, out = published_week
    before = {name: data for name, data in files(out).items() if name.endswith(".json")}
    other = tmp_path / "other-www"
    done = run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(other),
                         "--week", "2026-W47")
    assert done.returncode == 0, done.stderr
    assert {name: data for name, data in files(other).items() if name.endswith(".json")} == before


def test_a_release_forced_before_the_week_ended_is_released_again_after_it_and_counted(tmp_path):
    """Reviewer: an early --force release froze the week (200 sites then +800, still 222 published)."""
    from dropsonde.collector.aggregate import publish_week
    from dropsonde.collector.release_ledger import open_ledger
    from dropsonde.collector.render import render_page

    store = open_store(str(tmp_path / "a.db"), columns())
    when = "2026-11-18T10:00:00.000000+00:00"
    store.insert_many([report(n, [("a-x", "1.0.0")], when=when) for n in range(200)])
    records, out, parameters = open_ledger(store), tmp_path / "www", Parameters(1e9, 1e-6)
    early = publish_week(store, "2026-W47", parameters, b"k" * 32, records, out, render_page, True, week_ended=False)
    store.insert_many([report(n, [("a-x", "1.0.0")], when=when) for n in range(200, 1000)])
    assert publish_week(store, "2026-W47", parameters, b"k" * 32, records, out, render_page, False,
                        week_ended=False).sites == early.sites == 200  # still the week: re-served
    final = publish_week(store, "2026-W47", parameters, b"k" * 32, records, out, render_page, False, week_ended=True)
    assert final.sites == 1000 and len(final.spent) == 2
    again = publish_week(store, "2026-W47", parameters, b"k" * 32, records, out, render_page, False, week_ended=True)
    assert again.sites == 1000 and len(again.spent) == 2  # complete now: re-served


def test_summary_and_page_state_the_weeks_budget(published_week):
    _, out = published_week
    summary = json.loads((out / "summary.json").read_text())
    privacy = summary["privacy"]
    assert privacy["unit"] == "one site for one week"
    assert (privacy["epsilon"], privacy["delta"]) == (DEFAULT_EPSILON, DEFAULT_DELTA)
    assert set(privacy["plan"]) >= {q.name for q in load_queries()} | {"classes.sum", "puppetfile_methods.sum"}
    assert sum(share["rho"] for share in privacy["plan"].values()) == pytest.approx(privacy["rho"])
    assert set(privacy["mechanisms"]) == set(privacy["plan"])  # each share says how it was spent (a sum overwrote its count)
    assert privacy["mechanisms"]["modules"]["threshold"] > 5 and privacy["mechanisms"]["modules"]["noise_sd"] > 1
    assert privacy["mechanisms"]["classes"]["threshold"] > 5 and privacy["mechanisms"]["classes.sum"]["clip"] == 100
    page = (out / "index.html").read_text()
    assert f"&epsilon; = {DEFAULT_EPSILON:g}" in page and f"&delta; = {DEFAULT_DELTA:g}" in page
    assert "for each site and week" in page
    # review 2 F4: behind a full source a site can keep one other out: the guarantee of a group of two
    shared = privacy["shared_source"]
    assert shared["group"] == 2 and shared["epsilon"] == 2 * DEFAULT_EPSILON
    assert shared["delta"] == pytest.approx((1 + math.exp(DEFAULT_EPSILON)) * DEFAULT_DELTA)
    assert f"a group of two sites: &epsilon; = {2 * DEFAULT_EPSILON:g}" in page


def test_a_copy_of_the_store_carries_its_ledger_whatever_key_path_or_files_beside_it(published_week, tmp_path):
    """Issue 17 item 4 (ledger): the ledger was files beside the store, so a copy of the
    store file alone, aggregated with a fresh key path, released the week again with
    fresh noise. It is in the store now: the copy refuses, with or without the files."""
    import shutil

    _, out = published_week
    copy = tmp_path / "elsewhere" / "copy.db"
    copy.parent.mkdir()
    shutil.copyfile(tmp_path / "a.db", copy)

    def aggregate_copy(*extra):
        return run_dropsonde("collector", "aggregate", "--db", str(copy), "--out", str(tmp_path / "copy-www"),
                             "--week", "2026-W47", *extra)

    fresh = tmp_path / "elsewhere" / "fresh-key"
    assert_clean_error(aggregate_copy("--noise-key", str(fresh)), ExitStatus.USAGE, f"--noise-key {fresh}",
                       "no such key", "released")
    assert not fresh.exists()
    default = tmp_path / "elsewhere" / "copy.db.noise-key"  # the copy's default key path: none made there either
    assert_clean_error(aggregate_copy(), ExitStatus.USAGE, f"--noise-key {default}", "no such key")
    assert not default.exists()
    shutil.rmtree(tmp_path / "a.db.releases", ignore_errors=True)  # the old ledger directory, gone: still refused
    other = tmp_path / "elsewhere" / "other-key"
    other.write_bytes(b"o" * 32)
    other.chmod(0o600)
    assert_clean_error(aggregate_copy("--noise-key", str(other)), ExitStatus.USAGE, "--week 2026-W47",
                       "another noise key", "--force")
    assert not (tmp_path / "copy-www").exists()


def test_a_deleted_ledger_directory_neither_redraws_nor_refuses_the_week(published_week, tmp_path):
    """rm -r DB.releases, then a new --out: the old code drew the week again with fresh noise.
    The store's own ledger re-serves the same rows."""
    import shutil

    _, out = published_week
    shutil.rmtree(tmp_path / "a.db.releases", ignore_errors=True)
    other = tmp_path / "other-www"
    done = run_dropsonde("collector", "aggregate", "--db", str(tmp_path / "a.db"), "--out", str(other), "--week", "2026-W47")
    assert done.returncode == 0, done.stderr
    assert files(other)["modules.json"] == files(out)["modules.json"]
    assert files(other)["classes.json"] == files(out)["classes.json"]  # noisy node sums: a fresh draw would differ


def test_a_postgresql_store_refuses_a_fresh_key_path_and_counts_a_forced_release(tmp_path, postgres):
    """With PostgreSQL the ledger was beside the key: a fresh --noise-key path (and another
    --out) found no ledger and released the week again, its budget counted from zero."""
    postgres.psql("CREATE DATABASE ledger_fresh_key")
    url = postgres.url("ledger_fresh_key")
    open_store(url, columns()).insert_many([report(n, [("a-x", "1.0.0")], when="2026-11-18T10:00:00.000000+00:00")
                                            for n in range(300)])

    def aggregate(key, out, *extra):
        return run_dropsonde("collector", "aggregate", "--db", url, "--out", str(tmp_path / out), "--week", "2026-W47",
                             "--noise-key", str(tmp_path / key), *extra)

    first = aggregate("key", "www")  # the store's first release makes its key, without --force
    assert first.returncode == 0, first.stderr
    fresh = tmp_path / "fresh-key"
    assert_clean_error(aggregate("fresh-key", "www2"), ExitStatus.USAGE, f"--noise-key {fresh}", "no such key")
    assert_clean_error(aggregate("fresh-key", "www2", "--force"), ExitStatus.USAGE, f"--noise-key {fresh}",
                       "no such key")  # a store with released weeks never gets a new key
    assert not fresh.exists()
    fresh.write_bytes(b"f" * 32)
    fresh.chmod(0o600)
    assert_clean_error(aggregate("fresh-key", "www2"), ExitStatus.USAGE, "--week 2026-W47", "another noise key",
                       "--force")
    assert not (tmp_path / "www2").exists()
    forced = aggregate("fresh-key", "www2", "--force")
    assert forced.returncode == 0, forced.stderr
    summary = json.loads((tmp_path / "www2" / "summary.json").read_text())
    assert summary["privacy"]["releases_of_this_week"] == 2  # the first release is counted, from the store
    assert summary["epsilon"] == pytest.approx(2 * DEFAULT_EPSILON)
