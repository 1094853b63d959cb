"""`check`: validate the configuration and reach every backing service."""

import sys

import click

from ..health import readiness
from ..settings import load_settings


@click.command()
def check() -> None:
    """Validate the configuration and report each backing service."""
    settings = load_settings()
    ready, report = readiness(settings)
    click.echo("configuration: ok")
    for service, state in report["checks"].items():
        click.echo(f"{service}: {state}")
    if not ready:
        click.echo("check failed: a backing service is unavailable", err=True)
        sys.exit(1)
