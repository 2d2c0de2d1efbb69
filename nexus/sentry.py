"""Optional error tracking: Sentry, switched on by SENTRY_DSN and off otherwise."""

from __future__ import annotations

import nexus


def init_sentry(dsn: str) -> None:
    """Report unhandled exceptions and error logs, without request bodies or user data."""
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        integrations=[DjangoIntegration()],
        release=f"nexus@{nexus.__version__}",
        send_default_pii=False,
        traces_sample_rate=0.0,
    )
