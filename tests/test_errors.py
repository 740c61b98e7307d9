"""Exit statuses a script can rely on: README's table, one command driving each
row, and the error types that decide them (dropsonde/errors.py, mapped in
dropsonde.cli.main)."""

from __future__ import annotations

import ast
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from dropsonde import cli
from dropsonde.errors import ExitStatus
from dropsonde.session import Session
from tests.support.cli import assert_clean_error, run_dropsonde
from tests.support.paths import REPO
from tests.support.receiver import Receiver


def readme_statuses() -> dict:
    """README's "Exit status" table as {status: meaning}."""
    section = (REPO / "README.md").read_text().split("### Exit status", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", section, flags=re.M)
    return {int(status): meaning.strip() for status, meaning in rows}


def test_readme_lists_exactly_the_exit_statuses_of_the_code():
    table = readme_statuses()
    assert sorted(table) == sorted(status.value for status in ExitStatus)
    assert table[1].startswith("failure") and table[2].startswith("bad input")
    assert table[70].startswith("internal error") and table[130].startswith("interrupted")


def test_status_0_success():
    result = run_dropsonde("--version")
    assert (result.returncode, result.stderr) == (ExitStatus.OK, "")


def test_status_1_a_file_that_cannot_be_written(tree):
    result = tree.run("dev", "example", "--filename", "/proc/nope/x")
    assert_clean_error(result, ExitStatus.FAILURE, "/proc/nope/x: cannot write")


def test_status_1_a_full_disk_on_stdout_is_a_failure_not_an_internal_error(tree):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "dropsonde", *tree.args(), "list"], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    assert result.returncode == ExitStatus.FAILURE
    assert result.stderr == "dropsonde: error: cannot write to standard output: No space left on device\n"


def test_status_2_a_mistyped_command_is_one_line_with_the_suggestion():
    result = run_dropsonde("previw")
    assert_clean_error(result, ExitStatus.USAGE)
    assert result.stderr == "dropsonde: error: No such command 'previw'. Did you mean 'preview'?\n"


def test_status_2_an_unknown_option_and_a_bad_value_are_one_line_each(tree):
    assert_clean_error(run_dropsonde("preview", "--bogus"), ExitStatus.USAGE, "No such option: --bogus")
    assert_clean_error(tree.run("--ttl", "-3", "preview"), ExitStatus.USAGE, "--ttl")
    assert_clean_error(tree.run("preview", "--format", "xml"), ExitStatus.USAGE, "--format", "'xml'")


def test_status_70_an_unexpected_exception_is_an_internal_error(tree, monkeypatch):
    def broken(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Session, "plugins", broken)  # a bug cannot be shipped on purpose; one is made here
    result = tree.run("list")
    assert result.returncode == ExitStatus.INTERNAL
    assert result.stderr.splitlines()[-1].startswith("dropsonde: internal error: RuntimeError: a bug")
    assert "Traceback" not in result.stderr
    verbose = tree.run("-v", "list")
    assert verbose.returncode == ExitStatus.INTERNAL and "Traceback" in verbose.stderr


def test_status_130_interrupted(tree):
    """Ctrl-C while the report is on its way: 130, as a shell reports SIGINT."""
    with Receiver("hang") as receiver:
        process = subprocess.Popen(
            [sys.executable, "-m", "dropsonde", *tree.args(), "submit", "--endpoint", receiver.endpoint,
             "--port", str(receiver.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "DROPSONDE_HTTP_TIMEOUT": "600", "DROPSONDE_HTTP_BACKOFF": "0"},
        )
        deadline = time.monotonic() + 60
        while not receiver.state.received and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.state.received, "the report never arrived"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitStatus.INTERRUPTED, stderr
    assert "Traceback" not in stderr


def test_main_takes_its_arguments_and_leaves_the_process_as_it_found_it(capsys):
    root = logging.getLogger()
    before = (list(sys.argv), root.handlers[:], root.level, logging.getLevelName(logging.WARNING))
    assert cli.main(["--version"]) == ExitStatus.OK
    assert capsys.readouterr().out.startswith("dropsonde version ")
    assert cli.main(["previw"]) == ExitStatus.USAGE
    assert (list(sys.argv), root.handlers[:], root.level, logging.getLevelName(logging.WARNING)) == before


def test_the_package_raises_only_typed_errors():
    """``DropsondeError`` is the base: every raise says which kind it is
    (BadInput: exit 2, Failure: exit 1), so its status is not a default."""
    untyped = []
    for path in sorted((REPO / "dropsonde").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DropsondeError":
                untyped.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert untyped == []


@pytest.mark.parametrize("argv", [["--help"], ["collector", "--help"]])
def test_help_is_success(argv, capsys):
    assert cli.main(argv) == ExitStatus.OK
    assert "Usage: dropsonde" in capsys.readouterr().out
