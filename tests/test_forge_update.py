"""`dropsonde update` and the automatic refresh, against a loopback stand-in
for the Forge v3 API: request counts, incremental stops, faults, proxies,
air-gapped import."""

from __future__ import annotations

import http.client
import json
import math
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dropsonde.cache_dir import CacheDir
from dropsonde import __version__
from dropsonde.errors import BadInput, ExitStatus
from dropsonde.forge_cache import MAX_FORGE_MODULES, MAX_SLUG_LENGTH, CacheTooLarge, load_forge_cache, save_forge_cache
from dropsonde.forge_api import (
    ForgeError,
    _next_page_url,
    crawl_forge,
    forge_api_url,
    parse_forge_time,
    refresh_forge_cache,
)
from dropsonde.http_client import HttpPolicy
from tests.support.cli import assert_clean_error
from tests.support.puppet_tree import PuppetTree, make_module, write
from tests.support.forge_server import Fault, ForgeModule, ForgeServer, generate_modules
from tests.support.fuzzing import FUZZ

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
# The production retry numbers, with each wait between retries noted instead of spent.
WAITS: list = []
NOTED = HttpPolicy(sleep=WAITS.append)


@pytest.fixture(autouse=True)
def no_waits_yet():
    WAITS.clear()


def refresh(cachepath, server, full=False):
    return refresh_forge_cache(CacheDir.open(cachepath), server.url, full=full, now=NOW, policy=NOTED)


def cached(cachepath):
    return json.loads((Path(cachepath) / "forge.json").read_text())


def test_full_refresh_reads_every_page_including_the_last(tmp_path):
    modules = generate_modules(2345)
    with ForgeServer(modules) as server:
        summary = refresh(tmp_path, server)
    assert len(server.state.requests) == math.ceil(2345 / 100) == 24
    assert set(cached(tmp_path)["modules"]) == {m.slug for m in modules}  # pe_only and deprecated included
    assert "full" in summary and "24 requests" in summary
    first = server.state.requests[0]
    assert first["limit"] == "100" and first["sort_by"] == "latest_release"
    assert first["module_groups"].split() == ["base", "pe_only"]
    assert all("hide_deprecated" not in query for query in server.state.requests)
    assert set(server.state.user_agents) == {f"dropsonde/{__version__}"}
    newest = max(m.updated_at for m in modules)
    assert datetime.fromisoformat(cached(tmp_path)["forge_updated_at"]) == newest


def test_a_no_change_refresh_is_one_request(tmp_path):
    with ForgeServer(generate_modules(1000)) as server:
        refresh(tmp_path, server)
        server.state.requests.clear()
        summary = refresh(tmp_path, server)
    assert len(server.state.requests) == 1
    assert "incremental" in summary and "0 new or changed" in summary


def test_incremental_refresh_checks_every_module_across_pages(tmp_path):
    old = generate_modules(1000)
    with ForgeServer(old) as server:
        refresh(tmp_path, server)
        server.state.modules += generate_modules(150, start=1000)  # newer than everything cached
        server.state.requests.clear()
        refresh(tmp_path, server)
    assert len(server.state.requests) == 2  # 100 new on page 1, 50 new then an old one on page 2
    assert len(cached(tmp_path)["modules"]) == 1150


def test_full_refresh_drops_deleted_modules_incremental_keeps_them(tmp_path):
    modules = generate_modules(300)
    with ForgeServer(modules) as server:
        refresh(tmp_path, server)
        server.state.modules = modules[:-5]
        refresh(tmp_path, server)
        assert len(cached(tmp_path)["modules"]) == 300
        refresh(tmp_path, server, full=True)
    assert len(cached(tmp_path)["modules"]) == 295


def test_a_ruby_clients_cache_is_refreshed_from_its_timestamp(tmp_path):
    modules = generate_modules(500)
    cutoff = modules[449].updated_at
    write(tmp_path / "forge.json", json.dumps({"timestamp": cutoff.isoformat(), "modules": ["puppetlabs-apache"]}))
    with ForgeServer(modules) as server:
        refresh(tmp_path, server)
    assert len(server.state.requests) == 1
    assert set(cached(tmp_path)["modules"]) == {"puppetlabs-apache"} | {m.slug for m in modules[450:]}


