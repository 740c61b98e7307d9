"""The collector over HTTP: submit end to end, validation, hostile bodies, rate limits, load."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
import requests

from dropsonde.errors import ExitStatus
from tests.support.collector_process import MODULE, CollectorProcess, envelope, post, rows, site
from tests.support.paths import EXAMPLE_COLLECTOR
from tests.support.puppet_tree import PuppetTree, make_module

PHISH = "Visit http://phish.example to claim your Puppet license"


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    db = tmp_path_factory.mktemp("collector") / "reports.db"
    with CollectorProcess(str(db), "--rate", "100000", "--latest-version", "9.9.9") as process:
        yield process


def test_dropsonde_submit_to_the_collector(tmp_path, collector):
    tree = PuppetTree(tmp_path / "site")
    tree.forge(["puppetlabs-ntp"])
    tree.publish(make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", "10.0.0"))
    result = tree.run("submit", "--endpoint", collector.endpoint, "--port", str(collector.port))
    assert result.returncode == 0, result.stderr
    assert "A newer version of the telemetry client is available:" in result.stdout  # 0.1.0 < 9.9.9
    site_id = json.loads(tree.run("last", "--format", "json").stdout)["site_id"]
    stored = rows(collector.db, f"SELECT modules, environment_count, ip FROM reports WHERE site_id = '{site_id}'")
    assert stored == [(json.dumps(MODULE[0:1], separators=(",", ":"), sort_keys=True), "1", None)]


@pytest.mark.parametrize(
    "body, content_type, status, needle",
    [
        (b"not json", "application/json", 400, "not JSON"),
        (envelope(site(1), MODULE), "text/plain", 415, "application/json"),
        (b"\xff\xfe" + envelope(site(1), MODULE), "application/json", 400, "not UTF-8"),
        (b'{"product": "popularity-module", "product": "x"}', "application/json", 400, "duplicate key"),
        (b"[" * 100000 + b"]" * 100000, "application/json", 400, "nested"),
        (envelope("not-a-site-id", MODULE), "application/json", 400, "malformed site_id"),
        (envelope(site(1), MODULE, secret_column="x"), "application/json", 400, "unknown column 'secret_column'"),
        (envelope(site(1), MODULE, environment_count="many"), "application/json", 400, "column environment_count"),
        (envelope(site(1), [{"name": "a", "slug": "b", "version": "1", "extra": 1}]), "application/json", 400,
         "column modules"),
        (envelope(site(1), MODULE, **{"'; DROP TABLE reports; --": 1}), "application/json", 400, "unknown column"),
        (json.dumps({"product": "popularity-module", "version": "1.0.0", "site_id": site(1),
                     "self-service-analytics": {"snapshots": {}}, "extra": 1}).encode(), "application/json", 400,
         "unknown envelope key"),
    ],
)
def test_bad_reports_are_refused_and_the_server_keeps_serving(collector, body, content_type, status, needle):
    code, answer = post(collector, body, content_type)
    assert code == status
    assert needle in json.loads(answer)["message"]
    code, _ = post(collector, envelope(site(2), MODULE))
    assert code == 200


def test_oversized_and_huge_array_bodies(collector):
    huge = envelope(site(3), MODULE * 20000)  # well over 1 MiB
    code, _ = post(collector, huge)  # refused on its Content-Length, the body never read
    assert code == 413
    assert post(collector, envelope(site(3), MODULE))[0] == 200


def test_sql_looking_values_are_refused_and_the_table_survives(collector):
    evil = [{"name": "x'); DROP TABLE reports; --", "slug": "puppetlabs-ntp", "version": "1.0.0"}]
    assert post(collector, envelope(site(4), evil))[0] == 400
    assert rows(collector.db, f"SELECT COUNT(*) FROM reports WHERE site_id = '{site(4)}'") == [(0,)]
    assert post(collector, envelope(site(5), MODULE))[0] == 200


def test_a_phishing_module_from_five_invented_sites_is_refused(collector):
    phish = [{"name": "x", "slug": PHISH, "version": "1.0.0"}]
    answers = [post(collector, envelope(site(9000 + n), phish)) for n in range(5)]
    assert [code for code, _ in answers] == [400] * 5
    body = json.loads(answers[0][1])
    assert body["column"] == "modules" and body["rule"] == "a module slug on the collector's Forge list"
    assert PHISH[:40] in body["message"]
    assert rows(collector.db, "SELECT COUNT(*) FROM reports WHERE modules LIKE '%phish%'") == [(0,)]


@pytest.mark.parametrize("columns, column", [
    ({"classes": [{"name": "Ntp", "count": -5}]}, "classes"),
    ({"environment_count": int("9" * 4300)}, "environment_count"),
    ({"class_platforms": [{"name": "ntp", "platform": "Debian", "count": 1.0}]}, "class_platforms"),
])
def test_counts_that_are_not_counts_are_refused(collector, columns, column):
    code, answer = post(collector, envelope(site(9100), MODULE, **columns))
    assert code == 400
    body = json.loads(answer)
    if "rule" in body:  # 1.0: an integer to JSON Schema, not a count to the allowlist
        assert body["column"] == column and body["rule"] == "an integer in 0..1000000000"
    else:  # out of range: the schema's own bound (0..10^9 on every INTEGER column) refuses it first
        assert body["message"].startswith(f"column {column}: ")
    assert rows(collector.db, f"SELECT COUNT(*) FROM reports WHERE site_id = '{site(9100)}'") == [(0,)]


def test_serve_needs_a_readable_forge_list(tmp_path):
    from tests.support.cli import assert_clean_error, run_dropsonde

    missing = tmp_path / "forge.json"
    result = run_dropsonde("collector", "serve", "--db", str(tmp_path / "r.db"), "--forge-cache", str(missing),
                           "--listen", "127.0.0.1:1")
    assert_clean_error(result, ExitStatus.USAGE, f"{missing}: cannot read")
    assert not (tmp_path / "r.db").exists()


def test_other_methods_and_paths(collector):
    assert requests.get(collector.url).status_code == 405
    assert requests.post(collector.url + "elsewhere", json={}).status_code == 404


def test_rate_limit_per_address(tmp_path):
    with CollectorProcess(str(tmp_path / "r.db"), "--rate", "5", "--workers", "1") as limited:
        codes = [post(limited, envelope(site(n), MODULE))[0] for n in range(8)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3


def test_ten_thousand_reports_from_fifty_clients(tmp_path):
    with CollectorProcess(str(tmp_path / "load.db"), "--rate", "1000000") as collector:
        def client(index: int) -> list:
            session = requests.Session()
            return [session.post(collector.url, data=envelope(site(index * 1000 + n), MODULE),
                                 headers={"Content-Type": "application/json"}, timeout=180).status_code
                    for n in range(200)]

        with ThreadPoolExecutor(max_workers=50) as pool:
            codes = [code for batch in pool.map(client, range(50)) for code in batch]
    assert codes.count(200) == 10000
    assert rows(collector.db, "SELECT COUNT(*), COUNT(DISTINCT message_id), COUNT(DISTINCT site_id) FROM reports") == [
        (10000, 10000, 10000)]


def test_kill_9_loses_no_acknowledged_report(tmp_path):
    """Killed once it has acknowledged 500 reports, while eight clients are still sending."""
    collector = CollectorProcess(str(tmp_path / "crash.db"), "--rate", "1000000").start()
    acknowledged, lock, stop, loaded = [], threading.Lock(), threading.Event(), threading.Event()

    def client(index: int) -> None:
        session = requests.Session()
        for n in range(100000):
            if stop.is_set():
                return
            site_id = site(index * 100000 + n)
            try:
                response = session.post(collector.url, data=envelope(site_id, MODULE),
                                        headers={"Content-Type": "application/json"}, timeout=10)
            except requests.RequestException:
                return
            if response.status_code == 200:
                with lock:
                    acknowledged.append(site_id)
                    if len(acknowledged) >= 500:
                        loaded.set()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    under_load = loaded.wait(timeout=120)
    collector.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)  # a request in flight fails at once, or after its 10 s timeout
    assert under_load, f"only {len(acknowledged)} reports acknowledged in 120 s: the kill tested nothing"
    assert not any(thread.is_alive() for thread in threads)
    stored = {row[0] for row in rows(collector.db, "SELECT site_id FROM reports")}
    assert set(acknowledged) <= stored


def test_load_reports_bad_lines_by_number(tmp_path):
    from tests.support.cli import assert_clean_error, run_dropsonde

    bad = tmp_path / "rows.jsonl"
    bad.write_text('{"message_id": "x"}\n')
    result = run_dropsonde("collector", "load", str(bad), "--db", str(tmp_path / "l.db"), "--forge-cache",
                           str(EXAMPLE_COLLECTOR))
    assert_clean_error(result, ExitStatus.USAGE, f"{bad}:1:")


def test_two_collectors_share_one_postgresql(postgres, tmp_path):
    from tests.support.cli import run_dropsonde

    postgres.psql("CREATE DATABASE shared_reports")
    url = postgres.url("shared_reports")
    with CollectorProcess(url, "--rate", "100000") as first, CollectorProcess(url, "--rate", "100000") as second:
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(lambda n: post(first if n % 2 else second,
                                                 envelope(site(7000 + n), MODULE))[0], range(100)))
    assert codes == [200] * 100
    week = date.today().isocalendar()
    out = tmp_path / "out"
    result = run_dropsonde("collector", "aggregate", "--db", url, "--out", str(out),
                           "--week", f"{week[0]}-W{week[1]:02d}", "--k", "5", "--epsilon", "100",
                           "--noise-key", str(tmp_path / "noise-key"), "--force")  # this week: not ended
    assert result.returncode == 0, result.stderr
    from dropsonde.collector.storage import open_store

    stored = open_store(url).query("SELECT COUNT(*) AS sites FROM site_weeks WHERE week = :week",
                                  {"week": f"{week[0]}-W{week[1]:02d}"})
    assert list(stored) == [{"sites": 100}]
    assert 90 <= json.loads((out / "sites.json").read_text())[0]["sites"] <= 110  # published with noise
    assert [row["slug"] for row in json.loads((out / "modules.json").read_text())] == ["puppetlabs-ntp"]


def test_a_list_over_its_cap_is_refused_naming_the_column_and_the_rule(collector):
    """F1: one report naming thousands of modules made the weekly pairs grow quadratically."""
    modules = [{"name": "ntp", "slug": "puppetlabs-ntp", "version": f"1.0.{n}"} for n in range(2001)]
    code, answer = post(collector, envelope(site(9200), modules))
    assert code == 400
    body = json.loads(answer)
    assert body["column"] == "modules" and body["rule"] == "at most 2000 entries per report"
    assert "a list of 2001 entries" in body["message"]
    assert rows(collector.db, f"SELECT COUNT(*) FROM reports WHERE site_id = '{site(9200)}'") == [(0,)]
    assert post(collector, envelope(site(9200), modules[:2000]))[0] == 200


def test_the_default_body_limit_is_what_real_reports_need(collector):
    """F5: the default was 1 MiB; the largest plausible report is 464 KB, the example site's under 3 KB."""
    classes = [{"name": f"ntp::c{n:05d}_" + "x" * 40, "count": 1} for n in range(4900)]  # under every list cap
    body = envelope(site(9300), MODULE, classes=classes, profile_classes=classes)
    assert 512 * 1024 < len(body) < 1024 * 1024
    assert post(collector, body)[0] == 413


