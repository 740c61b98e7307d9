"""The command line: parses options and dispatches; the work lives elsewhere.

Heavy modules (the report, plugins, parsers, jsonschema) are imported inside
the commands that need them, so ``dropsonde --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional, Type

import typer

try:  # Typer 0.2x vendors Click as typer._click; older releases depend on Click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_errors  # type: ignore[no-redef,import-not-found,unused-ignore]

from dropsonde import __version__
from dropsonde.collector.budget import DEFAULT_DELTA, DEFAULT_EPSILON
from dropsonde.collector.options import (
    DEFAULT_CONNECTIONS,
    DEFAULT_K,
    DEFAULT_LISTEN,
    OptionError,
    ServeOptions,
)
from dropsonde.config import split_names
from dropsonde.errors import BadInput, DropsondeError, ExitStatus, Failure
from dropsonde.session import Session
from dropsonde.terminal import PrintableFormatter, printable, printable_lines

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
    no_args_is_help=True, help="The receiving side: store reports privately, publish weekly aggregates, differentially private per site."
)
app.add_typer(collector_app, name="collector")
releases_app = typer.Typer(
    no_args_is_help=True,
    help="The Forge's published releases, the proof that a class is public: carry them to an air-gapped site.",
)
app.add_typer(releases_app, name="releases")


def _version_callback(value: bool) -> None:
    if value:
        _echo(f"dropsonde version {__version__}")
        raise typer.Exit()


def _names(value: Optional[str]) -> Optional[List[str]]:
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
    ctx.obj = ctx.with_resource(Session(
        {
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
    ))


FORMAT_OPTION = typer.Option(None, "--format", "-f", help="human or json. [default: human]")


def _format(session: Session, command: str, given: Optional[str]) -> str:
    value = session.options().command_option(command, "format", given, "human")
    if value not in ("human", "json"):
        raise BadInput(f"--format: expected human or json, got {value!r}")
    return str(value)


@app.command()
def preview(
    ctx: typer.Context,
    format: Optional[str] = FORMAT_OPTION,
) -> None:
    """Show the report that would be sent; --format json is exactly the body submit POSTs."""
    from dropsonde.report import render_human, report_body

    session: Session = ctx.obj
    output = _format(session, "preview", format)
    report = session.report()
    if output == "json":
        _write_out_bytes(report_body(report))
    else:
        _echo(render_human(report), nl=False)


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
    from dropsonde.submit import DEFAULT_ENDPOINT, SubmitError, submission_url

    session: Session = ctx.obj
    options = session.options()
    url = submission_url(
        options.command_option("submit", "endpoint", endpoint, options.endpoint or DEFAULT_ENDPOINT),
        options.command_option("submit", "port", port, options.port),
    )
    try:
        if scheduled:
            session.scheduled_submit(url)
        else:
            _echo(printable_lines(session.submit(url)))
    except SubmitError as exc:
        if options.verbose and exc.body:
            # indented, so no line of it can pass for one of ours
            print("\n".join(f"  | {printable(line)}" for line in exc.body.split("\n")), file=sys.stderr)
        raise SubmitError(f"Failed to submit report: {exc}") from None


@app.command()
def last(
    ctx: typer.Context,
    format: Optional[str] = FORMAT_OPTION,
) -> None:
    """Show the last report that was submitted and when (kept after every successful submit)."""
    session: Session = ctx.obj
    output = _format(session, "last", format)
    record = session.last_submission()
    if output == "json":
        _echo(json.dumps(record["report"], sort_keys=True, indent=2, ensure_ascii=False))
        return
    _echo(f"Last submitted: {printable(record['submitted_at'])}")
    _echo(f"To: {printable(record.get('endpoint', '(unknown)'))}")
    _echo(printable_lines(json.dumps(record["report"], sort_keys=True, indent=2, ensure_ascii=False)))


@app.command()
def consent(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", "-y", help="Record the agreement without asking."),
) -> None:
    """Show the report columns scheduled submissions do not send yet, with their descriptions, and agree to send them."""
    import textwrap

    session: Session = ctx.obj
    columns, waiting, record = session.consent()
    if record is not None:
        _echo(f"Agreed to {len(record.columns & set(columns))} of this version's {len(columns)} columns "
                   f"on {printable(record.agreed_at)} ({printable(record.how)}).")
    if not waiting:
        _echo("Scheduled submissions send every column `dropsonde preview` shows; nothing to agree to.")
        return
    _echo(f"{'New columns' if record else 'Columns'} scheduled submissions leave out until you agree:")
    for column in waiting:
        _echo(f"  {printable(column)}")
        _echo(printable_lines(textwrap.fill(columns[column] or "(no description)", 76,
                                                 initial_indent="      ", subsequent_indent="      ")))
    _echo("See their values with `dropsonde preview`.")
    if not yes:
        if not sys.stdin.isatty():
            _echo("Nothing recorded: run `dropsonde consent --yes` to agree.")
            return
        if not typer.confirm("Send these columns in scheduled submissions from now on?", default=False):
            _echo("Nothing recorded.")
            return
    agreed = session.agree(waiting)
    _echo(f"Recorded: scheduled submissions send {len(agreed.columns & set(columns))} columns.")


@app.command("list")
def list_plugins(ctx: typer.Context) -> None:
    """List the loaded plugins with their descriptions, and the disabled ones."""
    import textwrap

    plugins = ctx.obj.plugins()
    _echo("Loaded plugins:")
    for plugin in plugins.enabled:
        _echo(f"  {printable(plugin.name)}")
        _echo(printable_lines(
            textwrap.fill(plugin.description, 76, initial_indent="      ", subsequent_indent="      ")))
    for name, reason in plugins.broken.items():
        _echo(f"  {printable(name)} (could not be loaded: {printable(reason)})")
    _echo("Disabled plugins:")
    for name in plugins.disabled:
        _echo(f"  {printable(name)}")
    if not plugins.disabled:
        _echo("  (none)")


@app.command()
def update(
    ctx: typer.Context,
    full: Optional[bool] = typer.Option(None, "--full", help="Rebuild the list (drops modules deleted from the Forge)."),
    from_file: Optional[str] = typer.Option(
        None, "--from-file", help="Import a forge.json made on a connected machine instead of asking the Forge."
    ),
) -> None:
    """Refresh the Forge module cache now (what decides which modules are public)."""
    session: Session = ctx.obj
    full = bool(session.options().command_option("update", "full", full, False))
    _echo(session.update_forge(full, from_file))


@releases_app.command("list")
def releases_list(ctx: typer.Context) -> None:
    """Print the public releases (author-name-X.Y.Z) this site uses, one a line: the input of `releases build`."""
    for key in ctx.obj.releases_in_use():
        _echo(key)


@releases_app.command("build")
def releases_build(
    ctx: typer.Context,
    release_list: Path = typer.Argument(..., help="The output of `dropsonde releases list` on the site."),
    output: Path = typer.Option(..., "--output", "-o", help="The evidence bundle to write."),
) -> None:
    """On a machine that reaches the Forge: fetch the listed releases' evidence into a bundle."""
    from dropsonde.release_evidence import read_release_list

    _echo(printable_lines(ctx.obj.build_release_bundle(read_release_list(release_list), output)))


