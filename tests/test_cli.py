"""The command line end to end, as an admin runs it: output, options, and bad input."""

from __future__ import annotations

import json
import re
import shutil

import jsonschema
import pytest

from dropsonde.schema import json_schema_for_columns
from dropsonde.wire import SKELETON_COLUMNS
from dropsonde.errors import ExitStatus
from tests.support.cli import assert_clean_error, run_dropsonde
from tests.support.paths import EXAMPLE_SITE
from tests.support.puppet_tree import PuppetTree, make_module, write


@pytest.fixture
def example(tmp_path):
    """The bundled example site, copied so the parse cache lands in a temporary directory."""
    root = tmp_path / "site"
    shutil.copytree(EXAMPLE_SITE, root, symlinks=True)
    return ["--confdir", str(root / "puppet"), "--codedir", str(root / "code"), "--cachepath", str(root / "cache")]


def test_version_in_the_form_the_puppet_module_parses():
    result = run_dropsonde("--version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("dropsonde version ")
    import re

    assert re.search(r"dropsonde version (\d\.\d\.\d)", result.stdout)


def test_help_lists_the_commands_and_imports_nothing_heavy():
    """What keeps ``--help`` quick is that it loads no parser, HTTP or schema
    library; that is checked here, the time itself is measured by bench/probe.py
    (a wall-clock bound in a test fails on a busy machine and passes a slow change)."""
    result = run_dropsonde("--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0
    for command in ("preview", "list", "dev"):
        assert command in result.stdout
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "dropsonde.cli" in imported
    for heavy in ("requests", "jsonschema", "tree_sitter", "ruamel.yaml", "pyhocon", "dropsonde.report", "dropsonde.site"):
        assert heavy not in imported


@pytest.mark.parametrize("command", [(), ("preview",), ("submit",), ("last",), ("update",), ("dev", "example"),
                                     ("collector", "serve"), ("collector", "aggregate")])
def test_help_states_each_default_once(command):
    """An option whose help text states its default (``[default: one per CPU]``)
    must not get click's own second one beside it (``[default: 0]``)."""
    result = run_dropsonde(*command, "--help")
    assert result.returncode == 0
    options = re.split(r"\n  (?=-)", result.stdout.split("Options:", 1)[1])
    assert [entry.split()[0] for entry in options if entry.count("[default:") > 1] == []


def _imported(result) -> set:
    return {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_preview_list_and_dev_schema_import_only_what_they_use(example, tmp_path):
    """Lazy imports, checked by what is loaded (timing is bench/'s): the schema
    library only where data is validated, HTTP only for PuppetDB or the network,
    tree-sitter only when there is a Puppetfile."""
    profile = {"PYTHONPROFILEIMPORTTIME": "1"}
    preview = run_dropsonde(*example, "preview", "--format", "json", env=profile)
    assert preview.returncode == 0, preview.stderr
    assert "tree_sitter" in _imported(preview)  # the example environments have Puppetfiles
    assert "jsonschema" in _imported(preview)
    assert not {"requests", "urllib3"} & _imported(preview)
    for puppetfile in (tmp_path / "site" / "code" / "environments").glob("*/Puppetfile"):
        puppetfile.unlink()
    preview = run_dropsonde(*example, "preview", "--format", "json", env=profile)
    assert preview.returncode == 0, preview.stderr
    assert not {"requests", "urllib3", "tree_sitter"} & _imported(preview)
    for command in (["list"], ["dev", "schema"]):
        result = run_dropsonde(*example, *command, env=profile)
        assert result.returncode == 0, result.stderr
        heavy = {"jsonschema", "requests", "urllib3", "tree_sitter", "dropsonde.site", "dropsonde.puppet.manifests"}
        assert not heavy & _imported(result), command


def test_human_preview_of_the_example_site(example):
    result = run_dropsonde(*example, "preview")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Puppet Telemetry Report Preview\n")
    sections = [line for line in out.splitlines() if line and set(line) == {"-"}]
    assert len(sections) == 6
    assert "PuppetDB is not configured (no puppetdb.conf)" in " ".join(out.split())
    assert '{"name": "apache", "slug": "puppetlabs-apache", "version": "12.1.0"}' in out
    assert "- environment_count: The number of directory environments\n    2\n" in out
    assert out.rstrip().splitlines()[-2] == "Site ID (from the site's CA certificate (Puppet's localcacert)):"
    assert len(out.rstrip().splitlines()[-1]) == 128


def test_json_preview_is_the_envelope_with_sorted_keys(example):
    result = run_dropsonde(*example, "preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert list(report) == ["product", "self-service-analytics", "site_id", "version"]
    assert report["product"] == "popularity-module" and report["version"] == "1.0.0"
    snapshots = report["self-service-analytics"]["snapshots"]
    assert list(snapshots) == sorted(snapshots)
    assert {s["timestamp"] for s in snapshots.values()}.__len__() == 1
    assert snapshots["environment_count"]["value"] == 2
    # The site id comes from the bundled CA certificate
    import hashlib
    import re

    pem = (EXAMPLE_SITE / "puppet" / "ssl" / "certs" / "ca.pem").read_text()
    import base64

    der = base64.b64decode("".join(re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END", pem, re.S).group(1).split()))
    assert report["site_id"] == hashlib.sha512(der).hexdigest()


def test_seed_and_siteid_options(example):
    plain = run_dropsonde(*example, "preview", "--format", "json").json()["site_id"]
    seeded = run_dropsonde(*example, "--seed", "pepper", "preview", "--format", "json").json()["site_id"]
    fixed = run_dropsonde(*example, "--siteid", "abc123", "preview", "--format", "json").json()["site_id"]
    assert plain != seeded and fixed == "abc123"


def test_telemetry_yaml_beside_confdir_sets_defaults(tmp_path, example):
    confdir = example[1]
    write(
        tmp_path / "site" / "telemetry.yaml",
        ":update: false\n:disable: puppetfiles\n:seed: fromfile\ncommands:\n  :preview:\n    :format: json\n",
    )
    assert (tmp_path / "site" / "puppet").as_posix() == confdir
    result = run_dropsonde(*example, "preview")
    report = result.json()  # format json came from the file
    assert "puppetfile_ruby_methods" not in report["self-service-analytics"]["snapshots"]
    human = run_dropsonde(*example, "preview", "--format", "human")
    assert human.stdout.startswith("Puppet Telemetry")  # the command line wins


def test_environment_variables_point_at_the_tree(tmp_path, example):
    env = {"PUPPET_CONFDIR": example[1], "PUPPET_CODEDIR": example[3]}
    result = run_dropsonde("--cachepath", example[5], "preview", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.json()["self-service-analytics"]["snapshots"]["environment_count"]["value"] == 2


def test_list(example):
    result = run_dropsonde(*example, "--disable", "profiles", "list")
    assert result.returncode == 0
    loaded, disabled = result.stdout.split("Disabled plugins:")
    assert "  dependencies\n" in loaded and "  profiles\n" not in loaded
    assert disabled.strip() == "profiles"


def test_dev_schema_skeleton_first_then_plugins_alphabetically(example):
    columns = run_dropsonde(*example, "dev", "schema").json()
    names = [c["name"] for c in columns]
    assert names[:6] == [c["name"] for c in SKELETON_COLUMNS]
    assert names[6:] == [
        "dependencies", "environment_count", "modules", "classes", "unused_modules", "unused_classes",
        "class_platforms", "profile_classes", "puppetfile_ruby_methods",
    ]


def test_dev_example_never_writes_through_a_planted_link(example, tmp_path):
    """--filename is replaced atomically: a symbolic link planted at that name is
    replaced, never written through, and its target keeps its bytes."""
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    out = tmp_path / "rows.jsonl"
    out.symlink_to(target)
    result = run_dropsonde(*example, "dev", "example", "--size", "3", "--filename", str(out))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "keep me\n"
    assert not out.is_symlink() and len(out.read_text().splitlines()) == 3


def test_dev_example_rows_match_dev_schema(example, tmp_path):
    columns = run_dropsonde(*example, "dev", "schema").json()
    out = tmp_path / "rows.jsonl"
    result = run_dropsonde(*example, "dev", "example", "--size", "25", "--filename", str(out))
    assert result.returncode == 0 and result.stdout == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 25
    validator = jsonschema.Draft7Validator(json_schema_for_columns(columns))
    for row in rows:
        assert list(validator.iter_errors(row)) == []
    forge = set(json.loads((EXAMPLE_SITE / "cache" / "forge.json").read_text())["modules"])
    slugs = {m["slug"] for row in rows for m in row["modules"]}
    assert slugs and slugs <= forge
    assert len({row["message_id"] for row in rows}) == 25


def test_dev_shell_has_the_site_in_scope(example):
    result = run_dropsonde(*example, "dev", "shell", stdin="print(len(environments), sorted(forge.modules)[0])\n")
    assert result.returncode == 0, result.stderr
    assert "2 puppet-nginx" in result.stdout


def test_dev_inventory_human(example):
    result = run_dropsonde(*example, "dev", "inventory")
    assert result.returncode == 0, result.stderr
    assert "[private] profile 0.3.0-internal" in result.stdout
    assert "profile::web declares public: apache, apache::mod::ssl" in result.stdout
    assert "[public ] ntp 10.1.0" in result.stdout


def test_missing_forge_cache_is_explained_in_the_preview(tmp_path, example):
    (tmp_path / "site" / "cache" / "forge.json").unlink()
    result = run_dropsonde(*example, "preview")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "no Forge module cache" in text and "module metrics are empty" in text
    modules_section = result.stdout.split("- modules:")[1].split("\n\n")[0]
    assert "(none)" in modules_section


# ---- bad input: one line, no traceback, exit 2, no report on stdout ----


def test_broken_telemetry_yaml(tmp_path, example):
    write(tmp_path / "site" / "telemetry.yaml", ":ttl: [oops\n")
    result = run_dropsonde(*example, "preview")
    assert_clean_error(result, ExitStatus.USAGE, "telemetry.yaml:")
    assert result.stdout == ""


def test_unknown_key_in_telemetry_yaml(tmp_path, example):
    write(tmp_path / "site" / "telemetry.yaml", ":update: false\n:updaet: false\n")
    assert_clean_error(run_dropsonde(*example, "preview"), ExitStatus.USAGE, "telemetry.yaml", "updaet")


def test_broken_puppet_conf(tmp_path, example):
    write(tmp_path / "site" / "puppet" / "puppet.conf", "[main]\nthis line is broken\n")
    result = run_dropsonde(*example, "preview")
    assert_clean_error(result, ExitStatus.USAGE, "puppet.conf:2")
    assert result.stdout == ""


def test_bad_environment_conf_sets_its_environment_aside(tmp_path, example):
    write(tmp_path / "site" / "code" / "environments" / "production" / "environment.conf", "modulepath\n")
    result = run_dropsonde(*example, "preview")
    assert result.returncode == ExitStatus.OK, result.stderr
    assert "set aside, its modules not read: " in result.stderr and "environment.conf:1: " in result.stderr


def test_bad_format_value(example):
    assert_clean_error(run_dropsonde(*example, "preview", "--format", "xml"), ExitStatus.USAGE, "--format")


def test_missing_environmentpath_is_a_warning_and_an_empty_report(tmp_path):
    tree = PuppetTree(tmp_path / "t")
    shutil.rmtree(tree.environments)
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0
    assert "environmentpath entry" in result.stderr and "does not exist" in result.stderr
    assert result.json()["self-service-analytics"]["snapshots"]["environment_count"]["value"] == 0


def test_bad_modules_and_manifests_are_warnings_not_failures(tmp_path):
    tree = PuppetTree(tmp_path / "t")
    tree.forge(["puppetlabs-apache"])
    modules = tree.environment("production") / "modules"
    make_module(modules, "apache", "puppetlabs-apache", manifests={"init.pp": "class apache {}"})
    (modules / "broken").mkdir()
    (modules / "broken" / "metadata.json").write_text("{")
    import os

    os.symlink(modules / "loop", modules / "loop")
    make_module(modules, "profile", "acme-profile", manifests={"init.pp": "class profile { include apache }"})
    (modules / "profile" / "manifests" / "binary.pp").write_bytes(b"\0\1\2")
    (modules / "profile" / "manifests" / "latin1.pp").write_bytes("class profile::caf\xe9 {}".encode("latin-1"))
    result = tree.run("preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "binary file" in result.stderr and "not valid UTF-8" in result.stderr and "loop" in result.stderr
    snapshots = result.json()["self-service-analytics"]["snapshots"]
    assert snapshots["profile_classes"]["value"] == [{"name": "apache", "count": 1}]


def test_verbose_logs_what_is_read_and_what_ran_to_stderr_only(tmp_path):
    tree = PuppetTree(tmp_path / "t")
    tree.forge(["puppetlabs-apache"])
    env = tree.environment("production")
    make_module(env / "modules", "apache", "puppetlabs-apache", manifests={"init.pp": "class apache {}"})
    make_module(env / "modules", "profile", "acme-profile", manifests={"init.pp": "class profile { include apache }"})
    write(env / "Puppetfile", "mod 'puppetlabs-apache'\n")
    quiet, verbose = tree.run("preview"), tree.run("-v", "preview")
    assert quiet.returncode == verbose.returncode == 0, verbose.stderr
    assert verbose.stdout == quiet.stdout and "info:" not in quiet.stderr
    log = verbose.stderr
    assert f"reading the manifests of {env / 'modules' / 'profile'}" in log
    assert f"reading manifest {env / 'modules' / 'apache' / 'manifests' / 'init.pp'}" in log
    assert f"reading Puppetfile {env / 'Puppetfile'}" in log
    assert "Puppet settings (" in log and f"from {tree.confdir / 'puppet.conf'}" in log
    assert f"options from the command line and {tree.confdir.parent / 'telemetry.yaml'}\n" in log
    assert "1 environments in" in log and "2 distinct module directories" in log
    assert f"Forge module cache {tree.cachepath / 'forge.json'}: 1 public modules, updated 2026-11-01" in log
    assert "PuppetDB: not configured" in log
    assert "site id from a random secret" in log
    for plugin in ("dependencies", "environments", "modules", "platforms", "profiles", "puppetfiles"):
        assert re.search(rf"info: plugin {plugin} ran in \d+\.\d\d s", log), plugin
