"""Shared fixtures: a Puppet site built on disk, real PuppetDB and PostgreSQL
servers. The helpers behind them live in tests/support/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.puppet_tree import PuppetTree, make_module


@pytest.fixture
def tree(tmp_path: Path) -> PuppetTree:
    return PuppetTree(tmp_path / "site")


@pytest.fixture
def published_apache(tmp_path: Path) -> Path:
    """puppetlabs-apache 12.1.0 as the Forge published it (see tests/support/published_release.py)."""
    from tests.support.published_release import release_tree

    return release_tree(tmp_path)


@pytest.fixture(scope="session")
def puppetdb():
    """One real PuppetDB (with its PostgreSQL) for the whole test session."""
    from tests.support.puppetdb_server import PUPPETDB_JAR, PuppetDBServer, service_in_tempdir

    if not PUPPETDB_JAR.is_file():
        pytest.fail("needs Debian's puppetdb and postgresql packages: run tests/run (it installs them)")
    yield from service_in_tempdir(PuppetDBServer, "dropsonde-puppetdb-")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL 15 cluster of the test session's own, on 127.0.0.1."""
    from tests.support.puppetdb_server import PG_BIN, PostgresServer, service_in_tempdir

    if not (PG_BIN / "initdb").is_file():
        pytest.fail("needs Debian's postgresql package: run tests/run (it installs it)")
    yield from service_in_tempdir(PostgresServer, "dropsonde-postgres-")


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
