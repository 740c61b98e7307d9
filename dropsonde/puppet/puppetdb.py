"""Talking to PuppetDB: the servers of ``puppetdb.conf``, tried in order, with
Puppet's own certificate, and PQL queries that aggregate on the server.

Every query here groups in PuppetDB (``count()`` ... ``group by``), so what
crosses the network and what we hold in memory grows with the number of
distinct classes and OS families, never with the number of nodes. (The Ruby
client downloaded one row per Class resource and counted them in O(n²).)

Each answer must be complete within ``PUPPETDB_DEADLINE`` seconds and at most
``MAX_ANSWER_BYTES`` long (http_client's deadline and cap), and PuppetDB never
redirects: a redirect is a failure, not followed, so Puppet's client certificate
is only ever presented to the servers of ``server_urls``.
"""

from __future__ import annotations

import configparser
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from dropsonde import http_client
from dropsonde.cpu_budget import ANSWER_CPU_SECONDS, CONFIG_CPU_SECONDS, OverBudget, cpu_budget
from dropsonde.errors import BadInput
from dropsonde.http_client import innermost_reason, origin
from dropsonde.json_input import load_json
from dropsonde.privacy import class_name
from dropsonde.terminal import printable, shortened
from dropsonde.tree_files import read_tree_file
from dropsonde.vocabulary import FACTER_OS_FAMILIES, OTHER_FAMILY

log = logging.getLogger(__name__)

QUERY_PATH = "/pdb/query/v4"
DEFAULT_TIMEOUT = 30.0
# The most server_url_timeout may ask for: an hour, the scheduled unit's own timeout.
# Puppet's default is 30 s; past ~9.2e9 s socket.settimeout overflows the platform's time_t.
MAX_SERVER_URL_TIMEOUT = 3600.0
# Grouped answers grow with the number of distinct classes, not of nodes: 362 classes
# answer in 15 KB, so a site of 10,000 distinct classes in about 400 KB.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
# Values in one answer (three per class row): ten times that 10,000-class site. It bounds
# the memory and the CPU time one answer can cost, whatever its bytes hold.
MAX_ANSWER_VALUES = 300_000
# A whole answer, however slowly it comes (server_url_timeout bounds each read only).
PUPPETDB_DEADLINE = 300.0
# All the PuppetDB work of a run: up to 45 queries (class counts, families, a class
# count per Facter family, again for legacy osfamily) at 300 s each were 3.5 h, and the
# scheduled unit is killed after 1 h. A real site answers all of them in seconds.
PUPPETDB_RUN_SECONDS = 600.0
# Rows of all answers of a run together: each row becomes at most one (class) or
# (class, family) entry kept in memory. A 10,000-class site on 3 families answers
# some 40,000 rows in all; each answer alone may hold 100,000 (MAX_ANSWER_VALUES),
# and 42 such answers kept 4.2 million pairs (1.65 GB).
MAX_RUN_ROWS = 200_000


class PuppetDBError(Exception):
    """No PuppetDB server could answer a query; the message names server(s) and cause."""


class PuppetDBOverBudget(PuppetDBError):
    """The run's PuppetDB work passed a run-wide budget: what is left of it is set aside."""


@dataclass
class PuppetDBConfig:
    """What ``puppetdb.conf`` and Puppet's SSL settings say about reaching PuppetDB."""

    server_urls: List[str]
    timeout: float = DEFAULT_TIMEOUT
    hostcert: Optional[str] = None
    hostprivkey: Optional[str] = None
    localcacert: Optional[str] = None


