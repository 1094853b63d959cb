"""Liveness and readiness: what /healthz and /readyz answer, and what `admin check` reports."""

from collections.abc import Callable, Mapping


def liveness() -> dict[str, str]:
    """The process is up; no backing service is consulted."""
    return {"status": "ok"}


def readiness(probes: Mapping[str, Callable[[], object]]) -> tuple[bool, dict[str, object]]:
    """Whether every backing service answers, with each one's state."""
    checks = {}
    for service, probe in probes.items():
        try:
            probe()
        except Exception as error:  # noqa: BLE001 - any failure means "not ready", never a crash
            checks[service] = f"unavailable: {type(error).__name__}"
        else:
            checks[service] = "ok"
    ready = all(state == "ok" for state in checks.values())
    return ready, {"status": "ok" if ready else "unavailable", "checks": checks}
