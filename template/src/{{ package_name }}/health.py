"""Liveness and readiness: what /healthz and /readyz answer, and what `manage check` reports."""

import asyncio
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Literal, TypedDict

# The user and password of a URL (scheme://user:password@host), masked wherever a message
# quotes one: a report is shown to whoever asks /readyz.
URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")
MAX_REASON = 300


class Report(TypedDict):
    """The readiness report: overall, and each backing service's state ("ok" or why not)."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


def liveness() -> dict[str, str]:
    """The process is up; no backing service is consulted."""
    return {"status": "ok"}


def describe_failure(error: BaseException, *, detail: bool = True) -> str:
    """Why a probe failed, in one line: the underlying error's class and, in detail, its first
    line, which may name the service's host and port."""
    # Client libraries wrap the driver's error (SQLAlchemy's `raise ... from`): report that one.
    cause = error.__cause__ or error
    if not detail:
        return type(cause).__name__
    first_line = next(iter(str(cause).strip().splitlines()), "")
    reason = URL_CREDENTIALS.sub("***@", first_line)[:MAX_REASON]
    return f"{type(cause).__name__}: {reason}" if reason else type(cause).__name__


def readiness(
    probes: Mapping[str, Callable[[], object]], *, detail: bool = True
) -> tuple[bool, Report]:
    """Whether every backing service answers, with each one's state (with `detail`, each
    failure's message too: for `manage check`, run by an operator, not for /readyz)."""
    checks: dict[str, str] = {}
    for service, probe in probes.items():
        try:
            probe()
        except Exception as error:  # noqa: BLE001 - any failure means "not ready", never a crash
            checks[service] = f"unavailable: {describe_failure(error, detail=detail)}"
        else:
            checks[service] = "ok"
    ready = all(state == "ok" for state in checks.values())
    return ready, {"status": "ok" if ready else "unavailable", "checks": checks}


async def bounded_readiness(
    probes: Mapping[str, Callable[[], object]], seconds: float, threads: Executor
) -> tuple[bool, Report]:
    """`readiness` for /readyz, with the probes run at once on `threads`; one not done in
    `seconds` failed. Each failure is named by its class alone: the report is answered to
    whoever asks, and a message may name internal hosts.

    A frozen service never answers and its client may wait for ever: the report does not.
    """
    loop = asyncio.get_running_loop()
    pending = {service: loop.run_in_executor(threads, probe) for service, probe in probes.items()}
    if pending:
        await asyncio.wait(pending.values(), timeout=seconds)

    def outcome(future: asyncio.Future[object]) -> Callable[[], object]:
        def probe() -> object:
            if not future.done():
                future.cancel()
                raise TimeoutError(f"no answer within {seconds:g} s")
            return future.result()

        return probe

    outcomes = {service: outcome(future) for service, future in pending.items()}
    return readiness(outcomes, detail=False)
