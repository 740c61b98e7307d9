"""The collector's HTTP side: a WSGI application that accepts the reports
``dropsonde submit`` sends (``POST /``), checks them strictly, stores them,
and answers in the Dujour form ``{"message", "newer", "link"}``.

Strict on purpose: the envelope must be exactly the report format, the site
id a SHA-512 hex digest, every snapshot a known column whose value matches
that column's schema. Anything else is a 4xx naming the problem, so a
misbehaving or hostile client cannot put unexpected data into the store.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from dropsonde.collector.allowlist import Allowlist, list_cap_violation
from dropsonde.collector.body_reader import LingeringAnswer, read_body
from dropsonde.collector.client_address import client_address
from dropsonde.collector.group_commit import StoreUnavailable
from dropsonde.collector.normalize import iso_week
from dropsonde.collector.rate_limiter import RateLimiter, SiteVerdict
from dropsonde.collector.report_upsert import DISCARDED, QUARANTINED
from dropsonde.collector.options import ServeOptions
from dropsonde.collector.storage import Store
from dropsonde.schema import json_schema_for_column, schema_validator, validation_message
from dropsonde.wire import ANALYTICS_KEY, ENVELOPE_KEYS, PRODUCT, REPORT_VERSION, sortable_timestamp

SITE_ID_RE = re.compile(r"^[0-9a-f]{128}$")
USER_AGENT_RE = re.compile(r"dropsonde/(\d+)\.(\d+)\.(\d+)")
MAX_DEPTH = 32
#: set in the WSGI environ once the whole body was read
BODY_READ = "dropsonde.body_read"


class Rejected(Exception):
    """A report refused with an HTTP status, a one-line reason and, for the
    allowlist, the column and the rule (so a client can tell what to fix)."""

    def __init__(self, status: int, message: str, **detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    seen: Dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Rejected(400, f"duplicate key {key!r:.60} in the report")
        seen[key] = value
    return seen


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth, iteratively (a hostile body must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_body(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "the body is not UTF-8") from None
    if text.count("[") + text.count("{") > 200_000:
        raise Rejected(400, "the report is nested or repeated beyond any real report")
    try:
        report = json.loads(text, object_pairs_hook=_no_duplicates)
    except Rejected:
        raise
    except RecursionError:
        raise Rejected(400, "the report is nested too deeply") from None
    except ValueError as exc:
        raise Rejected(400, f"the body is not JSON ({str(exc)[:80]})") from None
    if _depth(report) > MAX_DEPTH:
        raise Rejected(400, "the report is nested too deeply")
    return report


def _within_list_cap(column: str, value: Any) -> None:
    """Refuse a list over its column's cap with one ``len()``, before jsonschema
    walks its items: a 512 KiB list of 30,790 items cost 0.3 s of CPU in the
    validator before the allowlist refused it for its length (outside review F3)."""
    violation = list_cap_violation(column, value)
    if violation is not None:
        raise Rejected(400, violation.message(), column=violation.column, rule=violation.rule)


class ReportValidator:
    """Checks a report against the envelope and the schemas of the known columns."""

    def __init__(self, columns: Dict[str, Dict[str, Any]]) -> None:
        self.validators = {name: schema_validator(json_schema_for_column(column)) for name, column in columns.items()}

    def check(self, report: Any) -> Tuple[str, Dict[str, Any]]:
        """The site id and the snapshot values by column; Rejected(400) naming the first problem."""
        if not isinstance(report, dict):
            raise Rejected(400, "the report is not a JSON object")
        unknown = sorted(set(report) - ENVELOPE_KEYS)
        if unknown:
            raise Rejected(400, f"unknown envelope key {unknown[0]!r:.60}")
        if report.get("product") != PRODUCT:
            raise Rejected(400, f"product must be {PRODUCT!r}")
        if report.get("version") != REPORT_VERSION:
            raise Rejected(400, f"unsupported report version {str(report.get('version'))[:20]!r}")
        site_id = report.get("site_id")
        if not isinstance(site_id, str) or not SITE_ID_RE.match(site_id):
            raise Rejected(400, "malformed site_id (expected 128 lower-case hex digits)")
        analytics = report.get(ANALYTICS_KEY)
        snapshots = analytics.get("snapshots") if isinstance(analytics, dict) else None
        if not isinstance(analytics, dict) or not isinstance(snapshots, dict) or set(analytics) != {"snapshots"}:
            raise Rejected(400, f"{ANALYTICS_KEY} must hold exactly a snapshots object")
        for column, snapshot in snapshots.items():
            if column not in self.validators:
                raise Rejected(400, f"unknown column {column!r:.60}")
            if not isinstance(snapshot, dict) or set(snapshot) != {"value", "timestamp"}:
                raise Rejected(400, f"column {column}: expected an object with value and timestamp")
            _within_list_cap(column, snapshot["value"])
        values: Dict[str, Any] = {}
        for column, snapshot in snapshots.items():
            validator = self.validators[column]
            error = next(iter(validator.iter_errors(snapshot["value"])), None)
            if error is not None:
                raise Rejected(400, f"column {column}: {validation_message(error)[:200]}")
            values[column] = snapshot["value"]
        return site_id, values


def _declared_length(environ: Dict[str, Any], max_body: int) -> int:
    """The body length the request declares, within 0..``max_body`` (a missing or
    bad one is refused later; a larger one is refused before it is read)."""
    try:
        return min(max_body, max(0, int(environ.get("CONTENT_LENGTH") or "0")))
    except ValueError:
        return 0


def _body_left_unread(environ: Dict[str, Any]) -> bool:
    """Whether the request came with a body that was not read (refused before it,
    or cut off at the deadline). Such a connection is closed after the answer:
    kept open, gunicorn read the rest of the body to reach the next request, for
    free and without limit — a 404 for ``POST /x`` with an endless chunked body
    kept a core busy and stalled other sources' reports (outside review N1)."""
    if environ.get(BODY_READ):
        return False
    return bool(environ.get("HTTP_TRANSFER_ENCODING")) or _declared_length(environ, 1) > 0


