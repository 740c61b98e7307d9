"""`dropsonde submit` and `dropsonde last` against loopback receivers."""

from __future__ import annotations

import json
import os
import ssl
import stat
import time

import pytest

from dropsonde import http_client
from dropsonde.errors import BadInput, ExitStatus
from dropsonde.http_client import HttpPolicy
from dropsonde.submit import SubmitError, post_report, submission_url
from tests.support.cli import assert_clean_error
from tests.support.puppet_tree import PuppetTree, make_module, write
from tests.support.puppetdb_server import free_port, make_ca, make_signed
from tests.support.receiver import Receiver


@pytest.fixture
def tree(tmp_path) -> PuppetTree:
    tree = PuppetTree(tmp_path / "site")
    tree.forge(["puppetlabs-ntp"])
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", "10.0.0")
    return tree


def without_timestamps(report: dict) -> dict:
    snapshots = report["self-service-analytics"]["snapshots"]
    return {**report, "self-service-analytics": {"snapshots": {k: v["value"] for k, v in snapshots.items()}}}


def test_submit_posts_the_preview_and_records_it(tree):
    with Receiver() as receiver:
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Report received, thank you"
    [received] = receiver.state.received
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["User-Agent"].startswith("dropsonde/")
    preview = tree.run("preview", "--format", "json")
    assert without_timestamps(json.loads(received.body)) == without_timestamps(preview.json())
    last = tree.run("last", "--format", "json")
    assert last.returncode == 0
    assert json.loads(last.stdout) == json.loads(received.body)
    state = tree.cachepath / "last-submission.json"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    human = tree.run("last")
    assert human.stdout.startswith("Last submitted: ") and f"127.0.0.1:{receiver.port}" in human.stdout


def test_json_preview_is_byte_for_byte_the_body(tree):
    """Same code path: with the clock fixed by --siteid/seed irrelevant, only timestamps may differ."""
    with Receiver() as receiver:
        tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    body = receiver.state.received[0].body
    preview = tree.run("preview", "--format", "json").stdout.encode()
    stamp = json.loads(body)["self-service-analytics"]["snapshots"]["modules"]["timestamp"]
    other = json.loads(preview)["self-service-analytics"]["snapshots"]["modules"]["timestamp"]
    assert body == preview.replace(other.encode(), stamp.encode())


def test_newer_client_message(tree):
    with Receiver("newer") as receiver:
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "A newer version of the telemetry client is available:", "  https://example.test/dropsonde"]


@pytest.mark.parametrize("mode, shown", [
    ("forged", ["Thanks\\ndropsonde: error: FORGED by server\\e[2J"]),
    ("forged-newer", ["A newer version of the telemetry client is available:",
                      "  https://example.test/\\ndropsonde: error: FORGED by link"]),
])
def test_a_servers_message_or_link_is_one_line_each(tree, mode, shown):
    """Review L3: a newline in the server's message or link printed a fake error line on stdout."""
    with Receiver(mode) as receiver:
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == shown


def test_endpoint_and_port_from_telemetry_yaml(tree):
    with Receiver() as receiver:
        write(tree.confdir.parent / "telemetry.yaml",
              f":update: false\n:endpoint: {receiver.endpoint}\ncommands:\n  :submit:\n    :port: {receiver.port}\n")
        result = tree.run("submit")
    assert result.returncode == 0, result.stderr
    assert len(receiver.state.received) == 1


@pytest.mark.parametrize("mode, needle", [("500", "HTTP 500"), ("notjson", "not valid JSON"),
                                          ("redirect", "too many redirects"), ("hang", "no answer within 0.1 s")])
def test_faults_fail_clearly_and_record_nothing(tree, mode, needle):
    with Receiver(mode) as receiver:
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port),
                          env={"DROPSONDE_HTTP_TIMEOUT": "0.1"} if mode == "hang" else None)
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", needle)
    assert not (tree.cachepath / "last-submission.json").exists()
    if mode in ("500", "hang"):
        assert len(receiver.state.received) == 4  # retried three times


def test_a_500_is_retried_three_times_with_backoff():
    """The production numbers, with the waits noted instead of spent."""
    waits: list = []
    with Receiver("500") as receiver:
        with pytest.raises(SubmitError, match="HTTP 500"):
            post_report(f"{receiver.url}/", b"{}", HttpPolicy(sleep=waits.append))
    assert len(receiver.state.received) == 4
    assert waits == [1.0, 2.0]  # none before the first retry, then 0.5 s × 2, × 4


