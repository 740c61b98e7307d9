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


class Flooding(MetricPlugin):
    """A plugin emitting as many rows as it is told to, in a built-in column and its own."""

    name = "flooding"
    description = "test plugin"

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def schema(self):
        return [{"name": "dependencies", "type": "RECORD", "mode": "REPEATED", "fields": [
            {"name": "name", "type": "STRING", "mode": "REQUIRED"},
            {"name": "version_requirement", "type": "STRING", "mode": "REQUIRED"}]},
            {"name": "things", "type": "STRING", "mode": "REPEATED"}]

    def run(self, site):
        return {"dependencies": [{"name": f"acme-m{i}", "version_requirement": ">= 0.0.0"} for i in range(self.rows)],
                "things": [str(i) for i in range(self.rows // 2)]}


@pytest.mark.parametrize("over", [0, 1])
def test_a_column_longer_than_a_report_may_carry_is_set_aside_with_one_warning(caplog, over):
    """Review F7: whatever a plugin emits, the report is bounded: a list column over
    wire_columns.MAX_ROWS is left out (the collector would refuse the whole report), the
    plugin's other columns are kept; exactly at the cap, it is sent."""
    from dropsonde.report import run_plugin
    from dropsonde.wire_columns import DEFAULT_MAX_ROWS, max_rows

    cap = max_rows("dependencies")
    assert cap == 2000 and DEFAULT_MAX_ROWS == 1000 and max_rows("things") == DEFAULT_MAX_ROWS
    result = run_plugin(Flooding(cap + over), site=None)
    assert result.error is None
    assert len(result.data.get("dependencies", [])) == (0 if over else cap)
    assert len(result.data["things"]) == cap // 2 + (0 if over else 0)
    warnings = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(warnings) == over
    if over:
        assert "column dependencies set aside: 2001 rows, more than the 2000" in warnings[0]
