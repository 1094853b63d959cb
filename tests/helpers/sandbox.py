"""A private network in which the READMEs' commands run as written.

The rendered README points at fixed addresses: compose's PostgreSQL on 127.0.0.1:5432 and Redis
on 127.0.0.1:6379, the service on port 8000. Each test process gets a network namespace of its
own (one thread that has left the host's network, and every process it starts), with real
servers at the addresses compose publishes, so the commands run unchanged while other test
processes do the same. Nothing outside is reachable from it: the package index neither, so a
project is locked and installed outside before its README runs inside.
"""

import ctypes
import fcntl
import socket
import struct
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import redis
from psycopg import sql

from helpers.servers import Postgres, RedisServer

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def leave_the_host_network() -> None:
    """Move this thread into a new network namespace and bring its loopback up."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed: the tests need root")
    with socket.socket() as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


class Sandbox:
    """Runs calls, and the processes they start, inside one private network namespace."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, initializer=leave_the_host_network)
        self.postgres: Postgres | None = None
        self.redis: RedisServer | None = None

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._thread.submit(function, *args, **kwargs).result()

    def popen(self, command: list[str], **kwargs: Any) -> subprocess.Popen:
        return self.call(subprocess.Popen, command, **kwargs)

    def run(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.call(subprocess.run, command, capture_output=True, text=True, **kwargs)

    def start_compose_services(self, postgres_port: int, redis_port: int) -> None:
        """PostgreSQL and Redis where compose publishes them (started once, kept running)."""
        if self.postgres is None:
            directory = Path(tempfile.mkdtemp(prefix="tf-sandbox-postgres-"))
            self.postgres = self.call(Postgres(directory, port=postgres_port).start)
        if self.redis is None:
            self.redis = self.call(RedisServer(port=redis_port).start)

    def reset_compose_services(self, user: str, password: str, database: str) -> None:
        """Empty servers with compose's user and database, as a fresh `compose up` has."""
        assert self.postgres is not None and self.redis is not None
        self.call(_reset_postgres, self.postgres.url(), user, password, database)
        self.call(_flush_redis, self.redis.port)

    def close(self) -> None:
        if self.postgres is not None:
            self.call(self.postgres.remove)
        if self.redis is not None:
            self.call(self.redis.stop)
        self._thread.shutdown()


def _reset_postgres(url: str, user: str, password: str, database: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        names = [row[0] for row in connection.execute("SELECT datname FROM pg_database")]
        for name in names:
            if name not in ("postgres", "template0", "template1"):
                connection.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
                )
        connection.execute(
            sql.SQL(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN "
                "CREATE ROLE {role} LOGIN SUPERUSER PASSWORD {password}; END IF; END $$"
            ).format(
                name=sql.Literal(user),
                role=sql.Identifier(user),
                password=sql.Literal(password),
            )
        )
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(user)
            )
        )


def _flush_redis(port: int) -> None:
    with redis.Redis(port=port) as client:
        client.flushall()
