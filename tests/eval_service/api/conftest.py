"""The ledger's own suite runs every test that uses `ledger`/`ledger_factory` twice: on SQLite and
on a real PostgreSQL server (tests/fixtures/postgres.py)."""

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request: pytest.FixtureRequest) -> str:
    return request.param
