"""Meta-tests: each probe, run on a project with a known violation put in, must fail.

A probe that cannot be shown failing proves nothing, so every probe of test_twelve_factor.py
is run here on a freshly rendered project broken in one known way.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from helpers import probes
from helpers.commands import assert_succeeds
from helpers.matrix import IDENTITY
from helpers.processes import app_env

PACKAGE = IDENTITY["package_name"]


def edit(project: Path, relative: str, old: str, new: str) -> None:
    """Replace `old` (a regular expression) once; fail loudly if the template moved on."""
    path = project / relative
    text, count = re.subn(old, new, path.read_text(), count=1)
    assert count == 1, f"{old!r} not found in {relative}: update this meta-test"
    path.write_text(text)


@dataclass
class Violation:
    answers: dict[str, str]
    inject: Callable[[Path], None]
    probe: Callable[[Path, dict[str, str]], object]
    # What the failure must say, where the probe checks more than this violation breaks.
    failure: str | None = None


def hard_coded_port(project: Path) -> None:
    edit(project, f"src/{PACKAGE}/web.py", r"port=settings\.port", "port=8000")


def log_file_handler(project: Path) -> None:
    handlers = "root.handlers = [handler]"
    to_file = 'root.handlers = [handler, logging.FileHandler("service.log")]'
    edit(project, f"src/{PACKAGE}/logging.py", re.escape(handlers), to_file)


def print_to_stderr(project: Path) -> None:
    answer = '    return {"status": "ok"}'
    complain = '    import sys\n\n    print("alive", file=sys.stderr)\n'
    edit(project, f"src/{PACKAGE}/health.py", re.escape(answer), complain + answer)


def default_secret_key(project: Path) -> None:
    field = "secret_key: Annotated[SecretStr, Field(min_length=32)]"
    edit(project, f"src/{PACKAGE}/settings.py", re.escape(field), f'{field} = SecretStr("d" * 40)')


def settings_by_environment_name(project: Path) -> None:
    edit(project, f"src/{PACKAGE}/settings.py", r"\nclass Settings\(EnvironmentSettings\):",
         '\nif os.environ.get("APP_ENV") == "production":\n    PLACEHOLDER_SECRET = ""\n\n\n'
         "class Settings(EnvironmentSettings):")  # fmt: skip


def django_settings_module_from_the_environment(project: Path) -> None:
    forced = 'os.environ["DJANGO_SETTINGS_MODULE"] = module'
    edit(project, f"src/{PACKAGE}/apps.py", re.escape(forced),
         'os.environ.setdefault("DJANGO_SETTINGS_MODULE", module)')  # fmt: skip


def unlisted_setting(project: Path) -> None:
    edit(project, f"src/{PACKAGE}/settings.py", r"    debug: bool = False",
         "    debug: bool = False\n    feature_flag: bool = False")  # fmt: skip


def variable_files_ignored(project: Path) -> None:
    edit(project, f"src/{PACKAGE}/settings.py",
         re.escape('os.environ.get(f"{field_name.upper()}_FILE")'), "None")  # fmt: skip


def variable_file_read_whole(project: Path) -> None:
    """The file's trailing newline kept in the value."""
    edit(project, f"src/{PACKAGE}/settings.py", re.escape("data.decode().strip()"), "data.decode()")


def request_id_not_taken(project: Path) -> None:
    edit(project, f"src/{PACKAGE}/request_id.py", r"        return incoming\n",
         "        return uuid.uuid4().hex\n")  # fmt: skip


def start_script_without_exec(project: Path) -> None:
    (project / "bin").mkdir()
    (project / "bin" / "web.sh").write_text(f"#!/bin/sh\npython -m {PACKAGE}.web\necho stopped\n")
    edit(project, "Procfile", r"web: .*", "web: sh bin/web.sh")


