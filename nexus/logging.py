"""Log formatting: one JSON object per line, or readable text with LOG_PRETTY=true."""

from __future__ import annotations

import contextvars
import logging
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

PYTHON_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}


class RequestIdFilter(logging.Filter):
    """Stamp every record with the id of the request (or WebSocket message) being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


class PrettyFormatter(logging.Formatter):
    """Readable one-line text; structured extras are appended as key=value."""

    _standard = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in self._standard}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def logging_config(level: str, pretty: bool) -> dict[str, Any]:
    formatter: dict[str, Any]
    if pretty:
        formatter = {
            "()": PrettyFormatter,
            "format": "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s",
        }
    else:
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        }
    python_level = PYTHON_LEVELS[level]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"nexus": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "nexus",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": python_level},
        "loggers": {
            "django.server": {"level": "WARNING"},
            "django.request": {"level": "ERROR"},
            "daphne": {"level": "WARNING"},
            "twisted": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "mcp": {"level": "WARNING"},  # the MCP SDK logs every request and session at INFO
        },
    }