@pytest.mark.parametrize(
    "fault, needle",
    [
        (Fault("500", offset=300), "HTTP 500"),
        (Fault("truncated", offset=200), "the answer is not valid JSON"),
        (Fault("reset", offset=800), "cannot reach"),
        (Fault("repeat", offset=400), "repeats a page"),
        # error bodies whose "errors" is not a list: a TypeError once ended the run as an internal error
        (Fault("body", offset=100, status=404, target='{"message": "404 Not Found", "errors": null}'),
         "HTTP 404 404 Not Found$"),
        (Fault("body", offset=100, status=404, target='{"message": null, "errors": "gone"}'), "HTTP 404 gone$"),
        (Fault("body", offset=100, status=503, target='{"errors": [{"x": 1}, 7, "busy"]}'), "HTTP 503 7: busy$"),
        (Fault("body", offset=100, status=404, target='[' * 100_000), "HTTP 404$"),
    ],
)
def test_a_failed_refresh_keeps_the_old_cache(tmp_path, fault, needle):
    write(tmp_path / "forge.json", json.dumps({"timestamp": "2020-01-01T00:00:00+00:00", "modules": ["old-module"]}))
    before = (tmp_path / "forge.json").read_bytes()
    with ForgeServer(generate_modules(1200)) as server:
        server.state.faults.append(fault)
        with pytest.raises(ForgeError, match=needle):
            refresh(tmp_path, server, full=True)
    assert (tmp_path / "forge.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["forge.json"]  # no temporary file left behind


@pytest.mark.parametrize("retry_after, wait", [("2", 2.0), ("3600", 60.0)])
def test_429_with_retry_after_is_honoured_up_to_a_minute_then_succeeds(tmp_path, retry_after, wait):
    with ForgeServer(generate_modules(250)) as server:
        server.state.faults.append(Fault("429", offset=100, times=1, retry_after=retry_after))
        refresh(tmp_path, server)
    assert WAITS == [wait]  # the server's wait instead of the backoff (which would be none here)
    assert len(server.state.requests) == 4  # three pages and one retry
    assert len(cached(tmp_path)["modules"]) == 250


def test_transient_500s_are_retried_with_backoff(tmp_path):
    with ForgeServer(generate_modules(150)) as server:
        server.state.faults.append(Fault("500", offset=0, times=3))
        refresh(tmp_path, server)
    assert WAITS == [1.0, 2.0]  # none before the first retry, then 0.5 s × 2, × 4
    assert len(server.state.requests) == 5
    assert len(cached(tmp_path)["modules"]) == 150


def test_a_500_that_lasts_is_asked_four_times(tmp_path):
    with ForgeServer(generate_modules(150)) as server:
        server.state.faults.append(Fault("500", offset=0))
        with pytest.raises(ForgeError, match="HTTP 500"):
            refresh(tmp_path, server)
    assert WAITS == [1.0, 2.0]
    assert len(server.state.requests) == 4


def test_forge_timestamps():
    stamp = parse_forge_time("2011-05-24 18:34:58 -0700")
    assert stamp == datetime(2011, 5, 25, 1, 34, 58, tzinfo=timezone.utc)
    assert parse_forge_time("2011-05-24T18:34:58+00:00").hour == 18
    assert parse_forge_time("yesterday") is None and parse_forge_time(None) is None


def test_the_stand_in_rejects_what_the_forge_rejects():
    import requests

    with ForgeServer(generate_modules(10)) as server:
        assert requests.get(server.url + "/v3/modules?limit=101", headers={"User-Agent": "t/1"}).status_code == 400
        bare = http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1])  # sends no User-Agent
        bare.request("GET", "/v3/modules")
        response = bare.getresponse()
        assert response.status == 400 and "User-Agent" in json.loads(response.read())["errors"][0]
        hidden = requests.get(server.url + "/v3/modules?limit=100&hide_deprecated=false", headers={"User-Agent": "t/1"})
        assert all(r["deprecated_at"] is None for r in hidden.json()["results"])


