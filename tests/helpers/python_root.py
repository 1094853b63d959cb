"""The Pythons offered that this machine's pyenv lacks (3.14, 3.15), in a Debian root of their own.

Debian's unstable suite carries them, but its interpreters need a newer C library than this
machine's Debian 12: they run inside a minbase root of that suite, by chroot
(../shared/notes/pythons.md). A rendered project whose .python-version names one of them has
every command the tests run in it (uv, its tests, the service, a README's lines) run in there:
`in_project()` turns the command into one that enters the root at the same working directory.
Each command gets a mount namespace of its own, in which the host's /dev, /proc, /sys, /tmp
(where the projects are) and uv cache are bound into the root; they vanish when it exits, so
nothing stays mounted in the root for a deletion to reach through. unshare, sh, chroot and env
each exec the next: the process the tests signal is the command itself.

The root is made once per machine and kept in CACHE, under a file lock (pytest-xdist workers
ask at once); a recipe stamp remakes it when what it must hold changes.
"""

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from helpers.matrix import choice_questions

CACHE = Path(os.environ.get("PYTHON_ROOT_CACHE", "/var/cache/copier-twelve-factor/pythons"))
ROOT = CACHE / "sid"
SUITE = "sid"
MIRROR = "http://deb.debian.org/debian"
# What the projects' commands use beyond the interpreters: git, curl and procps (README lines,
# commits), the roots of trust.
TOOLS = ("ca-certificates", "git", "curl", "procps")
# Bumped when the recipe below changes: a root made by another recipe is remade.
RECIPE = "2"
STAMP = ROOT / "etc" / "copier-twelve-factor-root"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# uv inside trusts the system's roots (the package index is reached through a TLS-intercepting
# proxy whose CA is in the host's bundle, copied in); copies, since the cache is another mount.
UV_TOML = 'system-certs = true\nlink-mode = "copy"\n'

# Run by sh in the command's own mount namespace: bind the host's file systems in, then enter.
ENTER = """\
root=$1 dir=$2 cache=$3; shift 3
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /tmp "$root/tmp"
mount --bind "$cache" "$root$cache"
exec chroot "$root" /usr/bin/env --chdir="$dir" "$@"
"""


@functools.cache
def pyenv_versions() -> tuple[str, ...]:
    """The versions pyenv has here (3.11.7, say), none without pyenv."""
    if shutil.which("pyenv") is None:
        return ()
    listed = subprocess.run(
        ["pyenv", "versions", "--bare"], capture_output=True, text=True, check=True
    ).stdout.split()
    return tuple(listed)


def host_pythons() -> set[str]:
    """The minor versions of CPython 3 that pyenv has here."""
    return {".".join(v.split(".")[:2]) for v in pyenv_versions() if v.startswith("3.")}


@functools.cache
def root_pythons() -> tuple[str, ...]:
    """The Python versions offered that only the root has."""
    host = host_pythons()
    return tuple(v for v in choice_questions()["python_version"] if v not in host)


def project_python(directory: Path) -> str | None:
    version = directory / ".python-version"
    return version.read_text().strip() if version.is_file() else None


def in_project(command: list[str], directory: Path, python: str | None = None) -> list[str]:
    """The command, to be run in `directory`: as it is, or entering the root if the project
    there (or the `python` named, for a command that makes the project) runs on a Python only
    the root has."""
    if (python or project_python(Path(directory))) not in root_pythons():
        return command
    directory = Path(directory).resolve()
    if not directory.is_relative_to("/tmp"):
        raise RuntimeError(f"{directory}: only projects under /tmp are bound into the root")
    ensure_root()
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", ENTER,
            "enter", str(ROOT), str(directory), str(uv_cache()), *command]  # fmt: skip


@functools.cache
def uv_cache() -> Path:
    """The host's uv cache, shared with the root at the same path."""
    path = Path(subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True,
                               check=True).stdout.strip())  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    return path


def uv_binary() -> Path:
    """The uv the tests run, itself rather than a pyenv shim in front of it."""
    found = Path(shutil.which("uv") or "uv")
    with found.open("rb") as file:
        shim = file.read(2) == b"#!"
    if shim:
        pyenv = subprocess.run(["pyenv", "which", "uv"], capture_output=True, text=True)
        found = Path(pyenv.stdout.strip())
    return found


def root_packages() -> list[str]:
    """The interpreters only the root has, with their venv modules, and the tools."""
    return [p for v in root_pythons() for p in (f"python{v}", f"python{v}-venv")] + list(TOOLS)


def recipe() -> str:
    text = f"{RECIPE} {SUITE} {' '.join(root_packages())}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def locked() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def mounted_under(directory: Path) -> bool:
    prefix = str(directory)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            return True
    return False


def remove(directory: Path) -> None:
    """Delete a root, never one with something mounted in it (the host's /tmp, say)."""
    if mounted_under(directory):
        raise RuntimeError(f"{directory} has mounts in it; unmount them (umount -R) first")
    shutil.rmtree(directory, ignore_errors=True)


@functools.cache
def ensure_root() -> Path:
    """The root, made if missing or of another recipe; the same for every test process."""
    with locked():
        if STAMP.is_file() and STAMP.read_text() == recipe():
            return ROOT
        partial = CACHE / f"{SUITE}.partial"
        remove(partial)
        # The mirror here is a snapshot whose unstable Release file has expired.
        made = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--mode=root",
             "--aptopt=Acquire::Check-Valid-Until \"false\"",
             f"--include={','.join(root_packages())}", SUITE, str(partial), MIRROR],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if made.returncode != 0:
            raise RuntimeError(f"mmdebstrap of the {SUITE} root failed:\n{made.stderr[-4000:]}")
        for tool in ("uv", "uvx"):  # uvx: the README's first line runs Copier with it
            shutil.copy2(uv_binary().with_name(tool), partial / "usr/local/bin" / tool)
        for name in ("resolv.conf", "hosts"):
            shutil.copyfile(f"/etc/{name}", partial / "etc" / name)
        shutil.copyfile(HOST_CA_BUNDLE, partial / HOST_CA_BUNDLE.relative_to("/"))
        (partial / "etc/uv").mkdir(exist_ok=True)
        (partial / "etc/uv/uv.toml").write_text(UV_TOML)
        (partial / uv_cache().relative_to("/")).mkdir(parents=True, exist_ok=True)
        (partial / STAMP.relative_to(ROOT)).write_text(recipe())
        remove(ROOT)
        partial.rename(ROOT)
        return ROOT
