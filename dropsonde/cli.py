"""The command line: parses options and dispatches; the work lives elsewhere.

Heavy modules (the report, plugins, parsers, jsonschema) are imported inside
the commands that need them, so ``dropsonde --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import typer

from dropsonde import __version__
from dropsonde.config import (
    CONFIG_FILENAME,
    Options,
    merge_options,
    read_config_file,
    split_names,
)
from dropsonde.errors import DropsondeError, ExitStatus
from dropsonde.terminal import PrintableFormatter, printable, printable_lines

if TYPE_CHECKING:
    from dropsonde.plugins import PluginSet
    from dropsonde.puppet.server_config import ServerConfig
    from dropsonde.site import Site

log = logging.getLogger("dropsonde")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Opt-in, privacy-first telemetry for Puppet and OpenVox: shows (preview) and sends "
    "which public Forge modules, classes and platforms this site uses, under an anonymous site id.",
)
dev_app = typer.Typer(no_args_is_help=True, help="Tools for plugin developers and curious admins.")
app.add_typer(dev_app, name="dev")
collector_app = typer.Typer(
    no_args_is_help=True, help="The receiving side: store reports privately, publish k-anonymous weekly aggregates."
)
app.add_typer(collector_app, name="collector")


@dataclass
class State:
    """What the global options gave; options and the site are built once, on first use."""

    given: Dict[str, Any]
    _options: Optional[Options] = None
    _site: Optional["Site"] = None
    _server_config: Optional["ServerConfig"] = None

    def options(self) -> Options:
        if self._options is None:
            if self.given.get("puppetserver"):
                self._use_server_directories()
            self._options = load_options(self.given)
            if self._options.verbose:
                logging.getLogger().setLevel(logging.INFO)
                logging.getLogger("urllib3").setLevel(logging.WARNING)
                config_file = config_file_for(self.given)
                log.info("options from the command line and %s%s", config_file,
                         "" if config_file.is_file() else " (absent)")
        return self._options

    def layout(self) -> str:
        """Which Puppet layout's defaults apply. As `puppetserver dropsonde` the
        server's own (AIO or Debian) even when not root: the shim and the timer
        run as the user Puppet Server runs as, and must see what the server sees."""
        from dropsonde.puppet.settings import detect_layout

        return detect_layout(is_root=True) if self.given.get("puppetserver") else detect_layout()

    def server_config(self) -> "ServerConfig":
        """Puppet Server's conf.d, merged (read once)."""
        from dropsonde.puppet.server_config import CONFD_BY_LAYOUT, read_server_config

        if self._server_config is None:
            layout = self.layout()
            confd = self.given.get("puppetserver_confd") or CONFD_BY_LAYOUT[layout]
            self._server_config = read_server_config(Path(confd), layout)
        return self._server_config

    def _use_server_directories(self) -> None:
        """Run as `puppetserver dropsonde`: Puppet's directories are the server's
        (jruby-puppet settings), unless given on the command line."""
        for name, value in self.server_config().directories.items():
            if name in self.given and self.given[name] is None:
                self.given[name] = value

    def site(self) -> "Site":
        """The site, once its cache directory is known to be ours alone (see cache_dir)."""
        from dropsonde.cache_dir import check_cache_dir
        from dropsonde.site import Site

        if self._site is None:
            site = Site.from_options(self.options(), self.layout())
            check_cache_dir(site.cachepath)
            self._site = site
        return self._site

    def plugins(self) -> "PluginSet":
        from dropsonde.plugins import load_plugins

        options = self.options()
        return load_plugins(options.enable, options.disable)


def config_file_for(given: Dict[str, Any]) -> Path:
    """``telemetry.yaml``: in the parent of Puppet's confdir, as the Ruby client reads it."""
    from dropsonde.puppet.settings import resolve_confdir

    return Path(resolve_confdir(given.get("confdir"))).parent / CONFIG_FILENAME


def load_options(given: Dict[str, Any]) -> Options:
    """Merge the command line with ``telemetry.yaml``."""
    config_file = config_file_for(given)
    return merge_options(given, read_config_file(config_file), config_file)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dropsonde version {__version__}")
        raise typer.Exit()


def _names(value: Optional[str]) -> Optional[list]:
    return split_names(value) if value is not None else None


