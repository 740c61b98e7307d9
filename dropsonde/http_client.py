"""HTTP to the outside world (the Forge, the telemetry endpoint): one session
recipe with our User-Agent, bounded retries and timeouts, and one way of
describing a failure in a line.

Retries cover connection errors, 429 and 5xx, with exponential backoff and
``Retry-After`` honoured up to a cap, so a struggling server is not hammered
and a run never waits unboundedly. Proxies and the CA store come from the
standard environment (``https_proxy``, ``REQUESTS_CA_BUNDLE``...).
"""

from __future__ import annotations

import os
from typing import Any, FrozenSet

from dropsonde import __version__

RETRIES = 3
MAX_RETRY_AFTER = 60.0
CONNECT_TIMEOUT = 10.0
# For slow links (and tests): seconds to wait for an answer.
READ_TIMEOUT = float(os.environ.get("DROPSONDE_HTTP_TIMEOUT", "30"))
TIMEOUTS = (CONNECT_TIMEOUT, READ_TIMEOUT)


def session(methods: FrozenSet[str] = frozenset({"GET"})) -> Any:
    """A requests session that retries ``methods`` on connection errors, 429 and 5xx."""
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
    http = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers.update({"User-Agent": f"dropsonde/{__version__}", "Accept": "application/json"})
    return http


def describe_failure(url: str, exc: BaseException) -> str:
    """One line for a requests exception: timeout, TLS, proxy, refused, reset..."""
    import requests

    text = str(exc)
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
