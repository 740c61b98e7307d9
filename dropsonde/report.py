"""The report: running the enabled plugins, validating what each returns
against its own schema, and rendering the result.

``build_report`` is the single code path behind ``preview`` and ``submit``:
``report_body`` gives the exact bytes submit POSTs, and the human preview is
rendered from the same data, so what an admin reviews is what is sent.
"""

from __future__ import annotations

import json
import logging
import random
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Dict, Iterator, List, Optional

from dropsonde.errors import BadInput, Failure
from dropsonde.metrics.base import MetricPlugin
from dropsonde.plugins import PluginSet
from dropsonde.schema import (
    SchemaError,
    json_schema_for_columns,
    schema_validator,
    validation_message,
)
from dropsonde.siteid import SiteId, compute_site_id
from dropsonde.terminal import printable, printable_lines, shortened
from dropsonde.validation_cache import RememberingValidator, Verdicts
from dropsonde.wire import PRODUCT, REPORT_VERSION, SKELETON_COLUMNS, envelope
from dropsonde.wire_columns import max_rows

if TYPE_CHECKING:  # the site (and every Puppet reader) is loaded only by commands that read one
    from dropsonde.site import Site

log = logging.getLogger(__name__)


@dataclass
class PluginResult:
    """One plugin's validated data, or why it has none. ``error`` is shown in the
    preview, so it never holds an exception's text or a value (either can carry a
    secret: a path, a password in a URL); the detail goes to stderr."""

    plugin: MetricPlugin
    data: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None


class PluginOutputError(BadInput):
    """A plugin's schema or data is invalid. ``summary`` says where without
    quoting any value, for the preview; the message has the full detail."""

    def __init__(self, plugin: MetricPlugin, summary: str, detail: str = "") -> None:
        super().__init__(f"plugin {plugin.name}: {summary}{': ' + detail if detail else ''}")
        self.summary = summary


@dataclass
class Report:
    """A complete report: site id, timestamp, and each enabled plugin's result."""

    site_id: SiteId
    timestamp: str
    results: List[PluginResult]
    notes: List[str] = field(default_factory=list)

    def values(self) -> Dict[str, Any]:
        """Every column's value, from the plugins that ran."""
        return {column: value for result in self.results for column, value in result.data.items()}

    def envelope(self) -> Dict[str, Any]:
        """The report as sent (:func:`dropsonde.wire.envelope`)."""
        return envelope(self.site_id.value, self.values(), self.timestamp)


def plugin_columns(plugin: MetricPlugin) -> List[Dict[str, Any]]:
    """A plugin's columns, checked to be a list (its contents are checked by the JSON Schema translation)."""
    schema = plugin.schema()
    if not isinstance(schema, list) or not all(isinstance(column, dict) for column in schema):
        raise SchemaError("schema() must return a list of column objects")
    return schema


def json_schema_for_plugin(plugin: MetricPlugin) -> Dict[str, Any]:
    """The JSON Schema of a plugin's columns: a BigQuery schema that does not
    translate is the plugin's error, named as such."""
    try:
        return json_schema_for_columns(plugin_columns(plugin))
    except SchemaError as exc:
        raise PluginOutputError(plugin, "invalid schema", str(exc)) from None


def plugin_validator(plugin: MetricPlugin) -> Any:
    """The validator of a plugin's columns, for a check outside a report run
    (a run builds each once, through :meth:`ReportColumns.validators`)."""
    return schema_validator(json_schema_for_plugin(plugin))


def validate_plugin_data(plugin: MetricPlugin, data: Any, validator: Optional[Any] = None) -> Dict[str, Any]:
    """Check ``data`` against the plugin's schema; PluginOutputError naming plugin and column."""
    validator = validator or plugin_validator(plugin)
    if not isinstance(data, dict):
        raise PluginOutputError(plugin, f"run() returned {type(data).__name__}, not a mapping of columns")
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        where = ".".join(str(part) for part in errors[0].absolute_path) or "data"
        raise PluginOutputError(plugin, f"column {where}", errors[0].message)
    return data


def bounded_columns(plugin: MetricPlugin, data: Any) -> Any:
    """``data`` without the list columns longer than :func:`~dropsonde.wire_columns.max_rows`
    allows, each set aside with one warning: whatever a plugin emits, the report
    stays bounded, and the collector (which refuses a report holding such a
    column, as a cut one would be counted as whole) still gets the rest. Checked
    before validation, which would otherwise walk every row."""
    if not isinstance(data, dict):
        return data
    kept = {}
    for column, value in data.items():
        if isinstance(value, list) and len(value) > max_rows(str(column)):
            log.warning("plugin %s: column %s set aside: %d rows, more than the %d a report may carry "
                        "(wire_columns.MAX_ROWS)", plugin.name, shortened(column, 60), len(value),
                        max_rows(str(column)))
            continue
        kept[column] = value
    return kept