def migration_at_web_start(project: Path) -> None:
    upgrade = (
        "    from alembic import command\n"
        "    from alembic.config import Config\n\n"
        "    migrations = Config()\n"
        f'    migrations.set_main_option("script_location", "{PACKAGE}:migrations")\n'
        '    command.upgrade(migrations, "head")\n'
    )
    start = "    services = connect(settings)\n"
    edit(project, f"src/{PACKAGE}/app.py", re.escape(start), start + upgrade)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        return {row[0] for row in rows}


def only_release_migrates(project: Path, env: dict[str, str]) -> None:
    probes.probe_only_release_migrates(project, env, lambda: tables(env["DATABASE_URL"]))


def drains_in_flight_requests(project: Path, env: dict[str, str]) -> None:
    probes.probe_sigterm_drains_in_flight_requests(project, env, "fastapi")


def no_settings_by_environment_name(project: Path, _env: dict[str, str]) -> None:
    probes.probe_no_settings_chosen_by_environment_name(project)


def env_example_names_the_settings(project: Path, _env: dict[str, str]) -> None:
    probes.probe_env_example_names_exactly_the_settings(project)


FASTAPI, FLASK = {"web_framework": "fastapi"}, {"web_framework": "flask"}
DJANGO = {"web_framework": "django"}
SERVED = probes.probe_serves_on_its_port_in_json_lines_writing_no_file
FROM_FILES = probes.probe_every_variable_can_come_from_a_file
VIOLATIONS = {
    "hard-coded-port": Violation(FASTAPI, hard_coded_port, SERVED, "did not answer|web exited"),
    "log-file-handler": Violation(FLASK, log_file_handler, SERVED, "written while serving"),
    "print-to-stderr": Violation(FASTAPI, print_to_stderr, SERVED, "written to stderr"),
    "request-id-not-taken": Violation(
        FLASK, request_id_not_taken, SERVED, "lines carry request_id 'probe-42'"
    ),
    "variable-files-ignored": Violation(FASTAPI, variable_files_ignored, FROM_FILES, "web exited"),
    "variable-file-read-whole": Violation(
        DJANGO, variable_file_read_whole, FROM_FILES, "web exited"
    ),
    "default-secret-key": Violation(
        FLASK, default_secret_key, probes.probe_missing_or_malformed_config_stops_startup
    ),
    "settings-by-environment-name": Violation(
        FASTAPI, settings_by_environment_name, no_settings_by_environment_name
    ),
    "django-settings-module-from-the-environment": Violation(
        DJANGO, django_settings_module_from_the_environment, no_settings_by_environment_name
    ),
    "setting-missing-from-env-example": Violation(
        FLASK, unlisted_setting, env_example_names_the_settings
    ),
    "start-script-without-exec": Violation(
        FASTAPI, start_script_without_exec, drains_in_flight_requests
    ),
    "migration-at-web-start": Violation(
        {**FLASK, "database": "postgresql"}, migration_at_web_start, only_release_migrates
    ),
}


@pytest.fixture
def fresh(copie_session, template_repo: Path) -> Callable[[dict[str, str]], Path]:
    """A newly rendered and installed project of its own, free to break."""

    def _fresh(answers: dict[str, str]) -> Path:
        result = copie_session.copy(
            extra_answers={**IDENTITY, **answers}, template_dir=template_repo
        )
        if result.exception is not None:
            raise result.exception
        assert_succeeds(["uv", "sync", "--quiet"], result.project_dir)
        return result.project_dir

    return _fresh


@pytest.mark.once
@pytest.mark.parametrize("name", VIOLATIONS)
def test_probe_fails_on_the_violation(name: str, fresh, request: pytest.FixtureRequest) -> None:
    violation = VIOLATIONS[name]
    project = fresh(violation.answers)

    def env(attempt: str) -> dict[str, str]:
        service = {}
        if violation.answers.get("database") == "postgresql":
            postgres = request.getfixturevalue("postgres")
            service["DATABASE_URL"] = postgres.create_database(f"{attempt}_{id(project)}")
        return app_env(project, service)

    # The project as rendered passes: the failure below is the violation's doing.
    violation.probe(project, env("intact"))
    violation.inject(project)
    with pytest.raises(AssertionError, match=violation.failure):
        violation.probe(project, env("broken"))