# ---- through the command line ----


# ---- answers that never end, or cannot be parsed ----


def test_a_page_that_drips_forever_ends_at_the_deadline(tmp_path):
    """A byte every 50 ms never trips the read timeout; the deadline bounds the whole page,
    and is not retried (the next try would drip as long)."""
    with ForgeServer(generate_modules(250)) as server:
        server.state.faults.append(Fault("drip", offset=100))
        started = time.monotonic()
        with pytest.raises(ForgeError, match=r"/v3/modules\?.*: no complete answer within 0.3 s$"):
            refresh_forge_cache(CacheDir.open(tmp_path), server.url, full=True, now=NOW,
                                policy=HttpPolicy(deadline=0.3, sleep=WAITS.append))
        elapsed = time.monotonic() - started
    assert elapsed < 4
    assert len(server.state.requests) == 2 and WAITS == []
    assert not (tmp_path / "forge.json").exists()


def test_a_retry_after_is_cut_to_the_deadline(tmp_path):
    """Waiting out a Retry-After of 30 s would overrun a deadline of 1 s: the wait is cut to it."""
    with ForgeServer(generate_modules(50)) as server:
        server.state.faults.append(Fault("429", offset=0, times=1, retry_after="30"))
        refresh_forge_cache(CacheDir.open(tmp_path), server.url, full=True, now=NOW,
                            policy=HttpPolicy(deadline=1.0, sleep=WAITS.append))
    assert len(WAITS) == 1 and 0 < WAITS[0] <= 1.0
    assert len(cached(tmp_path)["modules"]) == 50


def test_the_refresh_budget_also_ends_a_page_in_progress(tmp_path):
    """With half a second of the refresh's budget left, a page gets half a second."""
    readings = []

    def clock() -> float:  # the refresh starts at 0; the first page is asked for at budget - 0.5 s
        readings.append(None)
        return 0.0 if len(readings) == 1 else 599.5

    with ForgeServer(generate_modules(50)) as server:
        server.state.faults.append(Fault("drip", offset=0))
        started = time.monotonic()
        with pytest.raises(ForgeError, match="no complete answer within 0.5 s"):
            crawl_forge(server.url, None, clock=clock, policy=NOTED)
        assert time.monotonic() - started < 3


def test_deeply_nested_json_is_a_malformed_answer(tmp_path):
    tree = site_with_module(tmp_path)
    with ForgeServer(generate_modules(10)) as server:
        server.state.faults.append(Fault("deep", offset=0))
        result = tree.run("--forge-api", server.url, "update")
    assert_clean_error(result, ExitStatus.FAILURE, f"{server.url}/v3/modules?", "the answer is nested more than 32 levels deep")


def site_with_module(tmp_path) -> PuppetTree:
    tree = PuppetTree(tmp_path / "site")
    make_module(tree.environment("production") / "modules", "module7", "author7-module7", "1.0.0")
    return tree


def test_update_command_and_its_failure(tmp_path):
    tree = site_with_module(tmp_path)
    with ForgeServer(generate_modules(120)) as server:
        result = tree.run("--forge-api", server.url, "update")
        assert result.returncode == 0, result.stderr
        assert "120 modules" in result.stdout
        before = (tree.cachepath / "forge.json").read_bytes()
        server.state.faults.append(Fault("500", offset=0))
        failed = tree.run("--forge-api", server.url, "update", "--full")
    assert_clean_error(failed, ExitStatus.FAILURE, "HTTP 500")
    assert (tree.cachepath / "forge.json").read_bytes() == before


