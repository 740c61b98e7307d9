"""`submit --scheduled`: opt-in, interval, lock; and `--puppetserver` directories."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timezone

import pytest

from dropsonde.schedule import next_due
from dropsonde.errors import ExitStatus
from tests.support.cli import assert_clean_error, run_dropsonde
from tests.support.puppet_tree import backdate_last_submission, write
from tests.support.receiver import Receiver


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
    write(confd / "dropsonde.conf", "dropsonde { enabled: true, interval: 86400 }\n")
    with Receiver() as receiver:
        first = scheduled(tree, confd, receiver)
        second = scheduled(tree, confd, receiver)
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        assert len(receiver.state.received) == 1
        assert "report submitted: Report received" in first.stderr
        assert "due after" in second.stderr
        backdate_last_submission(tree, 86400)  # a day has passed (the boundaries: test_next_due_...)
        third = scheduled(tree, confd, receiver)
    assert third.returncode == 0
    assert len(receiver.state.received) == 2


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("last, due", [
    (None, None),                                    # never submitted
    ("not a time", None),                            # unreadable record
    ("2026-11-26T12:00:01+00:00", "2026-11-27T12:00:01+00:00"),  # one second short
    ("2026-11-26T12:00:00+00:00", None),             # exactly one interval ago
    ("2026-11-20T12:00:00+00:00", None),             # long overdue
    ("2026-11-26T13:00:00+01:00", None),             # offsets are honoured
    ("2026-11-26T12:00:01", "2026-11-27T12:00:01+00:00"),  # no offset: UTC
    ("2027-01-01T00:00:00+00:00", None),             # from the future: the clock was set back
])
def test_next_due_is_a_pure_function_of_the_clock(last, due):
    expected = datetime.fromisoformat(due) if due else None
    assert next_due(last, 86400, now=NOW) == expected


def test_a_failed_scheduled_run_is_one_line_and_retried_next_tick(server_tree):
    tree, confd = server_tree
    write(confd / "dropsonde.conf", "dropsonde { enabled: true }\n")
    # A refusal, not a 5xx: any failure will do here, and a 5xx's retries wait
    # seconds of backoff (retries are test_submit.py's subject).
    with Receiver("413") as receiver:
        failed = scheduled(tree, confd, receiver)
    assert_clean_error(failed, ExitStatus.FAILURE, "Failed to submit report", "HTTP 413")
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
    assert_clean_error(result, ExitStatus.USAGE, "dropsonde.conf: not valid HOCON")


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
    # no release evidence under the server's vardir: the version is private
    assert modules == [{"name": "ntp", "slug": "puppetlabs-ntp", "version": "(private)"}]
