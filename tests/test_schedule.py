"""`submit --scheduled`: opt-in, interval, lock; and `--puppetserver` directories."""

from __future__ import annotations

import fcntl
import json
import os
import time

import pytest

from tests.conftest import PuppetTree, assert_clean_error, make_module, run_dropsonde, write
from tests.receiver import Receiver


@pytest.fixture
def server_tree(tmp_path):
    tree = PuppetTree(tmp_path / "site")
    tree.forge(["puppetlabs-ntp"])
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", "10.0.0")
    confd = tmp_path / "conf.d"
    confd.mkdir()
    return tree, confd


def scheduled(tree, confd, receiver):
    return tree.run("--puppetserver-confd", str(confd), "submit", "--scheduled",
                    "--endpoint", receiver.endpoint, "--port", str(receiver.port))


@pytest.mark.parametrize("stanza", [None, "dropsonde { enabled: false }\n"])
def test_not_enabled_sends_nothing(server_tree, stanza):
    tree, confd = server_tree
    if stanza:
        write(confd / "dropsonde.conf", stanza)
    with Receiver() as receiver:
        result = scheduled(tree, confd, receiver)
    assert result.returncode == 0
    assert receiver.state.received == []
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not enabled" in lines[0]


def test_enabled_sends_once_per_interval(server_tree):
    tree, confd = server_tree
    write(confd / "dropsonde.conf", "dropsonde { enabled: true, interval: 3 }\n")
    with Receiver() as receiver:
        first = scheduled(tree, confd, receiver)
        second = scheduled(tree, confd, receiver)
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        assert len(receiver.state.received) == 1
        assert "report submitted: Report received" in first.stderr
        assert "due after" in second.stderr
        time.sleep(3.2)
        third = scheduled(tree, confd, receiver)
    assert third.returncode == 0
    assert len(receiver.state.received) == 2


def test_a_failed_scheduled_run_is_one_line_and_retried_next_tick(server_tree):
    tree, confd = server_tree
    write(confd / "dropsonde.conf", "dropsonde { enabled: true }\n")
    with Receiver("500") as receiver:
        failed = scheduled(tree, confd, receiver)
    assert_clean_error(failed, "Failed to submit report", "HTTP 500")
    assert not (tree.cachepath / "last-submission.json").exists()
    with Receiver() as receiver:
        retried = scheduled(tree, confd, receiver)
    assert retried.returncode == 0 and len(receiver.state.received) == 1


def test_two_runs_never_overlap(server_tree):
    tree, confd = server_tree
    write(confd / "dropsonde.conf", "dropsonde { enabled: true }\n")
    fd = os.open(tree.cachepath / "submit.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a run in progress would
    try:
        with Receiver() as receiver:
            result = scheduled(tree, confd, receiver)
    finally:
        os.close(fd)
    assert result.returncode == 0 and receiver.state.received == []
    assert "another dropsonde submission is running" in result.stderr


def test_malformed_hocon_names_the_file(server_tree):
    tree, confd = server_tree
    write(confd / "dropsonde.conf", "dropsonde { enabled: true\n")
    with Receiver() as receiver:
        result = scheduled(tree, confd, receiver)
    assert_clean_error(result, "dropsonde.conf: not valid HOCON")


def test_puppetserver_mode_takes_the_servers_directories(server_tree, tmp_path):
    tree, confd = server_tree
    server_var = tmp_path / "server-var"
    write(confd / "puppetserver.conf", json.dumps({"jruby-puppet": {
        "server-conf-dir": str(tree.confdir), "server-code-dir": str(tree.codedir), "server-var-dir": str(server_var)}}))
    (server_var / "dropsonde").mkdir(parents=True)
    (server_var / "dropsonde" / "forge.json").write_bytes((tree.cachepath / "forge.json").read_bytes())
    # No --confdir/--codedir/--cachepath: they must come from conf.d.
    result = run_dropsonde("--puppetserver", "--puppetserver-confd", str(confd), "preview", "--format", "json")
    assert result.returncode == 0, result.stderr
    modules = result.json()["self-service-analytics"]["snapshots"]["modules"]["value"]
    # public only through the Forge cache under the server's vardir
    assert modules == [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "10.0.0"}]