def test_first_preview_fetches_the_list_then_reports(tmp_path):
    tree = site_with_module(tmp_path)
    with ForgeServer(generate_modules(120)) as server:
        result = tree.run("--update", "--forge-api", server.url, "preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    fetching = [line for line in result.stderr.splitlines() if "fetching the list of public modules" in line]
    assert len(fetching) == 1 and server.url in fetching[0]
    assert "dropsonde: Forge module cache updated (full): 120 modules" in result.stderr
    modules = result.json()["self-service-analytics"]["snapshots"]["modules"]["value"]
    # the loopback Forge publishes no release of it: the version is private
    assert modules == [{"name": "module7", "slug": "author7-module7", "version": "(private)"}]


def test_expired_cache_and_unreachable_forge_uses_the_old_list(tmp_path):
    tree = site_with_module(tmp_path)
    tree.forge(["author7-module7"])  # dated 2026-11-01: older than the ttl
    with ForgeServer([]) as server:
        dead = server.url
    result = tree.run("--update", "--forge-api", dead, "preview", "--format", "json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "could not refresh the Forge module cache, using the current one" in result.stderr
    assert result.json()["self-service-analytics"]["snapshots"]["modules"]["value"][0]["slug"] == "author7-module7"


def test_no_cache_and_unreachable_forge_fails_closed(tmp_path):
    tree = site_with_module(tmp_path)
    with ForgeServer([]) as server:
        dead = server.url
    result = tree.run("--update", "--forge-api", dead, "preview")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "no Forge module cache yet: no module is treated as public" in text
    assert "module7" not in result.stdout


def test_no_update_never_asks_the_forge(tmp_path):
    tree = site_with_module(tmp_path)
    with ForgeServer(generate_modules(10)) as server:
        result = tree.run("--no-update", "--forge-api", server.url, "preview")
    assert result.returncode == 0, result.stderr
    assert "no Forge module cache yet" in " ".join(result.stdout.split())  # and nothing fetched one
    assert server.state.requests == []


def test_a_forge_that_does_not_answer_times_out(tmp_path):
    tree = site_with_module(tmp_path)
    with ForgeServer(generate_modules(10)) as server:
        server.state.faults.append(Fault("hang", offset=0))
        result = tree.run("--forge-api", server.url, "update", env={"DROPSONDE_HTTP_TIMEOUT": "0.1"})
    assert_clean_error(result, ExitStatus.FAILURE, "no answer within 0.1 s")
    assert len(server.state.requests) == 4  # a read timeout is retried like a 5xx


def test_proxies_come_from_the_environment(tmp_path):
    tree = site_with_module(tmp_path)
    with ForgeServer(generate_modules(30)) as proxy:
        # plain http is for loopback addresses only; nothing listens on port 9: only the proxy answers
        result = tree.run("--forge-api", "http://localhost:9", "update", env={"http_proxy": proxy.url, "no_proxy": ""})
    assert result.returncode == 0, result.stderr
    assert proxy.state.paths[0].startswith("http://localhost:9/v3/modules?")


def test_bad_forge_api_url_is_a_usage_error(tmp_path):
    tree = site_with_module(tmp_path)
    assert_clean_error(tree.run("--forge-api", "ftp://x", "update"), ExitStatus.USAGE, "--forge-api")


def test_import_from_file(tmp_path):
    tree = site_with_module(tmp_path)
    ruby_cache = write(tmp_path / "carried.json", json.dumps(
        {"timestamp": "2026-11-20T00:00:00-07:00", "modules": ["author7/module7", "puppetlabs-apache"]}))
    result = tree.run("update", "--from-file", str(ruby_cache))
    assert result.returncode == 0, result.stderr
    cache = load_forge_cache(CacheDir.open(tree.cachepath))
    assert cache.modules == {"author7-module7", "puppetlabs-apache"}
    assert cache.timestamp == "2026-11-20T00:00:00-07:00"


@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "not valid JSON"),
        ("[" * 100_000, "nested more than 32 levels deep"),  # once a RecursionError: "internal error"
        ('{"modules": []}', "non-empty 'modules' list"),
        ('{"modules": ["puppetlabs-apache", "not a slug"]}', "modules[1] is not an author-name slug"),
        ('{"modules": ["puppetlabs-apache", 7]}', "modules[1]"),
    ],
)
def test_import_rejects_bad_files_and_keeps_the_cache(tmp_path, content, needle):
    tree = site_with_module(tmp_path)
    tree.forge(["author7-module7"])
    before = (tree.cachepath / "forge.json").read_bytes()
    bad = write(tmp_path / "bad.json", content)
    result = tree.run("update", "--from-file", str(bad))
    assert_clean_error(result, ExitStatus.USAGE, str(bad), needle)
    assert (tree.cachepath / "forge.json").read_bytes() == before


