"""Consent per report version: scheduled submissions send only the columns
agreed to; `dropsonde consent` shows the new ones and records agreement; a
manual submit sends what preview shows."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timezone

import pytest

from dropsonde.cache_dir import CacheDir
from dropsonde.consent import CONSENT_FILENAME, awaiting, read_consent, record_consent
from dropsonde.errors import ExitStatus, Failure
from tests.support.cli import assert_clean_error
from tests.support.puppet_tree import backdate_last_submission, write
from tests.support.receiver import Receiver

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def enabled_site(server_tree):
    tree, confd = server_tree
    write(confd / "dropsonde.conf", "dropsonde { enabled: true, interval: 86400 }\n")
    return tree, confd


def scheduled(tree, confd, receiver, *global_args):
    return tree.run(*global_args, "--puppetserver-confd", str(confd), "submit", "--scheduled",
                    "--endpoint", receiver.endpoint, "--port", str(receiver.port))


def sent_columns(receiver, index):
    return set(json.loads(receiver.state.received[index].body)["self-service-analytics"]["snapshots"])


def test_new_columns_wait_for_agreement_then_are_sent(enabled_site):
    tree, confd = enabled_site
    with Receiver() as receiver:
        # enabled with a version without the environments plugin's column
        first = scheduled(tree, confd, receiver, "--disable", "environments")
        assert first.returncode == 0, first.stderr
        assert "await agreement" not in first.stderr
        recorded = json.loads((tree.cachepath / CONSENT_FILENAME).read_text())
        assert "modules" in recorded["columns"] and "environment_count" not in recorded["columns"]

        backdate_last_submission(tree, 86400)  # the upgrade adds environment_count
        second = scheduled(tree, confd, receiver)
        assert second.returncode == 0, second.stderr
        waiting = [line for line in second.stderr.splitlines() if "await agreement" in line]
        assert len(waiting) == 1 and "environment_count" in waiting[0]
        assert "environment_count" not in sent_columns(receiver, 1) and "modules" in sent_columns(receiver, 1)

        shown = tree.run("consent", "--yes")
        assert shown.returncode == 0, shown.stderr
        assert "environment_count" in shown.stdout and "The number of directory environments" in shown.stdout
        assert "modules" not in shown.stdout.split("leave out until you agree:")[1]  # only the new one is asked

        backdate_last_submission(tree, 86400)
        third = scheduled(tree, confd, receiver)
        assert third.returncode == 0 and "await agreement" not in third.stderr, third.stderr
        assert "environment_count" in sent_columns(receiver, 2)
    assert tree.run("consent").stdout.strip().endswith("nothing to agree to.")


def test_manual_submit_sends_what_preview_shows_even_before_agreement(enabled_site):
    tree, confd = enabled_site
    record_consent(CacheDir.open(tree.cachepath), ["modules"], NOW, "test")
    preview = tree.report()
    with Receiver() as receiver:
        sent = tree.run("submit", "--endpoint", receiver.endpoint, "--port", str(receiver.port))
        assert sent.returncode == 0, sent.stderr
        assert sent_columns(receiver, 0) == set(preview)


def test_consent_off_a_terminal_without_yes_records_nothing(enabled_site):
    tree, _ = enabled_site
    shown = tree.run("consent")
    assert shown.returncode == 0 and "Nothing recorded" in shown.stdout
    assert not (tree.cachepath / CONSENT_FILENAME).exists()


def test_damaged_consent_record_sends_nothing(enabled_site):
    tree, confd = enabled_site
    write(tree.cachepath / CONSENT_FILENAME, '{"columns": "modules"}')
    with Receiver() as receiver:
        result = scheduled(tree, confd, receiver)
        assert receiver.state.received == []
    assert_clean_error(result, ExitStatus.FAILURE, CONSENT_FILENAME, "dropsonde consent")


def test_nothing_agreed_means_nothing_sent(enabled_site):
    tree, confd = enabled_site
    record_consent(CacheDir.open(tree.cachepath), ["a_column_no_plugin_has"], NOW, "test")
    with Receiver() as receiver:
        result = scheduled(tree, confd, receiver)
        assert receiver.state.received == []
    assert_clean_error(result, ExitStatus.FAILURE, "no column of it is agreed to")


def test_agreement_accumulates_and_is_private(tmp_path):
    record_consent(CacheDir.open(tmp_path), ["modules"], NOW, "first")
    consent = record_consent(CacheDir.open(tmp_path), ["classes"], NOW, "second")
    assert consent.columns == {"modules", "classes"} and read_consent(CacheDir.open(tmp_path)) == consent
    assert stat.S_IMODE((tmp_path / CONSENT_FILENAME).stat().st_mode) == 0o600
    assert awaiting(consent, ["modules", "dependencies", "classes"]) == ["dependencies"]
    assert awaiting(None, ["modules"]) == ["modules"]
    (tmp_path / CONSENT_FILENAME).write_text("not json")
    with pytest.raises(Failure, match=CONSENT_FILENAME):
        read_consent(CacheDir.open(tmp_path))
