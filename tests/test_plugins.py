"""Third-party plugins through the entry-point group, and what happens when they misbehave."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from dropsonde.errors import BadInput, ExitStatus, Failure
from dropsonde.plugins import BUILTIN_PLUGINS, load_plugins
from tests.support.cli import assert_clean_error, run_dropsonde
from tests.support.paths import EXAMPLE_SITE, REPO
from tests.support.receiver import Receiver

SAMPLE = Path(__file__).parent / "fixtures" / "sample_plugin"
EXAMPLE_ARGS = [
    "--confdir", str(EXAMPLE_SITE / "puppet"),
    "--codedir", str(EXAMPLE_SITE / "code"),
]


def install_sample_plugin(target: Path) -> None:
    """pip-install the sample package into ``target``, exactly as a user installs a
    third-party plugin (its entry points come from its own build). Without build
    isolation, with the setuptools and wheel of the test extras: under a second,
    where an isolated build spent 4-10 s setting up its own environment."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(SAMPLE)],
        check=True, capture_output=True,
    )


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """The sample package installed into its own directory, put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("sample_plugin")
    install_sample_plugin(target)
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
    assert "FAILED" in broken_section and "raised RuntimeError" in broken_section
    # the preview names the plugin and the exception type; the text (a path, a password) and an
    # invalid value go to stderr only, with control characters escaped
    for detail in ("exploded", "hunter2", "/etc/secret", "twelve", "should never be sent"):
        assert detail not in human.stdout
    assert "invalid output (column sample_wrong)" in " ".join(human.stdout.split())
    assert "password=hunter2\\e[2J" in human.stderr and "\x1b" not in human.stderr


def test_enable_selects_only_the_named_plugins(plugin_env):
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "--enable", "sample,environments", "preview", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(result.json()["self-service-analytics"]["snapshots"]) == ["environment_count", "sample_module_count"]


def test_unknown_plugin_name_lists_the_known_ones(plugin_env):
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "--disable", "modules,nosuch", "preview", env=env)
    assert_clean_error(result, ExitStatus.USAGE, "unknown plugin 'nosuch'", "dependencies", "sample")


def test_schema_and_example_include_third_party_columns(plugin_env):
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "--enable", "sample", "dev", "schema", env=env)
    assert [c["name"] for c in result.json()][-1] == "sample_module_count"


def test_sample_plugins_are_found_under_both_entry_point_groups(plugin_env):
    """``sample`` is declared under ``dropsonde.metrics.v1`` only, the faulty ones under
    the old ``dropsonde.metrics`` only, and ``sample_undeclared`` under both (as a plugin
    that supports older dropsonde releases would): each is listed exactly once."""
    env, cache = plugin_env
    result = run_dropsonde(*EXAMPLE_ARGS, *cache, "list", env=env)
    assert result.returncode == 0, result.stderr
    listed = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ") and not line.startswith("      ")]
    for name in ("sample", "sample_broken", "sample_wrong_type", "sample_undeclared"):
        assert listed.count(name) == 1, result.stdout


@pytest.fixture(scope="module")
def source_tree_without_metadata(tmp_path_factory):
    """A copy of the source tree and the dependencies, with no dropsonde
    distribution metadata (no dist-info, no egg-info) anywhere on the path:
    how ``PYTHONPATH=. python3 -m dropsonde`` runs from a checkout."""
    root = tmp_path_factory.mktemp("no_metadata")
    source = root / "source"
    shutil.copytree(REPO / "dropsonde", source / "dropsonde", ignore=shutil.ignore_patterns("__pycache__"))
    dependencies = root / "dependencies"
    dependencies.mkdir()
    site_packages = Path(typer.__file__).resolve().parent.parent
    for entry in site_packages.iterdir():
        if not entry.name.lower().startswith(("dropsonde", "__editable__")):
            (dependencies / entry.name).symlink_to(entry)
    return source, dependencies


def test_builtin_plugins_need_no_package_metadata(source_tree_without_metadata, tmp_path):
    source, dependencies = source_tree_without_metadata
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(EXAMPLE_SITE / "cache" / "forge.json", cache / "forge.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUPPET_")}
    env["PYTHONPATH"] = os.pathsep.join([str(source), str(dependencies)])
    # -S: no site-packages, so the installed (editable) dropsonde cannot be found.
    proc = subprocess.run(
        [sys.executable, "-S", "-m", "dropsonde", *EXAMPLE_ARGS, "--cachepath", str(cache), "preview", "--format", "json"],
        cwd=source, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dropsonde.dist-info" not in proc.stderr
    snapshots = json.loads(proc.stdout)["self-service-analytics"]["snapshots"]
    assert {"environment_count", "modules", "dependencies", "profile_classes"} <= set(snapshots)


def test_builtins_are_registered_in_code():
    assert set(BUILTIN_PLUGINS) == {"dependencies", "environments", "modules", "platforms", "profiles", "puppetfiles"}
    assert set(BUILTIN_PLUGINS) <= {plugin.name for plugin in load_plugins().enabled}


def test_an_empty_plugin_set_is_an_error():
    with pytest.raises(BadInput, match="no metrics plugin is enabled.*known plugins: dependencies"):
        load_plugins(disable=sorted(BUILTIN_PLUGINS))


def test_nothing_loadable_is_an_error_not_an_empty_report(monkeypatch):
    import dropsonde.plugins

    monkeypatch.setattr(dropsonde.plugins, "BUILTIN_PLUGINS", {"ghost": "dropsonde.metrics.nosuch:Ghost"})
    with pytest.raises(Failure, match=r"no metrics plugin could be loaded \(ghost\)"):
        load_plugins(enable=["ghost"])


ALL_FAULTY = ["--enable", "sample_broken,sample_wrong_type,sample_undeclared"]


def test_a_report_from_plugins_that_all_fail_is_an_error_and_is_never_sent(plugin_env):
    """Every plugin loads, then fails at run time: an empty report tells the collector
    nothing and, recorded as sent, would hold the next scheduled one back."""
    env, cache = plugin_env
    for output in ("json", "human"):
        result = run_dropsonde(*EXAMPLE_ARGS, *cache, *ALL_FAULTY, "preview", "--format", output, env=env)
        assert_clean_error(result, ExitStatus.FAILURE, "the report would be empty: every metrics plugin failed",
                           "sample_broken: raised RuntimeError", "sample_wrong_type: invalid output",
                           "an empty report is never sent")
        assert result.stdout == ""
    with Receiver() as receiver:
        sent = run_dropsonde(*EXAMPLE_ARGS, *cache, *ALL_FAULTY, "submit", "--endpoint", receiver.endpoint,
                             "--port", str(receiver.port), env=env)
    assert_clean_error(sent, ExitStatus.FAILURE, "the report would be empty")
    assert receiver.state.received == []
    assert not (Path(cache[1]) / "last-submission.json").exists()
