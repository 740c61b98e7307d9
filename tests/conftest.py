"""Shared fixtures: a Puppet site built on disk, and the real CLI run as an admin would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SITE = REPO / "examples" / "site"


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


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_module(
    root: Path,
    name: str,
    slug: Optional[str],
    version: str = "1.0.0",
    manifests: Optional[Dict[str, str]] = None,
    dependencies: Iterable[dict] = (),
    checksums: bool = True,
) -> Path:
    """A module directory with metadata.json (unless ``slug`` is None) and manifests,
    installed as from the Forge: with the ``checksums.json`` of those files (without
    one, privacy rule 3 reports only the main class). ``checksums=False`` makes a
    git install or a vendored copy; files written after this call are the site's own."""
    module = root / name
    module.mkdir(parents=True, exist_ok=True)
    if slug is not None:
        metadata = {"name": slug, "version": version, "dependencies": list(dependencies)}
        write(module / "metadata.json", json.dumps(metadata))
    for relative, text in (manifests or {}).items():
        write(module / "manifests" / relative, text)
    if checksums and slug is not None:
        forge_checksums(module)
    return module


def forge_checksums(module: Path) -> None:
    """checksums.json as `puppet module build` writes it: every file, by relative path, MD5 of its bytes."""
    import hashlib

    sums = {
        path.relative_to(module).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(module.rglob("*"))
        if path.is_file() and path.relative_to(module).as_posix() != "checksums.json"
    }
    (module / "checksums.json").write_text(json.dumps(sums, indent=2))


class PuppetTree:
    """A confdir, codedir and cache directory under one temporary root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.confdir = root / "etc" / "puppet"
        self.codedir = root / "code"
        self.cachepath = root / "cache"
        self.confdir.mkdir(parents=True)
        (self.codedir / "environments").mkdir(parents=True)
        self.cachepath.mkdir()
        write(
            self.confdir / "puppet.conf",
            "[main]\ncertname = testserver.example.test\nbasemodulepath = $codedir/modules\nssldir = $confdir/ssl\n",
        )
        # Tests never reach the real Forge; those about refreshing pass --update and --forge-api.
        write(self.confdir.parent / "telemetry.yaml", ":update: false\n")

    @property
    def environments(self) -> Path:
        return self.codedir / "environments"

    def environment(self, name: str, modulepath: Optional[str] = None) -> Path:
        env = self.environments / name
        (env / "modules").mkdir(parents=True, exist_ok=True)
        if modulepath is not None:
            write(env / "environment.conf", f"modulepath = {modulepath}\n")
        return env

    def forge(self, slugs: List[str]) -> None:
        write(self.cachepath / "forge.json", json.dumps({"timestamp": "2026-11-01T00:00:00+00:00", "modules": slugs}))

    def args(self) -> List[str]:
        return ["--confdir", str(self.confdir), "--codedir", str(self.codedir), "--cachepath", str(self.cachepath)]

    def run(self, *args: str, env: Optional[Dict[str, str]] = None) -> Result:
        return run_dropsonde(*self.args(), *args, env=env)

    def report(self, *global_args: str) -> dict:
        """The JSON preview's snapshot values, by column."""
        result = self.run(*global_args, "preview", "--format", "json")
        assert result.returncode == 0, result.stderr
        snapshots = result.json()["self-service-analytics"]["snapshots"]
        return {column: snapshot["value"] for column, snapshot in snapshots.items()}


@pytest.fixture
def tree(tmp_path: Path) -> PuppetTree:
    return PuppetTree(tmp_path / "site")


def site_for(tree: PuppetTree, dpkg_info: Optional[Path] = None):
    """A Site over ``tree``, as the CLI would build it; ``dpkg_info`` replaces
    /var/lib/dpkg/info (dpkg's record of installed packages' files)."""
    from dropsonde.config import Options
    from dropsonde.site import Site

    options = Options(confdir=str(tree.confdir), codedir=str(tree.codedir), cachepath=str(tree.cachepath))
    site = Site.from_options(options)
    if dpkg_info is None:
        return site
    return Site(site.options, site.puppet, dpkg_info=dpkg_info)


def run_metric(plugin_class, tree: PuppetTree) -> dict:
    """One plugin's validated output over ``tree``."""
    from dropsonde.report import validate_plugin_data

    plugin = plugin_class()
    plugin.name = plugin_class.__name__.lower()
    return validate_plugin_data(plugin, plugin.run(site_for(tree)))


def _service_in_tempdir(make, prefix: str):
    """Start a service in a fresh directory and stop and remove it afterwards. Not
    under pytest's tmp_path: PostgreSQL runs as its own user, which cannot
    enter root's private pytest directory."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = make(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def puppetdb():
    """One real PuppetDB (with its PostgreSQL) for the whole test session."""
    from tests.puppetdb_server import PUPPETDB_JAR, PuppetDBServer

    if not PUPPETDB_JAR.is_file():
        pytest.fail("needs Debian's puppetdb and postgresql packages: run tests/run (it installs them)")
    yield from _service_in_tempdir(PuppetDBServer, "dropsonde-puppetdb-")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL 15 cluster of the test session's own, on 127.0.0.1."""
    from tests.puppetdb_server import PG_BIN, PostgresServer

    if not (PG_BIN / "initdb").is_file():
        pytest.fail("needs Debian's postgresql package: run tests/run (it installs it)")
    yield from _service_in_tempdir(PostgresServer, "dropsonde-postgres-")


@pytest.fixture
def server_tree(tmp_path):
    """A site with one public module, and an empty Puppet Server conf.d for the
    scheduled-submission tests to opt in through."""
    tree = PuppetTree(tmp_path / "site")
    tree.forge(["puppetlabs-ntp"])
    make_module(tree.environment("production") / "modules", "ntp", "puppetlabs-ntp", "10.0.0")
    confd = tmp_path / "conf.d"
    confd.mkdir()
    return tree, confd


def backdate_last_submission(tree: PuppetTree, seconds: int) -> None:
    """Move the recorded submission ``seconds`` into the past, as that much time passing would."""
    path = tree.cachepath / "last-submission.json"
    record = json.loads(path.read_text())
    when = datetime.fromisoformat(record["submitted_at"]) - timedelta(seconds=seconds)
    record["submitted_at"] = when.isoformat(timespec="seconds")
    path.write_text(json.dumps(record))
