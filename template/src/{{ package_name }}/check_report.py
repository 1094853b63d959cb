"""What `manage check` reports, on every framework: the configuration, then each backing service."""

from .backing_services import connect
from .health import readiness
from .settings import Settings

UNAVAILABLE = "a backing service is unavailable"


def check_report(settings: Settings) -> tuple[bool, list[str]]:
    """Whether every backing service answers, and the report's lines: one for the
    configuration (read by then), one per service with its state."""
    services = connect(settings)
    try:
        ready, report = readiness(services.probes())
    finally:
        services.close()
    lines = [f"{service}: {state}" for service, state in report["checks"].items()]
    return ready, ["configuration: ok", *lines]
