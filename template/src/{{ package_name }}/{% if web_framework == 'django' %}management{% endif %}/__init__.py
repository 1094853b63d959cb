"""The service's admin commands, as Django management commands (commands/, one module each)."""

from django.core.management.base import CommandError


class Error(CommandError):
    """A command's failure. Django prints it as `<its class name>: <message>` and exits 1: named
    so, it reads `Error: ...` as on every framework the service can be built on."""
