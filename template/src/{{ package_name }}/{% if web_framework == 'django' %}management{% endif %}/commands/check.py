"""`check`: validate the configuration, run Django's system checks, reach every backing service."""

from typing import Any

from django.core.management.commands import check

from .. import Error


class Command(check.Command):
    help = "Validate the configuration and report each backing service."

    def handle(self, *app_labels: Any, **options: Any) -> None:
        from ...check_report import UNAVAILABLE, check_report
        from ...settings import load_settings

        # Django's system checks: silent when they pass; when not, the command fails naming each.
        super().handle(*app_labels, **options)
        ready, lines = check_report(load_settings())
        for line in lines:
            self.stdout.write(line)
        if not ready:
            raise Error(UNAVAILABLE)

    def check(self, *args: Any, **kwargs: Any) -> None:
        # Django's "System check identified no issues" is not printed: the lines above say so.
        super().check(*args, **{**kwargs, "display_num_errors": False})
