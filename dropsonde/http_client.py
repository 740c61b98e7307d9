"""HTTP to the outside world (the Forge, the telemetry endpoint): one session
recipe with our User-Agent, bounded retries and timeouts, and one way of
describing a failure in a line.

Retries cover connection errors, 429 and 5xx, with exponential backoff and
``Retry-After`` honoured up to a cap, so a struggling server is not hammered
and a run never waits unboundedly. These numbers are an :class:`HttpPolicy`,
passed in, so a test can count retries without waiting for them. Proxies and
the CA store come from the standard environment (``https_proxy``,
``REQUESTS_CA_BUNDLE``...).

Redirects stay on the origin they start from (scheme, host and port): a
hostile or misconfigured server must not be able to send the report in clear
text, or to another host, by answering 307. Same-origin redirects are
followed, at most ``MAX_REDIRECTS`` of them, and only when they keep the
method: a 301/302/303 would turn a POST into a body-less GET, so the report
would look accepted without having been delivered.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, FrozenSet, Mapping, Optional, Tuple
from urllib.parse import urljoin, urlsplit

from dropsonde import __version__
from dropsonde.errors import DropsondeError
from dropsonde.terminal import printable

MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}
# Redirects that resend the request with its method and body (RFC 9110 15.4).
METHOD_KEEPING_REDIRECTS = frozenset({307, 308})
# Retried statuses: the server may answer differently later. Never another 4xx:
# a malformed, misaddressed or too large request stays so.
RETRIED_STATUSES = (429, 500, 502, 503, 504)
# Environment settings for slow or flaky links (and for tests of the command line).
TIMEOUT_VARIABLE = "DROPSONDE_HTTP_TIMEOUT"
BACKOFF_VARIABLE = "DROPSONDE_HTTP_BACKOFF"


@dataclass(frozen=True)
class HttpPolicy:
    """How long to wait and how often to try again. The defaults are the
    production values; ``sleep`` is how a wait between retries is spent (a test
    passes a recorder, so it can see the waits without spending them).

    urllib3 waits nothing before the first retry, then ``backoff_factor`` × 2,
    × 4...: 1 s then 2 s with the default. A ``Retry-After`` from the server
    replaces that wait, but never beyond ``max_retry_after``."""

    retries: int = 3
    backoff_factor: float = 0.5
    max_retry_after: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    @property
    def timeouts(self) -> Tuple[float, float]:
        """(connect, read), as requests takes them."""
        return self.connect_timeout, self.read_timeout

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "HttpPolicy":
        """The defaults, with the read timeout and the backoff factor from
        ``DROPSONDE_HTTP_TIMEOUT`` and ``DROPSONDE_HTTP_BACKOFF`` when set."""
        policy = cls()
        if environ.get(TIMEOUT_VARIABLE):
            policy = replace(policy, read_timeout=_seconds(environ, TIMEOUT_VARIABLE, positive=True))
        if environ.get(BACKOFF_VARIABLE):
            policy = replace(policy, backoff_factor=_seconds(environ, BACKOFF_VARIABLE, positive=False))
        return policy

    def retry(self, methods: FrozenSet[str]) -> Any:
        """The urllib3 Retry that does the retrying, waiting through ``sleep``."""
        from urllib3.util.retry import Retry

        policy = self

        class PolicyRetry(Retry):
            """urllib3's Retry, with the Retry-After cap (urllib3 1.26, as Debian 12
            ships it, has no ``retry_after_max``) and the policy's ``sleep``."""

            def get_retry_after(self, response: Any) -> Optional[float]:
                after = super().get_retry_after(response)
                return None if after is None else min(after, policy.max_retry_after)

            def sleep(self, response: Any = None) -> None:
                after = self.get_retry_after(response) if self.respect_retry_after_header and response else None
                wait = after if after else self.get_backoff_time()
                if wait > 0:
                    policy.sleep(wait)

        return PolicyRetry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            backoff_factor=self.backoff_factor,
            status_forcelist=RETRIED_STATUSES,
            allowed_methods=methods,
            respect_retry_after_header=True,
            raise_on_status=False,
        )


def _seconds(environ: Mapping[str, str], name: str, positive: bool) -> float:
    """A number of seconds from the environment; a clear usage error otherwise."""
    text = environ[name]
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value if positive else 0 <= value) or value == float("inf"):
        raise DropsondeError(f"{name}: expected a number of seconds{' above 0' if positive else ''}, "
                             f"got {printable(repr(text))}")
    return value


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


def session(policy: HttpPolicy, methods: FrozenSet[str] = frozenset({"GET"})) -> Any:
    """A requests session that retries ``methods`` on connection errors, 429 and 5xx
    as ``policy`` says, and follows only same-origin, method-keeping redirects
    (RedirectRefused otherwise)."""
    import requests
    from requests.adapters import HTTPAdapter

    class SameOriginSession(requests.Session):
        """requests follows any redirect; this one checks each hop first."""

        def get_redirect_target(self, resp: Any) -> Optional[str]:
            target = super().get_redirect_target(resp)
            if target is not None:
                check_redirect(resp.url, resp.request.method, resp.status_code, target)
            return target

    http = SameOriginSession()
    http.max_redirects = MAX_REDIRECTS
    adapter = HTTPAdapter(max_retries=policy.retry(methods))
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers.update({"User-Agent": f"dropsonde/{__version__}", "Accept": "application/json"})
    return http


def describe_failure(url: str, exc: BaseException, policy: HttpPolicy) -> str:
    """One line for a requests exception: timeout (the one ``policy`` set), TLS, proxy, refused, reset..."""
    import requests

    text = str(exc)
    if isinstance(exc, RedirectRefused):
        return f"{url}: {text}"
    if isinstance(exc, requests.exceptions.Timeout) or "Read timed out" in text:
        return f"{url}: no answer within {policy.read_timeout:g} s"
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