@releases_app.command("import")
def releases_import(
    ctx: typer.Context,
    bundle: Path = typer.Argument(..., help="A bundle made by `dropsonde releases build`."),
) -> None:
    """On the air-gapped site: add a bundle's release evidence to the cache directory."""
    _echo(printable_lines(ctx.obj.import_release_bundle(bundle)))


@dev_app.command("schema")
def dev_schema(ctx: typer.Context) -> None:
    """Print the BigQuery JSON schema of all enabled plugins, skeleton columns first."""
    from dropsonde.report import check_columns

    _echo(json.dumps(check_columns(ctx.obj.plugins().enabled), indent=2))


@dev_app.command("example")
def dev_example(
    ctx: typer.Context,
    size: Optional[int] = typer.Option(None, "--size", min=0, help="Number of rows. [default: 1]"),
    filename: Optional[str] = typer.Option(None, "--filename", help="Write to this file instead of stdout."),
) -> None:
    """Print randomized, schema-valid example rows as JSONL, loadable with `dev schema`."""
    from dropsonde.atomic_file import write_atomic
    from dropsonde.report import example_rows

    session: Session = ctx.obj
    options = session.options()
    size = options.command_option("dev example", "size", size, 1)
    filename = options.command_option("dev example", "filename", filename, None)
    rows = example_rows(session.plugins().enabled, list(session.site().forge.modules), size, session.clock())
    lines = "".join(json.dumps(row, sort_keys=False) + "\n" for row in rows)
    if filename:
        try:
            write_atomic(Path(filename), lines.encode("utf-8"))
        except OSError as exc:
            raise Failure(f"{filename}: cannot write: {exc.strerror or exc}") from None
    else:
        _echo(lines, nl=False)


