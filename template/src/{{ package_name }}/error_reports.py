"""Error reports to Sentry when SENTRY_DSN is set; when it is not, none, and sentry_sdk unloaded.

Every error the service logs with its traceback (an unexpected error in a request, a job that
raised) becomes one event, through Sentry's logging integration: the errors the JSON log shows.
Each event carries the request id where there is one, and the release (SENTRY_RELEASE, the
image's commit). None carries a secret: no local variables, no request headers or cookies, and
each secret setting's value is replaced wherever it appears.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import structlog
from pydantic import SecretStr
from pydantic_core import Url

from .settings import Settings

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint

FILTERED = "[Filtered]"
# Shorter values (a local database's password "app", say) would garble ordinary words.
SHORTEST_SECRET = 6


def start_error_reports(settings: Settings) -> None:
    """Send error reports from this process, if SENTRY_DSN is set."""
    if settings.sentry_dsn is None:
        return
    import sentry_sdk  # only now: loading it costs every process that reports nothing

    secrets = secret_values(settings)

    def before_send(event: Event, _hint: Hint) -> Event:
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id is not None:
            event.setdefault("tags", {})["request_id"] = request_id
        return cast("Event", scrubbed(event, secrets))

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        # What the service does not send it cannot leak: no frame locals (a settings object
        # among them), no personal data, no request bodies, headers or cookies.
        include_local_variables=False,
        send_default_pii=False,
        max_request_body_size="never",
        # Only the integrations named or on by default: no patching of the frameworks.
        auto_enabling_integrations=False,
        before_send=before_send,
    )


def secret_values(settings: Settings) -> list[str]:
    """The values of the settings that hold secrets: secret strings, and URLs with their
    passwords; longest first, so that a value is replaced before a part of it."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif isinstance(value, Url) and value.password:
            values += [str(value), value.password]
    return sorted((v for v in values if len(v) >= SHORTEST_SECRET), key=len, reverse=True)


def scrubbed(value: Any, secrets: list[str]) -> Any:
    """The value with every secret in its strings, however deep, replaced."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, FILTERED)
        return value
    if isinstance(value, dict):
        return {key: scrubbed(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(item, secrets) for item in value]
    return value
