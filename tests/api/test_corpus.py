"""Every broken or hostile NXML document of the corpus, posted to create and to validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import World, assert_error
from workspaces.models import Panel

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "nxml"
DOCUMENTS = sorted(CORPUS.glob("*.nxml"))
PANELS = "/api/v1/workspaces/ws/panels"


def assert_located(errors: list[dict[str, Any]]) -> None:
    assert errors
    for error in errors:
        assert isinstance(error["line"], int) and error["line"] >= 1, error
        assert isinstance(error["column"], int) and error["column"] >= 1, error
        assert error["code"] and error["message"], error


def test_corpus_is_there() -> None:
    assert len(DOCUMENTS) >= 40


@pytest.mark.parametrize("path", DOCUMENTS, ids=[path.stem for path in DOCUMENTS])
def test_corpus_document_is_refused_everywhere(world: World, api_client_for: Any, path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    client = api_client_for(world.owner)
    before = list(Panel.objects.values_list("pk", "state_version"))

    error = assert_error(client.post(f"{PANELS}/", {"id": "hostile", "source": source}, format="json"),
                         400, "INVALID_NXML")
    assert_located(error["details"]["errors"])

    kernel = api_client_for(world.owner, workspace="ws")
    error = assert_error(kernel.post("/panels", {"id": "hostile", "source": source}, format="json"),
                         400, "INVALID_NXML")
    assert_located(error["details"]["errors"])

    response = client.post(f"{PANELS}/validate/", {"source": source}, format="json")
    assert response.status_code == 200
    assert response.json()["valid"] is False
    assert_located(response.json()["errors"])

    assert list(Panel.objects.values_list("pk", "state_version")) == before


def test_five_errors_at_once_are_all_reported(world: World, api_client_for: Any) -> None:
    source = (CORPUS / "five_errors_at_once.nxml").read_text(encoding="utf-8")
    response = api_client_for(world.owner).post(f"{PANELS}/validate/", {"source": source}, format="json")
    errors = response.json()["errors"]
    assert len(errors) >= 5
    assert len({(error["line"], error["column"]) for error in errors}) == len(errors)
