"""A real PostgreSQL server for the tests: one empty database per test.

The cluster comes from ``HYPERHIVE_TEST_POSTGRES`` (a superuser libpq URL;
scripts/test starts a throwaway cluster and sets it). Without it the tests fail:
a store that is never exercised in CI is a store that silently rots.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

ENV: Final = "HYPERHIVE_TEST_POSTGRES"
CONNECT_TIMEOUT: Final = 10  # seconds
# CREATE/DROP DATABASE copy a template and wait for backends; seconds, never a minute.
STATEMENT_TIMEOUT: Final = "60s"


def cluster_url() -> str:
    """The superuser URL of the test cluster, or a loud failure naming the variable."""
    url = os.environ.get(ENV)
    if not url:
        pytest.fail(
            f"{ENV} is not set: the PostgreSQL store tests need a server. Run scripts/test "
            f"(it starts a throwaway cluster), or export {ENV}=postgresql://postgres@/postgres"
            "?host=<socket dir> for a cluster of your own",
            pytrace=False,
        )
    return url


def connect(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection, for looking at a database from outside the store."""
    conn: psycopg.Connection[Any] = psycopg.connect(
        url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
    )
    conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
    return conn


def with_dbname(url: str, dbname: str) -> str:
    """``url`` naming database ``dbname`` instead (host, user and options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def fresh_database() -> str:
    """Create a uniquely named empty database on the test cluster; its URL."""
    name = f"hh_{uuid.uuid4().hex[:16]}"
    with connect(cluster_url()) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_dbname(cluster_url(), name)


def drop_database(url: str) -> None:
    """Drop the database ``url`` names, disconnecting whatever still uses it."""
    name = urlsplit(url).path.lstrip("/")
    with connect(cluster_url()) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh empty database, dropped after the test."""
    url = fresh_database()
    try:
        yield url
    finally:
        drop_database(url)
