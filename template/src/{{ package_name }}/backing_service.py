"""What every backing service's module supplies the process: a probe, a close, and whether the
web process's readiness waits on it (`backing_services.py` lists the services a render has)."""

from typing import ClassVar, Protocol

# Short timeouts: /readyz and `manage check` answer quickly when a service is unreachable.
CONNECT_SECONDS = 2


class BackingService(Protocol):
    # Whether the web process cannot serve its main traffic without it (/readyz).
    needed_to_serve: ClassVar[bool]

    def probe(self) -> object:
        """Raise when the service does not answer."""

    def close(self) -> None:
        """Let go of what the process holds open to it."""
