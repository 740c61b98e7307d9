"""HTTP to the outside world (the Forge, the telemetry endpoint): one session
recipe with our User-Agent, bounded retries and timeouts, and one way of
describing a failure in a line.

Retries cover connection errors, 429 and 5xx, with exponential backoff and
``Retry-After`` honoured up to a cap, so a struggling server is not hammered
and a run never waits unboundedly. Proxies and the CA store come from the
standard environment (``https_proxy``, ``REQUESTS_CA_BUNDLE``...).

Redirects stay on the origin they start from (scheme, host and port): a
hostile or misconfigured server must not be able to send the report in clear
text, or to another host, by answering 307. Same-origin redirects are
followed, at most ``MAX_REDIRECTS`` of them, and only when they keep the
method: a 301/302/303 would turn a POST into a body-less GET, so the report
would look accepted without having been delivered.
"""

from __future__ import annotations

import os
from typing import Any, FrozenSet, Optional, Tuple
from urllib.parse import urljoin, urlsplit

from dropsonde import __version__
from dropsonde.terminal import printable

RETRIES = 3
MAX_RETRY_AFTER = 60.0
CONNECT_TIMEOUT = 10.0
# For slow links (and tests): seconds to wait for an answer.
READ_TIMEOUT = float(os.environ.get("DROPSONDE_HTTP_TIMEOUT", "30"))
TIMEOUTS = (CONNECT_TIMEOUT, READ_TIMEOUT)
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}
# Redirects that resend the request with its method and body (RFC 9110 15.4).
METHOD_KEEPING_REDIRECTS = frozenset({307, 308})


class RedirectRefused(Exception):
    """A redirect we do not follow: to another origin, or one that would drop a POST's body."""


def origin(url: str) -> Optional[Tuple[str, str, int]]:
    """(scheme, host, port) of ``url``, default ports filled in; None when it has no usable origin."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:  # a bracket without its pair, a port that is not a number
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port


def check_redirect(from_url: str, method: str, status: int, location: str) -> None:
    """RedirectRefused unless following ``status`` from ``from_url`` to ``location``
    (absolute or relative) stays on the same origin and keeps ``method``."""
    try:
        target = urljoin(from_url, location)
    except ValueError:
        target = location
    if origin(target) is None or origin(target) != origin(from_url):
        raise RedirectRefused(f"redirected to {printable(target)[:200]}, another origin: not followed")
    if method not in ("GET", "HEAD") and status not in METHOD_KEEPING_REDIRECTS:
        raise RedirectRefused(f"HTTP {status} redirect would resend the {method} as a GET: not followed")


def session(methods: FrozenSet[str] = frozenset({"GET"})) -> Any:
    """A requests session that retries ``methods`` on connection errors, 429 and 5xx,
    and follows only same-origin, method-keeping redirects (RedirectRefused otherwise)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class BoundedRetry(Retry):
        def get_retry_after(self, response):  # noqa: ANN001 - urllib3's signature
            after = super().get_retry_after(response)
            return None if after is None else min(after, MAX_RETRY_AFTER)

    retry = BoundedRetry(
        total=RETRIES,
        connect=RETRIES,
        read=RETRIES,
        status=RETRIES,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=methods,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    class SameOriginSession(requests.Session):
        """requests follows any redirect; this one checks each hop first."""

        def get_redirect_target(self, resp):  # noqa: ANN001 - requests' signature
            target = super().get_redirect_target(resp)
            if target is not None:
                check_redirect(resp.url, resp.request.method, resp.status_code, target)
            return target

    http = SameOriginSession()
    http.max_redirects = MAX_REDIRECTS
    adapter = HTTPAdapter(max_retries=retry)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers.update({"User-Agent": f"dropsonde/{__version__}", "Accept": "application/json"})
    return http


def describe_failure(url: str, exc: BaseException) -> str:
    """One line for a requests exception: timeout, TLS, proxy, refused, reset..."""
    import requests

    text = str(exc)
    if isinstance(exc, RedirectRefused):
        return f"{url}: {text}"
    if isinstance(exc, requests.exceptions.Timeout) or "Read timed out" in text:
        return f"{url}: no answer within {READ_TIMEOUT:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"{url}: TLS failure: {innermost_reason(exc)}"
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"proxy error reaching {url}: {innermost_reason(exc)}"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return f"{url}: too many redirects"
    return f"cannot reach {url}: {innermost_reason(exc)}"


def innermost_reason(exc: BaseException) -> str:
    """The useful end of a requests/urllib3 exception chain, which nests each cause in the next."""
    text = str(exc)
    for marker in ("Caused by ", "certificate verify failed", "NewConnectionError", "ConnectionRefusedError",
                   "ConnectionResetError", "ProtocolError", "SSLError("):
        if marker in text:
            text = text[text.index(marker):]
            break
    return text.strip("()'\" ")[:200]
