"""A container engine for the tests: the rendered Dockerfile built unmodified, its image run.

This machine has no Docker engine, and Debian 12's podman (buildah 1.28) cannot build the
Dockerfile (it refuses `RUN --mount=type=bind,target=uv.lock`: not an absolute path). So:
- builds run in a Debian trixie chroot (made with mmdebstrap) whose podman 5 can;
- Docker Hub and ghcr cannot be reached, so the base images are stand-ins under the exact names
  the Dockerfile uses: Debian trixie with the machine's own CPython where pyenv has the version,
  Debian sid with its own python3.X where only sid has it (python_root.py), and uv from its
  wheel;
- images are saved in the chroot and loaded into the host's podman, which runs them (the
  chroot's podman runs `exec`, and so health checks, in the host's root).
Everything is set up once per machine and kept in CACHE; `engine()` reuses what is there. Each
step is guarded by a file lock (pytest-xdist workers call it at once) and written so that a run
killed half-way leaves nothing that the next one trips on. See ../shared/notes/containers.md.
"""

import contextlib
import fcntl
import functools
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.python_root import SUITE as PYTHON_SUITE
from helpers.python_root import host_pythons

CACHE = Path(os.environ.get("CONTAINER_CACHE", "/var/cache/copier-twelve-factor/containers"))
CHROOT = CACHE / "trixie"
LOCK = CACHE / "lock"
BUILDS = CACHE / "builds.lock"
# Within the chroot: the engine's settings, and what builds get mounted (never baked in).
CHROOT_CONF = Path("/etc/copier-twelve-factor")
BUILD_PACKAGES = "podman,runc,conmon,netavark,aardvark-dns,nftables,iptables,fuse-overlayfs"
# What python:3.X-slim-trixie holds beyond minbase: the libraries CPython links to (trixie's
# names: the 64-bit time_t transition renamed some), tkinter's aside as there.
PYTHON_RUNTIME = (
    "libssl3t64,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,libreadline8t64,libncursesw6,zlib1g,"
    "libuuid1,libexpat1,libcrypt1,libnsl2,libtirpc3t64,ca-certificates,netbase,tzdata"
)
# A version pyenv lacks: Debian's interpreter, with venv and ensurepip as the official image has
# them. Not pip: the Dockerfile never runs it (uv comes from its own image).
DEBIAN_PYTHON = "python{0},python{0}-venv,ca-certificates,netbase,tzdata"
# Fails the stand-in's making if a library that CPython's modules link to is missing from it.
LIBRARIES_FOUND = (
    '! chroot "$1" sh -c \'find /usr/local -name "*.so*" ! -name "_tkinter*" '
    "-exec ldd {} +' | grep 'not found'"
)
# Hard rlimits cannot be raised here, and crun does not run on this cgroup layout.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# The package index is reached through this machine's TLS-intercepting proxy: uv in a build
# step trusts the system's roots (mounted read-only for the build only) rather than its own.
UV_TOML = "system-certs = true\n"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# Stamped on each stand-in: a change of recipe bumps it, and the cached ones are remade.
STAND_IN_LABEL = "org.copier-twelve-factor.stand-in"
STAND_IN_VERSION = "5"
STAND_IN_LABEL_FORMAT = '{{ index .Labels "' + STAND_IN_LABEL + '" }}'
# The official python:slim images hold CPython with pip (and setuptools, wheel before 3.12), and
# neither its tests nor its static library. pyenv's tree may hold more (tools installed into it,
# this machine's own .pth files): only what the official image has is copied.
CPYTHON_BIN = re.compile(r"^(python|pip|pydoc|idle|2to3)[\d.]*(-config|-gdb\.py)?$")
BUNDLED = re.compile(r"^(pip|setuptools|wheel|pkg_resources|_distutils_hack)\b|^distutils-pre")
NOT_SHIPPED = re.compile(r"^(test|tests|idle_test)$|^libpython.*\.a$")
FROM_LINE = re.compile(r"^(\s*FROM\s+(?:--\S+\s+)*)(\S+)", re.IGNORECASE | re.MULTILINE)
COPY_FROM = re.compile(r"--from=(\S+)")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}")
# The Debian release of the python:3.X-slim-<release> bases (includes/images.jinja's DEBIAN).
PYTHON_DEBIAN = "trixie"
PYTHON_IMAGE = re.compile(rf"^docker\.io/library/python:(3\.\d+)-slim-{PYTHON_DEBIAN}$")
UV_IMAGE = re.compile(r"^ghcr\.io/astral-sh/uv:(\S+)$")