@dev_app.command("shell")
def dev_shell(ctx: typer.Context) -> None:
    """Open a Python console with the settings, environments, Forge cache, PuppetDB client and plugins in scope."""
    import code

    session: Session = ctx.obj
    site = session.site()
    scope = {
        "options": session.options(),
        "site": site,
        "settings": site.puppet,
        "environments": site.environments,
        "forge": site.forge,
        "puppetdb": site.puppetdb,
        "plugins": session.plugins(),
    }
    banner = "dropsonde shell: " + ", ".join(sorted(scope)) + " are defined. Ctrl-D exits."
    code.interact(banner=banner, local=scope, exitmsg="")


@dev_app.command("inventory")
def dev_inventory(
    ctx: typer.Context,
    format: Optional[str] = FORMAT_OPTION,
) -> None:
    """Show, locally, what dropsonde sees and why each module is or is not reported. Never sent."""
    from dropsonde.inventory import render_inventory

    session: Session = ctx.obj
    output = _format(session, "dev inventory", format)
    inventory = session.inventory()
    if output == "json":
        # streamed: at r10k sizes the indented text built whole would double the peak memory
        try:
            json.dump(inventory, sys.stdout, indent=2, sort_keys=True)
        except OSError as exc:
            raise _stdout_failure(exc) from None
        _write_out("\n")
    else:
        _echo(printable_lines(render_inventory(inventory)), nl=False)


