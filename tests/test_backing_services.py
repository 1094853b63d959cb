"""IV. Backing services: a database that goes away makes the service unready, not dead."""

import re
from pathlib import Path

import pytest

from helpers.processes import app_env, running_web
from helpers.servers import start_postgres

# The service's behaviour: the fewest code combinations that meet every pair of answers, the
# Pythons spread over them (conftest.pairwise_over_pythons); install, lint, own tests and probes
# run on every code combination and Python.
pytestmark = pytest.mark.pairwise

PASSWORD = "not-to-be-shown"


@pytest.mark.combinations(database="postgresql")
def test_readyz_turns_503_while_healthz_stays_200_when_postgres_stops(
    code_combination, project: Path, service_env: dict[str, str]
) -> None:
    database = start_postgres()
    try:
        # A password (which the server, trusting every login, ignores) that no answer may show.
        url = database.create_database("app").replace("postgres@", f"postgres:{PASSWORD}@")
        with running_web(project, app_env(project, service_env, DATABASE_URL=url)) as web:
            assert web.get("/readyz")[0] == 200
            database.stop()
            status, body = web.get("/readyz")
            assert status == 503
            assert body["status"] == "unavailable", body
            # The service's own prefix, then the cause, as the driver's class names it.
            state = body["checks"]["database"]
            assert re.fullmatch(r"unavailable: \S.*", state), body
            assert PASSWORD not in state, body
            assert web.get("/healthz") == (200, {"status": "ok"})
            assert web.process.poll() is None, "the web process died with its database"
    finally:
        database.remove()