# ---- where the list may come from ----


def test_pagination_next_to_another_host_is_refused(tmp_path):
    """A page may name any URL as next; the crawl stays on --forge-api's origin."""
    write(tmp_path / "forge.json", json.dumps({"timestamp": "2020-01-01T00:00:00+00:00", "modules": ["old-module"]}))
    before = (tmp_path / "forge.json").read_bytes()
    with ForgeServer(generate_modules(300)) as elsewhere, ForgeServer(generate_modules(300)) as server:
        for target in (f"http://localhost:{elsewhere.port}/v3/modules?offset=100", f"//localhost:{elsewhere.port}/v3/modules",
                       f"https://127.0.0.1:{server.port}/v3/modules?offset=100"):
            server.state.faults[:] = [Fault("next", offset=0, target=target)]
            with pytest.raises(ForgeError, match="pagination.next leaves the Forge's origin"):
                refresh(tmp_path, server, full=True)
    assert elsewhere.state.requests == []
    assert (tmp_path / "forge.json").read_bytes() == before


@pytest.mark.parametrize("shape", ["backslash-at", "absolute same origin", "backslash path", "userinfo path", "space"])
def test_pagination_next_must_be_a_plain_path(tmp_path, shape):
    """Python's urllib.parse reads ``http://A\\@B/`` as host B, urllib3 (which sends) as host A:
    a check with one parser and a request with the other took the crawl to A. Only a plain
    path is taken, put on --forge-api's origin."""
    with ForgeServer(generate_modules(300)) as elsewhere, ForgeServer(generate_modules(300)) as server:
        target = {
            "backslash-at": f"http://127.0.0.1:{elsewhere.port}\\@127.0.0.1:{server.port}/v3/modules?offset=100",
            "absolute same origin": f"{server.url}/v3/modules?offset=100&limit=100",
            "backslash path": f"/\\127.0.0.1:{elsewhere.port}/v3/modules?offset=100",
            "userinfo path": f"/v3/modules@127.0.0.1:{elsewhere.port}?offset=100",
            "space": "/v3/modules?offset=100 &limit=100",
        }[shape]
        server.state.faults[:] = [Fault("next", offset=0, target=target)]
        with pytest.raises(ForgeError, match="pagination.next leaves the Forge's origin"):
            refresh(tmp_path, server, full=True)
    assert elsewhere.state.requests == []
    assert len(server.state.requests) == 1
    assert not (tmp_path / "forge.json").exists()


def test_pagination_that_never_ends_stops_a_few_pages_past_the_announced_total(tmp_path):
    """A Forge whose every page names a next one was stopped only by the 600 s budget.
    The first page's total (300 modules: 3 pages) bounds the crawl, plus 10 pages for
    modules published meanwhile; the old cache stays."""
    with ForgeServer(generate_modules(300)) as server:
        server.state.faults.append(Fault("endless"))
        with pytest.raises(ForgeError, match=r"pagination goes on past 13 pages \(its first page announced 300 modules\)"):
            refresh(tmp_path, server, full=True)
    assert len(server.state.requests) == 13
    assert not (tmp_path / "forge.json").exists()


def test_a_redirect_off_the_forge_origin_is_refused(tmp_path):
    with ForgeServer(generate_modules(300)) as elsewhere, ForgeServer(generate_modules(300)) as server:
        server.state.faults.append(Fault("redirect", offset=100, target=f"{elsewhere.url}/v3/modules?offset=100&limit=100"))
        with pytest.raises(ForgeError, match="another origin: not followed"):
            refresh(tmp_path, server, full=True)
    assert elsewhere.state.requests == []
    assert not (tmp_path / "forge.json").exists()