def test_an_answer_that_drips_forever_ends_at_the_deadline():
    """The collector's answer must be complete within the deadline, however steadily it trickles."""
    with Receiver("drip") as receiver:
        started = time.monotonic()
        with pytest.raises(SubmitError, match=r"127\.0\.0\.1:\d+/: no complete answer within 0.3 s$"):
            post_report(f"{receiver.url}/", b"{}", HttpPolicy(deadline=0.3, sleep=[].append))
        assert time.monotonic() - started < 4
    assert len(receiver.state.received) == 1


def test_a_deeply_nested_answer_is_not_json(tree):
    with Receiver("deep") as receiver:
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", f":{receiver.port}/", "the answer is nested more than 32 levels deep")
    assert not (tree.cachepath / "last-submission.json").exists()


@pytest.mark.parametrize("endpoint", ["http://updates.puppet.com", "http://10.0.0.1:8080", "http://localhost.example.test",
                                      "http://[::ffff:8.8.8.8]", "http://169.254.169.254", "http://[fe80::1]"])
def test_plain_http_is_refused_off_loopback(endpoint):
    """In clear text, the report could be read or changed on the way: as for --forge-api."""
    with pytest.raises(BadInput, match="--endpoint: .*https is required"):
        submission_url(endpoint, None)


def test_a_plain_http_endpoint_is_a_usage_error_and_nothing_is_sent(tree):
    result = tree.run("submit", "--endpoint", "http://collector.example.test", "--port", "8080")
    assert_clean_error(result, ExitStatus.USAGE, "--endpoint", "http://collector.example.test", "https is required")
    assert not (tree.cachepath / "last-submission.json").exists()


def test_refused_connection(tree):
    result = tree.run("submit", "--endpoint", "http://127.0.0.1", "--port", str(free_port()))
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", "cannot reach")
    assert not (tree.cachepath / "last-submission.json").exists()


def test_verbose_shows_the_servers_answer(tree):
    with Receiver("500") as receiver:
        result = tree.run("-v", "submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", "HTTP 500")
    assert "  | internal error\n" in result.stderr  # the server's body, indented


def tls_context(cert, key) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def system_store(monkeypatch, ca) -> None:
    """``ca`` as the distribution's trust store (the file update-ca-certificates writes)."""
    monkeypatch.setattr(http_client, "SYSTEM_CA_BUNDLES", (str(ca),))


def test_https_verified_against_the_system_trust_store(tree, tmp_path, monkeypatch):
    ca, ca_key = make_ca(tmp_path, "trusted")
    cert, key = make_signed(tmp_path, "collector", ca, ca_key, "IP:127.0.0.1")
    rogue_ca, rogue_key = make_ca(tmp_path, "rogue")
    rogue_cert, rogue_key_file = make_signed(tmp_path, "impostor", rogue_ca, rogue_key, "IP:127.0.0.1")
    system_store(monkeypatch, ca)
    with Receiver(tls=tls_context(cert, key)) as good:
        ok = tree.run("submit", "--endpoint", good.endpoint, "--port", str(good.port))
    assert ok.returncode == 0, ok.stderr
    with Receiver(tls=tls_context(rogue_cert, rogue_key_file)) as bad:
        refused = tree.run("submit", "--endpoint", bad.endpoint, "--port", str(bad.port))
    assert_clean_error(refused, ExitStatus.FAILURE, "Failed to submit report", "TLS failure")
    assert bad.state.received == []


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_shell_variable_changes_nothing_the_scheduled_run_would_not_trust(tree, tmp_path, monkeypatch, variable):
    """The timer runs without REQUESTS_CA_BUNDLE: a root shell that has it set must
    trust the same CAs, neither more (a CA only the variable names) nor fewer
    (a variable naming another bundle hides a CA the system store holds)."""
    ca, ca_key = make_ca(tmp_path, "trusted")
    cert, key = make_signed(tmp_path, "collector", ca, ca_key, "IP:127.0.0.1")
    other_ca, _ = make_ca(tmp_path, "other")
    system_store(monkeypatch, other_ca)
    with Receiver(tls=tls_context(cert, key)) as receiver:
        only_the_variable = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port),
                                     env={variable: str(ca)})
        assert_clean_error(only_the_variable, ExitStatus.FAILURE, "Failed to submit report", "TLS failure")
        assert receiver.state.received == []
        system_store(monkeypatch, ca)
        hidden = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port),
                          env={variable: str(other_ca)})
    assert hidden.returncode == 0, hidden.stderr
    assert len(receiver.state.received) == 1


@pytest.mark.parametrize("endpoint", ["updates.puppet.com", "ftp://x", "https://", "http://h:notaport"])
def test_malformed_endpoint_is_a_usage_error(tree, endpoint):
    result = tree.run("submit", "--endpoint", endpoint)
    assert_clean_error(result, ExitStatus.USAGE, "--endpoint")


