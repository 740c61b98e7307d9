"""What one source can do to the collector: rate limits shared by all workers
and keyed by the real client behind a trusted proxy, and slow or idle clients
that cannot hold the server."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dropsonde.collector.limits import RateLimiter, client_address, parse_networks, rate_key, read_body
from tests.support.collector_process import MODULE, CollectorProcess, envelope, post, rows, site


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
    ("2001:db8::1", "2001:db8::/64"),
    ("2001:db8::ffff:1", "2001:db8::/64"),
    ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
    ("198.51.100.7", "198.51.100.7"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
])
def test_rate_budgets_are_per_ipv4_address_and_per_ipv6_64(address, key):
    assert rate_key(address) == key


def test_a_bad_trusted_proxy_is_named():
    with pytest.raises(ValueError, match="not-a-cidr"):
        parse_networks(["10.0.0.0/8", "not-a-cidr"])


def test_two_limiters_on_one_file_share_each_budget(tmp_path):
    now = [1000.0]
    first = RateLimiter(str(tmp_path / "rate.db"), 60, clock=lambda: now[0]).create()
    second = RateLimiter(str(tmp_path / "rate.db"), 60, clock=lambda: now[0])
    taken = [limiter.allow("a") for _ in range(40) for limiter in (first, second)]
    assert taken.count(True) == 60 and taken[-1] is False
    assert second.allow("b")  # another address has its own bucket
    now[0] += 2.0  # a token a second comes back
    assert [first.allow("a"), second.allow("a"), first.allow("a")] == [True, True, False]


def test_a_body_sent_too_slowly_is_cut_off():
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"x" * 10)
        environ = {"wsgi.input": server.makefile("rb"), "gunicorn.socket": server}
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            read_body(environ, 100, timeout=0.3)
        assert time.monotonic() - started < 3
        client.sendall(b"y" * 5)
        assert read_body({"wsgi.input": server.makefile("rb"), "gunicorn.socket": server}, 5, timeout=3) == b"yyyyy"


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
        answer = body_stall.recv(4096)
        closed = body_stall.recv(1024)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ") and b"not sent within 1 s" in answer
    assert closed == b"" and elapsed < 5


def test_the_rate_limit_is_shared_by_all_workers(tmp_path):
    # Reports heavy enough to keep one worker busy, so the other accepts too.
    heavy = MODULE * 2000  # the most modules a report may list
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


def test_budgets_behind_a_proxy_are_per_ipv6_64_and_ipv4_whatever_its_spelling(tmp_path):
    """F6/F7: eight addresses of one /64 each got a budget, an IPv4-mapped spelling got a
    second one, and hops with a port were all counted against the proxy."""
    forwarded = ["2001:db8::1", "2001:db8::2", "198.51.100.7", "::ffff:198.51.100.7", "198.51.100.9:1234",
                 "[2001:db8:1::1]:443", "198.51.100.10:5678"]
    with CollectorProcess(str(tmp_path / "r.db"), "--rate", "1", "--trusted-proxy", "127.0.0.0/8") as collector:
        codes = [post(collector, envelope(site(n), MODULE), headers={"X-Forwarded-For": hop})[0]
                 for n, hop in enumerate(forwarded)]
    assert codes == [200, 429, 200, 429, 200, 200, 200]