def test_a_same_origin_redirect_is_followed(tmp_path):
    with ForgeServer(generate_modules(150)) as server:
        query = "limit=100&offset=100&sort_by=latest_release&module_groups=base+pe_only"
        server.state.faults.append(Fault("redirect", offset=100, times=1, target=f"/v3/modules?{query}"))
        refresh(tmp_path, server, full=True)
    assert len(cached(tmp_path)["modules"]) == 150
    assert len(server.state.requests) == 3


@pytest.mark.parametrize("url", ["http://forgeapi.puppet.com", "http://10.0.0.1:8080", "http://localhost.example.test",
                                 "http://[::ffff:8.8.8.8]", "ftp://127.0.0.1", "https://[::1"])
def test_forge_api_must_be_https_unless_loopback(url):
    with pytest.raises(BadInput, match="--forge-api"):
        forge_api_url(url)


@pytest.mark.parametrize("url", ["https://forge.example.test/", "http://127.0.0.1:8080", "http://127.9.9.9",
                                 "http://localhost:1234", "http://LOCALHOST", "http://[::1]:8080"])
def test_forge_api_accepted(url):
    assert forge_api_url(url) == url.rstrip("/")


def test_plain_http_forge_api_is_a_usage_error_and_nothing_is_fetched(tmp_path):
    tree = site_with_module(tmp_path)
    with ForgeServer(generate_modules(30)) as proxy:
        result = tree.run("--forge-api", "http://forge.example.test", "update", env={"http_proxy": proxy.url, "no_proxy": ""})
    assert_clean_error(result, ExitStatus.USAGE, "--forge-api", "https is required")
    assert proxy.state.requests == []


# ---- timestamps in the future ----


def test_a_future_watermark_no_longer_freezes_refreshes(tmp_path):
    """A 9999-12-31 watermark made every incremental refresh stop at its first module."""
    write(tmp_path / "forge.json", json.dumps(
        {"timestamp": "9999-12-31T00:00:00+00:00", "forge_updated_at": "9999-12-31T00:00:00+00:00", "modules": ["old-module"]}))
    with ForgeServer(generate_modules(150)) as server:
        summary = refresh(tmp_path, server)
    assert "full" in summary
    data = cached(tmp_path)
    assert len(data["modules"]) == 150
    assert datetime.fromisoformat(data["forge_updated_at"]) <= NOW


def test_a_module_updated_in_the_future_does_not_become_the_watermark(tmp_path):
    modules = generate_modules(20) + [ForgeModule("evil-module", datetime(9999, 12, 31, tzinfo=timezone.utc))]
    with ForgeServer(modules) as server:
        refresh(tmp_path, server)
        assert datetime.fromisoformat(cached(tmp_path)["forge_updated_at"]) == NOW
        server.state.modules.append(ForgeModule("new-module", NOW + timedelta(hours=1)))
        refresh_forge_cache(CacheDir.open(tmp_path), server.url, full=False, now=NOW + timedelta(days=1))
    assert {"evil-module", "new-module"} <= set(cached(tmp_path)["modules"])


