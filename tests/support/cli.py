"""The real CLI run as an admin would, and what a clean error looks like."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, Optional

from dropsonde.errors import ExitStatus


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_dropsonde(*args: str, env: Optional[Dict[str, str]] = None, stdin: str = "") -> Result:
    """Run the CLI as an admin would (``main()``: options, one error line, exit
    status), except that a failed request is retried at once: the production waits
    between retries (seconds each) are tested without spending them, in
    test_http_client.py. In this process when nothing needs a fresh interpreter
    (no interpreter variable like PYTHONPATH, no input, not a server that would
    keep running): starting one and importing dropsonde again costs far more
    than most tests' own work."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PUPPET_")}
    full_env["DROPSONDE_HTTP_BACKOFF"] = "0"
    full_env.update(env or {})
    serving = "serve" in args and "--help" not in args
    if not stdin and not serving and not any(name.startswith("PYTHON") for name in env or {}):
        return _run_in_process(args, full_env)
    proc = subprocess.run(
        [sys.executable, "-m", "dropsonde", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _run_in_process(args: Iterable[str], env: Dict[str, str]) -> Result:
    """``dropsonde.cli.main(args)`` here: main takes its arguments, returns its
    status and puts logging back itself; only the streams (to read them) and the
    environment (Puppet's variables, the retry wait) are swapped, and put back."""
    import contextlib
    import io

    from dropsonde import cli

    out, err = io.BytesIO(), io.StringIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    saved_stdin, saved_env = sys.stdin, dict(os.environ)
    sys.stdin = io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(err):
            status = cli.main(list(args))
    finally:
        stdout.flush()
        sys.stdin = saved_stdin
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(status, out.getvalue().decode("utf-8"), err.getvalue())


def assert_clean_error(result: Result, status: ExitStatus, *needles: str) -> None:
    """An expected failure: exactly ``status`` (README, "Exit status"), nothing on
    stdout, and stderr ending in the one ``dropsonde: error:`` line, which names
    the culprit (``needles``); never a traceback."""
    assert isinstance(status, ExitStatus), f"give the exact exit status, not {status!r}"
    assert status not in (ExitStatus.OK, ExitStatus.INTERNAL), status
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("dropsonde: error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.splitlines()[-1] == errors[0], result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
