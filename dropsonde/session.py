"""One run of the probe, between the command line and the domain modules.

Every command that reads the site goes through a :class:`Session`, in this
order: settings (command line, ``telemetry.yaml``, Puppet's settings) → the
Forge list refreshed when due → the ``Site`` → plugins → report → the site
closed (its manifest parse cache saved) → submit and record. The Forge list is
refreshed before the site exists, so nothing already read has to be forgotten;
the site is closed in a ``finally`` (the session is a context manager), so the
parse work of a run that fails is kept for the next one.

The clock is a parameter (``clock``): whether the Forge list is due for a
refresh and whether a scheduled submission is due are pure functions of the
time it gives, so tests set the time instead of waiting for it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, List, Mapping, Optional, Tuple, Type

from dropsonde.config import CONFIG_FILENAME, Options, merge_options, read_config_file
from dropsonde.errors import Failure
from dropsonde.terminal import notice

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir
    from dropsonde.consent import Consent
    from dropsonde.forge_cache import ForgeCache
    from dropsonde.forge_releases import EvidenceFetch
    from dropsonde.plugins import PluginSet
    from dropsonde.puppet.server_config import ServerConfig
    from dropsonde.puppet.puppet_conf import PuppetSettings
    from dropsonde.report import Report
    from dropsonde.site import Site

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock (tests pass another)."""
    return datetime.now(timezone.utc)


def config_file_for(given: Mapping[str, Any]) -> Path:
    """``telemetry.yaml``: in the parent of Puppet's confdir, as the Ruby client reads it."""
    from dropsonde.puppet.puppet_conf import resolve_confdir

    return Path(resolve_confdir(given.get("confdir"))).parent / CONFIG_FILENAME


def load_options(given: Mapping[str, Any]) -> Options:
    """Merge the command line with ``telemetry.yaml``."""
    config_file = config_file_for(given)
    return merge_options(given, read_config_file(config_file), config_file)


