"""AUTH_ENABLED=false: every request is the local user, owner of the workspace `default`."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient
from rest_framework.views import APIView

from tests.api.conftest import COUNTER
from workspaces.api.authentication import LocalUserAuthentication
from workspaces.models import Membership


@pytest.fixture
def local_mode(transactional_db: None, monkeypatch: Any) -> None:
    # settings.py picks the authentication classes from AUTH_ENABLED at start-up; DRF views copy
    # them when their module is imported, so the switch is made where the views read it.
    monkeypatch.setattr(APIView, "authentication_classes", [LocalUserAuthentication])


def test_anonymous_requests_act_as_the_local_owner(local_mode: None) -> None:
    client = APIClient()
    response = client.get("/api/v1/workspaces/")
    assert response.status_code == 200
    assert [(w["slug"], w["role"]) for w in response.json()] == [("default", "owner")]
    assert Membership.objects.get(workspace__slug="default").user.username == "local"


def test_kernel_routes_work_without_any_token(local_mode: None) -> None:
    client = APIClient()
    created = client.post("/panels", {"id": "c", "source": COUNTER}, format="json")
    assert created.status_code == 201, created.content
    result = client.post("/panels/c/trigger/increment", {"args": {"by": 4}}, format="json").json()
    assert result["returnValue"] == 4
    assert client.get("/api/v1/workspaces/default/panels/c/state/").json()["state"] == {"count": 4, "double": 8}