@collector_app.command("serve")
def collector_serve(
    listen: str = typer.Option(DEFAULT_LISTEN, "--listen", help="HOST:PORT to listen on (8140 is Puppet Server's)."),
    db: str = typer.Option(..., "--db", help="SQLite file, or a postgresql:// URL."),
    forge_cache: Path = typer.Option(..., "--forge-cache", help="Directory (or the forge.json in it) holding "
                                     "forge.json and forge-releases.json: the only modules, releases and classes "
                                     "a report may name."),
    max_body: int = typer.Option(ServeOptions.max_body, "--max-body", min=1024, help="Largest report accepted, in bytes."),
    rate: int = typer.Option(ServeOptions.rate_per_minute, "--rate", min=1, help="Reports a minute accepted from one address (IPv6: one /48), all workers together; a report costs one per 16 KiB of body, at least one."),
    trusted_proxy: List[str] = typer.Option([], "--trusted-proxy", help="CIDR of a reverse proxy whose "
                                            "X-Forwarded-For names the client (repeatable)."),
    read_timeout: int = typer.Option(ServeOptions.read_timeout, "--read-timeout", min=1, help="Seconds a client has to send "
                                     "a request's headers, and again its body."),
    connections: int = typer.Option(DEFAULT_CONNECTIONS, "--connections", min=1, help="Connections served at once per worker."),
    latest: Optional[str] = typer.Option(None, "--latest-version", help="Newest client release (X.Y.Z): older clients are told."),
    link: str = typer.Option(ServeOptions.download_link, "--download-link", help="Where a newer client is."),
    store_ip: bool = typer.Option(ServeOptions.store_ip, "--store-ip", help="Keep client addresses (not stored by default)."),
    workers: int = typer.Option(0, "--workers", min=0, show_default=False,
                                help="Worker processes. [default: one per CPU]"),
    sites_per_source: int = typer.Option(ServeOptions.sites_per_source, "--sites-per-source", min=1,
                                         help="Distinct sites one address (IPv6: one /48) may report for in a week."),
) -> None:
    """Accept reports on POST / (what `dropsonde submit --endpoint` sends) and store them."""
    from dropsonde.collector.client_address import parse_networks
    from dropsonde.collector.gunicorn_server import serve

    with _collector_options():
        settings = ServeOptions(max_body=max_body, rate_per_minute=rate, latest_version=latest,
                                     download_link=link, store_ip=store_ip,
                                     trusted_proxies=parse_networks(trusted_proxy), read_timeout=read_timeout,
                                     sites_per_source=sites_per_source)
        serve(listen, db, settings, forge_cache, connections, workers or os.cpu_count() or 1)


@collector_app.command("aggregate")
def collector_aggregate(
    db: str = typer.Option(..., "--db", help="SQLite file, or a postgresql:// URL."),
    out: str = typer.Option(..., "--out", help="Directory for the JSON, CSV, badges and index.html (replaced whole)."),
    week: Optional[str] = typer.Option(None, "--week", help="ISO week YYYY-Www. [default: the last complete week]"),
    k: int = typer.Option(DEFAULT_K, "--k", help="Least noisy count of a published row (on top of the DP threshold)."),
    epsilon: float = typer.Option(DEFAULT_EPSILON, "--epsilon", help="Privacy loss per site for the whole week, every table together."),
    delta: float = typer.Option(DEFAULT_DELTA, "--delta", help="Chance per site and week that the epsilon bound fails."),
    noise_key: Optional[str] = typer.Option(None, "--noise-key", help="Private file naming the release (created 0600 once, never for a store that released weeks). [default: DB.noise-key beside a SQLite --db]"),
    force: bool = typer.Option(False, "--force", help="Publish a week not ended yet, or release a week again (other parameters, another key, an empty release): spends the week's budget again."),
) -> None:
    """Publish one week's aggregates, differentially private per site and week (OpenDP): no per-site rows."""
    from datetime import datetime, timezone

    from dropsonde.collector.aggregate import Parameters, PublicationError, publish_week, week_bounds
    from dropsonde.collector.budget import BudgetError
    from dropsonde.collector.noise_key import NoiseKeyError, default_key_path, load_or_create_key
    from dropsonde.collector.output import OutputError
    from dropsonde.collector.release_ledger import LedgerError, file_ledgers, open_ledger
    from dropsonde.collector.render import render_page
    from dropsonde.collector.storage import open_store

    flags = {"week": "--week", "out": "--out", "k": "--k", "epsilon": "--epsilon", "delta": "--delta"}
    try:
        label, _, end = week_bounds(week)
        if end > datetime.now(timezone.utc) and not force:
            raise PublicationError("week", label, "the week has not ended; its numbers still change",
                                   "publishes it anyway, and a later release of the week spends its budget again")
        signal.signal(signal.SIGTERM, _stop_aggregate)  # so the staging directory is removed on the way out
        key_path = Path(noise_key) if noise_key else None
        with _collector_options():
            store = open_store(db, read_only=True)
            key_path = key_path or default_key_path(db)
            ledger = open_ledger(store, file_ledgers(db, key_path))  # in the store; earlier versions' files imported
            key = load_or_create_key(key_path, released=ledger.released_weeks())
            result = publish_week(store, label, Parameters(epsilon, delta, k), key, ledger, Path(out), render_page,
                                  force, week_ended=end <= datetime.now(timezone.utc))
    except PublicationError as exc:
        flag = flags.get(exc.subject, f"--{exc.subject}")
        remedy = f" (--force {exc.forcible})" if exc.forcible else ""
        raise BadInput(f"{flag} {exc.value}: {exc.problem}{remedy}") from None
    except BudgetError as exc:
        raise BadInput(f"{flags[exc.parameter]}: {exc}") from None
    except OutputError as exc:
        raise _typed(exc.status)(f"--out {exc.path}: {exc.problem}") from None
    except NoiseKeyError as exc:
        raise _typed(exc.status)(f"--noise-key {exc.path}: {exc.problem}" if exc.path
                                 else f"--noise-key: {exc.problem}") from None
    except LedgerError as exc:
        raise Failure(f"release ledger of {exc}") from None
    sites = result.sites if result.sites is not None else "too few"
    _echo(f"week {label}: {sites} sites; {sum(result.rows.values())} rows published to {out} "
               f"(epsilon {result.epsilon:g}, delta {result.delta:g} per site for the week)")


