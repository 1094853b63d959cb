"""`check`: validate the configuration and reach every backing service."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .settings_loaded import with_settings

if TYPE_CHECKING:
    from ..settings import Settings


@click.command()
@with_settings
def check(settings: Settings) -> None:
    """Validate the configuration and report each backing service."""
    from ..health import readiness
    from ..services import connect

    services = connect(settings)
    try:
        ready, report = readiness(services.probes())
    finally:
        services.close()
    click.echo("configuration: ok")
    for service, state in report["checks"].items():
        click.echo(f"{service}: {state}")
    if not ready:
        raise click.ClickException("a backing service is unavailable")
