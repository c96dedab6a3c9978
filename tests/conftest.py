"""Shared fixtures live in tests/fixtures/*, one module per area, loaded here."""

import importlib.util

import pytest

pytest_plugins = [
    name
    for name in ("tests.fixtures.ledger", "tests.fixtures.models", "tests.fixtures.postgres")
    if importlib.util.find_spec(name) is not None
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests run only where CUDA is present (the lent GPU machine); elsewhere they are skipped."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)
