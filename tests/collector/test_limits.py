"""What one source can do to the collector: rate limits shared by all workers
and keyed by the real client behind a trusted proxy, and slow or idle clients
that cannot hold the server."""

from __future__ import annotations

import io
import json
import socket
import string
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dropsonde.collector.allowlist_files import load_allowlist
from dropsonde.collector.app import CollectorApp
from dropsonde.collector.body_reader import read_body
from dropsonde.collector.client_address import client_address, parse_networks, rate_key
from dropsonde.collector.options import ServeOptions
from dropsonde.collector.rate_limiter import BYTES_PER_TOKEN, RateLimiter
from dropsonde.collector.storage import connect_store, open_store
from dropsonde.errors import ExitStatus
from dropsonde.wire_columns import REPORT_COLUMNS
from tests.support.collector_process import FORGE_MODULES, MODULE, CollectorProcess, envelope, post, rows, site, write_forge_cache
from tests.support.puppetdb_server import free_port
from tests.support.time_limits import cpu_limit


PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.1"])


@pytest.mark.parametrize("peer, forwarded, client", [
    ("198.51.100.9", "203.0.113.5", "198.51.100.9"),  # not from a proxy: the header is the client's own words
    ("10.1.2.3", "203.0.113.5", "203.0.113.5"),
    ("10.1.2.3", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # the left part was written by the client
    ("10.1.2.3", "203.0.113.5, 192.0.2.1", "203.0.113.5"),  # two proxies in a row
    ("10.1.2.3", "", "10.1.2.3"),
    ("10.1.2.3", "not-an-address", "10.1.2.3"),
    ("10.1.2.3", "10.9.9.9", "10.1.2.3"),  # only proxies: count it against the proxy
    ("10.1.2.3", "2001:db8::1", "2001:db8::1"),
    ("10.1.2.3", "198.51.100.9:1234", "198.51.100.9"),  # F7: a hop with its port (Azure Application Gateway)
    ("10.1.2.3", "[2001:db8::5]:443", "2001:db8::5"),
    ("10.1.2.3", "[2001:db8::5]", "2001:db8::5"),
    ("10.1.2.3", "::ffff:198.51.100.7", "198.51.100.7"),  # F6: IPv4-mapped is the IPv4 address
    ("::ffff:198.51.100.7", "", "198.51.100.7"),
    ("10.1.2.3", "198.51.100.9:http", "10.1.2.3"),
    ("10.1.2.3", "[2001:db8::5]x", "10.1.2.3"),
])
def test_client_address(peer, forwarded, client):
    assert client_address({"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}, PROXIES) == client


def test_an_unparsable_hop_from_a_trusted_proxy_is_logged(caplog):
    assert client_address({"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "garbage"}, PROXIES) == "10.1.2.3"
    assert "hop 'garbage' is not an address" in caplog.text and "10.1.2.3" in caplog.text


@pytest.mark.parametrize("address, key", [
    ("2001:db8::1", "2001:db8::/48"),
    ("2001:db8::ffff:1", "2001:db8::/48"),
    ("2001:db8:0:1::1", "2001:db8::/48"),  # another /64 of the same /48: the same source
    ("2001:db8:ffff:ffff::1", "2001:db8:ffff::/48"),
    ("198.51.100.7", "198.51.100.7"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
])
def test_rate_budgets_are_per_ipv4_address_and_per_ipv6_48(address, key):
    assert rate_key(address) == key


def test_the_65536_64s_of_one_48_share_one_budget(tmp_path):
    """#17.9: with a budget per /64, one /48 had 65,536 budgets."""
    limiter = RateLimiter(str(tmp_path / "rate.db"), 3, clock=lambda: 1000.0).create()
    taken = [limiter.allow(f"2001:db8:7:{n:x}::1") for n in range(0, 65536, 4096)]
    assert taken == [True] * 3 + [False] * 13


def test_a_bad_trusted_proxy_is_named_and_the_cli_names_its_option(tmp_path):
    from dropsonde.collector.options import OptionError
    from tests.support.cli import assert_clean_error, run_dropsonde

    with pytest.raises(OptionError, match="not-a-cidr") as raised:
        parse_networks(["10.0.0.0/8", "not-a-cidr"])
    assert "--" not in str(raised.value)  # the option's name is the CLI's business
    forge = tmp_path / "forge.json"
    forge.write_text('{"modules": ["puppetlabs-ntp"]}')
    result = run_dropsonde("collector", "serve", "--db", str(tmp_path / "r.db"), "--forge-cache", str(forge),
                           "--trusted-proxy", "not-a-cidr", "--listen", "127.0.0.1:1")
    assert_clean_error(result, ExitStatus.USAGE, "--trusted-proxy: not an address or CIDR: 'not-a-cidr'")


def test_two_limiters_on_one_file_share_each_budget(tmp_path):
    now = [1000.0]
    key = b"k" * 32  # the workers' key, made once in the master before the fork
    first = RateLimiter(str(tmp_path / "rate.db"), 60, clock=lambda: now[0], key=key).create()
    second = RateLimiter(str(tmp_path / "rate.db"), 60, clock=lambda: now[0], key=key)
    taken = [limiter.allow("a") for _ in range(40) for limiter in (first, second)]
    assert taken.count(True) == 60 and taken[-1] is False
    assert second.allow("b")  # another address has its own bucket
    now[0] += 2.0  # a token a second comes back
    assert [first.allow("a"), second.allow("a"), first.allow("a")] == [True, True, False]


def test_a_body_sent_too_slowly_is_cut_off_and_can_still_be_answered():
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"x" * 10)
        environ = {"wsgi.input": server.makefile("rb"), "gunicorn.socket": server}
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            read_body(environ, 100, timeout=0.3)
        assert time.monotonic() - started < 3
        server.sendall(b"HTTP/1.1 408")  # shut for reading only: the answer still goes out
        assert client.recv(100) == b"HTTP/1.1 408"
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"y" * 5)
        assert read_body({"wsgi.input": server.makefile("rb"), "gunicorn.socket": server}, 5, timeout=3) == b"yyyyy"


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def trickle(sock: socket.socket, data: bytes, interval: float, stop) -> None:
    """A slow client: one byte every ``interval`` seconds until ``stop`` is set or the peer is gone."""
    for byte in data:
        if stop.wait(interval):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def test_a_body_trickled_byte_by_byte_is_cut_off_at_the_deadline_for_the_whole_body():
    """#17.7: each byte arrived before a per-read timeout, so the read never ended."""
    import threading

    server, client = socket.socketpair()
    stop = threading.Event()
    sender = threading.Thread(target=trickle, args=(client, b"x" * 100, 0.05, stop))
    with server, client:
        sender.start()
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                read_body({"wsgi.input": server.makefile("rb"), "gunicorn.socket": server}, 100, timeout=0.5)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            sender.join()
    assert elapsed < 2.5  # the whole body would have taken 5 s


def test_a_trickling_client_gets_408_within_the_read_timeout_from_the_real_server(tmp_path):
    """#17.7 against gunicorn: a body sent one byte every 0.5 s held a worker past
    --read-timeout (gunicorn reads until n bytes arrive); now 408 within it."""
    import threading

    report = envelope(site(1), MODULE)
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(report)}\r\n\r\n").encode()
    with CollectorProcess(str(tmp_path / "r.db"), "--read-timeout", "2", "--workers", "1") as collector:
        assert post(collector, envelope(site(2), MODULE))[0] == 200  # the worker is up
        client = socket.create_connection(("127.0.0.1", collector.port), timeout=15)
        stop = threading.Event()
        sender = threading.Thread(target=trickle, args=(client, report, 0.5, stop))
        with client:
            client.sendall(head)
            started = time.monotonic()
            sender.start()
            try:
                answer = read_to_end(client)  # until the server answers and closes (or 15 s)
                elapsed = time.monotonic() - started
            finally:
                stop.set()
                sender.join()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"not sent within 2 s" in answer
    assert elapsed < 2 + 2.5  # the read timeout, and a margin for a busy machine


def stalled_clients(port: int, count: int) -> list:
    """Half-sent requests: half stop inside the headers, half inside the body."""
    report = envelope(site(1), MODULE)
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(report)}\r\n\r\n").encode()
    clients = []
    for n in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(head[:30] if n % 2 else head + report[:20])
        clients.append(client)
    return clients


def post_while_stalled(collector, count: int, timeout: float) -> tuple[int, float]:
    """Post one report while ``count`` stalled clients hold connections open;
    return its status and how long it took, the stalled sockets closed whatever happens."""
    clients = stalled_clients(collector.port, count)
    try:
        started = time.monotonic()
        code, _ = post(collector, envelope(site(2), MODULE), timeout=timeout)
        return code, time.monotonic() - started
    finally:
        for client in clients:
            client.close()


def test_150_stalled_clients_do_not_keep_a_report_out(tmp_path):
    with CollectorProcess(str(tmp_path / "r.db"), "--rate", "100000", "--workers", "1") as collector:
        code, elapsed = post_while_stalled(collector, 150, timeout=5)
    assert code == 200 and elapsed < 5


def test_a_stalled_client_is_cut_off_after_the_read_timeout(tmp_path):
    with CollectorProcess(str(tmp_path / "r.db"), "--read-timeout", "1", "--workers", "1") as collector:
        body_stall, header_stall = stalled_clients(collector.port, 2)
        started = time.monotonic()
        assert header_stall.recv(1024) == b""  # closed without an answer
        answer = read_to_end(body_stall)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ") and b"not sent within 1 s" in answer
    assert elapsed < 5


def test_the_rate_limit_is_shared_by_all_workers(tmp_path):
    # Reports heavy enough to keep one worker busy, so the other accepts too,
    # and light enough to cost one token each (a report costs one per 16 KiB).
    heavy = MODULE * 250
    assert len(envelope(site(0), heavy)) <= BYTES_PER_TOKEN
    with CollectorProcess(str(tmp_path / "r.db"), "--rate", "5", "--workers", "2") as collector:
        with ThreadPoolExecutor(max_workers=24) as pool:
            codes = list(pool.map(lambda n: post(collector, envelope(site(n), heavy))[0], range(48)))
    assert sorted(codes) == [200] * 5 + [429] * 43


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(tmp_path):
    with CollectorProcess(str(tmp_path / "r.db"), "--rate", "1", "--trusted-proxy", "127.0.0.0/8",
                          "--store-ip") as collector:
        answers = [post(collector, envelope(site(n), MODULE),
                        headers={"X-Forwarded-For": f"198.51.100.7, 203.0.113.{n}"}) for n in range(4)]
        again = post(collector, envelope(site(9), MODULE), headers={"X-Forwarded-For": "203.0.113.0"})
        stored = rows(collector.db, "SELECT ip FROM reports ORDER BY ip")
    assert [code for code, _ in answers] == [200] * 4, answers
    assert again[0] == 429
    assert json.loads(again[1])["message"].startswith("too many reports")
    assert stored == [(f"203.0.113.{n}",) for n in range(4)]


def test_forwarded_for_is_ignored_from_an_untrusted_peer(tmp_path):
    with CollectorProcess(str(tmp_path / "r.db"), "--rate", "1", "--trusted-proxy", "10.0.0.0/8") as collector:
        codes = [post(collector, envelope(site(n), MODULE), headers={"X-Forwarded-For": f"203.0.113.{n}"})[0]
                 for n in range(3)]
    assert codes == [200, 429, 429]


def test_connections_beyond_the_limit_wait_until_a_stalled_one_is_cut(tmp_path):
    with CollectorProcess(str(tmp_path / "r.db"), "--connections", "4", "--read-timeout", "1",
                          "--workers", "1") as collector:
        assert post(collector, envelope(site(1), MODULE))[0] == 200  # the worker is up
        code, elapsed = post_while_stalled(collector, 4, timeout=10)
    assert code == 200 and 0.5 <= elapsed < 5  # served once the read timeout freed a slot


def test_budgets_behind_a_proxy_are_per_ipv6_48_and_ipv4_whatever_its_spelling(tmp_path):
    """F6/F7: eight addresses of one /64 each got a budget, an IPv4-mapped spelling got a
    second one, and hops with a port were all counted against the proxy; #17.9: each /64 of a /48
    had a budget of its own."""
    forwarded = ["2001:db8::1", "2001:db8:0:1::2", "198.51.100.7", "::ffff:198.51.100.7", "198.51.100.9:1234",
                 "[2001:db8:1::1]:443", "198.51.100.10:5678"]
    with CollectorProcess(str(tmp_path / "r.db"), "--rate", "1", "--trusted-proxy", "127.0.0.0/8") as collector:
        codes = [post(collector, envelope(site(n), MODULE), headers={"X-Forwarded-For": hop})[0]
                 for n, hop in enumerate(forwarded)]
    assert codes == [200, 429, 200, 429, 200, 200, 200]


def test_the_rate_state_keeps_no_client_address_and_is_removed_on_exit(tmp_path):
    """#17.9: the token buckets kept each client's raw address (without --store-ip)."""
    import os
    import signal

    address = "203.0.113.77"
    collector = CollectorProcess(str(tmp_path / "r.db"), "--trusted-proxy", "127.0.0.0/8").start()
    try:
        assert post(collector, envelope(site(1), MODULE), headers={"X-Forwarded-For": address})[0] == 200
        assert post(collector, envelope(site(2), MODULE),
                    headers={"X-Forwarded-For": "2001:db8:aaaa:bbbb::1"})[0] == 200
        scratch = [os.path.join(root, name) for root, _, names in os.walk(collector.scratch.name) for name in names]
        assert any(path.endswith("rate.db") for path in scratch)
        for path in scratch:
            with open(path, "rb") as handle:
                data = handle.read()
            assert address.encode() not in data and b"2001:db8:aaaa" not in data, path
        os.kill(collector.process.pid, signal.SIGTERM)
        collector.process.wait(timeout=30)
        assert not [name for name in os.listdir(collector.scratch.name) if name.startswith("dropsonde-collector-")]
    finally:
        collector.stop()


def test_idle_rate_state_is_dropped_on_a_deadline(tmp_path):
    """#17.9: buckets were swept every 1,000 reports, so a quiet collector kept them for ever."""
    import sqlite3

    from dropsonde.collector.rate_limiter import PRUNE_INTERVAL

    now = [1000.0]
    limiter = RateLimiter(str(tmp_path / "rate.db"), 60, clock=lambda: now[0]).create()
    limiter.allow("198.51.100.1")
    now[0] += PRUNE_INTERVAL + 61
    limiter.allow("198.51.100.2")  # any later report sweeps what no longer limits anything
    with sqlite3.connect(str(tmp_path / "rate.db")) as connection:
        kept = [row[0] for row in connection.execute("SELECT source FROM buckets")]
    assert kept == [limiter.source("198.51.100.2")]


@pytest.mark.parametrize("url", ["postgresql://postgres:s3cr%40t@127.0.0.1:{port}/nope",
                                 "postgresql://postgres@127.0.0.1:{port}/nope?password=s3cr%40t&sslmode=disable",
                                 # review: libpq decodes percent-escapes in names too
                                 "postgresql://postgres@127.0.0.1:{port}/nope?pass%77ord=s3cr%40t",
                                 # re-check: a query string with no path before it
                                 "postgresql://postgres@127.0.0.1:{port}?password=s3cr%40t",
                                 # review 2 F2: '#' and '?' in a password (libpq takes both as its own)
                                 "postgresql://postgres:hunter#s3cr@127.0.0.1:{port}/nope",
                                 "postgresql://postgres:hun?s3cr@127.0.0.1:{port}/nope"])
def test_a_store_password_is_never_shown(tmp_path, url):
    """#17.9: a password in a postgresql:// URL was printed in errors and logs."""
    from tests.support.cli import run_dropsonde

    port = free_port()
    forge = write_forge_cache(tmp_path, ["puppetlabs-ntp"])
    for result in (run_dropsonde("collector", "aggregate", "--db", url.format(port=port), "--out", str(tmp_path / "o")),
                   run_dropsonde("collector", "serve", "--db", url.format(port=port), "--forge-cache", str(forge),
                                 "--listen", f"127.0.0.1:{free_port()}")):
        assert result.returncode == 1, result.stderr
        assert f"127.0.0.1:{port}" in result.stderr and "***" in result.stderr
        assert "s3cr" not in result.stderr


def test_one_source_speaks_for_a_bounded_number_of_sites_a_week_and_cannot_tell(tmp_path):
    """#17.8: one client posted 44 reports under invented site ids (the Sybil attack
    on the published pairs); one address or IPv6 /48 now counts for at most
    --sites-per-source sites a week, and a site it already reported may report again.
    Review: a 429 over the cap told whoever shares the source how many sites it had
    reported for and whether a given site id was among them; now every report is
    answered alike and those over the cap are quarantined, never published."""
    with CollectorProcess(str(tmp_path / "r.db"), "--sites-per-source", "3", "--trusted-proxy", "127.0.0.0/8",
                          "--rate", "100000") as collector:
        def send(n: int, source: str):
            return post(collector, envelope(site(n), MODULE), headers={"X-Forwarded-For": source})

        answers = [send(n, "2001:db8:5::1") for n in range(5)]
        again = send(0, "2001:db8:5:ffff::9")  # the same /48, a site already counted
        other = send(7, "2001:db8:6::1")  # another /48
        counted = rows(collector.db, "SELECT site_id FROM site_weeks ORDER BY site_id")
        kept_apart = rows(collector.db, "SELECT site_id FROM quarantined_reports ORDER BY site_id")
    assert {answer for answer in answers + [again, other]} == {answers[0]}  # the same 200, whatever the cap
    assert answers[0][0] == 200
    assert sorted(counted) == sorted((site(n),) for n in (0, 1, 2, 7))
    assert sorted(kept_apart) == sorted((site(n),) for n in (3, 4))


@pytest.mark.parametrize("text, shown", [
    ("postgresql://u:s3cret@db.example:5432/tel", "postgresql://u:***@db.example:5432/tel"),
    ("postgresql://u@db.example:5432?password=s3cret", "postgresql://u:***@db.example:5432"),
    ("postgres://u@db.example/tel?sslmode=require&%50ASSWORD=s3cret", "postgres://<unparseable>"),
    ("postgres://u@db.example/tel?sslmode=require&pass%77ord=s3cret", "postgres://u:***@db.example/tel?***"),
    # review 2 F2: libpq ends the user part only at '@' or '/': '#' and '?' are the password's
    ("postgresql://dropsonde:hunter#SECRET1@127.0.0.1:1/telemetry", "postgresql://dropsonde:***@127.0.0.1:1/telemetry"),
    ("postgresql://dropsonde:hun?SECRET2@127.0.0.1:1/telemetry", "postgresql://dropsonde:***@127.0.0.1:1/telemetry"),
    # libpq: password 'a', host 'SECRET3' / host 'u', port 'a', dbname 'SECRET4@...': the rest of a password
    ("postgresql://u:a@SECRET3@db.example/tel", "postgresql://<ambiguous: percent-encode '@' and '/' in the user part>"),
    ("postgresql://u:a/SECRET4@db.example/tel", "postgresql://<ambiguous: percent-encode '@' and '/' in the user part>"),
    ("postgresql://[2001:db8::5]:5432/tel", "postgresql://[2001:db8::5]:5432/tel"),
    ("host=db.example password=s3cret dbname=tel", "host=db.example password=*** dbname=tel"),
    ("host=db.example PASSWORD = 's3 cret' dbname=tel", "host=db.example PASSWORD = *** dbname=tel"),
    ("/var/lib/dropsonde-collector/reports.db", "/var/lib/dropsonde-collector/reports.db"),
])
def test_redact_url_hides_every_spelling_of_a_password(text, shown):
    """Re-check of the review: a query string right after the authority, and a libpq
    key=value string given as --db (taken as a SQLite path and echoed), showed the password."""
    from dropsonde.collector.sql_dialect import redact_url

    assert redact_url(text) == shown


@settings(max_examples=300, deadline=None)
@given(password=st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?#[]% \"", min_size=0,
                        max_size=12), where=st.sampled_from(["before", "after", "around"]))
def test_no_password_however_spelled_appears_in_what_is_shown_of_a_store(password, where):
    """Review 2 F2: whatever characters a password holds (URL-safe or not: '#', '?',
    '@', '/', '%'), what errors and logs show of the URL never holds it."""
    from dropsonde.collector.sql_dialect import redact_url

    secret = {"before": "PW" + password, "after": password + "PW", "around": password + "PW" + password}[where]
    urls = [f"postgresql://dropsonde:{secret}@127.0.0.1:5432/telemetry"]
    if "&" not in secret:  # in a query string '&' starts the next parameter (for libpq too): a value cannot hold it
        urls.append(f"postgres://dropsonde@db.example/telemetry?password={secret}")
    for url in urls:
        with cpu_limit(2):
            shown = redact_url(url)
        assert "PW" not in shown, (url, shown)


def test_a_key_value_connection_string_given_as_a_store_is_not_echoed(tmp_path):
    """Re-check of the review: `--db "host=... password=..."` was taken as a SQLite
    path and its password printed in the error."""
    from dropsonde.errors import ExitStatus
    from tests.support.cli import assert_clean_error, run_dropsonde

    result = run_dropsonde("collector", "aggregate", "--db", "host=127.0.0.1 password=s3cr3t dbname=tel",
                           "--out", str(tmp_path / "o"))
    assert_clean_error(result, ExitStatus.USAGE, "password=***", "no such store")
    assert "s3cr3t" not in result.stderr


def in_process_collector(tmp_path, rate: int, clock, sites: int = 10, db: str = "r.db"):
    """The WSGI application serve runs, in this process (its rate clock frozen by the
    test), over a real SQLite store whose writer is started."""
    forge = write_forge_cache(tmp_path / "forge", FORGE_MODULES).parent
    store = open_store(str(tmp_path / db), allowlist=load_allowlist(forge))
    store.start_writer()
    limiter = RateLimiter(str(tmp_path / "rate.db"), rate, sites_per_week=sites, clock=clock).create()
    options = ServeOptions(rate_per_minute=rate, sites_per_source=sites)
    return CollectorApp(store, REPORT_COLUMNS, options, load_allowlist(forge), limiter)


def wsgi_post(app, body: bytes, address: str) -> tuple[int, dict]:
    """POST ``body`` from ``address`` to the WSGI application: its status and answer."""
    statuses: list = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "CONTENT_TYPE": "application/json",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": address}
    answer = b"".join(app(environ, lambda status, headers: statuses.append(int(status.split()[0]))))
    return statuses[0], json.loads(answer)


def test_one_source_gets_a_bounded_number_of_body_bytes_processed_per_rate_window(tmp_path):
    """Review F3: 60 maximal reports from one address, all within its --rate burst,
    stalled every other report for 50 s. The bucket is charged by bytes, so in one
    window (the clock stands still) one source makes the collector read, parse and
    validate at most a bucket's worth of bytes — and another source is still served."""
    app = in_process_collector(tmp_path, 60, clock=lambda: 1000.0)
    unknown = [{"name": f"nosuch::c{n}"} for n in range(4000)]  # schema-valid, refused by the allowlist
    heavy = envelope(site(1), MODULE, unused_classes=unknown)
    assert len(heavy) > 100_000
    answers = [wsgi_post(app, heavy, "198.51.100.7")[0] for _ in range(60)]
    processed = sum(len(heavy) for status in answers if status != 429)
    assert set(answers) == {400, 429}
    assert processed <= 60 * BYTES_PER_TOKEN  # main: 60 bodies, 7 MB, all validated
    status, _ = wsgi_post(app, envelope(site(2), MODULE), "198.51.100.8")
    assert status == 200
    app.store.close()


def test_a_small_report_costs_one_token_and_a_large_one_no_more_than_a_full_bucket(tmp_path):
    limiter = RateLimiter(str(tmp_path / "rate.db"), 10, clock=lambda: 1000.0).create()
    assert limiter.cost(3000) == 1.0
    assert limiter.cost(4 * BYTES_PER_TOKEN) == 4.0
    assert limiter.cost(10**9) == 10.0
    assert [limiter.allow("192.0.2.9", limiter.cost(5 * BYTES_PER_TOKEN)) for _ in range(3)] == [True, True, False]
    assert limiter.allow("192.0.2.9") is False  # 0 tokens left
    assert limiter.allow("192.0.2.10", limiter.cost(10**9)) is True


def test_a_list_over_its_cap_is_refused_before_its_items_are_validated(tmp_path):
    """The cap is one len(): a list of 5,001 entries whose last one is malformed is
    refused for its length (on main jsonschema walked all of it first and named the
    malformed entry)."""
    app = in_process_collector(tmp_path, 100_000, clock=lambda: 1000.0)
    items = [{"name": "ntp"}] * 5000 + [{"name": 5}]
    status, answer = wsgi_post(app, envelope(site(1), MODULE, unused_classes=items), "198.51.100.7")
    assert status == 400
    assert answer["rule"] == "at most 5000 entries per report" and answer["column"] == "unused_classes"
    app.store.close()


def test_a_report_over_the_quarantine_is_answered_after_a_durable_commit_like_a_stored_one(tmp_path):
    """Review F1: a report not stored at all (its source over twice its cap of sites)
    was answered without waiting for the writer's commit — three times faster than
    a stored one, which told whoever shares the source which site ids it had
    reported for. Now it is counted in the writer's group commit: its answer
    leaves after a commit that wrote to the store (seen from another connection
    the moment it is answered), and when the store is down it gets 503 like the others."""
    app = in_process_collector(tmp_path, 100_000, clock=lambda: 1000.0, sites=1)
    verdicts = [wsgi_post(app, envelope(site(n), MODULE), "198.51.100.7") for n in (1, 2, 3)]
    assert {status for status, _ in verdicts} == {200} and len({json.dumps(a) for _, a in verdicts}) == 1
    assert rows(str(tmp_path / "r.db"), "SELECT reports FROM discarded_reports") == [(1,)]  # committed
    assert rows(str(tmp_path / "r.db"), "SELECT COUNT(*) FROM reports") == [(1,)]
    app.store.close()
    unreachable = connect_store(str(tmp_path / "gone" / "r.db"))  # a worker's store whose database is down
    unreachable.start_writer()
    down = CollectorApp(unreachable, REPORT_COLUMNS, app.options, app.allowlist, app.limiter)
    answers = {wsgi_post(down, envelope(site(n), MODULE), "198.51.100.7")[0] for n in (1, 2, 3, 4)}
    assert answers == {503}  # main: 200 for the discarded ones (sites 3 and 4)
    unreachable.close()


@pytest.mark.parametrize("head", [
    b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",  # 404, before any rate check
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",  # 413
])
def test_a_refused_bodys_remaining_bytes_are_not_read_for_free(tmp_path, head):
    """Outside review N1: the answer left the connection open, so gunicorn read the rest of the
    body to reach the next request — at no cost to the sender and without limit (one connection
    kept a core busy; others' reports waited 9 s). Now the connection is closed after the answer
    and at most LINGER_BYTES more are read: sending 256 MiB fails long before the end."""
    from dropsonde.collector.body_reader import LINGER_BYTES

    chunk = (b"%x\r\n" % (1 << 20)) + b"x" * (1 << 20) + b"\r\n" if b"chunked" in head else b"x" * (1 << 20)
    with CollectorProcess(str(tmp_path / "r.db"), "--workers", "1") as collector:
        client = socket.create_connection(("127.0.0.1", collector.port), timeout=15)
        sent = 0
        with client:
            client.sendall(head)
            try:
                while sent < 256 * (1 << 20):
                    client.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = b""
            try:
                answer = client.recv(4096)
            except ConnectionResetError:  # the server closed with our bytes unread: the answer may be lost
                pass
        assert sent < 64 * (1 << 20), sent  # socket buffers and LINGER_BYTES, not the whole body
        assert LINGER_BYTES <= 4 * (1 << 20)
        if answer:
            assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 413 Request Entity Too Large")
        assert post(collector, envelope(site(1), MODULE))[0] == 200  # the worker serves others
