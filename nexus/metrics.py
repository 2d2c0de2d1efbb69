"""/metrics for Prometheus: served on METRICS_PORT, or to a bearer of METRICS_TOKEN, never anonymously.

The metrics port is meant to be reachable inside the cluster only (the Service and Ingress
expose HTTP_PORT), so a scrape needs no credentials there. On any other port the answer is
the same 404 as an unknown path, unless the request carries ``Authorization: Bearer
<METRICS_TOKEN>``.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_prometheus.exports import ExportToDjangoView

from nexus.errors import error_response
from runtime.errors import ErrorCode


def on_metrics_port(request: HttpRequest) -> bool:
    port = settings.NEXUS.METRICS_PORT
    return bool(port) and request.META.get("SERVER_PORT") == str(port)


def has_metrics_token(request: HttpRequest) -> bool:
    token = settings.NEXUS.METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), token)


def serve(request: HttpRequest) -> HttpResponse:
    if on_metrics_port(request) or has_metrics_token(request):
        response: HttpResponse = ExportToDjangoView(request)
        return response
    return error_response(404, ErrorCode.NOT_FOUND, "Not found")