def test_a_site_resending_its_report_keeps_one_raw_report(collector):
    """F5: every report was kept, so resending filled the disk at the rate limit."""
    for version in ("10.0.0", "10.0.1", "10.0.2"):
        assert post(collector, envelope(site(9400), [{**MODULE[0], "version": version}]))[0] == 200
    stored = rows(collector.db, f"SELECT modules FROM reports WHERE site_id = '{site(9400)}'")
    assert len(stored) == 1 and "10.0.2" in stored[0][0]


def test_one_address_cannot_publish_invented_classes_and_versions(collector):
    """#17.8: 50 reports of invented classes under a listed namespace and invented X.Y.Z
    versions put 78,903 rows in the published tables; now each is refused whole."""
    for n in range(50):
        invented = [{"name": f"apache::offer_{n}_{k}", "count": 1} for k in range(30)]
        versions = [{"name": "ntp", "slug": "puppetlabs-ntp", "version": f"{n}.{k}.77"} for k in range(30)]
        assert post(collector, envelope(site(9500 + n), MODULE, classes=invented))[0] == 400
        assert post(collector, envelope(site(9600 + n), versions))[0] == 400
    attackers = ", ".join(f"'{site(n)}'" for n in [*range(9500, 9550), *range(9600, 9650)])
    assert rows(collector.db, f"SELECT COUNT(*) FROM reports WHERE site_id IN ({attackers})") == [(0,)]
    published = [{"name": "apache::params", "count": 3}]  # a class the release evidence proves
    assert post(collector, envelope(site(9700), MODULE, classes=published))[0] == 200


def test_serve_needs_the_release_evidence_beside_the_forge_list(tmp_path):
    from tests.support.cli import assert_clean_error, run_dropsonde
    from tests.support.collector_process import write_forge_cache

    forge = write_forge_cache(tmp_path, ["puppetlabs-ntp"])
    (tmp_path / "forge-releases.json").unlink()
    result = run_dropsonde("collector", "serve", "--db", str(tmp_path / "r.db"), "--forge-cache", str(forge),
                           "--listen", "127.0.0.1:1")
    assert_clean_error(result, ExitStatus.USAGE, "forge-releases.json: no release evidence")
    assert not (tmp_path / "r.db").exists()


def test_the_forge_cache_may_name_the_directory(tmp_path):
    from tests.support.collector_process import write_forge_cache

    write_forge_cache(tmp_path / "cache", ["puppetlabs-ntp"])
    with CollectorProcess(str(tmp_path / "r.db"), "--forge-cache", str(tmp_path / "cache")) as collector:
        assert post(collector, envelope(site(1), MODULE))[0] == 200
