"""The published directory's swap, seen at the system-call level with strace:
the staging directory is fsynced before it takes the output's place, and a run
killed (SIGKILL) at any rename never loses the previous publication or the
trends history (issue 17 items 11 and 14)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from dropsonde.collector.storage import open_store
from tests.support.collector_reports import NO_NOISE, columns, report

RENAMES = ("rename", "renameat", "renameat2")
SYSCALL_RE = re.compile(r"^(?:\d+ +)?(\w+)\((.*)$")


def strace():
    path = shutil.which("strace")
    if path is None:
        pytest.fail("needs Debian's strace package: run tests/run (it installs it)")
    return path


def aggregate_command(root, week):
    return [sys.executable, "-m", "dropsonde", "collector", "aggregate", "--db", str(root / "a.db"),
            "--out", str(root / "www"), "--week", week, "--epsilon", str(NO_NOISE)]


def run_traced(root, week, *strace_options):
    """``aggregate`` under strace; the system calls it made, as (name, arguments)."""
    trace = root / "trace.txt"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc renames in the trace
    done = subprocess.run([strace(), "-f", "-qq", "-y", "-o", str(trace), *strace_options, "--",
                           *aggregate_command(root, week)], env=env, capture_output=True, text=True, timeout=300)
    calls = [(m.group(1), m.group(2)) for m in map(SYSCALL_RE.match, trace.read_text().splitlines())
             if m and "resumed>" not in m.group(2)]
    return done, calls


@pytest.fixture
def published(tmp_path):
    """W46 published; W47's data stored, to be published next."""
    root = tmp_path / "template"
    root.mkdir()
    store = open_store(str(root / "a.db"), columns())
    for week, when in (("W46", "2026-11-11"), ("W47", "2026-11-18")):
        store.insert_many([report(n, [("a-x", "1.0.0"), ("b-y", "2.0.0")], when=f"{when}T10:00:00.000000+00:00")
                           for n in range(8 if week == "W46" else 9)])
    done = subprocess.run(aggregate_command(root, "2026-W46"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return root


def copy_of(template, tmp_path, name):
    root = tmp_path / name
    shutil.copytree(template, root, symlinks=True)
    return root


def summary(root):
    return json.loads((root / "www" / "summary.json").read_text())


def test_the_staging_directory_is_fsynced_before_it_replaces_the_output(published, tmp_path):
    root = copy_of(published, tmp_path, "fsync")
    done, calls = run_traced(root, "2026-W47", "-e", "trace=fsync,rename,renameat,renameat2")
    assert done.returncode == 0, done.stderr
    swap = next(index for index, (name, args) in enumerate(calls)
                if name in RENAMES and re.search(r"\.www\.\w+\.tmp", args))
    staging = re.search(r"(/[^\"<>]*\.www\.\w+\.tmp)", calls[swap][1]).group(1)
    synced = [re.search(r"<([^>]*)>", args).group(1) for name, args in calls[:swap] if name == "fsync"]
    assert staging in synced and f"{staging}/modules" in synced and f"{staging}/badges" in synced
    assert f"{staging}/summary.json" in synced and f"{staging}/index.html" in synced
    assert summary(root)["week"] == "2026-W47"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_run_killed_at_any_rename_loses_no_publication_and_no_trends(published, tmp_path, exchange):
    """issue 17: a crash between the two renames of the output lost the trends
    (trend_weeks went from W19-W20 to W21 only). Each rename of a W47 run is the
    point where SIGKILL arrives in one run; the output is there (or put back)
    after it, and the next run publishes W47 with W46 in its trends."""
    fallback = [] if exchange else ["-e", "inject=renameat2:error=EINVAL"]  # a file system without it
    done, calls = run_traced(copy_of(published, tmp_path, "count"), "2026-W47", "-e", "trace=" + ",".join(RENAMES),
                             *fallback)
    assert done.returncode == 0, done.stderr
    steps = [name for name, _ in calls if name in RENAMES and (exchange or name != "renameat2")]
    assert len(steps) >= (1 if exchange else 2)  # the swap: one call or two (the ledger is in the store)
    for step, name in enumerate(steps):
        root = copy_of(published, tmp_path, f"killed-{step}")
        occurrence = steps[: step + 1].count(name)
        killed, _ = run_traced(root, "2026-W47", "-e", "trace=" + ",".join(RENAMES), *fallback,
                               "-e", f"inject={name}:signal=SIGKILL:when={occurrence}")
        assert killed.returncode != 0, f"step {step} ({name}) was not killed"
        set_aside = list(root.glob(".www.*.old/previous/summary.json"))
        if exchange:  # the output is never absent
            assert (root / "www" / "summary.json").is_file() and not set_aside, f"no output after step {step}"
        else:  # absent only between the two renames, and then set aside whole
            assert (root / "www" / "summary.json").is_file() or len(set_aside) == 1, step
        again = subprocess.run(aggregate_command(root, "2026-W47"), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, (step, again.stderr)
        assert summary(root)["trend_weeks"] == ["2026-W46", "2026-W47"], step
        assert json.loads((root / "www" / "sites.json").read_text()) == [{"sites": 9}], step
        assert not list(root.glob(".www.*.old/previous")), step  # put back by the next run, then replaced
