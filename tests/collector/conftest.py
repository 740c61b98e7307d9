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
    from tests.support.puppetdb_server import PG_BIN, PostgresServer, service_in_tempdir

    if not (PG_BIN / "initdb").is_file():
        pytest.fail("needs Debian's postgresql package: run tests/run (it installs it)")
    yield from service_in_tempdir(PostgresServer, "dropsonde-own-postgres-")


@pytest.fixture(scope="session")
def operator_dropsonde():
    """The `dropsonde` of a virtualenv made as README tells an operator (only the
    `collector` extra), which CollectorProcess runs too."""
    from tests.support.operator_venv import operator_dropsonde

    return operator_dropsonde()
