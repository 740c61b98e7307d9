"""Third-party plugins through the entry-point group, and what happens when they misbehave."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_SITE, assert_clean_error, run_dropsonde

SAMPLE = Path(__file__).parent / "fixtures" / "sample_plugin"
EXAMPLE_ARGS = [
    "--confdir", str(EXAMPLE_SITE / "puppet"),
    "--codedir", str(EXAMPLE_SITE / "code"),
]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """The sample package pip-installed into its own directory, put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("sample_plugin")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         "--target", str(target), str(SAMPLE)],
        check=True, capture_output=True,
    )
    cache = tmp_path_factory.mktemp("cache")
    (cache / "forge.json").write_bytes((EXAMPLE_SITE / "cache" / "forge.json").read_bytes())
    return {"PYTHONPATH": str(target)}, ["--cachepath", str(cache)]


def test_list_shows_builtin_and_third_party_plugins_alphabetically(plugin_env):
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "--disable", "sample_broken", "list", env=env)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split("Disabled plugins:")[0]
    names = [line.strip() for line in loaded.splitlines() if line.startswith("  ") and not line.startswith("      ")]
    assert names == sorted(names)
    assert {"dependencies", "environments", "modules", "platforms", "profiles", "puppetfiles", "sample"} <= set(names)
    assert "How many distinct module directories" in result.stdout
    assert "sample_broken" in result.stdout.split("Disabled plugins:")[1]


def test_working_plugin_reports_and_faulty_ones_are_left_out(plugin_env):
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "preview", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    snapshots = result.json()["self-service-analytics"]["snapshots"]
    assert snapshots["sample_module_count"]["value"] == 6
    for column in ("sample_broken", "sample_wrong", "sample_declared", "sample_secret"):
        assert column not in snapshots
    assert "environment_count" in snapshots  # the others still ran
    assert "sample plugin exploded" in result.stderr
    assert "plugin sample_wrong_type: column sample_wrong: 'twelve'" in result.stderr
    assert "plugin sample_undeclared" in result.stderr and "sample_secret" in result.stderr
    assert "should never be sent" not in result.stdout

    human = run_dropsonde(*EXAMPLE_ARGS, *cache, "preview", env=env)
    assert human.returncode == 0
    broken_section = " ".join(human.stdout.split("sample_broken\n")[1].split("\n\n")[1].split())
    assert "FAILED" in broken_section and "sample plugin exploded" in broken_section
    assert "should never be sent" not in human.stdout


def test_enable_selects_only_the_named_plugins(plugin_env):
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "--enable", "sample,environments", "preview", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(result.json()["self-service-analytics"]["snapshots"]) == ["environment_count", "sample_module_count"]


def test_unknown_plugin_name_lists_the_known_ones(plugin_env):
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "--disable", "modules,nosuch", "preview", env=env)
    assert_clean_error(result, "unknown plugin 'nosuch'", "dependencies", "sample")
    assert result.returncode == 2


def test_schema_and_example_include_third_party_columns(plugin_env):
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "--enable", "sample", "dev", "schema", env=env)
    assert [c["name"] for c in result.json()][-1] == "sample_module_count"
