"""Real backing services for the rendered projects' tests: PostgreSQL and Redis on loopback."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

# Redis database numbers: one per rendered project using Redis in one test process.
DATABASES = 256


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(ready, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            ready()
            return
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start within {timeout} s") from None
            time.sleep(0.05)


@dataclass
class Postgres:
    """A throwaway PostgreSQL server: its own data directory, a free port, trust auth."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def as_server_user(self) -> list[str]:
        # initdb and postgres refuse to run as root; the machine's postgres user runs them.
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> "Postgres":
        data = self.directory / "data"
        if not data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.directory, "postgres")
            subprocess.run(
                [*self.as_server_user, "initdb", "-D", str(data), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--no-sync"],
                check=True, capture_output=True,
            )  # fmt: skip
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(
            [*self.as_server_user, "postgres", "-D", str(data), "-p", str(self.port),
             "-k", str(self.directory), "-c", "listen_addresses=127.0.0.1",
             # Durability is not under test: these make the throwaway server fast.
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=log,
        )  # fmt: skip
        wait_for(lambda: psycopg.connect(self.url(), connect_timeout=1).close(), "PostgreSQL")
        return self

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop at once, disconnecting clients, as a crashed or failed-over database would."""
        if self.process and self.process.poll() is None:
            data = str(self.directory / "data")
            subprocess.run(
                [*self.as_server_user, "pg_ctl", "stop", "-m", "fast", "-D", data],
                check=True,
                capture_output=True,
            )
            self.process.wait(timeout=30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres() -> Postgres:
    # Under /tmp, not pytest's private temp folder, so that the postgres user can reach it.
    return Postgres(Path(tempfile.mkdtemp(prefix="tf-postgres-"))).start()


@dataclass
class RedisServer:
    """A throwaway Redis server; each project gets a database number of its own."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    databases: dict[str, int] = field(default_factory=dict)

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--databases", str(DATABASES)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), 1).close(), "Redis")
        return self

    def allocate(self, project: str) -> str:
        """The URL of the project's own database number, emptied for the test about to use it."""
        if project not in self.databases:
            if len(self.databases) + 1 >= DATABASES:
                raise RuntimeError("this Redis server has no database number left")
            self.databases[project] = len(self.databases) + 1
        url = f"redis://127.0.0.1:{self.port}/{self.databases[project]}"
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        return url

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
