"""Fixtures for the hostile-input tests: the proxy over TLS and over plain HTTP in front of
the verifying double, and databases whose names a path trick could reach. The checks
here show that a rejected request got the right status, body and audit line, and that it
never reached the double."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.cosmos import CosmosClient, PartitionKey

from support import stack
from support.certs import CertificateSet
from support.cosmos_double import EMULATOR_KEY
from support.processes import ProcessManager
from support.proxy_client import wait_for_audit

HOSTILE_POLICY = Path(__file__).resolve().parent / "policy.toml"
AUDIENCE = "api://cosmoguard"
ALLOWED_SUBJECT = "hostile-app"

# Databases the tests address: `a` is the only one the policy grants in full, `colls` and
# `docs` are named like keywords, `b` is what path tricks try to reach.
DATABASES = ("a", "b", "colls", "docs")


def require_binary() -> Path:
    binary = stack.cosmoguard_binary()
    if not binary.exists():
        pytest.skip(f"the proxy binary {binary} does not exist; run `cargo build` first")
    return binary


def write_config(
    run_dir: Path,
    certs: CertificateSet,
    name: str,
    upstream_url: str,
    issuer: str,
    policy_file: Path = HOSTILE_POLICY,
    plain: bool = False,
    edits: Callable[[str], str] | None = None,
) -> tuple[Path, str, str]:
    """Write a proxy configuration through the harness, then adapt it: `plain` serves the
    data listener over HTTP, and `edits` rewrites the text (timeouts, audit file)."""
    config_path, public_url, admin_url = stack.write_proxy_config(run_dir / name, certs, upstream_url, issuer, policy_file)
    text = config_path.read_text(encoding="utf-8")
    if plain:
        text = re.sub(r"\[listener\.tls\]\n(?:[^\n\[]+\n)+", "", text)
        public_url = public_url.replace("https://", "http://")
        text = re.sub(r'public_url = "https://', 'public_url = "http://', text)
        text = text.replace("[dangerous]\n", "[dangerous]\nplain_http_listener = true\n")
    if edits:
        text = edits(text)
    config_path.write_text(text, encoding="utf-8")
    return config_path, public_url, admin_url


def start_hostile_proxy(
    processes: ProcessManager,
    certs: CertificateSet,
    run_dir: Path,
    name: str,
    upstream_url: str,
    issuer: str,
    **options,
) -> stack.Proxy:
    require_binary()
    config_path, public_url, admin_url = write_config(run_dir, certs, name, upstream_url, issuer, **options)
    return stack.start_proxy(processes, config_path, public_url, admin_url, name=name)


@pytest.fixture(scope="session")
def seeded(cosmos_server: stack.CosmosServer) -> CosmosClient:
    """cosmosdb-server with databases a, b, colls and docs, each with container `c`
    (partition key /pk) holding item `i` in partition `p1`."""
    client = CosmosClient(cosmos_server.url, credential=EMULATOR_KEY, retry_total=1)
    for name in DATABASES:
        database = client.create_database_if_not_exists(name)
        container = database.create_container_if_not_exists("c", PartitionKey(path="/pk"))
        container.upsert_item({"id": "i", "pk": "p1", "database": name})
    return client


@pytest.fixture(scope="session")
def hostile_proxy(processes, certs, run_dir, double, oidc, seeded) -> stack.Proxy:
    """The proxy over TLS on 127.0.0.2, with the hostile-input policy."""
    return start_hostile_proxy(processes, certs, run_dir, "cosmoguard-hostile", double.url, oidc.issuer)


@pytest.fixture(scope="session")
def plain_proxy(processes, certs, run_dir, double, oidc, seeded) -> stack.Proxy:
    """The same proxy over plain HTTP, where nothing but the proxy parses the request."""
    return start_hostile_proxy(processes, certs, run_dir, "cosmoguard-hostile-plain", double.url, oidc.issuer, plain=True)


@pytest.fixture(params=["tls", "plain"])
def any_proxy(request, hostile_proxy, plain_proxy) -> stack.Proxy:
    return hostile_proxy if request.param == "tls" else plain_proxy


@pytest.fixture(scope="session")
def token(oidc: stack.OidcProvider) -> str:
    """A valid token for the caller that the policy grants database a."""
    return oidc.mint({"sub": ALLOWED_SUBJECT, "aud": AUDIENCE})


class Watch:
    """The audit log and the double's record from a starting point on, so a test can
    check what one request left behind."""

    def __init__(self, proxy: stack.Proxy, double: stack.CosmosDouble) -> None:
        self.proxy = proxy
        self.double = double
        self.audit_start = len(proxy.audit_lines())
        self.double_start = double.settled_count()

    def forwarded(self) -> list[dict]:
        """Return the double's records written since the watch started."""
        return self.double.records()[self.double_start :]

    def wait_forwarded(self, count: int, timeout: float = 5.0) -> list[dict]:
        """Return the double's new records once there are `count` of them, or after
        `timeout` seconds. The double writes a record only after it has responded, so a
        test that expects a forwarded request waits here, and its record cannot land in
        the next test's window."""
        deadline = time.monotonic() + timeout
        while len(self.forwarded()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.forwarded()

    def audit(self, predicate: Callable[[dict], bool] = lambda line: True, count: int = 1) -> list[dict]:
        return wait_for_audit(self.proxy, self.audit_start, predicate, count=count)

    def assert_nothing_forwarded(self) -> None:
        # The double records a request after it has responded, so wait briefly for a late one.
        time.sleep(0.2)
        forwarded = self.forwarded()
        assert forwarded == [], f"requests reached the double: {[(r['method'], r['path']) for r in forwarded]}"


@pytest.fixture
def watch(double) -> Callable[[stack.Proxy], Watch]:
    return lambda proxy: Watch(proxy, double)


def assert_cosmos_error(status: int, body: bytes, expected: int) -> dict:
    """Check the status and that the body is the proxy's Cosmos-shaped JSON error."""
    assert status == expected, (status, body[:300])
    try:
        parsed = json.loads(body)
    except ValueError:
        pytest.fail(f"status {status} has no JSON error body: {body[:200]!r}")
    assert isinstance(parsed.get("code"), str) and parsed["code"], parsed
    assert isinstance(parsed.get("message"), str) and parsed["message"], parsed
    return parsed


def assert_audited(watch: Watch, status: int, decision: str, reason: str | None = None, path: str | None = None) -> dict:
    """Check that one audit line records the rejection and return it."""
    lines = watch.audit(lambda line: line.get("status") == status and (path is None or line.get("path") == path))
    assert lines, f"no audit line with status {status}" + (f" for {path!r}" if path else "")
    line = lines[-1]
    assert line["decision"] == decision, line
    if reason is not None:
        assert line["reason"] == reason, line
    return line
