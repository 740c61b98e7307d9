"""The origin check, the redirect rule, the retry policy and the deadline and size cap of an answer,
shared by submit, the Forge crawl and PuppetDB (end-to-end tests in test_submit.py,
test_forge_update.py and puppet/test_puppetdb.py)."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest
import requests
from urllib3.connection import HTTPSConnection
from urllib3.exceptions import MaxRetryError, NameResolutionError

from dropsonde.errors import BadInput
from dropsonde.http_client import (
    AnswerRefused,
    HttpPolicy,
    RedirectRefused,
    check_redirect,
    describe_failure,
    fetch,
    origin,
    require_https_unless_loopback,
    session,
)
from tests.support.loopback import LoopbackServer, QuietHandler
from tests.support.puppetdb_server import free_port, make_ca, make_signed


def test_origin_fills_in_default_ports_and_ignores_case():
    assert origin("https://Forge.Example/v3") == origin("https://forge.example:443/other") == ("https", "forge.example", 443)
    assert origin("http://[::1]/") == ("http", "::1", 80)
    assert origin("ftp://x/") is None and origin("https://h:notaport/") is None and origin("/relative") is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:2\\@127.0.0.1:1/x", "http://a@127.0.0.1:1/", "http://127.0.0.1:1 /",
                                 "http://h\x1b/", "http:/\\h/x", "http:127.0.0.1:1/"])
def test_urls_that_parsers_read_differently_have_no_origin(url):
    """urllib.parse and urllib3 (which sends) must agree on where a URL goes: for these they do not,
    or name user info, so no origin comparison can pass them."""
    assert origin(url) is None


def test_the_backslash_at_trick_is_another_origin():
    with pytest.raises(RedirectRefused, match="another origin"):
        check_redirect("http://127.0.0.1:1/in", "GET", 302, "http://127.0.0.1:2\\@127.0.0.1:1/second")


@pytest.mark.parametrize("url", ["http://example.test", "http://10.0.0.1:80", "http://[::ffff:8.8.8.8]"])
def test_plain_http_off_loopback_is_refused(url):
    with pytest.raises(BadInput, match="--option: .*https is required"):
        require_https_unless_loopback(url, "--option")


@pytest.mark.parametrize("target", ["http://h/x", "https://other/x", "https://h:8443/x", "file:///etc/passwd", "https://h\x1b[2J.evil/"])
def test_redirects_off_the_origin_are_refused(target):
    with pytest.raises(RedirectRefused, match="another origin: not followed") as refused:
        check_redirect("https://h/in", "GET", 307, target)
    assert "\x1b" not in str(refused.value)  # printed on a terminal: control characters escaped


def test_same_origin_redirects_that_keep_the_method():
    check_redirect("https://h/in", "POST", 307, "https://H:443/collect")
    check_redirect("https://h/in", "POST", 308, "https://h/collect")
    check_redirect("https://h/in", "GET", 302, "https://h/v3/modules")
    with pytest.raises(RedirectRefused, match="would resend the POST as a GET"):
        check_redirect("https://h/in", "POST", 303, "https://h/collect")


# ---- how long to wait, how often to try (the retries themselves: test_submit.py, test_forge_update.py) ----


def test_the_production_policy():
    policy = HttpPolicy()
    assert (policy.retries, policy.backoff_factor, policy.max_retry_after) == (3, 0.5, 60.0)
    assert policy.timeouts == (10.0, 30.0)
    assert policy.sleep is time.sleep
    assert HttpPolicy.from_environment({}) == policy


def test_the_urllib3_retry_it_builds():
    retry = HttpPolicy().retry(frozenset({"POST"}))
    assert (retry.total, retry.connect, retry.read, retry.status) == (3, 3, 3, 3)
    assert set(retry.status_forcelist) == {429, 500, 502, 503, 504}  # never another 4xx
    assert retry.allowed_methods == frozenset({"POST"})
    assert retry.respect_retry_after_header and not retry.raise_on_status
    assert not retry.is_retry("POST", 413, has_retry_after=True)  # urllib3 alone retries it
    assert retry.is_retry("POST", 503, has_retry_after=True)


def answer(status, retry_after=None):
    from urllib3 import HTTPResponse

    return HTTPResponse(status=status, headers={"Retry-After": retry_after} if retry_after else {})


@pytest.mark.parametrize("retry_after, wait", [("7", 7.0), ("60", 60.0), ("86400", 60.0)])
def test_retry_after_is_waited_up_to_a_minute(retry_after, wait):
    waits = []
    retry = HttpPolicy(sleep=waits.append).retry(frozenset({"GET"}))
    retry = retry.increment("GET", "/v3/modules", response=answer(429, retry_after))
    retry.sleep(answer(429, retry_after))
    assert waits == [wait]


def test_backoff_doubles_and_can_be_turned_off():
    for factor, expected in ((0.5, [1.0, 2.0]), (0.0, [])):
        waits = []
        retry = HttpPolicy(backoff_factor=factor, sleep=waits.append).retry(frozenset({"GET"}))
        for _ in range(3):
            retry = retry.increment("GET", "/", response=answer(503))
            retry.sleep(answer(503))
        assert waits == expected


def test_the_environment_sets_the_read_timeout_and_the_backoff():
    policy = HttpPolicy.from_environment({"DROPSONDE_HTTP_TIMEOUT": "0.25", "DROPSONDE_HTTP_BACKOFF": "0"})
    assert policy == HttpPolicy(read_timeout=0.25, backoff_factor=0.0)


@pytest.mark.parametrize("name, value", [("DROPSONDE_HTTP_TIMEOUT", "0"), ("DROPSONDE_HTTP_TIMEOUT", "soon"),
                                         ("DROPSONDE_HTTP_TIMEOUT", "inf"), ("DROPSONDE_HTTP_BACKOFF", "-1"),
                                         ("DROPSONDE_HTTP_BACKOFF", "nan")])
def test_a_bad_environment_value_is_a_usage_error(name, value):
    with pytest.raises(BadInput, match=f"{name}: expected a number of seconds"):
        HttpPolicy.from_environment({name: value})


# ---- the deadline and the size cap of a whole answer, against loopback servers ----


class Answers(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        mode = self.server.state
        if mode == "drip":
            return self.drip()
        if mode == "drip headers":
            return self.drip_headers()
        if mode == "large":
            return self.send(200, b"x" * 5000, "application/octet-stream")
        if mode == "large unannounced":  # no Content-Length: the cap is found by counting
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"x" * 5000)
            self.close_connection = True
            return None
        self.send(200, b'{"ok": true}', "application/json")


FAST = HttpPolicy(deadline=0.3, retries=0)


@pytest.mark.parametrize("mode", ["drip", "drip headers"])
def test_an_answer_that_never_ends_is_cut_at_the_deadline(mode):
    """Each byte comes long before the 30 s read timeout; only the deadline ends the request."""
    with LoopbackServer(Answers, mode) as server:
        started = time.monotonic()
        with pytest.raises(AnswerRefused, match="no complete answer within 0.3 s"):
            fetch(session(FAST), "GET", server.url + "/", FAST, 1_000_000)
        assert time.monotonic() - started < 3


def test_the_deadline_is_not_retried():
    policy = HttpPolicy(deadline=0.3, sleep=[].append)
    with LoopbackServer(Answers, "drip headers") as server:
        started = time.monotonic()
        with pytest.raises(AnswerRefused):
            fetch(session(policy), "GET", server.url + "/", policy, 1_000_000)
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("mode", ["large", "large unannounced"])
def test_an_answer_over_its_cap_is_refused(mode):
    with LoopbackServer(Answers, mode) as server:
        with pytest.raises(AnswerRefused, match="larger than 4096 bytes: not read"):
            fetch(session(FAST), "GET", server.url + "/", FAST, 4096)
        assert fetch(session(FAST), "GET", server.url + "/", FAST, 5000).body == b"x" * 5000


def test_a_complete_answer_within_both_and_a_reused_connection():
    http = session(FAST)
    with LoopbackServer(Answers, "ok") as server:
        for _ in range(3):  # keep-alive: the later requests reuse the socket, under their own deadline
            reply = fetch(http, "GET", server.url + "/x", FAST, 100)
            assert (reply.status, reply.url, reply.body) == (200, server.url + "/x", b'{"ok": true}')
        server.state = server.httpd.state = "drip"
        with pytest.raises(AnswerRefused, match="within 0.3 s"):
            fetch(http, "GET", server.url + "/x", FAST, 1_000_000)



def test_a_name_resolution_failure_is_said_in_words():
    """The chain requests raises when a name does not resolve (urllib3 2's
    NameResolutionError, whose repr names our connection class, inside
    MaxRetryError, inside requests' ConnectionError): one plain reason, no class
    reprs, as the journal shows it."""
    resolver = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    connection = HTTPSConnection("collector.example", 443)
    try:
        try:
            raise NameResolutionError("collector.example", connection, resolver) from resolver
        except NameResolutionError as failure:
            raise requests.exceptions.ConnectionError(MaxRetryError(None, "/", failure)) from None
    except requests.exceptions.ConnectionError as raised:
        said = describe_failure("https://collector.example/", raised, HttpPolicy())
    assert said == "cannot reach https://collector.example/: cannot resolve the host name (Name or service not known)"


def test_refused_and_untrusted_connections_are_said_in_words(tmp_path):
    """Real failures on loopback: a closed port, and a TLS server whose CA nobody trusts."""
    policy = HttpPolicy(retries=0)
    closed = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(Exception) as refused:
        fetch(session(policy), "GET", closed, policy, 1024)
    assert describe_failure(closed, refused.value, policy) == f"cannot reach {closed}: connection refused"

    ca, ca_key = make_ca(tmp_path, "unknown")
    cert, key = make_signed(tmp_path, "server", ca, ca_key, "IP:127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
        def handshake() -> None:
            conn, _ = listener.accept()
            with conn:
                try:
                    context.wrap_socket(conn, server_side=True).close()
                except (ssl.SSLError, OSError):
                    pass

        server = threading.Thread(target=handshake, daemon=True)
        server.start()
        with pytest.raises(Exception) as untrusted:
            fetch(session(policy), "GET", url, policy, 1024)
        server.join(timeout=30)
    said = describe_failure(url, untrusted.value, policy)
    assert said == f"{url}: TLS failure: certificate verify failed: unable to get local issuer certificate", said


class UnavailableThenHanging(QuietHandler):
    """503 (closing the connection) to the first request, then no answer to any other;
    every connection accepted is counted in the state."""

    def setup(self):
        super().setup()
        self.server.state.append("connection")

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.server.state.count("connection") == 1:
            return self.send(503, b"busy", "text/plain", {"Connection": "close"})
        return self.hang()


def test_no_retry_starts_after_the_deadline():
    """The mutation run: retrying on past the deadline failed no test. The first request
    is refused, the retry hangs until the deadline: then no further attempt is made,
    though two retries are left."""
    policy = HttpPolicy(deadline=0.5, retries=3, backoff_factor=0.0)
    with LoopbackServer(UnavailableThenHanging, []) as server:
        with pytest.raises(AnswerRefused, match="no complete answer within 0.5 s"):
            fetch(session(policy), "GET", server.url + "/", policy, 1_000)
        connections = list(server.state)
    assert connections == ["connection", "connection"]
