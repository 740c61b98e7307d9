"""The application layer: one run's sequence, its clock, and what it leaves behind."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

import pytest

from dropsonde.cache_dir import CacheDir
from dropsonde.forge_cache import load_forge_cache
from dropsonde.session import Session
from tests.support.puppet_tree import PuppetTree, make_module, write
from tests.support.forge_server import ForgeServer, generate_modules

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def given(tree: PuppetTree, **more: Any) -> Dict[str, Any]:
    """What the command line gives for ``tree`` (None: not given)."""
    values: Dict[str, Any] = {"confdir": str(tree.confdir), "codedir": str(tree.codedir),
                              "cachepath": str(tree.cachepath), "puppetserver": False}
    values.update(more)
    return values


@pytest.fixture
def site_tree(tree):
    make_module(tree.environment("production") / "modules", "module7", "author7-module7", "1.0.0",
                manifests={"init.pp": "class module7 { }\n"})
    return tree


def test_the_parse_cache_is_kept_when_a_run_fails(site_tree):
    """The site is closed in a finally: parse work done before a failure is saved."""
    tree = site_tree
    tree.forge(["author7-module7"])
    with pytest.raises(RuntimeError):
        with Session(given(tree), clock=lambda: NOW) as session:
            assert session.site().public_classes == {"module7"}
            raise RuntimeError("the report failed")
    cache = json.loads((tree.cachepath / "manifests.json").read_text())
    assert "class module7" not in json.dumps(cache) and cache  # saved, by content, without the source


def test_a_due_forge_list_is_refreshed_before_the_site_is_built(site_tree):
    tree = site_tree
    tree.forge([])  # an empty list: unusable, so due
    notices: List[str] = []
    with ForgeServer(generate_modules(20)) as server:
        with Session(given(tree, update=True, forge_api=server.url, ttl=7), clock=lambda: NOW,
                     notify=notices.append) as session:
            report = session.report()
            assert session.site().forge.is_public("author7-module7")
    assert notices == ["Forge module cache updated (full): 20 modules, 20 new or changed, 1 requests"]
    modules = report.values()["modules"]
    # the loopback Forge publishes no release of it: the version is private
    assert modules == [{"name": "module7", "slug": "author7-module7", "version": "(private)"}]
    assert load_forge_cache(CacheDir.open(tree.cachepath), NOW).timestamp == NOW.isoformat(timespec="seconds")


def test_a_forge_list_younger_than_the_ttl_by_the_given_clock_is_not_refreshed(site_tree):
    tree = site_tree
    tree.forge(["author7-module7"])  # dated 2026-11-01
    with ForgeServer(generate_modules(20)) as server:
        clock = lambda: datetime(2026, 11, 7, 23, 59, tzinfo=timezone.utc)  # noqa: E731 - 6 days 23:59 old
        with Session(given(tree, update=True, forge_api=server.url, ttl=7), clock=clock) as session:
            session.report()
        assert server.state.module_requests() == []


@pytest.mark.parametrize("age, ttl, due", [
    (timedelta(days=6, hours=23), 7, False),
    (timedelta(days=7), 7, True),
    (timedelta(0), 0, True),
    (timedelta(seconds=-30), 7, False),
])
def test_forge_refresh_due_is_a_pure_function_of_the_clock(tmp_path, age, ttl, due):
    write(tmp_path / "forge.json", json.dumps({"timestamp": NOW.isoformat(), "modules": ["a-b"]}))
    forge = load_forge_cache(CacheDir.open(tmp_path), NOW)
    assert forge.is_due_for_refresh(NOW + age, ttl) is due


def test_an_unusable_forge_list_is_always_due(tmp_path):
    assert load_forge_cache(CacheDir.open(tmp_path), NOW).is_due_for_refresh(NOW, 10**6)


def test_server_directories_leave_what_was_given_unchanged(site_tree, tmp_path):
    tree = site_tree
    confd = tmp_path / "conf.d"
    write(confd / "puppetserver.conf", json.dumps({"jruby-puppet": {
        "server-conf-dir": str(tree.confdir), "server-code-dir": str(tree.codedir)}}))
    command_line = {"confdir": None, "codedir": None, "cachepath": str(tree.cachepath), "puppetserver": True,
                    "puppetserver_confd": str(confd)}
    before = dict(command_line)
    with Session(command_line) as session:
        options = session.options()
        assert session.given == before
    assert (options.confdir, options.codedir) == (str(tree.confdir), str(tree.codedir))
    assert command_line == before


def test_plugins_are_loaded_once_per_run(site_tree, monkeypatch, caplog):
    """A scheduled submission asks for the plugins twice (consented columns, then
    the report): a plugin that cannot be loaded is warned about once, not twice."""
    from dropsonde import plugins

    monkeypatch.setitem(plugins.BUILTIN_PLUGINS, "missing", "tests.no_such_module:Plugin")
    site_tree.forge(["author7-module7"])
    with Session(given(site_tree, update=False), clock=lambda: NOW) as session:
        columns, _, _ = session.consent()
        report = session.report()
        assert session.plugins() is session.plugins()
    assert "modules" in columns and report.values()["modules"]
    assert [r.getMessage() for r in caplog.records if "could not be loaded" in r.getMessage()] == [
        "plugin missing could not be loaded: ModuleNotFoundError: No module named 'tests.no_such_module'"]
