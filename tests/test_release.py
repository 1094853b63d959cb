"""V. Build, release, run: no process migrates when it starts; the release process does."""

from pathlib import Path

import psycopg
import pytest
from processes import run_process, running_web
from servers import start_postgres


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in rows}


@pytest.mark.combinations(database="postgresql")
def test_web_creates_nothing_and_release_migrates_once(
    combination, project: Path, postgres, service_env: dict[str, str]
) -> None:
    url = postgres.create_database(f"empty_{abs(hash(str(project)))}")
    env = {**service_env, "DATABASE_URL": url}
    with running_web(project, **env) as web:
        assert web.get("/readyz")[0] == 200
    assert tables(url) == set(), "starting the web process changed the database"

    for attempt in ("first", "second"):
        release = run_process(project, "release", **env)
        assert release.returncode == 0, f"{attempt} release failed:\n{release.stderr}"
    assert {"notes", "alembic_version"} <= tables(url)


@pytest.mark.combinations(database="postgresql")
def test_readyz_turns_503_while_healthz_stays_200_when_postgres_stops(
    combination, project: Path, service_env: dict[str, str]
) -> None:
    database = start_postgres()
    try:
        url = database.create_database("app")
        with running_web(project, **{**service_env, "DATABASE_URL": url}) as web:
            assert web.get("/readyz")[0] == 200
            database.stop()
            status, body = web.get("/readyz")
            assert status == 503
            assert body["checks"]["database"].startswith("unavailable")
            assert web.get("/healthz") == (200, {"status": "ok"})
            assert web.process.poll() is None, "the web process died with its database"
    finally:
        database.remove()
