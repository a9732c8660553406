"""Session fixtures shared by the support tests and the end-to-end tests: a run directory,
a process manager, the test CA, cosmosdb-server, the OIDC provider and the verifying
double."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import stack
from support.certs import CertificateSet, generate
from support.processes import RUN_ROOT, ProcessManager


@pytest.fixture(scope="session")
def run_dir() -> Path:
    """Directory for this session's logs, certificates and records: tests/.run/<session>/."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    directory = RUN_ROOT / f"{stamp}-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="session")
def processes(run_dir: Path) -> Iterator[ProcessManager]:
    """Process manager whose processes are all stopped by PID when the session ends."""
    manager = ProcessManager(run_dir / "logs")
    try:
        yield manager
    finally:
        manager.stop_all()


@pytest.fixture(scope="session")
def certs(run_dir: Path) -> CertificateSet:
    return generate(run_dir / "pki")


@pytest.fixture(scope="session")
def cosmos_server(processes: ProcessManager, certs: CertificateSet) -> stack.CosmosServer:
    return stack.start_cosmosdb_server(processes, certs)


@pytest.fixture(scope="session")
def oidc(processes: ProcessManager) -> stack.OidcProvider:
    return stack.start_oidc_provider(processes)


@pytest.fixture(scope="session")
def double(
    processes: ProcessManager, certs: CertificateSet, cosmos_server: stack.CosmosServer, run_dir: Path
) -> stack.CosmosDouble:
    """The verifying double in front of cosmosdb-server, on 127.0.0.1."""
    return stack.start_cosmos_double(processes, certs, cosmos_server.url, run_dir / "double-requests.jsonl")
