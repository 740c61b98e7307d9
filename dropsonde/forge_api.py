"""Refreshing the Forge module cache (:mod:`dropsonde.forge_cache`) from the Forge v3 API.

Pages of ``/v3/modules`` sorted by latest release, 100 modules a request,
deprecated modules and both module groups included. An incremental refresh
stops at the first module whose ``updated_at`` is not newer than the cache's
newest, so a week with no new module costs one request. Any failure (network,
proxy, 429/5xx after bounded retries, a malformed or looping page) leaves the
old cache untouched: a refresh can make a run slower, never wrong.

The list decides what may leave the site, so where it comes from is fixed:
the origin (scheme, host, port) of ``--forge-api``, over https unless that is
a loopback address (a local mirror or a test). ``pagination.next`` must be a
plain path (the Forge sends ``/v3/modules?...``), put on that origin; an
absolute URL there, and a redirect that points elsewhere, are refused.

Each page must be complete within ``policy.deadline`` (and what is left of the
refresh's ``TOTAL_BUDGET``) and at most ``MAX_PAGE_BYTES`` long.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple
from urllib.parse import urlsplit

from dropsonde import http_client
from dropsonde.errors import Failure
from dropsonde.forge_cache import MAX_FORGE_MODULES, CacheTooLarge, forge_slug, load_forge_cache, save_forge_cache
from dropsonde.json_input import load_json
from dropsonde.terminal import printable

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir

log = logging.getLogger(__name__)

DEFAULT_FORGE_API = "https://forgeapi.puppet.com"
PAGE_SIZE = 100
# Never `hide_deprecated`: the Forge treats any value as true.
FIRST_PAGE_PARAMS = {
    "limit": str(PAGE_SIZE),
    "sort_by": "latest_release",
    "module_groups": "base pe_only",
    "exclude_fields": "readme changelog license reference",
}
# The whole refresh is bounded too (each request is, by http_client).
TOTAL_BUDGET = 600.0
# And so is its number of pages: as many as the first page's total announces, plus
# a few for modules published during the crawl; without a total, 1,000 pages
# (100,000 modules, over ten times today's Forge). A Forge whose every page names
# another would otherwise be stopped only by the time budget.
EXTRA_PAGES = 10
MAX_PAGES = 1000
# A real page of 100 modules (readme, changelog, license and reference excluded) is about 0.5 MB.
MAX_PAGE_BYTES = 16 * 1024 * 1024
# What pagination.next may be: a path and query on the Forge's origin, nothing that
# names a host (scheme, //, @) or that parsers read differently (backslash, spaces).
NEXT_PAGE_RE = re.compile(r"/(?![/\\])[^\\@\s]*")


class ForgeError(Failure):
    """The Forge could not be read; the cache is left as it was."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def forge_api_url(configured: Optional[str]) -> str:
    """The Forge API base URL: --forge-api / forge_api, else the public Forge; validated
    (a usage error names it otherwise). Plain http would let anyone on the path edit
    the list of public modules, so it is accepted for loopback addresses only."""
    url = configured or DEFAULT_FORGE_API
    http_client.require_https_unless_loopback(url, "--forge-api")
    return url.rstrip("/")


def parse_forge_time(value: Any) -> Optional[datetime]:
    """Forge timestamps look like ``2011-05-24 18:34:58 -0700``; ISO 8601 is accepted too."""
    if not isinstance(value, str):
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value.strip(), pattern)
        except ValueError:
            continue
    return None


@dataclass
class Crawl:
    """What a refresh read: the slugs, the newest ``updated_at``, and its cost."""

    slugs: Set[str] = field(default_factory=set)
    newest: Optional[datetime] = None
    requests: int = 0
    total: Optional[int] = None


def _get_page(session: Any, url: str, params: Optional[Dict[str, str]],
              policy: http_client.HttpPolicy, seconds_left: float) -> Dict[str, Any]:
    """One page, complete within the policy's deadline and ``seconds_left``; ForgeError otherwise."""
    import requests

    try:
        reply = http_client.fetch(session, "GET", url, policy, MAX_PAGE_BYTES, deadline=seconds_left, params=params)
    except (requests.exceptions.RequestException, http_client.RedirectRefused, http_client.AnswerRefused) as exc:
        raise ForgeError(http_client.describe_failure(url, exc, policy)) from None
    where = printable(reply.url)
    if reply.status != 200:
        raise ForgeError(f"{where}: HTTP {reply.status} {_error_message(reply)}".rstrip())
    try:
        page = load_json(reply.body, MAX_PAGE_BYTES)
    except ValueError as exc:
        raise ForgeError(f"{where}: the answer is {exc}") from None
    if not isinstance(page, dict) or not isinstance(page.get("results"), list):
        raise ForgeError(f"{where}: the answer has no 'results' list")
    return page


def _error_message(reply: http_client.Reply) -> str:
    """The Forge's own error text (``{"message": ..., "errors": [...]}``), if any."""
    try:
        body = load_json(reply.body, MAX_PAGE_BYTES)
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    errors = body.get("errors")
    parts = [body.get("message")] + (errors if isinstance(errors, list) else [errors])
    return printable(": ".join(str(part) for part in parts if isinstance(part, (str, int, float)) and part))[:300]