def test_submission_url_composition():
    assert submission_url("https://updates.puppet.com", None) == "https://updates.puppet.com:443/"
    assert submission_url("http://127.0.0.1", 8080) == "http://127.0.0.1:8080/"
    assert submission_url("http://localhost", 8080) == "http://localhost:8080/"
    assert submission_url("http://[::1]/in", 8080) == "http://[::1]:8080/in"
    assert submission_url("https://c.example.test:8443/in", None) == "https://c.example.test:8443/in"
    assert submission_url("https://c.example.test:8443/in", 9000) == "https://c.example.test:9000/in"
    with pytest.raises(BadInput, match="--port"):
        submission_url("https://x", 70000)
    for port in (0, -1, 65536):  # the mutation run: 0 passed for a port
        with pytest.raises(BadInput, match=f"--port: expected 1-65535, got {port}"):
            submission_url("https://x", port)
    assert submission_url("https://x", 1) == "https://x:1/" and submission_url("https://x", 65535) == "https://x:65535/"


def test_a_collector_answering_202_has_not_accepted_the_report(tree):
    """Only a 200 counts as submitted: a 202 with a JSON answer is not recorded (the
    mutation run showed any 2xx would have passed)."""
    with Receiver("accepted") as receiver:
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", "HTTP 202")
    assert len(receiver.state.received) == 1
    assert not (tree.cachepath / "last-submission.json").exists()


def test_last_without_a_submission(tree):
    result = tree.run("last")
    assert_clean_error(result, ExitStatus.FAILURE, "no report has been submitted")


@pytest.fixture
def https_store(tmp_path, monkeypatch):
    """A CA in the system trust store and a server certificate valid for 127.0.0.1 and localhost."""
    ca, ca_key = make_ca(tmp_path, "trusted")
    cert, key = make_signed(tmp_path, "collector", ca, ca_key, "IP:127.0.0.1,DNS:localhost")
    system_store(monkeypatch, ca)
    return tls_context(cert, key), {}


@pytest.mark.parametrize("target", ["http", "other host", "other port"])
def test_a_redirect_off_the_origin_is_refused_and_nothing_reaches_the_target(tree, https_store, target):
    """A 307 re-POSTs the body: to http it would leave in clear text, to another host or port
    it would go to a server the admin never chose."""
    tls, store = https_store
    with Receiver(tls=None if target == "http" else tls) as second, Receiver("redirect", tls=tls) as first:
        host = "localhost" if target == "other host" else "127.0.0.1"
        first.state.location = f"{second.scheme}://{host}:{second.port}/"
        result = tree.run("-v", "submit", "--endpoint", first.endpoint, "--port", str(first.port), env=store)
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", "another origin: not followed", f":{second.port}/")
    assert len(first.state.received) == 1
    assert second.state.received == []
    assert not (tree.cachepath / "last-submission.json").exists()


def test_a_same_origin_307_is_followed(tree, https_store):
    tls, store = https_store
    with Receiver("redirect", tls=tls) as receiver:
        receiver.state.location = "/collect"
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port), env=store)
    assert result.returncode == 0, result.stderr
    assert [r.path for r in receiver.state.received] == ["/", "/collect"]
    assert receiver.state.received[0].body == receiver.state.received[1].body


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_turn_the_post_into_a_get_is_refused(tree, status):
    """requests resends a POST as a body-less GET on these: the report would not arrive."""
    with Receiver("redirect") as receiver:
        receiver.state.location, receiver.state.redirect_status = "/collect", status
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", f"HTTP {status} redirect would resend the POST as a GET")
    assert [r.path for r in receiver.state.received] == ["/"]
    assert not (tree.cachepath / "last-submission.json").exists()


@pytest.mark.parametrize("status", ["400", "404", "413"])
def test_a_refusal_is_sent_once_and_recorded_nowhere(tree, status):
    """A 4xx says the request itself is wrong (malformed, wrong path, too large):
    sending it again cannot succeed and only loads the collector."""
    with Receiver(status) as receiver:
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", f"HTTP {status}")
    assert len(receiver.state.received) == 1
    assert not (tree.cachepath / "last-submission.json").exists()


def test_a_413_with_retry_after_is_still_sent_once_and_recorded_nowhere(tree):
    """urllib3 retries 413 and 503 whenever they carry Retry-After, whatever the status
    list says: a report too large for the collector was sent four times."""
    with Receiver("413") as receiver:
        receiver.state.retry_after = "1"
        result = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
    assert_clean_error(result, ExitStatus.FAILURE, "Failed to submit report", "HTTP 413")
    assert len(receiver.state.received) == 1
    assert not (tree.cachepath / "last-submission.json").exists()