def test_a_future_cache_is_refreshed_before_a_report(tmp_path):
    tree = site_with_module(tmp_path)
    write(tree.cachepath / "forge.json", json.dumps({"timestamp": "9999-12-31T00:00:00+00:00", "modules": ["author7-module7"]}))
    with ForgeServer(generate_modules(120)) as server:
        result = tree.run("--update", "--forge-api", server.url, "preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert len(server.state.module_requests()) == 2
    assert "Forge module cache updated (full): 120 modules" in result.stderr
    assert load_forge_cache(CacheDir.open(tree.cachepath)).timestamp < "9999"


@pytest.mark.parametrize("key", ["timestamp", "forge_updated_at"])
def test_import_refuses_a_file_dated_in_the_future(tmp_path, key):
    tree = site_with_module(tmp_path)
    tree.forge(["author7-module7"])
    before = (tree.cachepath / "forge.json").read_bytes()
    carried = write(tmp_path / "carried.json", json.dumps({key: "9999-12-31T00:00:00+00:00", "modules": ["puppetlabs-apache"]}))
    result = tree.run("update", "--from-file", str(carried))
    assert_clean_error(result, ExitStatus.USAGE, str(carried), f"{key} '9999-12-31T00:00:00+00:00' lies in the future")
    assert (tree.cachepath / "forge.json").read_bytes() == before


@pytest.mark.parametrize("status", ["400", "404", "413"])
@pytest.mark.parametrize("offset", [0, 100])
def test_a_refusal_from_the_forge_is_asked_once_and_changes_nothing(tmp_path, status, offset):
    """A 4xx (other than 429) will not change by asking again: one request for
    that page, the crawl stops, the cache keeps its old bytes."""
    write(tmp_path / "forge.json", json.dumps({"timestamp": "2020-01-01T00:00:00+00:00", "modules": ["old-module"]}))
    before = (tmp_path / "forge.json").read_bytes()
    with ForgeServer(generate_modules(250)) as server:
        server.state.faults.append(Fault(status, offset=offset))
        with pytest.raises(ForgeError, match=f"HTTP {status}"):
            refresh(tmp_path, server, full=True)
    assert [int(query.get("offset", "0")) for query in server.state.requests] == list(range(0, offset + 1, 100))
    assert WAITS == []
    assert (tmp_path / "forge.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["forge.json"]


URL_PIECES = ["/", "//", "\\", "@", ":", "?", "#", "%2f", "%5c", "%40", "127.0.0.1", "127.0.0.1:8140", "127.0.0.2:9", "8140", "[::1]", "localhost",
              "v3", "modules", "http:", "https:", "HTTP://", " ", "\t", "\x00", "\u3002", "\uff0f", "\u2215", "=", "&", "."]


@FUZZ
@given(st.lists(st.sampled_from(URL_PIECES) | st.text(max_size=4), max_size=12).map("".join))
@example("http://127.0.0.2:9\\@127.0.0.1:8140/v3/modules")  # the review's H4
def test_any_next_page_taken_is_sent_to_the_forge_origin(following):
    """Whatever pagination.next a page names, what requests would actually send goes to
    --forge-api's scheme, host and port (read with urllib3, the parser that sends), or
    the page is refused."""
    import requests
    from urllib3.util import parse_url

    base = "http://127.0.0.1:8140"
    try:
        url = _next_page_url(base, following)
    except ForgeError:
        return
    sent = parse_url(requests.Request("GET", url).prepare().url)
    assert (sent.scheme, sent.host, sent.port) == ("http", "127.0.0.1", 8140)
    assert sent.auth is None


def test_a_module_updated_two_days_ahead_saves_now_as_the_watermark(tmp_path):
    """The mutation run: the "after now" check could tolerate a day or two without a test
    failing. Two days ahead is no clock skew: now is saved."""
    modules = generate_modules(20) + [ForgeModule("ahead-module", NOW + timedelta(days=2))]
    with ForgeServer(modules) as server:
        refresh(tmp_path, server)
    assert datetime.fromisoformat(cached(tmp_path)["forge_updated_at"]) == NOW
    assert "ahead-module" in cached(tmp_path)["modules"]


# ---- what the list may hold: a cache we write is always one we can read ----


def forge_page(slugs, following=None) -> str:
    """A module page in the Forge's shape, ``slugs`` as its results."""
    results = [ForgeModule(slug, NOW - timedelta(days=1)).as_json() for slug in slugs]
    return json.dumps({"pagination": {"limit": 100, "offset": 0, "next": following, "total": len(slugs)},
                       "results": results})


def test_a_page_of_more_modules_than_asked_for_fails_the_refresh(tmp_path):
    """The outside review (F5): pages were capped in bytes only, so one 16 MiB page held
    480,000 slugs; 3 such pages made a forge.json of 1.44 million modules that the
    reader then refused on every run (and 1,000 of them ran out of memory). A page
    may hold at most the 100 modules asked for, as the Forge's own pages do."""
    with ForgeServer(generate_modules(10)) as server:
        server.state.faults.append(Fault("body", offset=0, status=200,
                                         target=forge_page([f"a-m{i}" for i in range(101)])))
        with pytest.raises(ForgeError, match="a page of 101 modules, more than the 100 asked for"):
            refresh(tmp_path, server, full=True)
    assert not (tmp_path / "forge.json").exists()


def test_an_incremental_refresh_past_the_module_cap_keeps_the_cache(tmp_path):
    """The cache holds at most MAX_FORGE_MODULES; an incremental refresh adds to it, so
    new modules past the cap fail the refresh (the old list stays, readable) instead
    of writing a list the reader would refuse."""
    old = [f"author{i % 97}-old{i}" for i in range(MAX_FORGE_MODULES - 50)]
    write(tmp_path / "forge.json", json.dumps({"timestamp": "2026-11-20T00:00:00+00:00",
                                               "forge_updated_at": "2026-11-20T00:00:00+00:00", "modules": old}))
    before = (tmp_path / "forge.json").read_bytes()
    assert len(load_forge_cache(CacheDir.open(tmp_path), NOW).modules) == len(old)
    with ForgeServer([ForgeModule(f"new-m{i}", NOW - timedelta(hours=i + 1)) for i in range(100)]) as server:
        with pytest.raises(ForgeError, match=f"more than {MAX_FORGE_MODULES} modules"):
            refresh(tmp_path, server)
    assert (tmp_path / "forge.json").read_bytes() == before


def test_a_slug_longer_than_any_real_one_fails_the_refresh(tmp_path):
    """Slug length is what bounds the bytes of the list (MAX_FORGE_MODULES × MAX_SLUG_LENGTH
    stays far under the reader's 64 MiB): a longer one is no slug."""
    long = "a-" + "m" * (MAX_SLUG_LENGTH - 1)
    with ForgeServer(generate_modules(10) + [ForgeModule(long, NOW - timedelta(hours=1))]) as server:
        with pytest.raises(ForgeError, match="a module without a valid slug"):
            refresh(tmp_path, server, full=True)
    assert not (tmp_path / "forge.json").exists()


@pytest.mark.parametrize(
    "modules, needle",
    [
        ([f"a-m{i}" for i in range(MAX_FORGE_MODULES + 1)], f"more than {MAX_FORGE_MODULES} modules"),
        (["a-b", "a-" + "m" * (MAX_SLUG_LENGTH - 1)], "modules[1] is not an author-name slug"),
    ],
)
def test_import_refuses_a_list_the_cache_could_not_hold(tmp_path, modules, needle):
    tree = site_with_module(tmp_path)
    tree.forge(["author7-module7"])
    before = (tree.cachepath / "forge.json").read_bytes()
    bad = write(tmp_path / "big.json", json.dumps({"timestamp": "2026-11-20T00:00:00+00:00", "modules": modules}))
    result = tree.run("update", "--from-file", str(bad))
    assert_clean_error(result, ExitStatus.USAGE, str(bad), needle)
    assert (tree.cachepath / "forge.json").read_bytes() == before


def test_the_largest_list_the_cache_may_hold_is_written_and_read_back(tmp_path):
    """What save_forge_cache accepts, load_forge_cache reads: MAX_FORGE_MODULES slugs
    of MAX_SLUG_LENGTH each; one more is refused before anything is written."""
    biggest = [f"a{i:06d}-" + "m" * (MAX_SLUG_LENGTH - 8) for i in range(MAX_FORGE_MODULES)]
    assert max(map(len, biggest)) == MAX_SLUG_LENGTH
    save_forge_cache(CacheDir.open(tmp_path), biggest, NOW, None)
    assert len(load_forge_cache(CacheDir.open(tmp_path), NOW).modules) == MAX_FORGE_MODULES
    with pytest.raises(CacheTooLarge, match=f"more than {MAX_FORGE_MODULES} modules"):
        save_forge_cache(CacheDir.open(tmp_path / "other"), biggest + ["a-b"], NOW, None)
    assert not (tmp_path / "other" / "forge.json").exists()
