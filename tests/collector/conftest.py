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
