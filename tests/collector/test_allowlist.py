"""The allowlist on its own: what it refuses and why, and that it takes all the probe sends."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dropsonde.collector.allowlist import Allowlist
from dropsonde.wire_columns import REPORT_COLUMNS
from dropsonde.plugins import load_plugins
from dropsonde.report import example_rows

SLUGS = ["puppetlabs-apache", "puppetlabs-ntp", "puppetlabs-stdlib", "puppet-nginx"]
LONGEST = "apache::" + "a" * 92  # 100 characters
# What the collector's release evidence proves: versions per module and the classes each release publishes.
RELEASES = {
    "puppetlabs-apache": {"12.1.0": ["apache", "apache::mod::ssl", "apache::params", LONGEST, "apache::" + "a" * 93],
                          "12.0.0": ["apache", "apache::params"]},
    "puppetlabs-ntp": {"1.0.0": ["ntp"], "10.0.0": ["ntp", "ntp::config"]},
    "puppetlabs-stdlib": {"9.0.0": ["stdlib", "stdlib::stages"]},
    "puppet-nginx": {"6.0.0": ["nginx"]},
    "unlisted-secret": {"1.0.0": ["secret"]},  # evidence of a module not on the list counts for nothing
}
PHISH = "Visit http://phish.example to claim your Puppet license"


@pytest.fixture(scope="module")
def columns():
    return dict(REPORT_COLUMNS)


def judge(columns, **values):
    return Allowlist(SLUGS, RELEASES).violation(columns, values)


def test_what_the_probe_generates_is_accepted_when_its_releases_are_published(columns):
    plugins = load_plugins().enabled
    rows = list(example_rows(plugins, SLUGS, 200, datetime(2026, 11, 27, tzinfo=timezone.utc), seed=7))
    published = {slug: {} for slug in SLUGS}
    for row in rows:
        for module in row["modules"] + row["unused_modules"]:
            published[module["slug"]].setdefault(module["version"], set())
    for row in rows:  # every class the rows name, published by every release of its module
        for column in ("classes", "unused_classes", "profile_classes", "class_platforms"):
            for record in row[column]:
                name = record["name"].lower().lstrip(":")
                for slug in SLUGS:
                    if slug.split("-", 1)[1] == name.split("::")[0]:
                        for classes in published[slug].values():
                            classes.add(name)
    allowlist = Allowlist(SLUGS, published)
    for row in rows:
        values = {name: row[name] for name in columns if name in row}
        assert allowlist.violation(columns, values) is None, values


@pytest.mark.parametrize("values, column, words", [
    # #17.8: any class under a listed namespace and any X.Y.Z version were accepted: one address
    # published 78,903 invented rows from 50 reports
    ({"classes": [{"name": "apache::buy_cheap_pills", "count": 1}]}, "classes", "published release"),
    ({"profile_classes": [{"name": "ntp::service", "count": 1}]}, "profile_classes", "published release"),
    ({"class_platforms": [{"name": "secret", "platform": "Debian", "count": 1}]}, "class_platforms",
     "published release"),
    ({"modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "99.99.99"}]}, "modules", "Forge published"),
    ({"modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "12.1.0"}]}, "modules", "Forge published"),
    ({"unused_modules": [{"name": "stdlib", "slug": "puppetlabs-stdlib", "version": "1.0.0"}]}, "unused_modules",
     "Forge published"),
])
def test_only_published_releases_and_their_classes_are_accepted(columns, values, column, words):
    violation = judge(columns, **values)
    assert violation is not None and violation.column == column and words in violation.rule


def test_a_class_of_an_older_release_is_accepted(columns):
    assert judge(columns, classes=[{"name": "ntp::config", "count": 2}], unused_classes=[{"name": "apache::params"}],
                 modules=[{"name": "ntp", "slug": "puppetlabs-ntp", "version": "1.0.0"}]) is None


@pytest.mark.parametrize("values", [
    {"modules": [{"name": "apache", "slug": "puppetlabs-apache", "version": "12.1.0"},
                 {"name": "ntp", "slug": "puppetlabs-ntp", "version": "(private)"}]},
    {"classes": [{"name": "apache::mod::ssl", "count": 0}, {"name": "ntp", "count": 10**9}]},
    {"class_platforms": [{"name": "nginx", "platform": "Debian", "count": 3},
                         {"name": "apache", "platform": "other", "count": 1}]},
    {"profile_classes": [{"name": "stdlib::stages", "count": 2}]},
    {"unused_classes": [{"name": "apache::params"}]},
    {"dependencies": [{"name": "puppetlabs-stdlib", "version_requirement": ">= 4.13.1 < 10.0.0"},
                      {"name": "puppet-nginx", "version_requirement": "(private)"}]},
    {"puppetfile_ruby_methods": [{"name": "require", "count": 1}, {"name": "(private)", "count": 4}]},
    {"environment_count": 3},
    {"environment_count": None},
])
def test_accepted(columns, values):
    assert judge(columns, **values) is None


def test_class_names_longer_than_any_real_one_are_refused(columns):
    """F3: 255-character names carried attacker-chosen text; real ones are at most 65."""
    assert judge(columns, classes=[{"name": LONGEST, "count": 1}]) is None
    refused = judge(columns, classes=[{"name": "apache::" + "a" * 93, "count": 1}])
    assert refused is not None and refused.column == "classes" and "at most 100 characters" in refused.rule


@pytest.mark.parametrize("values, column, words", [
    ({"modules": [{"name": "x", "slug": PHISH, "version": "1.0.0"}]}, "modules", "slug on the collector's Forge"),
    ({"modules": [{"name": PHISH, "slug": "puppetlabs-ntp", "version": "1.0.0"}]}, "modules", "name part"),
    ({"modules": [{"name": "ntp", "slug": "evil-ntp", "version": "1.0.0"}]}, "modules", "Forge list"),
    ({"modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "1.2.3-acme1"}]}, "modules", "X.Y.Z"),
    ({"unused_modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "v1"}]}, "unused_modules", "X.Y.Z"),
    ({"modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "1.2.3\n"}]}, "modules", "X.Y.Z"),
    ({"modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "\uff11.2.3"}]}, "modules", "X.Y.Z"),
    ({"classes": [{"name": PHISH, "count": 1}]}, "classes", "published release of a listed module"),
    ({"classes": [{"name": "secretco::db", "count": 1}]}, "classes", "published release"),
    ({"classes": [{"name": "apache::Visit http", "count": 1}]}, "classes", "published release"),
    ({"classes": [{"name": "apache::mod\n", "count": 1}]}, "classes", "published release"),
    ({"classes": [{"name": "apachex", "count": 1}]}, "classes", "published release"),
    ({"classes": [{"name": "ntp", "count": -1}]}, "classes", "integer in 0..1000000000"),
    ({"classes": [{"name": "ntp", "count": 10**9 + 1}]}, "classes", "integer"),
    ({"classes": [{"name": "ntp", "count": int("9" * 4300)}]}, "classes", "integer"),
    ({"classes": [{"name": "ntp", "count": 5.0}]}, "classes", "integer"),
    ({"classes": [{"name": "ntp", "count": True}]}, "classes", "integer"),
    ({"unused_classes": [{"name": "profile::base"}]}, "unused_classes", "published release"),
    ({"profile_classes": [{"name": "role::web", "count": 1}]}, "profile_classes", "published release"),
    ({"class_platforms": [{"name": "ntp", "platform": "AcmeOS", "count": 1}]}, "class_platforms", "OS family"),
    ({"class_platforms": [{"name": "ntp", "platform": "Debian", "count": -3}]}, "class_platforms", "integer"),
    ({"dependencies": [{"name": PHISH, "version_requirement": ">= 1.0.0"}]}, "dependencies", "Forge list"),
    ({"dependencies": [{"name": "puppetlabs-stdlib", "version_requirement": "see acme.example"}]},
     "dependencies", "version range"),
    ({"puppetfile_ruby_methods": [{"name": "acme_secret_helper", "count": 1}]}, "puppetfile_ruby_methods",
     "Ruby core"),
    ({"environment_count": -1}, "environment_count", "integer"),
    ({"environment_count": int("1" * 4300)}, "environment_count", "integer"),
])
def test_refused_naming_the_column_and_the_rule(columns, values, column, words):
    violation = judge(columns, **values)
    assert violation is not None
    assert violation.column == column
    assert words in violation.rule
    assert len(violation.value) <= 60 and violation.message().startswith(f"column {column}: ")


def test_an_unknown_string_field_is_refused():
    columns = {"acme": {"name": "acme", "type": "RECORD", "mode": "REPEATED",
                        "fields": [{"name": "label", "type": "STRING"}, {"name": "n", "type": "INTEGER"}]}}
    assert Allowlist(SLUGS, RELEASES).violation(columns, {"acme": [{"n": 2}]}) is None
    violation = Allowlist(SLUGS, RELEASES).violation(columns, {"acme": [{"label": "anything", "n": 2}]})
    assert violation is not None and "no allowlist rule" in violation.rule


COLUMNS = dict(REPORT_COLUMNS)
SCALARS = st.one_of(st.text(max_size=80), st.integers(), st.floats(), st.booleans(), st.none())


@settings(max_examples=300, deadline=500)
@given(name=SCALARS, platform=SCALARS, count=SCALARS, version=SCALARS)
def test_any_value_is_judged_and_only_the_allowed_shapes_pass(name, platform, count, version):
    values = {"class_platforms": [{"name": name, "platform": platform, "count": count}],
              "modules": [{"name": "ntp", "slug": "puppetlabs-ntp", "version": version}]}
    if judge(COLUMNS, **values) is None:
        published = {c for slug in SLUGS for classes in RELEASES[slug].values() for c in classes}
        assert re.fullmatch(r"(::)?(apache|ntp|stdlib|nginx)(::[a-z][a-z0-9_]*)*", name.lower(), re.ASCII)
        assert name.lower().lstrip(":") in published
        assert type(count) is int and 0 <= count <= 10**9
        assert version in ("(private)", "1.0.0", "10.0.0")


@pytest.mark.parametrize("name, accepted", [
    ("apache", True), ("Apache", True), ("::apache", True), ("::ApAcHe::Mod::Ssl", True),
    ("::Profile::Web", False), ("ROLE::x", False), ("::Main", False), ("::", False), (":::apache", False),
    ("apache\n", False), ("\u212aapache", False),
])
def test_spellings_of_a_class_are_judged_as_their_canonical_form(columns, name, accepted):
    """The probe sends class_name's canonical form; the collector shares class_name, so
    any other spelling (an older or hand-made report) is judged as the class it names,
    and stored canonical (tests/collector/test_aggregate.py), never as a row of its own."""
    for column, row in (("classes", {"name": name, "count": 1}), ("profile_classes", {"name": name, "count": 1}),
                        ("class_platforms", {"name": name, "platform": "Debian", "count": 1}),
                        ("unused_classes", {"name": name})):
        assert (judge(columns, **{column: [row]}) is None) is accepted, (column, name)