def read_puppetdb_conf(path: Path, ssl_settings: Dict[str, str]) -> Optional[PuppetDBConfig]:
    """The PuppetDB configuration, or None when ``puppetdb.conf`` does not exist.

    A file that exists but cannot be used is an error naming it: the admin
    configured PuppetDB and would not want it silently ignored.
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        text = read_tree_file(path, "puppetdb.conf").decode("utf-8")
        with cpu_budget(CONFIG_CPU_SECONDS):
            parser.read_string(text, source=str(path))
    except FileNotFoundError:
        return None
    except OverBudget as exc:
        raise BadInput(f"{path}: not read: parsing it took {exc} (CONFIG_CPU_SECONDS)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except configparser.Error as exc:
        raise BadInput(f"{path}: {str(exc).splitlines()[0]}") from None
    urls_value = parser.get("main", "server_urls", fallback=None) or parser.get("main", "server", fallback=None)
    if not urls_value:
        raise BadInput(f"{path}: [main] server_urls is not set")
    urls = [url.strip().rstrip("/") for url in urls_value.split(",") if url.strip()]
    for url in urls:
        if origin(url) is None or not url.isprintable():
            raise BadInput(f"{path}: server_urls: not an http(s) URL: {url!r}")
    timeout_value = parser.get("main", "server_url_timeout", fallback=str(DEFAULT_TIMEOUT))
    try:
        timeout = float(timeout_value)
        if not 0 < timeout <= MAX_SERVER_URL_TIMEOUT:  # also refuses nan and inf
            raise ValueError
    except ValueError:
        raise BadInput(f"{path}: server_url_timeout: expected a positive number of seconds, at most "
                       f"{MAX_SERVER_URL_TIMEOUT:g} (MAX_SERVER_URL_TIMEOUT), got {shortened(timeout_value, 40)!r}") from None
    return PuppetDBConfig(
        server_urls=urls,
        timeout=timeout,
        hostcert=ssl_settings.get("hostcert"),
        hostprivkey=ssl_settings.get("hostprivkey"),
        localcacert=ssl_settings.get("localcacert"),
    )


@dataclass
class PuppetDBClient:
    """PQL over HTTP(S), failing over between servers.

    A server that refuses, times out, fails TLS, answers 5xx or sends
    malformed JSON is skipped (with a warning) for the next; once one has
    answered it is asked first from then on. A 4xx is not failed over: it
    means our query is wrong, and PuppetDB's message says why.
    """

    config: PuppetDBConfig
    answered_by: Optional[str] = None
    failures: List[str] = field(default_factory=list)
    bytes_received: int = 0
    rows_received: int = 0
    deadline: float = PUPPETDB_DEADLINE
    run_deadline: float = PUPPETDB_RUN_SECONDS
    max_run_rows: int = MAX_RUN_ROWS
    #: seconds, for the run-wide deadline (a test gives its own)
    clock: Callable[[], float] = time.monotonic
    _started: Optional[float] = None

    def __post_init__(self) -> None:
        timeout = self.config.timeout
        self._policy = http_client.HttpPolicy(retries=0, connect_timeout=timeout, read_timeout=timeout,
                                              deadline=self.deadline)
        # Our CA is Puppet's, not the system's: REQUESTS_CA_BUNDLE would
        # silently override `verify`, and a proxy has no business in between.
        self._session = http_client.plain_session(self._policy)

    def _order(self) -> List[str]:
        urls = list(self.config.server_urls)
        if self.answered_by in urls:
            urls.remove(self.answered_by)
            urls.insert(0, self.answered_by)
        return urls

    def _request_options(self, url: str) -> Dict[str, Any]:
        options: Dict[str, Any] = {"allow_redirects": False}
        if url.startswith("https://"):
            options["verify"] = self.config.localcacert or True
            if self.config.hostcert and self.config.hostprivkey:
                options["cert"] = (self.config.hostcert, self.config.hostprivkey)
        return options

    def _time_left(self) -> float:
        """Seconds left of the run's PuppetDB work (the clock starts at the first query);
        PuppetDBOverBudget once none is."""
        now = self.clock()
        if self._started is None:
            self._started = now
        left = self.run_deadline - (now - self._started)
        if left <= 0:
            raise PuppetDBOverBudget(f"PuppetDB work set aside: over its run-wide deadline of "
                                     f"{self.run_deadline:g} s (PUPPETDB_RUN_SECONDS)")
        return left

    def _count_rows(self, rows: List[Any]) -> None:
        """Add an answer's rows to the run's; PuppetDBOverBudget past ``max_run_rows``."""
        self.rows_received += len(rows)
        if self.rows_received > self.max_run_rows:
            raise PuppetDBOverBudget(f"PuppetDB work set aside: its answers hold more than {self.max_run_rows} "
                                     "rows in all (MAX_RUN_ROWS)")

    def query(self, pql: str) -> List[Dict[str, Any]]:
        """Rows of a PQL query, from the first server that answers, within what is
        left of the run's deadline and row budget."""
        import requests

        problems: List[str] = []
        for url in self._order():
            try:
                reply = http_client.fetch(self._session, "GET", url + QUERY_PATH, self._policy, MAX_ANSWER_BYTES,
                                          deadline=self._time_left(), params={"query": pql},
                                          **self._request_options(url))
            except http_client.AnswerRefused as exc:
                problems.append(self._failed(url, str(exc)))
                continue
            except requests.exceptions.SSLError as exc:
                problems.append(self._failed(url, f"TLS failure: {innermost_reason(exc)}"))
                continue
            except requests.exceptions.Timeout:
                problems.append(self._failed(url, f"no answer within {self.config.timeout:g} s"))
                continue
            except (requests.exceptions.ConnectionError, OSError) as exc:
                problems.append(self._failed(url, f"cannot connect: {innermost_reason(exc)}"))
                continue
            except (OverflowError, ValueError) as exc:  # a timeout or deadline the platform cannot represent
                problems.append(self._failed(url, f"cannot be asked: {type(exc).__name__}: {exc}"))
                continue
            except requests.exceptions.RequestException as exc:
                problems.append(self._failed(url, innermost_reason(exc)))
                continue
            self.bytes_received += len(reply.body)
            if 300 <= reply.status < 400:
                target = printable(reply.headers.get("Location", "?"))[:200]
                problems.append(self._failed(url, f"HTTP {reply.status} redirect to {target}: not followed"))
                continue
            if 400 <= reply.status < 500:
                message = reply.text.strip().splitlines()[0][:300] if reply.text.strip() else ""
                raise PuppetDBError(f"PuppetDB {url} rejected a query (HTTP {reply.status}): {message}")
            if reply.status != 200:
                problems.append(self._failed(url, f"HTTP {reply.status}"))
                continue
            try:
                rows = load_json(reply.body, MAX_ANSWER_BYTES, max_values=MAX_ANSWER_VALUES)
            except ValueError as exc:
                problems.append(self._failed(url, f"the answer is {exc}"))
                continue
            if not isinstance(rows, list):
                problems.append(self._failed(url, "the answer is not a JSON list"))
                continue
            self._count_rows(rows)
            self.answered_by = url
            return rows
        self._time_left()  # an answer cut short by the run's deadline: that deadline is the cause
        raise PuppetDBError("; ".join(problems))

    def _failed(self, url: str, cause: str) -> str:
        message = f"PuppetDB {url}: {cause}"
        if message not in self.failures:
            self.failures.append(message)
            if len(self.config.server_urls) > 1:
                log.warning("%s; trying the next server", message)
        return message


