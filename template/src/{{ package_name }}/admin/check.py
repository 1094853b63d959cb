"""`check`: validate the configuration and reach every backing service."""

import click

from ..health import readiness
from ..services import connect
from ..settings import Settings
from .settings_loaded import with_settings


@click.command()
@with_settings
def check(settings: Settings) -> None:
    """Validate the configuration and report each backing service."""
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