def required() -> bool:
    """Whether a missing engine fails the tests (.ci/run) rather than skipping them."""
    return os.environ.get("CONTAINER_TESTS") == "required"


def unavailable(reason: str) -> None:
    if required():
        pytest.fail(f"CONTAINER_TESTS=required, but no container engine: {reason}")
    pytest.skip(f"no container engine: {reason}")


def run(command: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run a set-up step; one that fails raises with its output."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


@contextlib.contextmanager
def building() -> Iterator[None]:
    """Held, shared, by each build in the chroot (Engine.prune_when_no_build_runs)."""
    with BUILDS.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield


@contextlib.contextmanager
def locked() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def mount_points() -> list[str]:
    """Every mount point on the machine, as the kernel lists them."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    # The path is field 5, with spaces and the like octal-escaped.
    return [line.split()[4].encode().decode("unicode_escape") for line in lines]


def mounted_under(directory: Path) -> list[str]:
    prefix = str(directory)
    return [m for m in mount_points() if m == prefix or m.startswith(prefix + "/")]


def remove_tree(directory: Path) -> None:
    """Delete a folder, but never one with anything mounted in it (the host's /tmp, /dev)."""
    if mounted_under(directory):
        run(["umount", "-R", str(directory)])
    if mounted_under(directory):
        raise RuntimeError(f"{directory} still has mounts; not deleting it")
    shutil.rmtree(directory, ignore_errors=True)


# The chroot's mounts, in order: itself (else layer unpacking fails on `remount /`), then
# the kernel's file systems, a private /run, and the host's /tmp where the projects are.
def chroot_mounts() -> list[tuple[list[str], Path]]:
    return [
        (["--bind", str(CHROOT)], CHROOT),
        (["-t", "proc", "proc"], CHROOT / "proc"),
        (["--rbind", "/sys"], CHROOT / "sys"),
        (["--rbind", "/dev"], CHROOT / "dev"),
        (["-t", "tmpfs", "tmpfs"], CHROOT / "run"),
        (["--bind", "/tmp"], CHROOT / "tmp"),
    ]


def mount_chroot() -> None:
    """Mount what the chroot needs, unless all of it is mounted already (by an earlier run)."""
    present = set(mount_points())
    if all(str(target) in present for _, target in chroot_mounts()):
        return
    if mounted_under(CHROOT):  # a run killed half-way: start again from nothing mounted
        run(["umount", "-R", str(CHROOT)])
    for options, target in chroot_mounts():
        run(["mount", *options, str(target)])
        if "--rbind" in options:
            # A slave copy: unmounting it later never propagates back to the host's /sys, /dev.
            run(["mount", "--make-rslave", str(target)])
    for name in ("resolv.conf", "hosts"):
        shutil.copyfile(f"/etc/{name}", CHROOT / "etc" / name)


def make_chroot() -> None:
    """The trixie build chroot, made in a side folder and moved in place when whole."""
    if (CHROOT / "usr" / "bin" / "podman").exists():
        return
    partial = CACHE / "trixie.partial"
    remove_tree(partial)
    run(["mmdebstrap", "--variant=minbase", f"--include={BUILD_PACKAGES},ca-certificates",
         "trixie", str(partial)], timeout=900)  # fmt: skip
    conf = partial / CHROOT_CONF.relative_to("/")
    conf.mkdir(parents=True)
    (conf / "containers.conf").write_text(CONTAINERS_CONF)
    (conf / "uv.toml").write_text(UV_TOML)
    partial.rename(CHROOT)


@dataclass
class Engine:
    """The host's podman to run images, and the chroot's to build them."""

    env: dict[str, str] = field(
        default_factory=lambda: {**os.environ, "CONTAINERS_CONF": str(CACHE / "containers.conf")}
    )

    def podman(self, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        """The host's podman; text output captured; the caller checks the exit status."""
        kwargs.setdefault("capture_output", True)
        return subprocess.run(["podman", *args], env=self.env, text=True, timeout=timeout, **kwargs)

    def graph_root(self) -> str:
        """Where the host's podman keeps its images."""
        found = self.podman("info", "--format", "{{.Store.GraphRoot}}", timeout=60)
        assert found.returncode == 0, found.stderr
        return found.stdout.strip()

    def build_podman(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """The chroot's podman (a newer one, that builds the Dockerfile); raises on failure."""
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "CONTAINERS_CONF": str(CHROOT_CONF / "containers.conf"),
            "TMPDIR": "/var/tmp",
        }
        return run(["chroot", str(CHROOT), "podman", *args], timeout=timeout, env=env)

    def has_build_image(self, reference: str) -> bool:
        """Whether the stand-in is there, made by this version of the recipe."""
        listed = self.build_podman("images", "--format", STAND_IN_LABEL_FORMAT, reference)
        return STAND_IN_VERSION in listed.stdout.split()

    def ensure_base_images(self, dockerfile: str) -> None:
        """Make the stand-in of each image the Dockerfile starts from, if not made yet."""
        with locked():
            for reference in sorted(base_images(dockerfile)):
                if self.has_build_image(reference):
                    continue
                if python := PYTHON_IMAGE.match(reference):
                    self.make_python_image(reference, python.group(1))
                elif UV_IMAGE.match(reference):
                    self.make_uv_image(reference)
                else:
                    raise RuntimeError(f"no stand-in known for the base image {reference}")

    def make_python_image(self, reference: str, minor: str) -> None:
        """pyenv's CPython `minor` on trixie where pyenv has it, else Debian's from sid."""
        with tempfile.TemporaryDirectory(dir="/tmp", prefix="ctf-base-") as scratch:
            if minor in host_pythons():
                rootfs = pyenv_python_rootfs(minor, Path(scratch))
            else:
                rootfs = debian_python_rootfs(minor, Path(scratch))
            self.build_podman(
                "import",
                "--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change", "ENV LANG=C.UTF-8",
                "--change", 'CMD ["python3"]',
                "--change", f"LABEL {STAND_IN_LABEL}={STAND_IN_VERSION}",
                str(rootfs), reference,
            )  # fmt: skip

    def make_uv_image(self, reference: str) -> None:
        """FROM scratch with /uv and /uvx, from the musllinux wheel of the tests' own uv."""
        version = run(["uv", "--version"]).stdout.split()[1]
        with tempfile.TemporaryDirectory(dir="/tmp", prefix="ctf-uv-") as scratch:
            context = Path(scratch)
            # pip reads the system's roots, as uv in the build does (see UV_TOML).
            run(["uv", "tool", "run", "--from", "pip", "pip", "download", "--quiet",
                 f"--cert={HOST_CA_BUNDLE}",
                 "--no-deps", "--only-binary=:all:", "--platform=musllinux_1_1_x86_64",
                 "--python-version=3.12", f"--dest={context}", f"uv=={version}"])  # fmt: skip
            wheel = next(context.glob("uv-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.namelist():
                    name = member.rsplit("/", 1)[-1]
                    if "/scripts/" in member and name in ("uv", "uvx"):
                        (context / name).write_bytes(archive.read(member))
                        (context / name).chmod(0o755)
            (context / "Containerfile").write_text(
                f"FROM scratch\nCOPY uv uvx /\nLABEL {STAND_IN_LABEL}={STAND_IN_VERSION}\n"
            )
            self.build_podman("build", "--pull=never", "-t", reference, str(context))

    def build(self, project: Path, tag: str, build_args: dict[str, str] | None = None) -> str:
        """Build the project's Dockerfile unmodified; the image's reference on the host.

        Only a `@sha256:` pin on a base image is dropped: the stand-ins have other digests.
        """
        project = project.resolve()
        if not str(project).startswith("/tmp/"):
            raise ValueError(f"{project}: the build chroot sees the host's /tmp only")
        dockerfile = (project / "Dockerfile").read_text()
        reference = f"localhost/{tag}"
        with building():
            self.ensure_base_images(dockerfile)
            with tempfile.TemporaryDirectory(dir="/tmp", prefix="ctf-build-") as scratch:
                used = project / "Dockerfile"
                if DIGEST.search(dockerfile):
                    used = Path(scratch) / "Dockerfile"
                    used.write_text(DIGEST.sub("", dockerfile))
                self.build_podman(
                    "build", "--format", "docker", "--pull=never",
                    "-v", f"{CHROOT_CONF / 'ca-certificates.crt'}:{HOST_CA_BUNDLE}:ro",
                    "-v", f"{CHROOT_CONF / 'uv.toml'}:/etc/uv/uv.toml:ro",
                    *(f"--build-arg={name}={value}" for name, value in (build_args or {}).items()),
                    "-f", str(used), "-t", reference, str(project),
                )  # fmt: skip
                archive = Path(scratch) / "image.tar"
                self.build_podman(
                    "save", "--format", "docker-archive", "-o", str(archive), reference
                )
                loaded = self.podman("load", "-i", str(archive))
                if loaded.returncode != 0:
                    raise RuntimeError(f"podman load failed:\n{loaded.stderr}")
        self.prune_when_no_build_runs()
        return reference

    def prune_when_no_build_runs(self) -> None:
        """Remove what earlier builds left nameless in the chroot (run after run, it filled the
        disk), unless a build is under way: its steps' images are nameless until it ends."""
        with BUILDS.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            self.build_podman("image", "prune", "--force")

    def load_image(self, archive: Path) -> None:
        """Load an image archive (docker-archive or oci) into the host's podman."""
        loaded = self.podman("load", "-i", str(archive))
        if loaded.returncode != 0:
            raise RuntimeError(f"podman load failed:\n{loaded.stderr}")

    def import_rootfs(self, rootfs: Path, reference: str, *changes: str) -> None:
        """A root file system tarball as an image on the host (`podman import`), with
        Dockerfile instructions (`ENV ...`, `CMD [...]`) applied."""
        arguments = [a for change in changes for a in ("--change", change)]
        imported = self.podman("import", *arguments, str(rootfs), reference)
        if imported.returncode != 0:
            raise RuntimeError(f"podman import failed:\n{imported.stderr}")

    def image_size(self, reference: str, build: bool = False) -> int:
        """The image's size in bytes, as the engine reports it."""
        if build:
            out = self.build_podman("image", "inspect", "--format", "{{.Size}}", reference)
            return int(out.stdout.strip())
        out = self.podman("image", "inspect", "--format", "{{.Size}}", reference)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())


def minbase_tar(suite: str, rootfs: Path, packages: str, *hooks: str) -> Path:
    """A Debian minbase root of `suite` as a tarball, with `packages`, docs and manuals left out
    as the official images leave them out."""
    # The mirror here is a snapshot: sid's Release file has expired, and a stable one may.
    run(["mmdebstrap", "--variant=minbase", f"--include={packages}",
         '--aptopt=Acquire::Check-Valid-Until "false"',
         "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
         *(f"--customize-hook={hook}" for hook in hooks),
         "--format=tar", suite, str(rootfs)], timeout=900)  # fmt: skip
    return rootfs


def pyenv_python_rootfs(minor: str, scratch: Path) -> Path:
    """Trixie minbase, the libraries CPython needs, and pyenv's CPython `minor` in /usr/local."""
    prefix = Path(run(["pyenv", "prefix", minor]).stdout.strip().splitlines()[0])
    cpython = scratch / "cpython"
    shutil.copytree(prefix, cpython, symlinks=True, ignore=official_python_only(prefix))
    return minbase_tar(
        PYTHON_DEBIAN, scratch / "rootfs.tar", PYTHON_RUNTIME,
        f'cp -a {cpython}/. "$1/usr/local/"', 'chroot "$1" ldconfig', LIBRARIES_FOUND,
    )  # fmt: skip


def debian_python_rootfs(minor: str, scratch: Path) -> Path:
    """Minbase of the suite that has `minor` (python_root.py) with Debian's python`minor`, named
    in /usr/local/bin as the official image names its own: python, python3, python3.X."""
    links = [
        f'ln -s /usr/bin/python{minor} "$1/usr/local/bin/{name}"'
        for name in ("python", "python3", f"python{minor}")
    ]
    return minbase_tar(PYTHON_SUITE, scratch / "rootfs.tar", DEBIAN_PYTHON.format(minor), *links)


def official_python_only(prefix: Path):
    """A copytree filter keeping of a pyenv CPython what the official image holds."""

    def ignored(folder: str, names: list[str]) -> set[str]:
        where = Path(folder)
        if where == prefix / "bin":
            return {name for name in names if not CPYTHON_BIN.match(name)}
        if where.name == "site-packages" and where.parent.parent == prefix / "lib":
            return {name for name in names if not BUNDLED.match(name)}
        return {name for name in names if NOT_SHIPPED.match(name)}

    return ignored


def base_images(dockerfile: str) -> set[str]:
    """The images a Dockerfile starts from (FROM, COPY --from), stage names left out."""
    stages = set(re.findall(r"^\s*FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.I | re.M))
    found = [match.group(2) for match in FROM_LINE.finditer(dockerfile)]
    found += COPY_FROM.findall(dockerfile)
    return {canonical(r) for r in found if r not in stages and not r.isdigit()}


def canonical(reference: str) -> str:
    """The full name of an image reference, without a digest pin: python:3.12-slim-trixie is
    docker.io/library/python:3.12-slim-trixie, as a Docker engine reads it."""
    reference = DIGEST.sub("", reference)
    first = reference.split("/", 1)[0]
    if "/" not in reference:
        return f"docker.io/library/{reference}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{reference}"
    return reference


def set_up() -> Engine:
    """Everything the engine needs, made or reused; idempotent, safe to run at once."""
    with locked():
        (CACHE / "containers.conf").write_text(CONTAINERS_CONF)
        make_chroot()
        mount_chroot()
        # Refreshed on each set-up: the machine's roots may change between runs.
        shutil.copyfile(
            HOST_CA_BUNDLE, CHROOT / CHROOT_CONF.relative_to("/") / "ca-certificates.crt"
        )
    return Engine()


@functools.cache
def _engine() -> Engine | str:
    if os.geteuid() != 0:
        return "the build chroot needs root (mounts, chroot)"
    missing = [tool for tool in ("podman", "runc", "mmdebstrap", "pyenv") if not shutil.which(tool)]
    if missing:
        return f"{', '.join(missing)} not on PATH (.ci/run installs them with apt)"
    if not HOST_CA_BUNDLE.exists():
        return f"no {HOST_CA_BUNDLE}"
    try:
        return set_up()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        return f"set-up failed: {error}"


def engine() -> Engine:
    """The engine, set up on first use; skips (or, with CONTAINER_TESTS=required, fails) the
    calling test when there is none to be had here, naming why."""
    found = _engine()
    if isinstance(found, str):
        unavailable(found)
    return found
