"""HTTP to the outside world (the Forge, the telemetry endpoint) and to
PuppetDB: one session recipe with our User-Agent, bounded retries and
timeouts, and one way of describing a failure in a line; PuppetDB gets
:func:`plain_session` instead (no retries, redirects, proxies or system CA
store), under the same deadline and size cap.

Retries cover connection errors, 429 and 5xx, with exponential backoff and
``Retry-After`` honoured up to a cap, so a struggling server is not hammered
and a run never waits unboundedly. These numbers are an :class:`HttpPolicy`,
passed in, so a test can count retries without waiting for them. Proxies come
from the standard environment (``https_proxy``...).

Certificates are verified against the distribution's trust store
(:func:`trust_store`), never requests' bundled certifi list and never
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``: a CA the admin added with
``update-ca-certificates`` or ``update-ca-trust`` is trusted at once, and the
scheduled run (no such variable in its environment) trusts exactly what a root
shell trusts.

Redirects stay on the origin they start from (scheme, host and port): a
hostile or misconfigured server must not be able to send the report in clear
text, or to another host, by answering 307. Same-origin redirects are
followed, at most ``MAX_REDIRECTS`` of them, and only when they keep the
method: a 301/302/303 would turn a POST into a body-less GET, so the report
would look accepted without having been delivered. :func:`origin` is the one
origin check: it reads a URL with both Python's parser and urllib3's (the one
that sends), and gives no origin when they disagree.

A per-read timeout does not bound a server that sends one byte a second, so
:func:`fetch` puts a wall-clock deadline on the whole exchange (connect,
headers, body, retries) and a byte cap on the body, each caller choosing its
cap. At the deadline a watchdog shuts the socket down, which ends a read
blocked anywhere in requests, urllib3 or TLS.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, FrozenSet, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urljoin, urlsplit

from dropsonde import __version__
from dropsonde.errors import BadInput
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
    ``deadline``: the most one request may take, from connecting to the last
    byte of the answer, retries included (a test passes a short one).

    urllib3 waits nothing before the first retry, then ``backoff_factor`` × 2,
    × 4...: 1 s then 2 s with the default. A ``Retry-After`` from the server
    replaces that wait, but never beyond ``max_retry_after``."""

    retries: int = 3
    backoff_factor: float = 0.5
    max_retry_after: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 120.0
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
            ships it, has no ``retry_after_max``) and the policy's ``sleep``.

            urllib3 also retries any status of RETRY_AFTER_STATUS_CODES (413, 429, 503)
            that carries Retry-After, whatever ``status_forcelist`` says: a report too
            large for the collector would be sent four times. Only the statuses we
            retry may be retried for their Retry-After."""

            RETRY_AFTER_STATUS_CODES = frozenset(Retry.RETRY_AFTER_STATUS_CODES) & frozenset(RETRIED_STATUSES)

            def get_retry_after(self, response: Any) -> Optional[float]:
                after = super().get_retry_after(response)
                return None if after is None else min(after, policy.max_retry_after)

            def is_exhausted(self) -> bool:
                """Past the deadline, no retry can help: give up at once."""
                return _deadline_passed() or bool(super().is_exhausted())

            def sleep(self, response: Any = None) -> None:
                if _deadline_passed():
                    return
                after = self.get_retry_after(response) if self.respect_retry_after_header and response else None
                wait = _within_deadline(after if after else self.get_backoff_time())
                if wait > 0:
                    policy.sleep(wait)

        return PolicyRetry(
            total=self.retries,
            connect=self.retries,
            read=self.retries if self.retries else False,  # none: a read timeout stays a timeout
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
        raise BadInput(f"{name}: expected a number of seconds{' above 0' if positive else ''}, "
                       f"got {printable(repr(text))}")
    return value


class RedirectRefused(Exception):
    """A redirect we do not follow: to another origin, or one that would drop a POST's body."""


class AnswerRefused(Exception):
    """An answer we stop reading: not complete by its deadline, or larger than its cap."""