class Session:
    """One run: what the command line gave, and what is built from it once, on
    first use (options, Puppet's settings, the checked cache directory, the
    site, the plugins). Leaving the ``with`` block closes the site."""

    def __init__(self, given: Mapping[str, Any], clock: Clock = utc_now,
                 notify: Callable[[str], None] = notice) -> None:
        self.given: Dict[str, Any] = dict(given)
        self.clock = clock
        self.notify = notify
        self._options: Optional[Options] = None
        self._server_config: Optional["ServerConfig"] = None
        self._puppet: Optional["PuppetSettings"] = None
        self._cache: Optional["CacheDir"] = None
        self._site: Optional["Site"] = None
        self._plugins: Optional["PluginSet"] = None
        self._closed = False
        self._warned_forge_api = False
        #: why this run's refresh of the Forge list failed (then release evidence is not asked for)
        self._forge_failure: Optional[str] = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], value: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        self.close()
        if self._cache is not None:
            self._cache.close()

    def close(self) -> None:
        """Save what the site learned (the manifest parse cache), once."""
        if self._site is not None and not self._closed:
            self._closed = True
            self._site.close()

    # settings

    def options(self) -> Options:
        """The command line merged with ``telemetry.yaml``; as `puppetserver dropsonde`,
        Puppet's directories default to the server's."""
        if self._options is None:
            given = self.given
            if given.get("puppetserver"):
                given = {**given, **self._server_directories()}
            self._options = load_options(given)
            if self._options.verbose:
                logging.getLogger().setLevel(logging.INFO)
                logging.getLogger("urllib3").setLevel(logging.WARNING)
                config_file = self._options.config_file
                log.info("options from the command line and %s%s", config_file,
                         "" if config_file is not None and config_file.is_file() else " (absent)")
        return self._options

    def layout(self) -> str:
        """Which Puppet layout's defaults apply. As `puppetserver dropsonde` the
        server's own (AIO or Debian) even when not root: the shim and the timer
        run as the user Puppet Server runs as, and must see what the server sees."""
        from dropsonde.puppet.puppet_conf import detect_layout

        return detect_layout(is_root=True) if self.given.get("puppetserver") else detect_layout()

    def server_config(self) -> "ServerConfig":
        """Puppet Server's conf.d, merged (read once)."""
        from dropsonde.puppet.server_config import CONFD_BY_LAYOUT, read_server_config

        if self._server_config is None:
            layout = self.layout()
            confd = self.given.get("puppetserver_confd") or CONFD_BY_LAYOUT[layout]
            self._server_config = read_server_config(Path(confd), layout)
        return self._server_config

    def _server_directories(self) -> Dict[str, Any]:
        """Puppet Server's directories (jruby-puppet settings) for those not given on the command line."""
        return {name: value for name, value in self.server_config().directories.items()
                if name in self.given and self.given[name] is None}

    def puppet(self) -> "PuppetSettings":
        """Puppet's settings for these options, read once."""
        from dropsonde.site import puppet_settings

        if self._puppet is None:
            self._puppet = puppet_settings(self.options(), self.layout())
        return self._puppet

    def cache(self) -> "CacheDir":
        """The cache directory, opened and checked once (see cache_dir): every file
        in it is reached through this one descriptor until the session ends, so a
        directory swapped in at its path meanwhile is never read or written."""
        from dropsonde.cache_dir import CacheDir
        from dropsonde.site import cache_path

        if self._cache is None:
            self._cache = CacheDir.open(cache_path(self.options(), self.puppet()))
        return self._cache

    # the site and what reads it

    def site(self, refresh_forge: bool = False) -> "Site":
        """The site, built once. ``refresh_forge``: first bring the Forge list up
        to date when it is due (only a report asks; the first caller decides)."""
        from dropsonde.site import Site

        if self._site is None:
            forge = self._refreshed_forge() if refresh_forge else None
            self._site = Site(self.options(), self.puppet(), forge, cache=self.cache())
            if refresh_forge:
                failure = self._refresh_evidence(self._site).failure if self.options().update else None
                self._warn_if_evidence_missing(self._site, failure)
        return self._site

    def _forge_api(self) -> str:
        """The Forge API base URL; under -v, a reminder when it is not the public Forge."""
        from dropsonde.forge_api import DEFAULT_FORGE_API, forge_api_url

        base_url = forge_api_url(self.options().forge_api)
        if self.options().verbose and base_url != DEFAULT_FORGE_API and not self._warned_forge_api:
            self._warned_forge_api = True
            log.warning("--forge-api %s is not the public Forge: whatever it lists and publishes is reported as "
                        "public, so it must be the public Forge or a pure mirror of it, never a Forge that also "
                        "hosts private modules", base_url)
        return base_url

    def _refresh_evidence(self, site: "Site") -> "EvidenceFetch":
        """Fetch the release evidence of the public releases in use that is not kept
        yet (nothing on a warm run). A Forge that just failed the list's refresh is
        not asked again: an outage costs one failed request, not two."""
        from datetime import timedelta

        from dropsonde.forge_releases import EvidenceFetch, refresh_release_evidence

        wanted = site.releases_in_use()
        if site.forge.problem or not wanted:
            return EvidenceFetch()
        if self._forge_failure is not None:
            missing = [(s, v) for s, v in wanted if site.evidence.release(s, v) is None]
            return EvidenceFetch(failure=self._forge_failure if missing else None, not_fetched=len(missing))
        fetched = refresh_release_evidence(self.cache(), self._forge_api(), wanted, self.clock(),
                                           timedelta(days=self.options().ttl))
        if fetched.requests:
            log.info("%s", fetched.summary())
        return fetched

    def _warn_if_evidence_missing(self, site: "Site", failure: Optional[str]) -> None:
        """One warning when public modules lack the evidence of their release (the
        report then has only their main class; ``dev inventory`` says why for each),
        naming how many, and why: the Forge failing, not fetched (``--no-update``),
        not a published release, or refused."""
        from dropsonde.release_evidence import NOT_PUBLISHED  # not forge_releases: its HTTP and tarball readers

        missing = site.releases_without_evidence()
        if not missing and not failure:
            return
        if not missing:
            log.warning("could not check for new release evidence: the Forge failed (%s)", failure)
            return
        evidence = site.evidence
        kinds: Dict[str, int] = {}
        for key in missing:
            gone = evidence.unavailable.get(key)
            kind = ("no published release" if gone.reason == NOT_PUBLISHED else "refused") if gone else "not fetched"
            kinds[kind] = kinds.get(kind, 0) + 1
        why = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        if failure:
            why += f"; the Forge failed ({failure})"
        elif evidence.problem:
            why += f"; {evidence.problem}"
        one = len(missing) == 1
        log.warning("%d public module%s no release evidence from the Forge (%s): only %s reported; "
                    "`dropsonde dev inventory` says why for each", len(missing), " has" if one else "s have", why,
                    "its main class is" if one else "their main classes are")

    def _refreshed_forge(self) -> "ForgeCache":
        """The Forge list, refreshed first when missing or older than --ttl (unless
        --no-update). A failed refresh is one warning; the old list is used."""
        from dropsonde.forge_cache import load_forge_cache

        options, cache, now = self.options(), self.cache(), self.clock()
        forge = load_forge_cache(cache, now)
        if not options.update or not forge.is_due_for_refresh(now, options.ttl):
            return forge
        from dropsonde.forge_api import ForgeError, refresh_forge_cache  # the network client, only when refreshing

        base_url = self._forge_api()
        if forge.age(now) is None:
            log.warning("no usable Forge module cache: fetching the list of public modules from %s", base_url)
        try:
            summary = refresh_forge_cache(cache, base_url, full=False, now=now)
        except (ForgeError, OSError) as exc:
            log.warning("could not refresh the Forge module cache, using the current one: %s", exc)
            self._forge_failure = str(exc)
            return forge
        self.notify(summary)
        return load_forge_cache(cache, now)

    def plugins(self) -> "PluginSet":
        """The enabled plugins, loaded once: a scheduled submission asks for them
        twice (the consented columns, then the report), and each load would log
        a broken plugin's warning again."""
        from dropsonde.plugins import load_plugins

        if self._plugins is None:
            options = self.options()
            self._plugins = load_plugins(options.enable, options.disable)
        return self._plugins

    def report(self) -> "Report":
        """The report behind preview and submit; the site is closed once it is built."""
        from dropsonde.report import build_report

        site = self.site(refresh_forge=True)
        report = build_report(site, self.plugins(), self.clock())
        self.close()
        return report

    def inventory(self) -> Dict[str, Any]:
        """What ``dev inventory`` shows: every module and why it is or is not reported."""
        from dropsonde.inventory import build_inventory

        inventory = build_inventory(self.site())
        self.close()
        return inventory

    # submission

    def submit(self, url: str, only: Optional[Collection[str]] = None) -> str:
        """Build, send and record the report (``only``: just these columns); the
        server's message, or SubmitError."""
        from dropsonde.report import report_body
        from dropsonde.submit import post_report, record_submission

        body = report_body(self.report(), only)
        answer = post_report(url, body)
        record_submission(self.cache(), url, body, self.clock())
        return answer.text()

    def scheduled_submit(self, url: str) -> None:
        """One timer tick: send only when opted in and due; every outcome is one notice."""
        from dropsonde.schedule import next_due, submission_lock
        from dropsonde.submit import last_submission

        server = self.server_config()
        if not server.enabled:
            self.notify("scheduled submission is not enabled (set dropsonde { enabled: true } in Puppet Server's "
                        "conf.d); nothing sent")
            return
        cache = self.cache()
        with submission_lock(cache) as acquired:
            if not acquired:
                self.notify("another dropsonde submission is running; nothing sent")
                return
            record = last_submission(cache)
            due = next_due(record["submitted_at"] if record else None, server.interval, self.clock())
            if due is not None:
                self.notify(f"next scheduled submission is due after {due.isoformat(timespec='seconds')}; "
                            "nothing sent")
                return
            self.notify(f"report submitted: {self.submit(url, self._agreed_columns())}")

    def _agreed_columns(self) -> Collection[str]:
        """The columns a scheduled submission may send (see consent). The first
        run of an enabled site records this version's columns as agreed; later,
        columns not agreed to are left out, said in one notice."""
        from dropsonde.consent import awaiting, read_consent, record_consent, report_columns

        columns = report_columns(self.plugins().enabled)
        consent = read_consent(self.cache())
        if consent is None:
            consent = record_consent(self.cache(), columns, self.clock(),
                                     "enabled in Puppet Server's conf.d (recorded by the first scheduled submission)")
        waiting = awaiting(consent, columns)
        if waiting:
            self.notify(f"{len(waiting)} new report column(s) await agreement and are left out: "
                        f"{', '.join(waiting)} (`dropsonde consent` shows and records them)")
        return consent.columns

    def consent(self) -> Tuple[Dict[str, str], List[str], Optional["Consent"]]:
        """For ``dropsonde consent``: {column: description}, those not yet agreed to, and the record."""
        from dropsonde.consent import awaiting, read_consent, report_columns

        columns = report_columns(self.plugins().enabled)
        consent = read_consent(self.cache())
        return columns, awaiting(consent, columns), consent

    def agree(self, columns: Collection[str]) -> "Consent":
        """Record agreement to send ``columns`` in scheduled submissions."""
        from dropsonde.consent import record_consent

        return record_consent(self.cache(), columns, self.clock(), "dropsonde consent")

    def last_submission(self) -> Dict[str, Any]:
        """The record of the last successful submission, or Failure when there is none."""
        from dropsonde.submit import last_submission

        record = last_submission(self.cache())
        if record is None:
            raise Failure("no report has been submitted from here yet")
        return record

    def update_forge(self, full: bool, from_file: Optional[str]) -> str:
        """Refresh the Forge list now (from the Forge, or a file made elsewhere); a summary line."""
        from dropsonde.forge_cache import import_forge_file
        from dropsonde.forge_api import ForgeError, refresh_forge_cache
        from dropsonde.terminal import printable

        now = self.clock()
        if from_file:
            count = import_forge_file(Path(from_file), self.cache(), now)
            return f"Forge module cache imported from {printable(from_file)}: {count} modules"
        summary = refresh_forge_cache(self.cache(), self._forge_api(), full=full, now=now)
        if not any(path.is_dir() for path in self.puppet().environmentpath):
            log.info("no Puppet environments here: no release evidence to fetch")
            return summary
        evidence = self._refresh_evidence(self.site())
        if evidence.failure:
            raise ForgeError(f"{summary}, but the release evidence could not be fetched: {evidence.failure}")
        return f"{summary}\n{evidence.summary()}" if evidence.requests else summary

    # release evidence for air-gapped sites

    def releases_in_use(self) -> List[str]:
        """``slug-version`` of the public releases this site uses (what an evidence bundle must hold)."""
        site = self.site()
        if site.forge.problem:
            log.warning("%s: no module is public, so no release is listed (import forge.json first: "
                        "`dropsonde update --from-file`)", site.forge.problem)
        return [f"{slug}-{version}" for slug, version in site.releases_in_use()]

    def build_release_bundle(self, wanted: List[Tuple[str, str]], output: Path) -> str:
        """Fetch the evidence of ``wanted`` from the Forge into a bundle file (on a
        connected machine), with the tarballs it is derived from; a summary. DropsondeError
        when the Forge failed: a partial bundle would make the site report fewer classes
        without saying why."""
        from dropsonde.atomic_file import write_atomic
        from dropsonde.forge_releases import EvidenceFetch, bundle_chunks

        fetched = EvidenceFetch()
        try:
            write_atomic(output, bundle_chunks(self._forge_api(), wanted, self.clock(), fetched))
        except OSError as exc:
            raise Failure(f"{output}: cannot write: {exc.strerror or exc}") from None
        return f"{fetched.summary()}; written to {output}"

    def import_release_bundle(self, source: Path) -> str:
        """Add an evidence bundle made on a connected machine to the cache's evidence,
        after deriving each release's evidence again from its tarball (forge_releases.read_bundle);
        a release proven already is kept as it is."""
        from dropsonde.forge_releases import read_bundle
        from dropsonde.release_evidence import ReleaseEvidence, load_evidence, save_evidence

        bundle = read_bundle(source)
        current = load_evidence(self.cache())
        if current.problem:
            current = ReleaseEvidence()
        kept = sum(1 for key in bundle.releases if key in current.releases)
        merged = current.merged(bundle.releases.values(), bundle.unavailable)
        save_evidence(self.cache(), merged)
        summary = (f"release evidence imported from {source}: {len(bundle.releases)} releases proven "
                   f"({kept} already known, kept as they were), {len(bundle.unavailable)} unavailable")
        refused = sum(1 for key in bundle.releases if key not in merged.releases)
        if refused:
            summary += f"; {refused} refused: the evidence would not fit in its file (MAX_EVIDENCE_BYTES)"
        return summary
