"""PostgreSQL and Redis stand-ins under the names compose.yaml uses (`postgres:18`, `redis:8`).

Docker Hub cannot be reached from this kind of machine, so the images compose pulls are made
here the way the Python stand-ins are (../shared/notes/containers.md): a Debian minbase root made
by mmdebstrap with Debian's `postgresql-N` or `redis-server` of the image's major version,
imported by podman under the official image's name. The names, and so the major versions, are
read from includes/images.jinja, where the rendered compose.yaml gets them. The Debian suite is
the stable one where it carries that major version (trixie has Redis 8), else unstable (only
sid has PostgreSQL 18). Each keeps what compose.yaml relies on from the official image:

- postgres: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB make the role and database on the
  first start, on a temporary server listening on the default socket only, which then runs the
  scripts in /docker-entrypoint-initdb.d (`*.sh`, `*.sql`) and stops (so, as with the official
  image, `pg_isready` on the socket says yes before the server proper listens on TCP); the
  data in /var/lib/postgresql/N/docker under the volume at
  /var/lib/postgresql (the layout from 18 on); it listens on 5432 on every interface with
  password (scram) logins for other hosts; `pg_isready` is on PATH; SIGINT stops it (the
  official image's STOPSIGNAL, a fast shutdown).
- redis: `redis-server` listening on every interface with protected mode off, as the official
  image is patched to; data in /data; `redis-cli` on PATH.

Made once per machine: the images stay in podman's store, labelled with a hash of their recipe,
and a lock file serialises the test processes that ask for them at once.
"""

import fcntl
import functools
import hashlib
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jinja2

from helpers.containers import Engine, canonical
from helpers.matrix import TEMPLATE_ROOT

CACHE = Path("/var/cache/copier-twelve-factor/compose-images")
RECIPE_LABEL = "org.copier-twelve-factor.recipe"
# The suites that carry the major versions images.jinja names: PostgreSQL 18 is in unstable
# only (trixie has 17, trixie-backports none); trixie has Redis 8 (8.0).
POSTGRES_SUITE = "sid"
REDIS_SUITE = "trixie"
# The mirror here is a snapshot: sid's Release file has expired, and a stable one may.
APT_OPTIONS = ('--aptopt=Acquire::Check-Valid-Until "false"',)

# Left out of the images, as the official ones leave them out: smaller and quicker to make.
EXCLUDED = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*")

POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# The official image's first start, in short: initialise PGDATA from POSTGRES_* if it is empty.
set -eu
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ "${1:-}" = postgres ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?the postgres image needs POSTGRES_PASSWORD}"
    user=${POSTGRES_USER:-postgres}
    database=${POSTGRES_DB:-$user}
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    chown postgres "$password_file"
    as_postgres initdb --pgdata="$PGDATA" --username="$user" --pwfile="$password_file" \
      --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    # As the official image: a temporary server on the default socket only (no TCP), which
    # makes the database and runs the user's init scripts, then the server proper. pg_isready
    # on the socket says yes during this; over TCP, not until the server proper listens.
    as_postgres pg_ctl --pgdata="$PGDATA" --wait --silent start --options="-c listen_addresses=''"
    if [ "$database" != postgres ]; then
      echo 'CREATE DATABASE :"name"' | as_postgres psql --quiet --set=ON_ERROR_STOP=1 \
        --username="$user" --dbname=postgres --set=name="$database"
    fi
    for script in /docker-entrypoint-initdb.d/*; do
      case "$script" in
        *.sh) echo "running $script"; . "$script" ;;
        *.sql) echo "running $script"; as_postgres psql --quiet --set=ON_ERROR_STOP=1 \
          --username="$user" --dbname="$database" --file="$script" ;;
      esac
    done
    as_postgres pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
"""

REDIS_ENTRYPOINT = r"""#!/bin/sh
# The official image's binary is patched to start with protected mode off; this passes it.
set -eu
# As the official entrypoint: options alone, or a config file, are arguments to redis-server.
case "${1:-}" in -* | *.conf) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
  shift
  chown redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec "$@"
"""


@dataclass(frozen=True)
class StandIn:
    """One image: the Debian packages in it, its entrypoint, and podman import's --change list."""

    name: str
    suite: str
    packages: tuple[str, ...]
    entrypoint: str
    changes: tuple[str, ...]
    # Left behind by the packages' own set-up, and not in the official image.
    remove: tuple[str, ...] = ()
    # Run in the root once made: fails the making where the suite has another major version.
    version_check: str = "true"

    def recipe(self) -> str:
        text = repr((self.name, self.suite, self.packages, self.entrypoint, self.changes,
                     self.remove, self.version_check, EXCLUDED, APT_OPTIONS))  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def major_version(reference: str, repository: str) -> str:
    """The major version an image's tag names (`postgres:18` is 18), which Debian's packages
    must have."""
    tag = re.fullmatch(rf"{repository}:(\d+)", reference)
    if tag is None:
        raise RuntimeError(f"{reference}: no stand-in for a tag other than {repository}:N")
    return tag.group(1)


def postgres_stand_in(reference: str) -> StandIn:
    major = major_version(reference, "postgres")
    return StandIn(
        name=canonical(reference),
        suite=POSTGRES_SUITE,
        packages=(f"postgresql-{major}",),
        entrypoint=POSTGRES_ENTRYPOINT,
        changes=(
            f"ENV PATH=/usr/lib/postgresql/{major}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
            "/usr/bin:/sbin:/bin",
            f"ENV PGDATA=/var/lib/postgresql/{major}/docker",
            "VOLUME /var/lib/postgresql",
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            'CMD ["postgres"]',
            "STOPSIGNAL SIGINT",
            "EXPOSE 5432",
        ),
        # The cluster Debian's postinst makes; the entrypoint makes the image's own in PGDATA.
        remove=(f"/var/lib/postgresql/{major}", f"/etc/postgresql/{major}"),
    )


def redis_stand_in(reference: str) -> StandIn:
    major = major_version(reference, "redis")
    return StandIn(
        name=canonical(reference),
        suite=REDIS_SUITE,
        packages=("redis-server",),
        entrypoint=REDIS_ENTRYPOINT,
        changes=(
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "VOLUME /data",
            "WORKDIR /data",
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            'CMD ["redis-server"]',
            "EXPOSE 6379",
        ),
        # Debian's package names no version: its server must say it is this major version.
        version_check=f'chroot "$1" redis-server --version | grep -q " v={major}\\."',
    )


@functools.cache
def stand_ins() -> tuple[StandIn, ...]:
    """The stand-ins of the images includes/images.jinja names for compose.yaml (and CI)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_ROOT))
    images = environment.get_template("includes/images.jinja").module
    return postgres_stand_in(images.POSTGRES_IMAGE), redis_stand_in(images.REDIS_IMAGE)


@contextmanager
def machine_lock(path: Path) -> Iterator[None]:
    """Held by one test process of the machine at a time (pytest-xdist's workers included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def inspect(engine: Engine, image: str, template: str) -> str | None:
    """`podman image inspect --format template`, or None where the store has no such image."""
    found = engine.podman("image", "inspect", "--format", template, image)
    return found.stdout.strip() if found.returncode == 0 else None


def build(engine: Engine, stand_in: StandIn, workdir: Path) -> None:
    """mmdebstrap a minbase root of the suite with the packages and entrypoint; import it."""
    entrypoint = workdir / "docker-entrypoint.sh"
    entrypoint.write_text(stand_in.entrypoint)
    entrypoint.chmod(0o755)
    rootfs = workdir / "rootfs.tar"
    customize = [
        f'install -m 755 {shlex.quote(str(entrypoint))} "$1/usr/local/bin/docker-entrypoint.sh"',
        *(f'rm -rf "$1"{shlex.quote(path)}' for path in stand_in.remove),
        stand_in.version_check,
    ]
    made = subprocess.run(
        ["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(stand_in.packages)}",
         *APT_OPTIONS, *(f"--dpkgopt=path-exclude={path}" for path in EXCLUDED),
         *(f"--customize-hook={hook}" for hook in customize), stand_in.suite, str(rootfs)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"mmdebstrap for {stand_in.name}:\n{made.stderr[-3000:]}")
    engine.import_rootfs(
        rootfs, stand_in.name, *stand_in.changes, f"LABEL {RECIPE_LABEL}={stand_in.recipe()}"
    )


def ensure_stand_ins(engine: Engine) -> dict[str, float]:
    """Make each stand-in that podman's store lacks or holds from an older recipe; the seconds
    each build took (none where all were there already)."""
    took = {}
    with machine_lock(CACHE / "lock"):
        for stand_in in stand_ins():
            label = f'{{{{ index .Labels "{RECIPE_LABEL}" }}}}'
            if inspect(engine, stand_in.name, label) == stand_in.recipe():
                continue
            previous = inspect(engine, stand_in.name, "{{ .Id }}")
            started = time.monotonic()
            with tempfile.TemporaryDirectory(dir=CACHE) as workdir:
                build(engine, stand_in, Path(workdir))
            took[stand_in.name] = time.monotonic() - started
            if previous:
                engine.podman("rmi", previous)  # left nameless by the import; kept if still in use
    return took