def origin(url: str) -> Optional[Tuple[str, str, int]]:
    """(scheme, host, port) of ``url``, default ports filled in; None when it has no usable origin.

    None too when Python's parser and urllib3's (which requests sends with)
    would reach different places: ``http://a:1\\@b:2/`` is b:2 to the first and
    a:1 to the second. So a URL with a backslash, white space, a control
    character or user info (where the two part ways) has no origin at all."""
    from urllib3.util import parse_url

    if not url.isprintable() or any(c.isspace() or c == "\\" for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
        sent = parse_url(url)
    except ValueError:  # a bracket without its pair, a port that is not a number (LocationParseError too)
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or port is None or parts.username is not None or sent.auth:
        return None
    host = parts.hostname.lower()
    if ((sent.scheme or "").lower(), (sent.host or "").strip("[]").lower(), sent.port or DEFAULT_PORTS[scheme]) \
            != (scheme, host, port):
        return None
    return scheme, host, port


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` goes where ``base`` goes (scheme, host and port), as both parsers read them."""
    found = origin(url)
    return found is not None and found == origin(base)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: traffic that never leaves the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_https_unless_loopback(url: str, option: str) -> Tuple[str, str, int]:
    """The origin of ``url``; a usage error naming ``option`` unless it is https or
    plain http to a loopback address: in clear text, anyone on the path could read
    or change what is sent and answered."""
    found = origin(url)
    if found is None:
        raise BadInput(f"{option}: not an http(s) URL: {printable(repr(url))}")
    if found[0] != "https" and not is_loopback(found[1]):
        raise BadInput(f"{option}: {printable(url)}: https is required "
                       "(plain http only for loopback addresses: 127.0.0.0/8, ::1, localhost)")
    return found


def check_redirect(from_url: str, method: str, status: int, location: str) -> None:
    """RedirectRefused unless following ``status`` from ``from_url`` to ``location``
    (absolute or relative) stays on the same origin and keeps ``method``."""
    try:
        target = urljoin(from_url, location)
    except ValueError:
        target = location
    if not same_origin(target, from_url):
        raise RedirectRefused(f"redirected to {printable(target)[:200]}, another origin: not followed")
    if method not in ("GET", "HEAD") and status not in METHOD_KEEPING_REDIRECTS:
        raise RedirectRefused(f"HTTP {status} redirect would resend the {method} as a GET: not followed")


# The distributions' bundles of trusted CAs, as their ca-certificates tools write them.
SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu (update-ca-certificates)
    "/etc/pki/tls/certs/ca-bundle.crt",  # EL, Fedora (update-ca-trust)
)


def trust_store() -> Any:
    """What requests verifies servers against: the first distribution bundle
    present; else the file or directory OpenSSL itself was built to use; only
    else requests' default (certifi), on a system with no store of its own."""
    import ssl

    for bundle in SYSTEM_CA_BUNDLES:
        if os.path.isfile(bundle):
            return bundle
    defaults = ssl.get_default_verify_paths()
    for candidate in (defaults.cafile, defaults.capath):
        if candidate and os.path.exists(candidate):
            return candidate
    return True


def session(policy: HttpPolicy, methods: FrozenSet[str] = frozenset({"GET"})) -> Any:
    """A requests session that retries ``methods`` on connection errors, 429 and 5xx
    as ``policy`` says, and follows only same-origin, method-keeping redirects
    (RedirectRefused otherwise)."""
    import requests

    class SameOriginSession(requests.Session):
        """requests follows any redirect; this one checks each hop first. Proxies
        come from the environment, the CA store never does (:func:`trust_store`)."""

        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                       cert: Any) -> Any:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            settings["verify"] = self.verify
            return settings

        def get_redirect_target(self, resp: Any) -> Optional[str]:
            target = super().get_redirect_target(resp)
            if target is not None:
                check_redirect(resp.url, resp.request.method, resp.status_code, target)
            return target

    http = SameOriginSession()
    http.max_redirects = MAX_REDIRECTS
    http.verify = trust_store()
    adapter = _watched_adapter(policy.retry(methods))
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers.update({"User-Agent": f"dropsonde/{__version__}", "Accept": "application/json"})
    return http


def plain_session(policy: HttpPolicy) -> Any:
    """A session without retries nor redirects, proxies or the environment's CA
    store (PuppetDB: Puppet's own CA, and failover instead of retries), under
    :func:`fetch`'s deadline like the others."""
    import requests

    http = requests.Session()
    http.trust_env = False
    adapter = _watched_adapter(replace(policy, retries=0).retry(frozenset({"GET"})))
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


# ---- the deadline on a whole answer ----

_current = threading.local()


class _Watch:
    """The sockets of one request, shut down when its deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._sockets: List[Any] = []
        self._lock = threading.Lock()
        self._ends_at = 0.0
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def watch(self, sock: Any) -> None:
        """Shut ``sock`` down at the deadline (at once if it has passed)."""
        with self._lock:
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _shut(sock)

    def _fire(self) -> None:
        # under the lock, so no socket is shut down once stop() has returned
        # (it may be back in the pool, serving the next request)
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)

    def start(self) -> None:
        self._ends_at = time.monotonic() + self.seconds
        self._timer.start()

    def seconds_left(self) -> float:
        return max(0.0, self._ends_at - time.monotonic())

    def stop(self) -> None:
        with self._lock:
            self._timer.cancel()
            self._sockets.clear()


def _shut(sock: Any) -> None:
    """Shut a socket down from another thread: a blocked read returns at once. Through
    a duplicate of the descriptor, so a TLS socket's state is left to its own thread."""
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):  # already closed
        pass


def _watch_socket(sock: Any) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None and sock is not None:
        watch.watch(sock)


def _deadline_passed() -> bool:
    watch = getattr(_current, "watch", None)
    return watch is not None and watch.fired


def _within_deadline(wait: float) -> float:
    """``wait``, cut to what is left of the current request's deadline: a Retry-After
    must not keep a run waiting past it."""
    watch = getattr(_current, "watch", None)
    return wait if watch is None else min(wait, watch.seconds_left())


@contextmanager
def _watching(seconds: float) -> Iterator[_Watch]:
    """Every socket this thread opens or reuses meanwhile is shut down after ``seconds``."""
    watch = _Watch(seconds)
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
        _current.watch = previous


def _watched_adapter(retry: Any) -> Any:
    """A requests adapter whose connections, new or reused, are put under the current watch."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> Any:
            sock = super()._new_conn()
            _watch_socket(sock)
            return sock

    class WatchedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> Any:
            sock = super()._new_conn()
            _watch_socket(sock)
            return sock

    class WatchedPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

        def _get_conn(self, timeout: Optional[float] = None) -> Any:
            conn = super()._get_conn(timeout)
            _watch_socket(getattr(conn, "sock", None))
            return conn

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

        def _get_conn(self, timeout: Optional[float] = None) -> Any:
            conn = super()._get_conn(timeout)
            _watch_socket(getattr(conn, "sock", None))
            return conn

    pools = {"http": WatchedPool, "https": WatchedHTTPSPool}

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: Any, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager

    return WatchedAdapter(max_retries=retry)


@dataclass
class Reply:
    """A complete answer: status, final URL, headers and the whole body."""

    status: int
    url: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def fetch(http: Any, method: str, url: str, policy: HttpPolicy, max_bytes: int,
          deadline: Optional[float] = None, **options: Any) -> Reply:
    """The whole answer to one request, within ``policy.deadline`` seconds (or
    ``deadline`` if sooner) and ``max_bytes`` of body. AnswerRefused past either;
    requests' exceptions and RedirectRefused as they come otherwise."""
    import requests

    seconds = policy.deadline if deadline is None else min(deadline, policy.deadline)
    late = f"no complete answer within {seconds:g} s"
    with _watching(seconds) as watch:
        try:
            response = http.request(method, url, stream=True, timeout=policy.timeouts, **options)
            try:
                body = _read_capped(response, max_bytes)
            finally:
                response.close()
        except (requests.exceptions.RequestException, OSError):
            if watch.fired:
                raise AnswerRefused(late) from None
            raise
        if watch.fired:  # the shutdown can look like the end of a body without a length
            raise AnswerRefused(late)
    return Reply(response.status_code, response.url, response.headers, body)


def _read_capped(response: Any, max_bytes: int) -> bytes:
    """The body, or AnswerRefused as soon as it is known to exceed ``max_bytes``."""
    too_large = f"the answer is larger than {max_bytes} bytes: not read"
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerRefused(too_large)
    chunks: List[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise AnswerRefused(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def describe_failure(url: str, exc: BaseException, policy: HttpPolicy) -> str:
    """One line for a requests exception: timeout (the one ``policy`` set), TLS, proxy, refused, reset..."""
    import requests

    text = str(exc)
    if isinstance(exc, (RedirectRefused, AnswerRefused)):
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
    """What went wrong, in words: requests and urllib3 nest each cause in the
    next and print them as class reprs (``Caused by NameResolutionError(
    "WatchedHTTPSConnection(host=…``), cut mid-expression in a journal. The
    root cause is found in the chain and said plainly; the old text, cut at its
    most useful part, only when the chain holds nothing known."""
    import ssl

    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {cause.verify_message or cause.reason or 'untrusted'}"
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host name ({cause.strerror or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or cause.strerror or 'unknown reason'})"
        if isinstance(cause, (socket.timeout, TimeoutError)):
            return "timed out"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[:1].lower() + cause.strerror[1:]
    text = str(exc)
    for marker in ("Caused by ", "certificate verify failed", "NewConnectionError", "ConnectionRefusedError",
                   "ConnectionResetError", "ProtocolError", "SSLError("):
        if marker in text:
            text = text[text.index(marker):]
            break
    return text.strip("()'\" ")[:200]


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Every exception reachable from ``exc`` (its cause and context, urllib3's
    ``reason``, requests' wrapped arguments), nearest first, each once."""
    seen: List[int] = []
    queue: List[BaseException] = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen or len(seen) > 50:
            continue
        seen.append(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        queue.extend(item for item in linked if isinstance(item, BaseException))
