"""The collector as an operator installs it (README: `pip install
'dropsonde[collector]'`), in its own virtualenv: every collector command runs
with the dependencies the `collector` extra declares, and no more (#17.12)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime

from tests.support.collector_process import MODULE, CollectorProcess, envelope, post, site
from tests.support.paths import EXAMPLE_COLLECTOR, EXAMPLE_SITE


def run(script, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout)


def test_the_operator_venv_holds_the_collector_extra_only(operator_dropsonde):
    pip = operator_dropsonde.parent / "pip"
    installed = {line.split("==")[0].lower() for line in run(pip, "freeze").stdout.split()}
    assert {"gunicorn", "gevent", "psycopg", "packaging"} <= installed
    assert not installed & {"pytest", "hypothesis", "wheel", "mypy"}  # not the test virtualenv
    assert run(pip, "check").returncode == 0


def test_the_operator_collector_serves(tmp_path, operator_dropsonde):
    """What crashed: gunicorn's gevent worker imports `packaging`, which the extra did not install."""
    with CollectorProcess(str(tmp_path / "r.db")) as collector:
        assert collector.process.args[0] == str(operator_dropsonde)
        assert post(collector, envelope(site(1), MODULE))[0] == 200


def test_the_operator_collector_loads_and_publishes(tmp_path, operator_dropsonde):
    rows = tmp_path / "rows.jsonl"
    made = run(operator_dropsonde, "--confdir", str(EXAMPLE_SITE / "puppet"), "--cachepath", str(EXAMPLE_SITE / "cache"),
               "dev", "example", "--size", "30", "--filename", str(rows))
    assert made.returncode == 0, made.stderr
    loaded = run(operator_dropsonde, "collector", "load", str(rows), "--db", str(tmp_path / "r.db"),
                 "--forge-cache", str(EXAMPLE_COLLECTOR))
    assert loaded.returncode == 0 and loaded.stdout.startswith("30 rows loaded"), loaded.stderr
    stamp = json.loads(rows.read_text().splitlines()[0])["timestamp"]
    year, week, _ = datetime.fromisoformat(stamp.replace("Z", "+00:00")).isocalendar()
    published = run(operator_dropsonde, "collector", "aggregate", "--db", str(tmp_path / "r.db"), "--out",
                    str(tmp_path / "out"), "--week", f"{year}-W{week:02d}", "--force")
    assert published.returncode == 0, published.stderr
    assert (tmp_path / "out" / "index.html").is_file()