@collector_app.command("load")
def collector_load(
    file: str = typer.Argument(..., help="JSONL rows as `dropsonde dev example` writes them."),
    db: str = typer.Option(..., "--db", help="SQLite file, or a postgresql:// URL."),
    forge_cache: Path = typer.Option(..., "--forge-cache", help="As for serve: the Forge list and release evidence "
                                     "every row is checked against (one refused row loads nothing)."),
) -> None:
    """Load example rows, to try the aggregation without real reports."""
    from dropsonde.collector.allowlist_files import load_allowlist
    from dropsonde.collector.jsonl_loader import load_jsonl

    with _collector_options():
        loaded = load_jsonl(Path(file), db, load_allowlist(forge_cache))
    _echo(f"{loaded} rows loaded")


#: the collector's settings and store as its commands' options name them
_COLLECTOR_OPTIONS = {"db": "--db", "listen": "--listen", "trusted_proxies": "--trusted-proxy",
                      "latest_version": "--latest-version"}


@contextmanager
def _collector_options() -> Iterator[None]:
    """The collector's errors about a setting or the store, phrased with the option that set it."""
    from dropsonde.collector.storage import StoreError

    try:
        yield
    except OptionError as exc:
        raise _typed(exc.status)(exc.phrased(_COLLECTOR_OPTIONS.get(exc.setting, exc.setting))) from None
    except StoreError as exc:
        raise _typed(exc.status)(f"--db {exc.store}: {exc.reason}") from None


def _typed(status: ExitStatus) -> Type[DropsondeError]:
    """The error type for a collector core error's ``status``: the core says what
    went wrong, the CLI names the option and gives the type main maps."""
    return Failure if status == ExitStatus.FAILURE else BadInput


def _stop_aggregate(number: int, frame: Any) -> None:
    """SIGTERM during ``aggregate``: a running SQLite query is interrupted
    (it would hold the handler until it ends), then the command exits."""
    from dropsonde.collector.aggregate import Stop

    Stop.request(128 + number)
    raise SystemExit(128 + number)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the ``sys.stderr`` of the moment, so a caller that redirects
    stderr (a test, an embedding program) gets the log lines too."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _LogFormatter(PrintableFormatter):
    """``dropsonde: warning: ...``: level names in lower case, without renaming
    the levels for every other user of :mod:`logging` in the process."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's naming
        record.level = record.levelname.lower()
        return super().formatMessage(record)


def _echo(message: str = "", nl: bool = True) -> None:
    """A line of data to stdout (Click's ``echo``, with :func:`_write_out`'s errors)."""
    _write_out(message + ("\n" if nl else ""))


def _write_out(text: str) -> None:
    """Data to stdout; a stdout that cannot take it (a full disk, a closed
    pipe) is a :class:`Failure` saying so, not an internal error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        raise _stdout_failure(exc) from None


