"""The redirect rule and the retry policy shared by submit and the Forge crawl (end-to-end tests in
test_submit.py and test_forge_update.py)."""

from __future__ import annotations

import time

import pytest

from dropsonde.errors import DropsondeError
from dropsonde.http_client import HttpPolicy, RedirectRefused, check_redirect, origin


def test_origin_fills_in_default_ports_and_ignores_case():
    assert origin("https://Forge.Example/v3") == origin("https://forge.example:443/other") == ("https", "forge.example", 443)
    assert origin("http://[::1]/") == ("http", "::1", 80)
    assert origin("ftp://x/") is None and origin("https://h:notaport/") is None and origin("/relative") is None


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
    with pytest.raises(DropsondeError, match=f"{name}: expected a number of seconds") as error:
        HttpPolicy.from_environment({name: value})
    assert error.value.status == 2