def pql_string(value: str) -> str:
    """A PQL string literal: values come from agents, so quotes and backslashes are escaped."""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class ClassUsage:
    """Aggregates fetched from PuppetDB: nodes per class, and per (class, OS family).
    Classes are in canonical form (:func:`~dropsonde.privacy.class_name`): PuppetDB
    titles them as agents sent them (``Apache``, ``::apache``, ``aPACHE``), and the
    letter case an agent chooses must not become a row of its own (a covert channel)."""

    classes: Dict[str, int]
    platforms: Dict[Tuple[str, str], int]


CLASS_COUNTS = 'resources[title, count()] { type = "Class" group by title }'
FAMILY_COUNTS = "inventory[facts.os.family, count()] { group by facts.os.family }"
# Nodes with no os.family at all (agents older than structured facts) that still send osfamily.
_HAS_OS_FAMILY = 'certname in inventory[certname] { facts.os.family ~ "" }'
LEGACY_FAMILY_COUNTS = "inventory[facts.osfamily, count()] { !(" + _HAS_OS_FAMILY + ") group by facts.osfamily }"


def _class_counts_where(node_filter: str) -> str:
    return (
        'resources[title, count()] { type = "Class" and certname in inventory[certname] { '
        + node_filter
        + " } group by title }"
    )


