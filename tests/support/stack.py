"""Start the test stand-ins (cosmosdb-server, the OIDC provider, the verifying double and
the proxy) under a ProcessManager, and talk to them."""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.certs import CertificateSet
from support.cosmos_double import EMULATOR_KEY, read_records
from support.processes import TESTS_DIR, ProcessManager, ManagedProcess, free_port, http_status, port_accepts

REPO_DIR = TESTS_DIR.parent
NODE_MODULES = TESTS_DIR / "node_modules"
SUPPORT_DIR = TESTS_DIR / "support"


def cosmoguard_binary() -> Path:
    """Return the proxy binary under test: $COSMOGUARD_BIN or target/debug/cosmoguard."""
    configured = os.environ.get("COSMOGUARD_BIN")
    if configured:
        return Path(configured)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_DIR / "target")
    return target_dir / "debug" / "cosmoguard"


@dataclass
class CosmosServer:
    """A running cosmosdb-server."""

    url: str
    process: ManagedProcess


@dataclass
class OidcProvider:
    """A running oauth2-mock-server with its token-minting control listener."""

    issuer: str
    control_url: str
    process: ManagedProcess

    def mint(
        self,
        claims: dict[str, Any],
        alg: str = "RS256",
        expires_in: int = 3600,
        not_before: int = -10,
        defect: str | None = None,
    ) -> str:
        """Return a token signed by the provider with `claims` merged over its defaults
        (iss, iat, exp, nbf). A claim set to None is removed."""
        request = {"claims": claims, "alg": alg, "expires_in": expires_in, "not_before": not_before}
        if defect:
            request["defect"] = defect
        data = json.dumps(request).encode("utf-8")
        http_request = urllib.request.Request(
            f"{self.control_url}/mint", data=data, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(http_request, timeout=10) as response:
            return json.load(response)["token"]


@dataclass
class CosmosDouble:
    """A running signature-verifying upstream double."""

    url: str
    record_path: Path
    process: ManagedProcess

    def records(self) -> list[dict]:
        return read_records(self.record_path)

    def settled_count(self, quiet: float = 0.25, timeout: float = 3.0) -> int:
        """Return the number of records once it has not changed for `quiet` seconds. The
        double writes a record after it has sent the response, so the last request of an
        earlier test can still be recorded after that test finished."""
        deadline = time.monotonic() + timeout
        count = len(self.records())
        while time.monotonic() < deadline:
            time.sleep(quiet)
            current = len(self.records())
            if current == count:
                return count
            count = current
        return count


@dataclass
class Proxy:
    """A running cosmoguard proxy."""

    url: str
    admin_url: str
    config_path: Path
    audit_path: Path
    process: ManagedProcess
    audit_offset: int = field(default=0)

    def audit_lines(self) -> list[dict]:
        """Return every audit line written so far. A last line without its newline is still
        being written, so it is left for the next call."""
        if not self.audit_path.exists():
            return []
        with self.audit_path.open(encoding="utf-8") as file:
            return [json.loads(line) for line in file if line.endswith("\n") and line.strip()]


def start_cosmosdb_server(manager: ProcessManager, certs: CertificateSet | None, name: str = "cosmosdb-server") -> CosmosServer:
    """Start cosmosdb-server on 127.0.0.1, over HTTPS with the upstream certificate, or over
    plain HTTP when `certs` is None."""
    port = free_port()
    argv = ["node", str(SUPPORT_DIR / "cosmosdb_server.js"), "--host", "127.0.0.1", "--port", str(port)]
    if certs is None:
        argv.append("--no-ssl")
        scheme = "http"
    else:
        argv += ["--cert", str(certs.upstream_cert), "--key", str(certs.upstream_key)]
        scheme = "https"
    process = manager.start(name, argv, ready=lambda: port_accepts("127.0.0.1", port), cwd=TESTS_DIR)
    return CosmosServer(url=f"{scheme}://127.0.0.1:{port}", process=process)


def start_oidc_provider(
    manager: ProcessManager,
    name: str = "oidc-provider",
    port: int | None = None,
    control_port: int | None = None,
    kid_suffix: str = "",
) -> OidcProvider:
    """Start oauth2-mock-server on 127.0.0.1 with its control listener. Restarting on the
    same ports with another `kid_suffix` is a key rotation: same issuer, new keys."""
    port = port or free_port()
    control_port = control_port or free_port()
    argv = [
        "node",
        str(SUPPORT_DIR / "oidc_provider.mjs"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--control-port",
        str(control_port),
        f"--kid-suffix={kid_suffix}",
    ]
    control_url = f"http://127.0.0.1:{control_port}"
    process = manager.start(name, argv, ready=lambda: http_status(f"{control_url}/healthz") == 200, cwd=TESTS_DIR)
    return OidcProvider(issuer=f"http://127.0.0.1:{port}", control_url=control_url, process=process)


def start_cosmos_double(
    manager: ProcessManager,
    certs: CertificateSet,
    upstream_url: str,
    record_path: Path,
    host: str = "127.0.0.1",
    advertise_self: bool = False,
    fault: str | None = None,
    name: str = "cosmos-double",
) -> CosmosDouble:
    """Start the verifying double over HTTPS in front of `upstream_url`.

    On 127.0.0.1 it serves the upstream certificate, on 127.0.0.2 the proxy certificate
    (the only test certificates valid for those addresses)."""
    port = free_port(host)
    cert, key = (certs.proxy_cert, certs.proxy_key) if host == "127.0.0.2" else (certs.upstream_cert, certs.upstream_key)
    argv = [
        sys.executable,
        "-m",
        "support.cosmos_double",
        "--listen",
        f"{host}:{port}",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--upstream",
        upstream_url,
        "--upstream-ca",
        str(certs.ca_file),
        "--account-key",
        EMULATOR_KEY,
        "--record",
        str(record_path),
    ]
    if advertise_self:
        argv.append("--advertise-self")
    if fault:
        argv += ["--fault", fault]
    process = manager.start(name, argv, ready=lambda: port_accepts(host, port), cwd=TESTS_DIR)
    return CosmosDouble(url=f"https://{host}:{port}", record_path=record_path, process=process)


def _toml_string(value: str) -> str:
    return json.dumps(value)


def write_proxy_config(
    directory: Path,
    certs: CertificateSet,
    upstream_url: str,
    issuer: str,
    policy_file: Path,
    audiences: list[str] | None = None,
    key: str = EMULATOR_KEY,
    issuer_settings: str = "",
) -> tuple[Path, str, str]:
    """Write a cosmoguard.toml and the account key into `directory`.

    Returns (config path, public URL, admin URL). The data listener is on 127.0.0.2 so
    that the Python SDK verifies its certificate (it skips verification for 127.0.0.1
    and localhost)."""
    directory.mkdir(parents=True, exist_ok=True)
    data_port = free_port("127.0.0.2")
    admin_port = free_port()
    public_url = f"https://127.0.0.2:{data_port}"
    admin_url = f"http://127.0.0.1:{admin_port}"
    key_file = directory / "account.key"
    key_file.write_text(key + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    audiences = audiences if audiences is not None else [public_url, "api://cosmoguard"]
    config = f"""# Written by the end-to-end test fixtures.
[listener]
address = "127.0.0.2:{data_port}"
public_url = {_toml_string(public_url)}

[listener.tls]
certificate = {_toml_string(str(certs.proxy_cert))}
private_key = {_toml_string(str(certs.proxy_key))}

[admin]
address = "127.0.0.1:{admin_port}"

[upstream]
endpoint = {_toml_string(upstream_url)}
ca_file = {_toml_string(str(certs.ca_file))}
connect_timeout = "5s"
response_timeout = "60s"

[upstream.credential]
kind = "key"
key_file = "account.key"

[[issuers]]
issuer = {_toml_string(issuer)}
audiences = {json.dumps(audiences)}
{issuer_settings}

[policy]
file = {_toml_string(str(policy_file))}

[audit]
file = "audit.jsonl"

[dangerous]
plain_http_issuers = true
"""
    config_path = directory / "cosmoguard.toml"
    config_path.write_text(config, encoding="utf-8")
    return config_path, public_url, admin_url


def start_proxy(
    manager: ProcessManager,
    config_path: Path,
    public_url: str,
    admin_url: str,
    name: str = "cosmoguard",
    extra_env: Mapping[str, str] | None = None,
) -> Proxy:
    """Start `cosmoguard serve --config config_path`, with `extra_env` added to its
    environment, and wait until /readyz returns 200."""
    argv = [str(cosmoguard_binary()), "serve", "--config", str(config_path)]
    env = {"RUST_LOG": os.environ.get("RUST_LOG", "info"), "RUST_BACKTRACE": "1", "NO_COLOR": "1"}
    env.update(extra_env or {})
    process = manager.start(
        name,
        argv,
        ready=lambda: http_status(f"{admin_url}/readyz") == 200,
        env=env,
        cwd=config_path.parent,
    )
    return Proxy(
        url=public_url,
        admin_url=admin_url,
        config_path=config_path,
        audit_path=config_path.parent / "audit.jsonl",
        process=process,
    )


def tls_context(certs: CertificateSet) -> ssl.SSLContext:
    """Return a client TLS context that trusts only the test CA."""
    return ssl.create_default_context(cafile=str(certs.ca_file))
