"""Shared fixtures. Tests that need the database request the `db` fixture explicitly."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import Database, scratch_database


@pytest.fixture
def scratch_db(tmp_path: Path) -> Iterator[Database]:
    """A database of its own for server processes started by a test (migrated by the caller)."""
    with scratch_database(tmp_path) as database:
        yield database


def using_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith("postgres")


def using_redis() -> bool:
    return bool(os.environ.get("REDIS_URL"))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None,
                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """On SQLite, test in a database file rather than Django's default in-memory database.

    The panel service commits from its own worker threads. An in-memory SQLite database shared
    between connections uses table locks that fail at once ("database table is locked")
    instead of waiting, so concurrent tests would fail for a reason production never sees;
    a file in WAL mode behaves like the real server's database.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's test database, whose teardown first stops the panel service's workers.

    Each worker thread keeps its own database connection; PostgreSQL refuses to drop a
    database that still has sessions, so the threads end (closing them) before it is dropped.
    """
    yield
    from workspaces.services import panels

    panels.shutdown_workers()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The activity log is written in the background: store a test's runs before its database is reset."""
    yield
    activity = sys.modules.get("workspaces.services.activity")
    if activity is not None:
        activity.flush()


@pytest.fixture(autouse=True)
def fresh_throttle_counters(settings):  # type: ignore[no-untyped-def]
    """Each test counts requests and failed logins in caches of its own (memory, never a shared Redis)."""
    import uuid

    tag = uuid.uuid4().hex
    settings.CACHES = {
        alias: {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"{alias}-{tag}"}
        for alias in ("default", "throttle")
    }


@pytest.fixture(autouse=True)
def fresh_quota_counters():  # type: ignore[no-untyped-def]
    """Each test starts with unspent workspace quotas, counted in memory (never a shared Redis)."""
    from workspaces.services import quotas

    quotas.use_counters(quotas.LocalCounters())
    quotas.forget_limits()
    yield
    quotas.use_counters(None)
    quotas.forget_limits()


# ---------------------------------------------------------------- users, workspaces and tokens
# Used by the REST, admin and command tests. Tests that reach the panel service (which commits
# from its own worker threads) must use `transactional_db`; these fixtures work with either.

TEST_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def make_user(db: None, settings):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    # The production hasher is slow on purpose; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    def make(username: str, password: str = TEST_PASSWORD, **fields):  # type: ignore[no-untyped-def]
        return get_user_model().objects.create_user(username=username, password=password, **fields)

    return make


@pytest.fixture
def make_workspace(db: None):  # type: ignore[no-untyped-def]
    """make_workspace(slug, owner=None, **members_by_role) -> Workspace."""
    from workspaces.models import Membership, Workspace

    def make(slug: str, members: dict | None = None, **fields):  # type: ignore[no-untyped-def]
        workspace = Workspace.objects.create(slug=slug, name=fields.pop("name", slug.title()), **fields)
        for user, role in (members or {}).items():
            Membership.objects.create(workspace=workspace, user=user, role=role)
        return workspace

    return make


@pytest.fixture
def token_for(db: None):  # type: ignore[no-untyped-def]
    """token_for(user, workspace=None, permissions=None) -> access token string (claims unchecked)."""
    from workspaces.services.tokens import refresh_token_for

    def mint(user, workspace: str | None = None, permissions: list[str] | None = None) -> str:  # type: ignore[no-untyped-def]
        return str(refresh_token_for(user, workspace, permissions).access_token)

    return mint


@pytest.fixture
def api_client_for(token_for):  # type: ignore[no-untyped-def]
    """api_client_for(user=None, workspace=None, permissions=None) -> DRF APIClient with a Bearer token."""
    from rest_framework.test import APIClient

    def build(user=None, workspace: str | None = None, permissions: list[str] | None = None) -> APIClient:  # type: ignore[no-untyped-def]
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, workspace, permissions)}")
        return client

    return build