def _write_out_bytes(data: bytes) -> None:
    """Bytes to stdout as they are (the exact report body), like :func:`_write_out`."""
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except OSError as exc:
        raise _stdout_failure(exc) from None


def _stdout_failure(exc: OSError) -> Failure:
    """The error line for a stdout that refused a write. What could not be written
    is dropped (fd 1 is pointed at /dev/null), so the interpreter's own flush at
    exit does not fail a second time with a traceback-like message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (a test's buffer): nothing will flush later
        pass
    return Failure(f"cannot write to standard output: {exc.strerror or exc}")


def _error_line(message: object) -> None:
    print(f"dropsonde: error: {printable(str(message))}", file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the
    exit status. The one place where errors become statuses (README, "Exit
    status"): :class:`BadInput` and Click's usage errors 2, :class:`Failure` and
    ``OSError`` 1, anything unexpected 70 (a bug; ``--verbose`` shows the
    traceback), Ctrl-C 130; each as one ``dropsonde: error:`` line, never a
    traceback. Logging is set up for the run and put back afterwards, so a
    caller (a test) needs to swap nothing but the streams it wants to read."""
    args = list(sys.argv[1:] if argv is None else argv)
    handler = _StderrHandler()
    handler.setFormatter(_LogFormatter("dropsonde: %(level)s: %(message)s"))
    root, urllib3 = logging.getLogger(), logging.getLogger("urllib3")
    saved_levels = root.level, urllib3.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # urllib3 logs each retry as a warning; our own message says what finally happened.
    urllib3.setLevel(logging.ERROR)
    try:
        status = app(args=args, prog_name="dropsonde", standalone_mode=False)
        sys.stdout.flush()
        return int(status or 0)
    except click_errors.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `dropsonde` alone (Click 8.2): the help
            exc.show()
        else:  # one line, keeping Click's "Did you mean 'preview'?"
            _error_line(exc.format_message())
        return ExitStatus.USAGE
    except BadInput as exc:
        _error_line(exc)
        return ExitStatus.USAGE
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:  # Click's own Ctrl-C and end-of-input at a prompt
        return ExitStatus.INTERRUPTED
    except Failure as exc:
        _error_line(exc)
        return ExitStatus.FAILURE
    except click_errors.ClickException as exc:  # Click's other errors (a file it could not open)
        _error_line(exc.format_message())
        return ExitStatus.FAILURE
    except DropsondeError as exc:  # raised as the base class by code older than the split: bad input, as then
        _error_line(exc)
        return ExitStatus.USAGE
    except OSError as exc:
        if _is_stdout_error():
            _error_line(_stdout_failure(exc))
        else:
            _error_line(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc.strerror or exc)
        return ExitStatus.FAILURE
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except SystemExit as exc:  # SIGTERM (_exit_on_sigterm): 143, after the cleanup it allowed
        return exc.code if isinstance(exc.code, int) else ExitStatus.FAILURE
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if "-v" in args or "--verbose" in args:
            traceback.print_exc()
        print(f"dropsonde: internal error: {type(exc).__name__}: {printable(str(exc))} "
              "(a bug; run with --verbose for details)", file=sys.stderr)
        return ExitStatus.INTERNAL
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_levels[0])
        urllib3.setLevel(saved_levels[1])


def _is_stdout_error() -> bool:
    """Whether stdout is what failed: an OSError that reached :func:`main` from a
    write nobody wrapped (Click's own echo) leaves its data unflushed."""
    try:
        sys.stdout.flush()
    except OSError:
        return True
    return False