def _newer(user_agent: str, latest: Optional[str]) -> bool:
    match = USER_AGENT_RE.search(user_agent or "")
    if not match or not latest:
        return False
    try:
        return tuple(int(p) for p in match.groups()) < tuple(int(p) for p in latest.split("."))
    except ValueError:
        return False


class CollectorApp:
    """The WSGI application."""

    def __init__(self, store: Store, columns: Dict[str, Dict[str, Any]], options: ServeOptions,
                 allowlist: Allowlist, limiter: RateLimiter) -> None:
        self.store = store
        self.columns = columns
        self.validator = ReportValidator(columns)
        self.allowlist = allowlist
        self.options = options
        self.limiter = limiter

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            status, body = self.handle(environ)
        except Rejected as exc:
            status, body = exc.status, {"message": str(exc), "newer": False, "link": None, **exc.detail}
        payload = json.dumps(body).encode("utf-8")
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        sock = environ.get("gunicorn.socket")
        unread = _body_left_unread(environ)
        if unread:
            headers.append(("Connection", "close"))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        if unread and sock is not None:
            return LingeringAnswer(payload, sock)
        return [payload]

    def handle(self, environ: Dict[str, Any]) -> Tuple[int, Dict[str, Any]]:
        if environ.get("PATH_INFO", "/") not in ("/", ""):
            raise Rejected(404, "reports are POSTed to /")
        if environ.get("REQUEST_METHOD") != "POST":
            raise Rejected(405, "reports are POSTed to /")
        address = client_address(environ, self.options.trusted_proxies)
        if not self._allow(address, _declared_length(environ, self.options.max_body)):
            raise Rejected(429, "too many reports from this address; try again later")
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Rejected(415, "reports are sent as application/json")
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            raise Rejected(411, "a Content-Length is required") from None
        if length > self.options.max_body:
            raise Rejected(413, f"the report is larger than {self.options.max_body} bytes")
        try:
            body = read_body(environ, length, self.options.read_timeout)
        except TimeoutError:
            raise Rejected(408, f"the report was not sent within {self.options.read_timeout:g} s") from None
        environ[BODY_READ] = True
        site_id, values = self.validator.check(parse_body(body))
        violation = self.allowlist.violation(self.columns, values)
        if violation is not None:
            raise Rejected(400, violation.message(), column=violation.column, rule=violation.rule)
        received = datetime.now(timezone.utc)
        verdict = self._verdict(address, site_id, received)
        row = {
            "message_id": str(uuid.uuid4()),
            "site_id": site_id,
            "product": PRODUCT,
            "version": REPORT_VERSION,
            "timestamp": sortable_timestamp(received),
            "ip": address if self.options.store_ip else None,
            **values,
        }
        if verdict is SiteVerdict.QUARANTINED:
            row[QUARANTINED] = True
        elif verdict is SiteVerdict.DISCARDED:  # only counted, but in the same group commit (see _verdict)
            row[DISCARDED] = True
        try:
            self.store.insert(row)
        except StoreUnavailable:
            raise Rejected(503, "the store is unavailable; try again later") from None
        except Exception:  # noqa: BLE001 - the client will retry; nothing was stored
            raise Rejected(503, "the report could not be stored; try again later") from None
        newer = _newer(environ.get("HTTP_USER_AGENT", ""), self.options.latest_version)
        message = "Report received, thank you." if not newer else "Report received."
        return 200, {"message": message, "newer": newer, "link": self.options.download_link if newer else None}

    def _verdict(self, address: str, site_id: str, received: datetime) -> SiteVerdict:
        """Whether the report counts: one source speaks for at most
        ``sites_per_source`` sites a week, so invented site ids (Sybils) from one
        address stop counting beyond that. A report over the cap is answered
        exactly as any other and quarantined (kept apart, never published), or,
        once the source has as many sites quarantined, not stored at all (so
        posting for ever cannot grow the store), only counted — in the writer's
        group commit, so it is answered after a durable commit, and 503 when
        the store is down, like every other: a different answer, or a faster
        one, would tell whoever shares the source how many sites it reported
        for, and whether a given site id is among them."""
        try:
            return self.limiter.admit_site(address, site_id, iso_week(sortable_timestamp(received)))
        except Exception:  # noqa: BLE001 - the shared budget is unreadable: refuse rather than let all in
            raise Rejected(503, "the server is busy; try again later") from None

    def _allow(self, address: str, length: int) -> bool:
        """Charge ``address``'s source for a body of ``length`` bytes before reading
        it: what a report costs (parsing, validating, storing its rows) grows with
        its bytes, so one source's share of the collector's work is bounded per
        minute, not only its number of reports (one address once stalled every
        report for 50 s with 60 maximal ones: outside review F3)."""
        try:
            return self.limiter.allow(address, self.limiter.cost(length))
        except Exception:  # noqa: BLE001 - the shared budget is unreadable: refuse rather than let all in
            raise Rejected(503, "the server is busy; try again later") from None