@app.callback()
def global_options(
    ctx: typer.Context,
    verbose: Optional[bool] = typer.Option(None, "--verbose", "-v", help="Log what is being done, to stderr."),
    update: Optional[bool] = typer.Option(
        None, "--update/--no-update", help="Refresh the Forge module cache when older than --ttl days. [default: update]"
    ),
    cachepath: Optional[str] = typer.Option(None, "--cachepath", help="Cache directory. [default: $vardir/dropsonde]"),
    ttl: Optional[int] = typer.Option(None, "--ttl", min=0, help="Forge cache lifetime in days. [default: 7]"),
    disable: Optional[str] = typer.Option(None, "--disable", "-d", help="Plugins to disable, comma-separated."),
    enable: Optional[str] = typer.Option(
        None, "--enable", "-e", help="Plugins to enable, comma-separated; when given, only these run."
    ),
    seed: Optional[str] = typer.Option(None, "--seed", help="Extra string mixed into the site id."),
    siteid: Optional[str] = typer.Option(None, "--siteid", help="Use this site id instead of computing one."),
    confdir: Optional[str] = typer.Option(
        None, "--confdir", help="Puppet's confdir (also $PUPPET_CONFDIR). [default: detected from the layout]"
    ),
    codedir: Optional[str] = typer.Option(None, "--codedir", help="Puppet's codedir (also $PUPPET_CODEDIR)."),
    vardir: Optional[str] = typer.Option(None, "--vardir", help="Puppet's vardir (also $PUPPET_VARDIR)."),
    forge_api: Optional[str] = typer.Option(
        None, "--forge-api", help="Forge API base URL. [default: https://forgeapi.puppet.com]"
    ),
    puppetserver: bool = typer.Option(
        False, "--puppetserver", help="Take Puppet's directories from Puppet Server's conf.d (the puppetserver shim sets it)."
    ),
    puppetserver_confd: Optional[str] = typer.Option(
        None, "--puppetserver-confd", help="Puppet Server's conf.d. [default: detected from the layout]"
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Global options apply to every command; telemetry.yaml beside Puppet's confdir sets their defaults."""
    ctx.obj = State(
        given={
            "verbose": verbose,
            "update": update,
            "cachepath": cachepath,
            "ttl": ttl,
            "disable": _names(disable),
            "enable": _names(enable),
            "seed": seed,
            "siteid": siteid,
            "confdir": confdir,
            "codedir": codedir,
            "vardir": vardir,
            "forge_api": forge_api,
            "puppetserver": puppetserver,
            "puppetserver_confd": puppetserver_confd,
        }
    )


FORMAT_OPTION = typer.Option(None, "--format", "-f", help="human or json. [default: human]")


def _format(state: State, command: str, given: Optional[str]) -> str:
    value = state.options().command_option(command, "format", given, "human")
    if value not in ("human", "json"):
        raise DropsondeError(f"--format: expected human or json, got {value!r}")
    return value


def _build_report(state: State):
    """Site, refreshed Forge list, plugins run: the one path behind preview and submit."""
    from dropsonde.report import build_report

    site, plugins = state.site(), state.plugins()
    _refresh_forge_if_expired(site)
    report = build_report(site, plugins)
    site.close()
    return site, report


@app.command()
def preview(
    ctx: typer.Context,
    format: Optional[str] = FORMAT_OPTION,
) -> None:
    """Show the report that would be sent; --format json is exactly the body submit POSTs."""
    from dropsonde.report import render_human, report_body

    state: State = ctx.obj
    output = _format(state, "preview", format)
    _, report = _build_report(state)
    if output == "json":
        sys.stdout.buffer.write(report_body(report))
    else:
        typer.echo(render_human(report), nl=False)


@app.command()
def submit(
    ctx: typer.Context,
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="Where to send. [default: https://updates.puppet.com]"),
    port: Optional[int] = typer.Option(None, "--port", help="Port on the endpoint. [default: 443]"),
    scheduled: bool = typer.Option(
        False, "--scheduled", help="Only if enabled in Puppet Server's conf.d and due (for the timer and cron)."
    ),
) -> None:
    """Send the report (exactly what preview --format json shows) and record what was sent."""
    from dropsonde.submit import DEFAULT_ENDPOINT, submission_url

    state: State = ctx.obj
    options = state.options()
    url = submission_url(
        options.command_option("submit", "endpoint", endpoint, options.endpoint or DEFAULT_ENDPOINT),
        options.command_option("submit", "port", port, options.port),
    )
    if scheduled:
        _scheduled_submit(state, url)
    else:
        typer.echo(printable_lines(_submit(state, url)))


def _submit(state: State, url: str) -> str:
    """Build, send and record the report; the server's message, or SubmitError."""
    from datetime import datetime, timezone

    from dropsonde.report import report_body
    from dropsonde.submit import SubmitError, post_report, record_submission

    site, report = _build_report(state)
    body = report_body(report)
    try:
        answer = post_report(url, body)
    except SubmitError as exc:
        if state.options().verbose and exc.body:
            # indented, so no line of it can pass for one of ours
            print("\n".join(f"  | {printable(line)}" for line in exc.body.split("\n")), file=sys.stderr)
        raise SubmitError(f"Failed to submit report: {exc}") from None
    record_submission(site.cachepath, url, body, datetime.now(timezone.utc))
    return answer.text()


def _scheduled_submit(state: State, url: str) -> None:
    """One timer tick: send only when opted in and due; every outcome is one line on stderr."""
    from datetime import datetime, timezone

    from dropsonde.schedule import next_due, submission_lock
    from dropsonde.submit import last_submission

    server = state.server_config()
    if not server.enabled:
        notice("scheduled submission is not enabled (set dropsonde { enabled: true } in Puppet Server's conf.d); "
               "nothing sent")
        return
    cachepath = state.site().cachepath
    with submission_lock(cachepath) as acquired:
        if not acquired:
            notice("another dropsonde submission is running; nothing sent")
            return
        record = last_submission(cachepath)
        due = next_due(record["submitted_at"] if record else None, server.interval, datetime.now(timezone.utc))
        if due is not None:
            notice(f"next scheduled submission is due after {due.isoformat(timespec='seconds')}; nothing sent")
            return
        notice(f"report submitted: {_submit(state, url)}")


def notice(message: str) -> None:
    """A line for the journal or cron mail: what a run did, without --verbose."""
    print(f"dropsonde: {printable(message)}", file=sys.stderr)


@app.command()
def last(
    ctx: typer.Context,
    format: Optional[str] = FORMAT_OPTION,
) -> None:
    """Show the last report that was submitted and when (kept after every successful submit)."""
    from dropsonde.submit import last_submission

    state: State = ctx.obj
    output = _format(state, "last", format)
    record = last_submission(state.site().cachepath)
    if record is None:
        raise DropsondeError("no report has been submitted from here yet", ExitStatus.FAILURE)
    if output == "json":
        typer.echo(json.dumps(record["report"], sort_keys=True, indent=2, ensure_ascii=False))
        return
    typer.echo(f"Last submitted: {printable(record['submitted_at'])}")
    typer.echo(f"To: {printable(record.get('endpoint', '(unknown)'))}")
    typer.echo(printable_lines(json.dumps(record["report"], sort_keys=True, indent=2, ensure_ascii=False)))


def _refresh_forge_if_expired(site: "Site") -> None:
    """Before a report: refresh the Forge list when missing or older than --ttl
    (unless --no-update). A failure is one warning; the old list is used."""
    from datetime import datetime, timezone

    from dropsonde.forge_api import ForgeError, forge_api_url, refresh_forge_cache

    options = site.options
    now = datetime.now(timezone.utc)
    age = site.forge.age(now)
    if not options.update or (age is not None and age.days < options.ttl and not site.forge.problem):
        return
    base_url = forge_api_url(options.forge_api)
    if age is None:
        log.warning("no usable Forge module cache: fetching the list of public modules from %s", base_url)
    try:
        summary = refresh_forge_cache(site.cachepath, base_url, full=False, now=now)
    except (ForgeError, OSError) as exc:
        log.warning("could not refresh the Forge module cache, using the current one: %s", exc)
        return
    notice(summary)
    site.reload_forge()


@app.command("list")
def list_plugins(ctx: typer.Context) -> None:
    """List the loaded plugins with their descriptions, and the disabled ones."""
    import textwrap

    plugins = ctx.obj.plugins()
    typer.echo("Loaded plugins:")
    for plugin in plugins.enabled:
        typer.echo(f"  {printable(plugin.name)}")
        typer.echo(printable_lines(
            textwrap.fill(plugin.description, 76, initial_indent="      ", subsequent_indent="      ")))
    for name, reason in plugins.broken.items():
        typer.echo(f"  {printable(name)} (could not be loaded: {printable(reason)})")
    typer.echo("Disabled plugins:")
    for name in plugins.disabled:
        typer.echo(f"  {name}")
    if not plugins.disabled:
        typer.echo("  (none)")


@app.command()
def update(
    ctx: typer.Context,
    full: Optional[bool] = typer.Option(None, "--full", help="Rebuild the list (drops modules deleted from the Forge)."),
    from_file: Optional[str] = typer.Option(
        None, "--from-file", help="Import a forge.json made on a connected machine instead of asking the Forge."
    ),
) -> None:
    """Refresh the Forge module cache now (what decides which modules are public)."""
    from datetime import datetime, timezone

    from dropsonde.forge import import_forge_file
    from dropsonde.forge_api import forge_api_url, refresh_forge_cache

    state: State = ctx.obj
    options = state.options()
    site = state.site()
    now = datetime.now(timezone.utc)
    if from_file:
        count = import_forge_file(Path(from_file), site.cachepath, now)
        typer.echo(f"Forge module cache imported from {printable(from_file)}: {count} modules")
        return
    base_url = forge_api_url(options.forge_api)
    full = bool(options.command_option("update", "full", full, False))
    typer.echo(refresh_forge_cache(site.cachepath, base_url, full=full, now=now))


@dev_app.command("schema")
def dev_schema(ctx: typer.Context) -> None:
    """Print the BigQuery JSON schema of all enabled plugins, skeleton columns first."""
    from dropsonde.report import check_columns

    typer.echo(json.dumps(check_columns(ctx.obj.plugins().enabled), indent=2))


@dev_app.command("example")
def dev_example(
    ctx: typer.Context,
    size: Optional[int] = typer.Option(None, "--size", min=0, help="Number of rows. [default: 1]"),
    filename: Optional[str] = typer.Option(None, "--filename", help="Write to this file instead of stdout."),
) -> None:
    """Print randomized, schema-valid example rows as JSONL, loadable with `dev schema`."""
    from dropsonde.report import example_rows

    state: State = ctx.obj
    options = state.options()
    size = options.command_option("dev example", "size", size, 1)
    filename = options.command_option("dev example", "filename", filename, None)
    site = state.site()
    rows = example_rows(state.plugins().enabled, list(site.forge.modules), size)
    lines = "".join(json.dumps(row, sort_keys=False) + "\n" for row in rows)
    if filename:
        try:
            Path(filename).write_text(lines, encoding="utf-8")
        except OSError as exc:
            raise DropsondeError(f"{filename}: cannot write: {exc.strerror or exc}") from None
    else:
        typer.echo(lines, nl=False)


@dev_app.command("shell")
def dev_shell(ctx: typer.Context) -> None:
    """Open a Python console with the settings, environments, Forge cache, PuppetDB client and plugins in scope."""
    import code

    state: State = ctx.obj
    site = state.site()
    scope = {
        "options": state.options(),
        "site": site,
        "settings": site.puppet,
        "environments": site.environments,
        "forge": site.forge,
        "puppetdb": site.puppetdb,
        "plugins": state.plugins(),
    }
    banner = "dropsonde shell: " + ", ".join(sorted(scope)) + " are defined. Ctrl-D exits."
    code.interact(banner=banner, local=scope, exitmsg="")


@dev_app.command("inventory")
def dev_inventory(
    ctx: typer.Context,
    format: Optional[str] = FORMAT_OPTION,
) -> None:
    """Show, locally, what dropsonde sees and why each module is or is not reported. Never sent."""
    from dropsonde.inventory import build_inventory, render_inventory

    state: State = ctx.obj
    output = _format(state, "dev inventory", format)
    site = state.site()
    inventory = build_inventory(site)
    site.close()
    if output == "json":
        # streamed: at r10k sizes the indented text built whole would double the peak memory
        json.dump(inventory, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        typer.echo(printable_lines(render_inventory(inventory)), nl=False)


@collector_app.command("serve")
def collector_serve(
    listen: str = typer.Option("127.0.0.1:8745", "--listen", help="HOST:PORT to listen on (8140 is Puppet Server's)."),
    db: str = typer.Option(..., "--db", help="SQLite file, or a postgresql:// URL."),
    forge_cache: Path = typer.Option(..., "--forge-cache", help="forge.json (as `dropsonde update` keeps it): "
                                     "the only modules a report may name."),
    max_body: int = typer.Option(1024 * 1024, "--max-body", min=1024, help="Largest report accepted, in bytes."),
    rate: int = typer.Option(60, "--rate", min=1, help="Reports a minute accepted from one address (all workers)."),
    trusted_proxy: List[str] = typer.Option([], "--trusted-proxy", help="CIDR of a reverse proxy whose "
                                            "X-Forwarded-For names the client (repeatable)."),
    read_timeout: int = typer.Option(10, "--read-timeout", min=1, help="Seconds a client has to send "
                                     "a request's headers, and again its body."),
    connections: int = typer.Option(1000, "--connections", min=1, help="Connections served at once per worker."),
    latest: Optional[str] = typer.Option(None, "--latest-version", help="Newest client release (X.Y.Z): older clients are told."),
    link: str = typer.Option("https://pypi.org/project/dropsonde/", "--download-link", help="Where a newer client is."),
    store_ip: bool = typer.Option(False, "--store-ip", help="Keep client addresses (not stored by default)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes. [default: one per CPU]"),
) -> None:
    """Accept reports on POST / (what `dropsonde submit --endpoint` sends) and store them."""
    from dropsonde.collector.app import CollectorSettings
    from dropsonde.collector.limits import parse_networks
    from dropsonde.collector.service import serve

    if latest is not None and not re.match(r"^\d+\.\d+\.\d+$", latest):
        raise DropsondeError(f"--latest-version: expected X.Y.Z, got {latest!r}")
    try:
        proxies = parse_networks(trusted_proxy)
    except ValueError as exc:
        raise DropsondeError(str(exc)) from None
    settings = CollectorSettings(max_body=max_body, rate_per_minute=rate, latest_version=latest,
                                 download_link=link, store_ip=store_ip, trusted_proxies=proxies,
                                 read_timeout=read_timeout)
    serve(listen, db, settings, forge_cache, connections, workers or os.cpu_count() or 1)


@collector_app.command("aggregate")
def collector_aggregate(
    db: str = typer.Option(..., "--db", help="SQLite file, or a postgresql:// URL."),
    out: str = typer.Option(..., "--out", help="Directory for the JSON, CSV and index.html (replaced whole)."),
    week: Optional[str] = typer.Option(None, "--week", help="ISO week YYYY-Www. [default: the last complete week]"),
    k: int = typer.Option(5, "--k", help="Least number of distinct sites behind every published row."),
    epsilon: float = typer.Option(1.0, "--epsilon", help="Privacy loss per published number (noise scale 1/epsilon)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Fixed noise, for tests only: whoever knows it can remove the noise."),
) -> None:
    """Publish one week's aggregates: every row backed by at least k sites, every number noised, no per-site rows."""
    from dropsonde.collector.aggregate import publish_week, week_bounds
    from dropsonde.collector.noise import GeometricNoise
    from dropsonde.collector.render import render_page
    from dropsonde.collector.service import store_for

    label, _, _ = week_bounds(week)
    if not 0 < epsilon < float("inf"):
        raise DropsondeError(f"--epsilon: expected a positive number, got {epsilon}")
    result = publish_week(store_for(db), label, k, GeometricNoise(epsilon, seed), Path(out), render_page)
    sites = result.sites if result.sites is not None else f"fewer than {k}"
    typer.echo(f"week {label}: {sites} sites; {sum(result.rows.values())} rows published to {out}")


@collector_app.command("load")
def collector_load(
    file: str = typer.Argument(..., help="JSONL rows as `dropsonde dev example` writes them."),
    db: str = typer.Option(..., "--db", help="SQLite file, or a postgresql:// URL."),
) -> None:
    """Load example rows, to try the aggregation without real reports."""
    from dropsonde.collector.service import load_jsonl

    typer.echo(f"{load_jsonl(Path(file), db)} rows loaded")


def main() -> None:
    """Entry point: one line on stderr and an exit status for expected failures, never a traceback."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("dropsonde: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.INFO, "info")
    # urllib3 logs each retry as a warning; our own message says what finally happened.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        app(prog_name="dropsonde")
    except DropsondeError as exc:
        print(f"dropsonde: error: {printable(exc)}", file=sys.stderr)
        sys.exit(exc.status)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if "-v" in sys.argv or "--verbose" in sys.argv:
            traceback.print_exc()
        print(f"dropsonde: internal error: {type(exc).__name__}: {printable(exc)} (run with --verbose for details)",
              file=sys.stderr)
        sys.exit(ExitStatus.FAILURE)
