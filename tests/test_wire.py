"""The wire format shared by the probe and the collector."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from dropsonde.wire import PRODUCT, REPORT_VERSION, SKELETON, envelope, parse_timestamp, sortable_timestamp


def loaded_by(code: str) -> set:
    """The dropsonde modules a fresh interpreter has loaded after ``code``."""
    code += "; import sys; print('\\n'.join(m for m in sys.modules if m.startswith('dropsonde')))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              timeout=60).stdout.split())


def test_importing_the_collector_app_loads_no_plugin_loader_and_no_puppet_reader():
    """The server needs the report format, not the probe: no plugin loader, metric, Puppet reader, site or report code."""
    loaded = loaded_by("import dropsonde.collector.app")
    assert {"dropsonde.wire", "dropsonde.wire_columns"} <= loaded
    assert not {m for m in loaded if m.startswith(("dropsonde.puppet", "dropsonde.metrics"))}
    assert not loaded & {"dropsonde.report", "dropsonde.site", "dropsonde.plugins", "dropsonde.session",
                         "dropsonde.runner"}


def test_every_collector_command_knows_the_columns_without_the_probe():
    """What `collector serve`, `load` and `aggregate` load: the wire format, not the plugins."""
    loaded = loaded_by("import dropsonde.collector.gunicorn_server, dropsonde.collector.jsonl_loader, "
                       "dropsonde.collector.aggregate; from dropsonde.wire_columns import REPORT_COLUMNS; "
                       "assert 'puppetfile_ruby_methods' in REPORT_COLUMNS")
    assert not {m for m in loaded if m.startswith(("dropsonde.puppet", "dropsonde.metrics"))}
    assert not loaded & {"dropsonde.report", "dropsonde.site", "dropsonde.plugins", "dropsonde.session",
                         "dropsonde.runner"}


def test_nothing_in_the_collector_imports_the_probe():
    """In the import graph the collector stands beside the probe: no module of
    dropsonde.collector names report, plugins, metrics, site or a Puppet reader."""
    import ast
    from pathlib import Path

    import dropsonde.collector

    probe = ("dropsonde.report", "dropsonde.plugins", "dropsonde.metrics", "dropsonde.site", "dropsonde.puppet",
             "dropsonde.session", "dropsonde.runner")
    found = []
    for path in Path(dropsonde.collector.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [(path.name, n) for n in names if n.startswith(probe)]
    assert found == []


def test_the_built_in_metrics_declare_the_wire_columns():
    """One declaration: the probe's built-in plugins compute exactly the columns the collector accepts."""
    from dropsonde.plugins import load_plugins
    from dropsonde.wire_columns import METRIC_COLUMNS

    declared = [column for plugin in sorted(load_plugins().enabled, key=lambda p: p.name) for column in plugin.schema()]
    assert declared == list(METRIC_COLUMNS)


def test_envelope():
    sent = envelope("ab" * 64, {"environment_count": 2}, "2026-11-27T12:00:00+00:00")
    assert sent == {"product": PRODUCT, "version": REPORT_VERSION, "site_id": "ab" * 64,
                    "self-service-analytics": {"snapshots": {
                        "environment_count": {"value": 2, "timestamp": "2026-11-27T12:00:00+00:00"}}}}
    assert SKELETON[:2] == ("message_id", "site_id")


def test_parse_timestamp():
    utc = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    assert parse_timestamp("2026-11-27T12:00:00Z") == utc
    assert parse_timestamp("2026-11-27T12:00:00") == utc  # no offset: UTC
    assert parse_timestamp("2026-11-27T13:00:00+01:00") == utc
    assert parse_timestamp("yesterday") is None and parse_timestamp(None) is None


moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30),
                       timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-7)),
                                                  timezone(timedelta(hours=5, minutes=30))]))


@given(moments, moments)
def test_stored_timestamps_sort_as_text_as_they_do_in_time(a, b):
    assert (sortable_timestamp(a) < sortable_timestamp(b)) == (a < b)
    assert parse_timestamp(sortable_timestamp(a)) == a
