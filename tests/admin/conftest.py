"""The admin console's tests sign in through the real login page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.conftest import TEST_PASSWORD


@pytest.fixture
def admin_client(transactional_db: None, make_user: Any) -> Client:
    make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": TEST_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    return client
