"""The PostgreSQL fixture itself: a real server that answers SQL on 127.0.0.1."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import pytest

from tests.pg_server import postgres_server, server_bin_dir

pytestmark = pytest.mark.integration


def test_server_answers_and_stops() -> None:
    if server_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (Debian package `postgresql`)")
    import sqlalchemy

    with postgres_server() as url:
        port = urlparse(url).port
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select 40 + 2")).scalar() == 42
        engine.dispose()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):  # the server is gone
        s.connect(("127.0.0.1", port))
