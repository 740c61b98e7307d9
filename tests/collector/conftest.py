"""The store under test: each test taking ``db`` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "reports.db")
    postgres = request.getfixturevalue("postgres")
    name = f"collector_{abs(hash(str(tmp_path))) % 10**8}"
    postgres.psql(f"CREATE DATABASE {name}")
    return postgres.url(name)


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own, which it may stop and start
    (the session's is shared). Not under tmp_path: PostgreSQL runs as its own
    user, which cannot enter root's private pytest directory."""
    import shutil
    import tempfile
    from pathlib import Path

    from tests.support.puppetdb_server import PG_BIN, PostgresServer

    if not (PG_BIN / "initdb").is_file():
        pytest.fail("needs Debian's postgresql package: run tests/run (it installs it)")
    root = Path(tempfile.mkdtemp(prefix="dropsonde-own-postgres-"))
    server = PostgresServer(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def operator_dropsonde(tmp_path_factory):
    """The collector's end-to-end tests run the `dropsonde` of a virtualenv made
    as README tells an operator (only the `collector` extra), made once per
    session: a dependency the extra lacks fails them here, not in production."""
    from tests.support import collector_process
    from tests.support.operator_venv import build_operator_venv

    script = build_operator_venv(tmp_path_factory.mktemp("operator") / "venv")
    saved = collector_process.COMMAND
    collector_process.COMMAND = [str(script)]
    yield script
    collector_process.COMMAND = saved
