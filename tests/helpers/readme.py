"""The shell blocks of a README, read from the file itself so that an edit to it is tested."""

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers.python_root import in_project

FENCED_SH = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def shell_blocks(readme: Path) -> dict[str, list[str]]:
    """Each section's ```sh blocks, by the section's heading."""
    text = readme.read_text()
    headings = [(m.start(), m.group(1).strip()) for m in HEADING.finditer(text)]
    sections: dict[str, list[str]] = {}
    for block in FENCED_SH.finditer(text):
        heading = max((h for h in headings if h[0] < block.start()), default=(0, ""))[1]
        sections.setdefault(heading, []).append(block.group(1))
    return sections


def block_with(blocks: list[str], text: str) -> str:
    """The one block that holds `text`."""
    (found,) = [block for block in blocks if text in block]
    return found


def block_starting(blocks: list[str], text: str) -> str:
    """The one block whose first line begins with `text`."""
    (found,) = [block for block in blocks if block.lstrip().startswith(text)]
    return found


def commands(block: str) -> list[str]:
    """The block's commands, one per line, without comment lines."""
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def dotenv(path: Path) -> dict[str, str]:
    """The variables of a .env file as its runner reads them: the last line of a name wins."""
    variables = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


@dataclass
class Terminal:
    """A shell block running as in a terminal: its own process group, its output in a file."""

    process: subprocess.Popen
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def said(self, message: str) -> bool:
        """Whether a process has written a JSON line with this message (honcho's prefix, its
        time and process name, aside)."""
        for line in self.output.splitlines():
            _, bar, logged = line.partition("| ")
            with contextlib.suppress(ValueError):
                event = json.loads(logged) if bar else None
                if isinstance(event, dict) and event.get("message") == message:
                    return True
        return False

    def ctrl_c(self, timeout: float) -> int:
        """SIGINT to the foreground process group, as Ctrl-C sends it; the exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(self.process.pid)
            self.process.wait()
            raise AssertionError(
                f"still running {timeout} s after Ctrl-C:\n{self.output[-3000:]}"
            ) from None


@contextmanager
def in_terminal(
    popen: Callable[..., subprocess.Popen],
    script: str,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    python: str | None = None,
) -> Iterator[Terminal]:
    """Run `script` with bash -e in `cwd`, on the project's Python there (or `python`, for a
    script that makes the project); whatever is left of it is killed on the way out."""
    with log.open("w") as output:
        process = popen(
            in_project(["bash", "-e", "-c", script], cwd, python), cwd=cwd, env=env, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    terminal = Terminal(process, log)
    try:
        yield terminal
    finally:
        # Only while it runs: once reaped, its pid may already be another process's.
        if process.poll() is None:
            kill_tree(process.pid)
            process.wait()


def answered(
    popen: Callable[..., subprocess.Popen],
    script: str,
    cwd: Path,
    env: dict[str, str],
    answers: list[tuple[str, str]],
    timeout: float,
) -> tuple[int, str]:
    """Run `script` as a user does at a terminal, typing each (prompt, answer)'s answer once a
    line starting with its prompt asks for it. A pseudo-terminal is its controlling terminal,
    so that a password prompt reads with echo off, as from a keyboard. Its status and output."""
    controller, terminal = pty.openpty()

    def take_the_terminal() -> None:  # in the child, in a session of its own by then
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = popen(
        in_project(["bash", "-e", "-c", script], cwd), cwd=cwd, env=env, stdin=terminal,
        stdout=terminal, stderr=terminal, start_new_session=True, preexec_fn=take_the_terminal,
    )  # fmt: skip
    os.close(terminal)
    output, pending = "", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([controller], [], [], 0.2)[0]:
                continue
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # every end of the terminal closed: the script is done
                break
            output += chunk.decode(errors="replace")
            shown = output.rsplit("\n", 1)[-1].strip()
            if pending and shown.startswith(pending[0][0]) and shown.endswith(":"):
                os.write(controller, (pending.pop(0)[1] + "\n").encode())
        else:
            raise AssertionError(f"still running after {timeout} s:\n{output[-3000:]}")
        return process.wait(timeout=10), output
    finally:
        os.close(controller)
        if process.poll() is None:
            kill_tree(process.pid)
            process.wait()


def kill_tree(pid: int) -> None:
    """SIGKILL a running, unreaped process and every descendant, in whatever session or group
    they have moved to (honcho starts each Procfile process in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    doomed, queue = [], [pid]
    while queue:
        doomed.append(current := queue.pop())
        queue.extend(children.get(current, []))
    for each in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def worker_ready(project: Path) -> str:
    """The line the project's worker logs once it takes jobs: its worker.py's READY."""
    (worker,) = (project / "src").glob("*/worker.py")
    found = re.search(r'^READY = "(.+)"$', worker.read_text(), re.MULTILINE)
    assert found, f"{worker} has no READY line"
    return found[1]
