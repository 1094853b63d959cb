"""Behind a proxy: whose forwarded headers are believed (FORWARDED_ALLOW_IPS), what TLS ending
in front changes (TLS_IN_FRONT), and whom /metrics answers (METRICS_ALLOW_IPS), on the web
process as it is deployed. The proxy in these tests is the test itself, at 127.0.0.1."""

import http.client
import subprocess
from collections.abc import Iterator

import pytest

from .test_web_process import serving

# An address other than the tests': a proxy there is not the one in these tests.
ELSEWHERE = "10.255.255.1"
# A client in a private network, as a Prometheus in the cluster is.
PRIVATE = "10.1.2.3"
# A client on the internet.
PUBLIC = "203.0.113.7"


@pytest.fixture
def behind_this_proxy(shared_web: tuple[subprocess.Popen[str], int]) -> int:
    """The session's shared web process (conftest.py): behind a TLS-ending proxy it trusts
    (127.0.0.1, the default); METRICS_ALLOW_IPS default."""
    return shared_web[1]


@pytest.fixture(scope="module")
def behind_another_proxy(required_env: dict[str, str]) -> Iterator[int]:
    """Behind a TLS-ending proxy elsewhere; /metrics for one private address only."""
    variables = {"FORWARDED_ALLOW_IPS": ELSEWHERE, "METRICS_ALLOW_IPS": PRIVATE}
    with serving(required_env, TLS_IN_FRONT="true", **variables) as (_, port):
        yield port


def answer(port: int, path: str, **headers: str) -> http.client.HTTPResponse:
    """GET `path` with these headers (`X_Forwarded_For` for X-Forwarded-For), read whole."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        named = {name.replace("_", "-"): value for name, value in headers.items()}
        connection.request("GET", path, headers=named)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


# The edge's answer (/healthz) and the app's (a path it does not have).
PATHS = ("/healthz", "/no-such-path")


def test_https_forwarded_by_a_trusted_proxy_is_answered_with_hsts_and_nothing_else_is(
    behind_this_proxy: int, behind_another_proxy: int
) -> None:
    for path in PATHS:
        hsts = answer(behind_this_proxy, path, X_Forwarded_Proto="https").getheader(
            "Strict-Transport-Security"
        )
        assert hsts == "max-age=31536000", path
        plain = answer(behind_this_proxy, path, X_Forwarded_Proto="http")
        assert plain.getheader("Strict-Transport-Security") is None, path
        # From a proxy not named, X-Forwarded-Proto is a client's word: the connection is http.
        untrusted = answer(behind_another_proxy, path, X_Forwarded_Proto="https")
        assert untrusted.getheader("Strict-Transport-Security") is None, path


def test_metrics_answer_only_the_clients_metrics_allow_ips_names(
    behind_this_proxy: int, behind_another_proxy: int
) -> None:
    # By default loopback and the private networks, as the trusted proxy names the client.
    assert answer(behind_this_proxy, "/metrics").status == 200
    assert answer(behind_this_proxy, "/metrics", X_Forwarded_For=PRIVATE).status == 200
    assert answer(behind_this_proxy, "/metrics", X_Forwarded_For=PUBLIC).status == 404
    # One address named: this machine is not it, and an untrusted proxy cannot make it so.
    assert answer(behind_another_proxy, "/metrics").status == 404
    assert answer(behind_another_proxy, "/metrics", X_Forwarded_For=PRIVATE).status == 404
