"""Log lines: JSON by default, readable text on request, and the request id everywhere."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
from django.test import Client

from nexus.logging import logging_config, request_id_var


def _capture(pretty: bool, level: str = "info") -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    config = logging_config(level, pretty)
    config["handlers"]["console"]["stream"] = stream
    config["loggers"] = {"nexus.test": {"level": level.upper().replace("WARN", "WARNING")}}
    config["root"] = {"handlers": [], "level": "WARNING"}
    config["loggers"]["nexus.test"]["handlers"] = ["console"]
    logging.config.dictConfig(config)
    return logging.getLogger("nexus.test"), stream


@pytest.fixture(autouse=True)
def _restore_logging():  # type: ignore[no-untyped-def]
    from django.conf import settings

    yield
    logging.config.dictConfig(settings.LOGGING)


def test_json_line_shape() -> None:
    logger, stream = _capture(pretty=False)
    token = request_id_var.set("req-123")
    try:
        logger.info("handler ran", extra={"panel": "demo/counter", "handler": "increment", "status": "success",
                                          "duration_ms": 1.5})
    finally:
        request_id_var.reset(token)
    line = json.loads(stream.getvalue().strip())
    assert line["message"] == "handler ran"
    assert line["level"] == "INFO"
    assert line["logger"] == "nexus.test"
    assert line["request_id"] == "req-123"
    assert line["time"]
    assert (line["panel"], line["handler"], line["status"], line["duration_ms"]) == (
        "demo/counter", "increment", "success", 1.5)


def test_pretty_text_is_one_readable_line() -> None:
    logger, stream = _capture(pretty=True)
    logger.warning("disk low", extra={"free_mb": 12})
    text = stream.getvalue().strip()
    assert "WARNING" in text and "disk low" in text and "free_mb=12" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_level_filters() -> None:
    logger, stream = _capture(pretty=False, level="error")
    logger.info("hidden")
    logger.error("shown")
    lines = stream.getvalue().strip().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["shown"]


@pytest.mark.django_db
def test_every_request_is_logged_with_its_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nexus.request")
    response = Client().get("/health/live", HTTP_X_REQUEST_ID="abc-42")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "abc-42"
    record = next(r for r in caplog.records if r.name == "nexus.request")
    assert (record.method, record.path, record.status) == ("GET", "/health/live", 200)  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]
    assert record.request_id == "abc-42"  # type: ignore[attr-defined]
    assert record.levelno == logging.DEBUG  # probes are logged, but below INFO
    caplog.clear()
    Client().get("/api/v1/workspaces/", HTTP_X_REQUEST_ID="abc-43")
    record = next(r for r in caplog.records if r.name == "nexus.request")
    assert (record.path, record.levelno, record.request_id) == ("/api/v1/workspaces/", logging.INFO, "abc-43")  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_a_request_id_is_generated_when_absent_or_unsafe() -> None:
    client = Client()
    generated = client.get("/health/live")["X-Request-ID"]
    assert len(generated) == 32
    unsafe = client.get("/health/live", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert unsafe != "bad id\nwith newline" and len(unsafe) == 32
