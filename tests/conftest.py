"""Shared fixtures live in tests/fixtures/*, one module per area, loaded here."""

import importlib.util

pytest_plugins = [
    name for name in ("tests.fixtures.ledger", "tests.fixtures.models")
    if importlib.util.find_spec(name) is not None
]