def _family_filters(fact: str, present: List[str], base: str) -> List[Tuple[str, str]]:
    """(reported family, node filter) for each Facter family present, plus one
    filter for all other values together, which never names those values."""
    known = sorted(f for f in present if f in FACTER_OS_FAMILIES)
    prefix = base + " and " if base else ""
    filters = [(family, f"{prefix}{fact} = {pql_string(family)}") for family in known]
    if any(f not in FACTER_OS_FAMILIES for f in present):
        exclusions = "".join(f" and !({fact} = {pql_string(family)})" for family in known)
        filters.append((OTHER_FAMILY, f'{prefix}{fact} ~ ""{exclusions}'))
    return filters


def _class_rows(rows: List[Any]) -> List[Tuple[str, int]]:
    """(canonical class name, count) of each row of a class count query, within
    ANSWER_CPU_SECONDS. A title that is no class name is dropped (it can never be
    public); a row that is not ``{"title": str, "count": int}`` means the server is
    not PuppetDB."""
    try:
        with cpu_budget(ANSWER_CPU_SECONDS):
            return _canonical_rows(rows)
    except OverBudget as exc:
        raise PuppetDBError(f"PuppetDB answer set aside: reading its {len(rows)} class rows took {exc} "
                            "(ANSWER_CPU_SECONDS)") from None


def _canonical_rows(rows: List[Any]) -> List[Tuple[str, int]]:
    found = []
    for row in rows:
        title = row.get("title") if isinstance(row, dict) else None
        count = row.get("count") if isinstance(row, dict) else None
        if not isinstance(title, str) or isinstance(count, bool) or not isinstance(count, int):
            raise PuppetDBError(f"PuppetDB answered a malformed class row: {shortened(str(row)[:80], 80)}")
        name = class_name(title)
        if name is not None:
            found.append((name, count))
    return found


def _family_values(rows: List[Any], fact: str) -> List[Any]:
    """The ``fact`` value of each row of a family count query; a row that is not an
    object means the server is not PuppetDB (PuppetDBError, as for class rows)."""
    values = []
    for row in rows:
        if not isinstance(row, dict):
            raise PuppetDBError(f"PuppetDB answered a malformed OS family row: {shortened(str(row)[:80], 80)}")
        values.append(row.get(fact))
    return values


def fetch_class_usage(client: PuppetDBClient) -> ClassUsage:
    """Class counts overall and per OS family, with a handful of grouped queries.

    Families come from ``os.family`` (Puppet 8 agents send no legacy facts);
    nodes without it are counted by the legacy ``osfamily`` fact if they have that.
    """
    classes: Dict[str, int] = {}
    for name, count in _class_rows(client.query(CLASS_COUNTS)):
        classes[name] = classes.get(name, 0) + count
    families = _family_values(client.query(FAMILY_COUNTS), "facts.os.family")
    filters = _family_filters("facts.os.family", [f for f in families if isinstance(f, str)], "")
    if any(not isinstance(f, str) for f in families):
        legacy = _family_values(client.query(LEGACY_FAMILY_COUNTS), "facts.osfamily")
        filters += _family_filters(
            "facts.osfamily", [f for f in legacy if isinstance(f, str)], "!(" + _HAS_OS_FAMILY + ")"
        )
    platforms: Dict[Tuple[str, str], int] = {}
    for family, node_filter in filters:
        for name, count in _class_rows(client.query(_class_counts_where(node_filter))):
            key = (name, family)
            platforms[key] = platforms.get(key, 0) + count
    return ClassUsage(classes, platforms)
