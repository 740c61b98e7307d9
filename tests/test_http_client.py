"""The redirect rule shared by submit and the Forge crawl (end-to-end tests in
test_submit.py and test_forge_update.py)."""

from __future__ import annotations

import pytest

from dropsonde.http_client import RedirectRefused, check_redirect, origin


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
