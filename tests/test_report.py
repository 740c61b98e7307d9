"""Assembling the report: validation messages, duplicate columns, the envelope."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dropsonde.errors import BadInput, Failure
from dropsonde.metrics.base import MetricPlugin
from dropsonde.metrics.environments import Environments
from dropsonde.report import PluginResult, Report, check_columns, check_not_empty, example_rows, validate_plugin_data
from dropsonde.siteid import SiteId


class Counting(MetricPlugin):
    name = "counting"
    description = "test plugin"

    def schema(self):
        return [{"name": "things", "type": "RECORD", "mode": "REPEATED", "fields": [
            {"name": "name", "type": "STRING", "mode": "REQUIRED"},
            {"name": "count", "type": "INTEGER", "mode": "REQUIRED"},
        ]}]


def test_wrong_type_names_plugin_column_and_row():
    with pytest.raises(BadInput) as error:
        validate_plugin_data(Counting(), {"things": [{"name": "a", "count": 1}, {"name": "b", "count": "2"}]})
    assert str(error.value).startswith("plugin counting: column things.1.count:")


def test_undeclared_column_is_rejected_by_name():
    with pytest.raises(BadInput, match="plugin counting: column data: Additional properties.*'secret'"):
        validate_plugin_data(Counting(), {"things": [], "secret": "x"})


def test_non_mapping_output_is_rejected():
    with pytest.raises(BadInput, match="plugin counting: run\\(\\) returned list"):
        validate_plugin_data(Counting(), [])


def test_duplicate_columns_across_plugins_name_both_owners():
    clash = Counting()
    clash.name = "clash"
    with pytest.raises(BadInput, match="plugin clash: column 'things' is already defined by plugin counting"):
        check_columns([Counting(), clash])
    skeleton_clash = Environments()
    skeleton_clash.name = "environments"
    skeleton_clash.schema = lambda: [{"name": "site_id", "type": "STRING"}]
    with pytest.raises(BadInput, match="already defined by the report skeleton"):
        check_columns([skeleton_clash])


def test_example_rows_are_reproducible_with_a_seed():
    """The same seed and time give the same rows, whole (the timestamp too), whenever they are made."""
    plugin = Environments()
    plugin.name = "environments"
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
    first = list(example_rows([plugin], ["puppetlabs-apache"], 3, now, seed=7))
    second = list(example_rows([plugin], ["puppetlabs-apache"], 3, now, seed=7))
    assert first == second
    assert {r["timestamp"] for r in first} == {"2026-11-27T12:00:00+00:00"}
    assert len({r["message_id"] for r in first}) == 3
    assert list(example_rows([plugin], ["puppetlabs-apache"], 3, now, seed=8)) != first


def test_a_report_without_any_column_is_refused():
    """Plugins that ran but gave no column: nothing to send either."""
    silent = Counting()
    report = Report(SiteId("0" * 128, "override"), "2026-11-27T12:00:00+00:00", [PluginResult(silent, data={})])
    with pytest.raises(Failure, match="the report would be empty: no metrics plugin returned any column"):
        check_not_empty(report)
    check_not_empty(Report(report.site_id, report.timestamp, [PluginResult(silent, data={"things": []})]))


def test_a_plugins_texts_are_one_line_each_in_the_human_preview():
    """Review L3: a third-party column description or value holding a newline must not
    print a line of its own (a fake `dropsonde: error:` line)."""
    from dropsonde.report import render_human

    plugin = Counting()
    plugin.name = "counting\ndropsonde: error: FORGED by name"
    plugin.description = "counts\ndropsonde: error: FORGED by description"
    plugin.schema = lambda: [{"name": "things", "type": "STRING", "mode": "NULLABLE",
                              "description": "things\ndropsonde: error: FORGED by column\u2028x"}]
    site_id = SiteId("0" * 128, "override")
    result = PluginResult(plugin, {"things": "v\ndropsonde: error: FORGED by value\u202e"})
    text = render_human(Report(site_id, "2026-11-28T00:00:00+00:00", [result]))
    assert "FORGED by column\\u2028x" in text and "FORGED by value\\u202e" in text
    assert not any(line.startswith("dropsonde: error:") for line in text.splitlines())
