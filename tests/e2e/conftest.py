"""Fixtures for the end-to-end tests: the proxy in front of the verifying double, callers'
tokens, and direct access to cosmosdb-server for seeding and checking data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.cosmos import CosmosClient, PartitionKey

from support import stack
from support.certs import CertificateSet
from support.cosmos_double import EMULATOR_KEY
from support.processes import ProcessManager

TEST_POLICY = Path(__file__).resolve().parent / "policy.toml"
AUDIENCE = "api://cosmoguard"


def require_binary() -> Path:
    binary = stack.cosmoguard_binary()
    if not binary.exists():
        pytest.skip(f"the proxy binary {binary} does not exist; run `cargo build` first")
    return binary


@pytest.fixture(scope="session")
def direct(cosmos_server: stack.CosmosServer) -> CosmosClient:
    """A master-key client straight to cosmosdb-server, for seeding and checking data."""
    return CosmosClient(cosmos_server.url, credential=EMULATOR_KEY, retry_total=1)


@pytest.fixture(scope="session")
def shop(direct: CosmosClient):
    """The shop database with its orders (partition key /customerId) and tenants
    (partition key /tenantId) containers, created directly on cosmosdb-server."""
    database = direct.create_database_if_not_exists("shop")
    database.create_container_if_not_exists("orders", PartitionKey(path="/customerId"))
    database.create_container_if_not_exists("tenants", PartitionKey(path="/tenantId"))
    return database


def start_test_proxy(
    processes: ProcessManager,
    certs: CertificateSet,
    run_dir: Path,
    name: str,
    upstream_url: str,
    issuer: str,
    policy_file: Path = TEST_POLICY,
    key: str = EMULATOR_KEY,
    issuer_settings: str = "",
) -> stack.Proxy:
    require_binary()
    config_path, public_url, admin_url = stack.write_proxy_config(
        run_dir / name, certs, upstream_url, issuer, policy_file, key=key, issuer_settings=issuer_settings
    )
    return stack.start_proxy(processes, config_path, public_url, admin_url, name=name)


@pytest.fixture(scope="session")
def proxy(processes, certs, run_dir, double, oidc, shop) -> stack.Proxy:
    """The proxy under test, in front of the verifying double, with the test policy."""
    return start_test_proxy(processes, certs, run_dir, "cosmoguard", double.url, oidc.issuer)


@pytest.fixture(scope="session")
def token_for(oidc: stack.OidcProvider) -> Callable[..., str]:
    """Mint a valid token for `subject` with the proxy's audience and any extra claims."""

    def mint(subject: str, alg: str = "RS256", **claims) -> str:
        return oidc.mint({"sub": subject, "aud": AUDIENCE, "name": f"{subject} (test)", **claims}, alg=alg)

    return mint


@pytest.fixture
def audit_start(proxy: stack.Proxy) -> int:
    """Index of the first audit line written by the current test."""
    return len(proxy.audit_lines())


@pytest.fixture
def double_start(double: stack.CosmosDouble) -> int:
    """Index of the first double record written by the current test."""
    return double.settled_count()


@pytest.fixture
def orders(shop):
    return shop.get_container_client("orders")


@pytest.fixture
def tenants(shop):
    return shop.get_container_client("tenants")


@pytest.fixture(params=["python", "node"])
def sdk(request) -> Iterator[str]:
    yield request.param
