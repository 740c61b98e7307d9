"""The real CLI run as an admin would, and what a clean error looks like."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, Optional


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
    """``dropsonde.cli.main()`` here, with its own argv, environment, streams and
    logging, all put back afterwards (main configures the root logger)."""
    import io
    import logging

    from dropsonde import cli

    root, urllib3 = logging.getLogger(), logging.getLogger("urllib3")
    saved = (sys.argv, sys.stdin, sys.stdout, sys.stderr, dict(os.environ), root.handlers[:], root.level,
             urllib3.level, logging.getLevelName(logging.WARNING), logging.getLevelName(logging.INFO))
    out, err = io.BytesIO(), io.StringIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    sys.argv, sys.stdin, sys.stdout, sys.stderr = ["dropsonde", *args], io.StringIO(), stdout, err
    os.environ.clear()
    os.environ.update(env)
    root.handlers = []
    try:
        cli.main()
        status = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=err)
        status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        stdout.flush()
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved[:4]
        os.environ.clear()
        os.environ.update(saved[4])
        root.handlers, root.level = saved[5], saved[6]
        urllib3.setLevel(saved[7])
        logging.addLevelName(logging.WARNING, saved[8])
        logging.addLevelName(logging.INFO, saved[9])
    return Result(status, out.getvalue().decode("utf-8"), err.getvalue())


def assert_clean_error(result: Result, *needles: str) -> None:
    """A bad input: non-zero exit, one 'dropsonde: error:' line naming the culprit, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("dropsonde: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
