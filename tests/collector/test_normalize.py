"""What a report puts in the narrow tables, for any value a client could send."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dropsonde.collector.aggregate import read_trends
from dropsonde.collector.normalize import MAX_COUNT, NARROW_TABLES, iso_week, narrow_rows

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                       max_size=4), max_leaves=20)
RECORD = st.fixed_dictionaries({}, optional={"name": JSON | st.text(max_size=8), "slug": st.text(max_size=8),
                                             "version": st.text(max_size=8), "platform": st.text(max_size=8),
                                             "count": st.integers() | JSON})


COUNTED = [table.name for table in NARROW_TABLES if table.counts]  # their last column is the count


@settings(max_examples=300, deadline=1000)
@given(st.dictionaries(st.sampled_from(["modules", "classes", "class_platforms", "dependencies", "profile_classes",
                                         "puppetfile_ruby_methods"]), st.lists(RECORD | JSON, max_size=6) | JSON))
def test_any_value_gives_distinct_keys_and_clamped_counts(row):
    tables = narrow_rows(row)
    for name, values in tables.items():
        assert len(values) == len(set(values)), name
        keys = [value[:-1] if name in COUNTED else value for value in values]
        assert len(keys) == len(set(keys)) and all(isinstance(v, str) for key in keys for v in key), name
    for name in COUNTED:
        assert all(type(value[-1]) is int and 0 <= value[-1] <= MAX_COUNT for value in tables[name])


def test_a_name_listed_twice_counts_once_with_its_counts_summed_and_clamped():
    row = {"classes": [{"name": "a", "count": 3}, {"name": "a", "count": 4}, {"name": "b", "count": 10**40}]}
    assert narrow_rows(row)["site_week_classes"] == [("a", 7), ("b", MAX_COUNT)]
    assert iso_week("2026-11-29T23:59:59.999999+00:00") == "2026-W48"
    assert iso_week("2026-11-30T00:30:00+01:00") == "2026-W48"  # 23:30 UTC on Sunday


def test_a_class_runs_its_module_on_a_family_on_the_nodes_of_its_busiest_class():
    """class_platforms (class, family, nodes) become (slug, family, nodes) of the listed modules whose
    name part is the class's first segment; a module's nodes on a family are its busiest class's
    there (not a sum: one node declares several classes of a module); other classes add nothing."""
    row = {"modules": [{"slug": "puppetlabs-apache", "version": "1.0.0"}, {"slug": "puppetlabs-apache",
                                                                           "version": "2.0.0"},
                       {"slug": "example-apache", "version": "1.0.0"}, {"slug": "puppetlabs-ntp", "version": "1.0.0"}],
           "class_platforms": [{"name": "apache", "platform": "Debian", "count": 30},
                               {"name": "Apache::VHost", "platform": "Debian", "count": 12},
                               {"name": "::apache::mod::ssl", "platform": "RedHat", "count": 5},
                               {"name": "ntp", "platform": "RedHat", "count": -4},
                               {"name": "mysql::server", "platform": "Debian", "count": 9},
                               {"name": "ntp", "count": 3}, {"platform": "Debian", "count": 3}]}
    assert narrow_rows(row)["site_week_module_platforms"] == [
        ("example-apache", "Debian", 30), ("example-apache", "RedHat", 5), ("puppetlabs-apache", "Debian", 30),
        ("puppetlabs-apache", "RedHat", 5), ("puppetlabs-ntp", "RedHat", 0)]


@settings(max_examples=200, deadline=1000)
@given(JSON)
def test_any_previous_trends_file_is_read_or_set_aside_without_failing(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("trends") / "trends.json"
    path.write_text(json.dumps(value))
    rows = read_trends(path, "2026-W48")
    assert all(set(row) == {"week", "slug", "sites"} and row["week"] < "2026-W48" for row in rows)


def test_trends_keep_the_eleven_weeks_before_this_one(tmp_path):
    path = tmp_path / "trends.json"
    weeks = [f"2026-W{n:02d}" for n in range(30, 50)]
    path.write_text(json.dumps([{"week": week, "slug": "a-x", "sites": 5} for week in weeks]))
    assert [row["week"] for row in read_trends(path, "2026-W48")] == weeks[7:18]
    path.write_text("{not json")
    assert read_trends(path, "2026-W48") == []