def crawl_forge(
    base_url: str,
    since: Optional[datetime],
    progress: Optional[Callable[[int, Optional[int]], None]] = None,
    clock: Callable[[], float] = time.monotonic,
    policy: Optional[http_client.HttpPolicy] = None,
) -> Crawl:
    """Read module slugs newest first, to the last page or (with ``since``) to the
    first module not updated after it. ForgeError on any failure. Timeouts and
    retries as ``policy`` says (default: from the environment)."""
    policy = policy or http_client.HttpPolicy.from_environment()
    session = http_client.session(policy)
    result = Crawl()
    url: Optional[str] = base_url + "/v3/modules"
    params: Optional[Dict[str, str]] = dict(FIRST_PAGE_PARAMS)
    seen_urls: Set[str] = set()
    deadline = clock() + TOTAL_BUDGET
    page_cap = MAX_PAGES
    while url is not None:
        if clock() > deadline:
            raise ForgeError(f"the Forge refresh took longer than {TOTAL_BUDGET:g} s")
        if result.requests >= page_cap:
            raise ForgeError(f"the Forge's pagination goes on past {page_cap} pages "
                             f"(its first page announced {result.total} modules): not followed")
        page = _get_page(session, url, params, policy, deadline - clock())
        if len(page["results"]) > PAGE_SIZE:
            raise ForgeError(f"{printable(url)}: a page of {len(page['results'])} modules, "
                             f"more than the {PAGE_SIZE} asked for")
        result.requests += 1
        pagination = page.get("pagination")
        if not isinstance(pagination, dict):
            pagination = {}
        if isinstance(pagination.get("total"), int):
            result.total = pagination["total"]
            if result.requests == 1:
                page_cap = _page_cap(result.total)
        for module in page["results"]:
            if not isinstance(module, dict):
                raise ForgeError(f"{url}: a result is not a module object")
            updated = parse_forge_time(module.get("updated_at"))
            if since is not None and (updated is None or updated <= since):
                return result
            slug = forge_slug(module.get("slug"))
            if slug is None:
                raise ForgeError(f"{url}: a module without a valid slug: {module.get('slug')!r:.60}")
            result.slugs.add(slug)
            if updated is not None and (result.newest is None or updated > result.newest):
                result.newest = updated
        if progress is not None:
            progress(len(result.slugs), result.total)
        following = pagination.get("next")
        if not following:
            return result
        url, params = _next_page_url(base_url, following), None
        if url in seen_urls:
            raise ForgeError(f"the Forge's pagination repeats a page ({following})")
        seen_urls.add(url)
    return result


def _page_cap(total: int) -> int:
    """How many pages a crawl of ``total`` modules may read (see ``EXTRA_PAGES``)."""
    return min(MAX_PAGES, max(0, -(-total // PAGE_SIZE)) + EXTRA_PAGES)


def _next_page_url(base_url: str, following: Any) -> str:
    """``pagination.next`` (a path and query: the Forge sends ``/v3/modules?...``) put on
    the base's origin; ForgeError for anything else, so a hostile page cannot steer the
    crawl elsewhere, not even through a URL that two parsers read differently."""
    if not isinstance(following, str):
        raise ForgeError(f"{base_url}: pagination.next is not a URL: {following!r:.60}")
    base = urlsplit(base_url)
    url = f"{base.scheme}://{base.netloc}{following}"
    if not NEXT_PAGE_RE.fullmatch(following) or not following.isprintable() \
            or not http_client.same_origin(url, base_url):
        raise ForgeError(f"{base_url}: pagination.next leaves the Forge's origin "
                         f"({printable(following)[:200]}): not followed")
    return url


def _progress_reporter() -> Tuple[Optional[Callable[[int, Optional[int]], None]], Callable[[], None]]:
    """A progress bar on a terminal (rich, already installed with typer); nothing otherwise."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("Forge modules"), BarColumn(), MofNCompleteColumn(), transient=True)
    task = bar.add_task("crawl", total=None)
    bar.start()

    def update(done: int, total: Optional[int]) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


def refresh_forge_cache(cache: "CacheDir", base_url: str, full: bool, now: datetime,
                        policy: Optional[http_client.HttpPolicy] = None) -> str:
    """Refresh ``forge.json``; returns a one-line summary. ForgeError leaves the file as it was.
    ``policy``: timeouts and retries (default: from the environment)."""
    current = load_forge_cache(cache, now)
    incremental = not full and not current.problem
    since = current.watermark() if incremental else None
    update, stop = _progress_reporter()
    try:
        crawl = crawl_forge(base_url, since, update, policy=policy)
    except MemoryError:
        raise ForgeError(f"{base_url}: reading the Forge's list took more memory than there is") from None
    finally:
        stop()
    slugs: List[str] = list(crawl.slugs | (current.modules if incremental else set()))
    if not slugs:
        raise ForgeError(f"{base_url}: the Forge listed no modules; keeping the current cache")
    if len(slugs) > MAX_FORGE_MODULES:
        raise ForgeError(f"{base_url}: the Forge's list would hold {len(slugs)} modules, more than "
                         f"{MAX_FORGE_MODULES} modules (MAX_FORGE_MODULES); keeping the current cache")
    newest = max((d for d in (crawl.newest, since) if d is not None), default=None)
    if newest is not None and newest > now:
        # a module "updated" in the future would freeze every later incremental refresh
        log.warning("the Forge lists a module updated after now (%s); keeping now as the watermark",
                    newest.isoformat())
        newest = now
    try:
        save_forge_cache(cache, slugs, now, newest)
    except CacheTooLarge as exc:
        raise ForgeError(f"{base_url}: {exc}; keeping the current cache") from None
    kind = "incremental" if incremental else "full"
    return f"Forge module cache updated ({kind}): {len(slugs)} modules, {len(crawl.slugs)} new or changed, {crawl.requests} requests"