def run_plugin(plugin: MetricPlugin, site: Site, validator: Optional[Any] = None) -> PluginResult:
    """Run one plugin through setup, run, validation and cleanup; a failure is
    recorded on the result (its columns are left out), never raised. The preview
    gets the plugin's name and the exception's type; the text goes to stderr."""
    started = time.perf_counter()
    try:
        plugin.setup(site)
        data = validate_plugin_data(plugin, bounded_columns(plugin, plugin.run(site)), validator)
        result = PluginResult(plugin, data=data)
    except PluginOutputError as exc:
        log.warning("%s; its columns are left out", exc)
        result = PluginResult(plugin, error=f"invalid output ({exc.summary})")
    except Exception as exc:  # noqa: BLE001 - one bad plugin must not sink the report
        log.warning("plugin %s failed: %s: %s; its columns are left out", plugin.name, type(exc).__name__, exc)
        result = PluginResult(plugin, error=f"raised {type(exc).__name__}")
    finally:
        try:
            plugin.cleanup()
        except Exception as exc:  # noqa: BLE001
            log.warning("plugin %s cleanup failed: %s: %s", plugin.name, type(exc).__name__, exc)
    log.info("plugin %s %s in %.2f s", plugin.name, "failed" if result.error else "ran", time.perf_counter() - started)
    return result


@dataclass
class ReportColumns:
    """The report's columns (the skeleton's, then each plugin's) and each plugin's
    JSON Schema, in the order of the plugins given: checked once per run."""

    columns: List[Dict[str, Any]]
    json_schemas: List[Dict[str, Any]]

    def validators(self) -> List[Any]:
        """One validator per plugin, built once per run; only commands that check
        data call this, so ``dev schema`` never loads the schema library."""
        return [schema_validator(json_schema) for json_schema in self.json_schemas]

    def remembering_validators(self, verdicts: Verdicts) -> List[RememberingValidator]:
        """One validator per plugin that answers from ``verdicts`` when it can, so
        that a run whose data was all found valid before never loads the schema
        library (:mod:`dropsonde.validation_cache`)."""
        return [verdicts.check(json_schema) for json_schema in self.json_schemas]


def report_columns(plugins: List[MetricPlugin]) -> ReportColumns:
    """Every plugin's schema checked, and a column name used twice is an error."""
    columns = [dict(column) for column in SKELETON_COLUMNS]
    json_schemas = []
    owner = {column["name"]: "the report skeleton" for column in columns}
    for plugin in plugins:
        json_schemas.append(json_schema_for_plugin(plugin))
        for column in plugin_columns(plugin):
            if column["name"] in owner:
                raise BadInput(
                    f"plugin {plugin.name}: column '{column['name']}' is already defined by {owner[column['name']]}"
                )
            owner[column["name"]] = f"plugin {plugin.name}"
            columns.append(column)
    return ReportColumns(columns, json_schemas)


def check_columns(plugins: List[MetricPlugin]) -> List[Dict[str, Any]]:
    """Skeleton columns then every plugin's columns (the ``dev schema`` table)."""
    return report_columns(plugins).columns


def build_report(site: Site, plugins: PluginSet, now: Optional[datetime] = None) -> Report:
    """Run every enabled plugin and assemble the report."""
    declared = report_columns(plugins.enabled)
    now = now or datetime.now(timezone.utc)
    settings = site.puppet
    cacert = settings.values.get("localcacert")
    site_id = compute_site_id(
        Path(cacert) if cacert else None, site.options.seed, site.options.siteid, site.cache
    )
    log.info("site id from %s", site_id.described_source)
    site.modules  # noqa: B018 - a broken environment.conf is the admin's error, not a plugin's
    site.puppetdb_config  # noqa: B018 - a broken puppetdb.conf is one error line, not a failed plugin
    verdicts = Verdicts(site.cache)
    checks = declared.remembering_validators(verdicts)
    results = [run_plugin(plugin, site, check) for plugin, check in zip(plugins.enabled, checks)]
    verdicts.save()
    for name, reason in plugins.broken.items():
        results.append(PluginResult(_BrokenPlugin(name), error=f"could not be loaded ({reason})"))
    results.sort(key=lambda result: result.plugin.name)
    notes = []
    if site.forge.problem:
        log.warning("%s (%s): no module is treated as public", site.forge.problem, site.forge.path)
        notes.append(
            f"{site.forge.problem}: no module is treated as public, so module metrics are empty. "
            "Run `dropsonde update` (or `update --from-file`) to fetch the list of public modules."
        )
    if site.puppetdb_problem:
        notes.append(
            f"{site.puppetdb_problem}: class counts, unused modules and classes, and class platforms are empty."
        )
    if site_id.note:
        notes.append(site_id.note)
    report = Report(site_id, now.isoformat(timespec="seconds"), results, notes)
    check_not_empty(report)
    return report


