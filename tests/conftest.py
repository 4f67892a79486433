"""Shared fixtures: a real PostGIS, a throwaway database per test session, an app, keys.

The session database is cloned from a template database that holds the migrations, the
boroughs and the small London demo. The template is rebuilt only when the code or data it
is built from change (its name carries their hash), so a session starts in well under a
second. Tests never touch the `make run` database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from servers import serving, with_dbname

from geo import access
from geo.core.settings import PROJECT_ROOT, DatabaseSettings, Settings
from geo.db import database
from geo.reference import model

# The template is rebuilt when any of these change.
TEMPLATE_INPUTS = [
    *sorted((PROJECT_ROOT / "geo").rglob("*.sql")),
    *sorted((PROJECT_ROOT / "geo").rglob("*.py")),
    PROJECT_ROOT / "data" / "asset_model.yaml",
]
TEMPLATE_LOCK = 74_201_002
pytest_plugins = ["samples"]


def _template_name() -> str:
    digest = hashlib.sha256()
    for path in TEMPLATE_INPUTS:
        digest.update(path.read_bytes())
    return f"connectivity_tmpl_{digest.hexdigest()[:12]}"


def _build_template(admin_url: str, server_url: str) -> str:
    from geo.demo import load_demo

    name = _template_name()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", [TEMPLATE_LOCK])
        try:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if exists:
                return name
            # Old templates of earlier code go; a template must be unmarked before it is dropped.
            for (old,) in admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'connectivity\\_tmpl\\_%%'"
            ).fetchall():
                admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(old)))
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(old)))
            building = name + "_building"
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(building)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
            with psycopg.connect(with_dbname(server_url, building)) as conn:
                model.migrate(conn)
                load_demo(conn, "small")
                conn.commit()
            admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(building), sql.Identifier(name)
                )
            )
            admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(name)))
            return name
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", [TEMPLATE_LOCK])


def create_database(admin_url: str, template: str) -> str:
    """A new database cloned from ``template``; returns its name."""
    name = f"test_{int(time.time())}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY file_copy").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name


def drop_database(admin_url: str, name: str) -> None:
    """Drop a test database, whoever is still connected."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def server_url() -> str:
    """The set-up URL on the PostGIS server under test (the owner's: DATABASE_URL, or the embedded
    cluster's superuser, the cluster started if needed)."""
    return database.owner_url(DatabaseSettings())


@pytest.fixture(scope="session")
def app_server_url(server_url: str) -> str:
    """The URL the service connects with on that server: the application role (least privilege)."""
    return database.database_url(DatabaseSettings(), start=False)


@pytest.fixture(scope="session")
def admin_url(server_url: str) -> str:
    """The maintenance database of that server, for CREATE/DROP DATABASE."""
    return with_dbname(server_url, "postgres")


@pytest.fixture(scope="session")
def template(admin_url: str, server_url: str) -> str:
    """The name of the template database for this code (built when missing)."""
    return _build_template(admin_url, server_url)


@pytest.fixture(scope="session")
def db_name(admin_url: str, template: str) -> Iterator[str]:
    """The session's throwaway database: migrated, with boroughs and the small demo."""
    name = create_database(admin_url, template)
    yield name
    drop_database(admin_url, name)


@pytest.fixture(scope="session")
def db_url(server_url: str, db_name: str) -> str:
    """The session database as its owner (tests set data up and look at it with this)."""
    return with_dbname(server_url, db_name)


@pytest.fixture(scope="session")
def app_db_url(app_server_url: str, db_name: str) -> str:
    """The session database as the application role: what the app under test connects with."""
    return with_dbname(app_server_url, db_name)


@pytest.fixture
def fresh_db_url(admin_url: str, server_url: str) -> Iterator[str]:
    """An empty PostGIS-less database for one test (migrations not applied)."""
    name = f"test_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_dbname(server_url, name)
    drop_database(admin_url, name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the session database (autocommit off: close without commit rolls back)."""
    with psycopg.connect(db_url) as c:
        yield c


@pytest.fixture(scope="session")
def settings(app_db_url: str) -> Settings:
    """Settings pointing the app at the session database, as the application role."""
    return Settings(db=DatabaseSettings(url=app_db_url))


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """The app, served in-process against the session database."""
    from api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def make_keys(db_url: str) -> dict[str, str]:
    """One key per role: admin, operator, Camden (E09000007) and Hackney (E09000012) boroughs."""

    async def make() -> dict[str, str]:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            return {
                "admin": (await access.create_key(c, "admin", label="test admin", actor=access.SYSTEM)).key,
                "operator": (
                    await access.create_key(c, "operator", label="test operator", actor=access.SYSTEM)
                ).key,
                "camden": (
                    await access.create_key(c, "borough", "E09000007", "test camden", actor=access.SYSTEM)
                ).key,
                "hackney": (
                    await access.create_key(c, "borough", "E09000012", "test hackney", actor=access.SYSTEM)
                ).key,
            }

    # In a thread of its own: Playwright's sync API may hold this thread's event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()


@pytest.fixture(scope="session")
def keys(db_url: str) -> dict[str, str]:
    """The session's keys (see :func:`make_keys`)."""
    return make_keys(db_url)


@pytest.fixture(scope="module")
def isolated(
    admin_url: str, server_url: str, app_server_url: str, template: str
) -> Iterator[SimpleNamespace]:
    """A database, app and keys of the test module's own, for tests that change much data.

    ``isolated.client``, ``isolated.url``, ``isolated.auth(who)``.
    """
    from api.app import create_app

    name = create_database(admin_url, template)
    url = with_dbname(server_url, name)
    keys = make_keys(url)
    app_url = with_dbname(app_server_url, name)
    with TestClient(create_app(Settings(db=DatabaseSettings(url=app_url)))) as client:
        yield SimpleNamespace(
            client=client, url=url, app_url=app_url, auth=lambda who: {"Authorization": f"Bearer {keys[who]}"}
        )
    drop_database(admin_url, name)


@pytest.fixture(scope="session")
def auth(keys: dict[str, str]) -> Callable[[str], dict[str, str]]:
    """``auth("camden")``: the Authorization header for one of the session's keys."""
    return lambda who: {"Authorization": f"Bearer {keys[who]}"}


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on a free loopback port (for real HTTP clients: GDAL, Chromium); its base URL."""
    with serving(settings) as url:
        yield url


def pytest_configure(config: pytest.Config) -> None:
    # Files received by uploads during the tests go to a temporary folder, not var/uploads.
    import tempfile

    os.environ.setdefault("CONNECTIVITY_UPLOAD_DIR", tempfile.mkdtemp(prefix="connectivity-uploads-"))


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"connectivity: database {'DATABASE_URL' if os.environ.get('DATABASE_URL') else 'embedded cluster'}"
    )