def check_not_empty(report: Report) -> None:
    """Failure (exit 1) when no plugin gave a column: such a report tells
    the collector nothing, and recorded as sent it would hold the next scheduled
    submission back a whole interval. Preview fails the same way, so what an
    admin reviews is what submit would do."""
    if report.values():
        return
    failures = [f"{result.plugin.name}: {result.error}" for result in report.results if result.error]
    if len(failures) == len(report.results):
        reason = f"every metrics plugin failed ({'; '.join(failures)})"
    else:
        reason = "no metrics plugin returned any column"
    raise Failure(f"the report would be empty: {reason}; an empty report is never sent")


class _BrokenPlugin(MetricPlugin):
    """Stands in for a plugin that could not be imported, so the preview can name it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.description = "(could not be loaded)"

    def schema(self) -> List[Dict[str, Any]]:
        return []


def report_body(report: Report, only: Optional[Collection[str]] = None) -> bytes:
    """The exact bytes ``submit`` POSTs and ``preview --format json`` prints;
    ``only``: just these columns (a scheduled submission's agreed ones). A
    report left with no column is never sent."""
    envelope = report.envelope()
    if only is not None:
        snapshots = envelope["self-service-analytics"]["snapshots"]
        envelope["self-service-analytics"]["snapshots"] = {k: v for k, v in snapshots.items() if k in only}
        if not envelope["self-service-analytics"]["snapshots"]:
            raise Failure("the report would be empty: no column of it is agreed to (see `dropsonde consent`); "
                          "an empty report is never sent")
    return (json.dumps(envelope, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(text, width=78, initial_indent=indent, subsequent_indent=indent)


def render_human(report: Report) -> str:
    """The annotated preview: each plugin's description, each column's description and values, then the site id."""
    title = "Puppet Telemetry Report Preview"
    lines = [title, "=" * len(title), ""]
    for result in report.results:
        plugin = result.plugin
        name = printable(plugin.name)
        lines += [name, "-" * len(name), _wrap(printable(plugin.description)), ""]
        if result.error:
            lines += [_wrap(f"FAILED, nothing from this plugin is included: {result.error}; "
                            "the warning on stderr says why", "  "), ""]
            continue
        for column in plugin_columns(plugin):
            value = result.data.get(column["name"])
            # a third-party plugin's column description is text from outside: one line each
            lines.append(f"- {printable(column['name'])}: {printable(column.get('description', ''))}")
            lines.extend(_render_value(value))
            lines.append("")
    for note in report.notes:
        lines += [_wrap(f"Note: {note}"), ""]
    lines += [f"Site ID (from {report.site_id.described_source}):", report.site_id.value]
    return printable_lines("\n".join(lines)) + "\n"


def _render_value(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        if not value:
            yield "    (none)"
        for item in value:
            yield "    " + json.dumps(item, sort_keys=True, ensure_ascii=False)
    else:
        yield "    " + json.dumps(value, ensure_ascii=False)


def example_rows(plugins: List[MetricPlugin], public_modules: List[str], size: int, now: datetime,
                 seed: Optional[int] = None) -> Iterator[Dict[str, Any]]:
    """Random rows in the BigQuery table layout of ``dev schema``, each validated
    against it, stamped ``now``: the same ``seed`` and ``now`` give the same rows
    (no clock is read here)."""
    declared = report_columns(plugins)
    validator = schema_validator(json_schema_for_columns(declared.columns))
    rng = random.Random(seed)
    modules = sorted(public_modules)
    validators = declared.validators()
    for _ in range(size):
        row: Dict[str, Any] = {
            "message_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "site_id": "%0128x" % rng.getrandbits(512),
            "product": PRODUCT,
            "version": REPORT_VERSION,
            "timestamp": now.isoformat(timespec="seconds"),
            "ip": ".".join(str(rng.randint(1, 254)) for _ in range(4)),
        }
        for plugin, plugin_check in zip(plugins, validators):
            data = plugin.example(rng, modules)
            validate_plugin_data(plugin, data, plugin_check)
            row.update(data)
        error = next(iter(validator.iter_errors(row)), None)
        if error is not None:
            raise Failure(f"example row does not match the schema: {validation_message(error)}")
        yield row
