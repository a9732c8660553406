"""Soak test: steady load through the proxy for a fixed time while its resident memory
and open file descriptors are sampled, failing when either keeps growing.

Everything runs on 127.0.0.1 and is stopped by PID on exit: a keep-alive backend that
responds to every request with a small JSON body, a JWKS server for a key made at start, the
proxy (plain HTTP on both sides, so the load measures the proxy rather than TLS), and
`wrk` at a fixed connection count. Run through bench/soak.sh."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from hostile.forge import KeyServer, RsaKey, rs256_token  # noqa: E402

ACCOUNT_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
SAMPLE_SECONDS = 10
AUDIENCE = "api://cosmoguard-soak"
POLICY = """version = 1

[[rules]]
id = "soak-reads"
description = "The soak caller reads items of the soak container"
actions = ["readMetadata", "items/read"]
scopes = ["/dbs/soak/colls/c"]
principal = { subject = "soak" }
"""


class Backend(BaseHTTPRequestHandler):
    """Responds to every request at once with a small body and keeps the connection open."""

    protocol_version = "HTTP/1.1"
    body = json.dumps({"id": "i", "pk": "p1", "_rid": "AAAAAA==", "_etag": "\"0\""}).encode()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("x-ms-request-charge", "1")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(directory: Path, backend_url: str, issuer: str, jwks_url: str) -> tuple[Path, str, str]:
    data_port, admin_port = free_port(), free_port()
    (directory / "account.key").write_text(ACCOUNT_KEY + "\n")
    (directory / "policy.toml").write_text(POLICY)
    config = f"""[listener]
address = "127.0.0.1:{data_port}"
public_url = "http://127.0.0.1:{data_port}"

[admin]
address = "127.0.0.1:{admin_port}"

[upstream]
endpoint = "{backend_url}"
response_timeout = "10s"

[upstream.credential]
kind = "key"
key_file = "account.key"

[[issuers]]
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
jwks_url = "{jwks_url}"

[policy]
file = "policy.toml"

[audit]
file = "audit.jsonl"

[dangerous]
plain_http_listener = true
plain_http_issuers = true
plain_http_upstream = true
"""
    path = directory / "cosmoguard.toml"
    path.write_text(config)
    return path, f"http://127.0.0.1:{data_port}", f"http://127.0.0.1:{admin_port}"


def wait_ready(admin_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{admin_url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"soak: the proxy was not ready after {timeout:.0f} s")


def sample(pid: int) -> tuple[int, int]:
    """Return (resident memory in KiB, open file descriptors) of `pid`."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return rss_kib, len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value units per minute."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    denominator = sum((x - mean_x) ** 2 for x, _ in points) or 1.0
    return 60 * sum((x - mean_x) * (y - mean_y) for x, y in points) / denominator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=600, help="seconds of steady load (default 600)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--csv", type=Path, default=REPO / "target" / "soak.csv", help="where the samples go")
    parser.add_argument("--binary", type=Path, default=REPO / "target" / "release" / "cosmoguard", help="the proxy binary")
    parser.add_argument("--max-rss-kib-per-minute", type=float, default=512.0, help="allowed RSS growth over the second half")
    parser.add_argument("--max-fds-per-minute", type=float, default=1.0, help="allowed open-fd growth over the second half")
    arguments = parser.parse_args()
    arguments.binary = arguments.binary.resolve()
    if not arguments.binary.exists():
        raise SystemExit(f"soak: {arguments.binary} does not exist; build it with `cargo build --release -p cosmoguard`")

    backend = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    key = RsaKey("soak-1")
    keys = KeyServer([key.public_jwk()])
    issuer = f"{keys.url}/soak"
    token = rs256_token(key, {"alg": "RS256", "kid": key.kid}, {"iss": issuer, "sub": "soak", "aud": AUDIENCE, "exp": int(time.time()) + 86400})

    work = Path(tempfile.mkdtemp(prefix="cosmoguard-soak-"))
    config, public_url, admin_url = write_config(work, f"http://127.0.0.1:{backend.server_address[1]}", issuer, f"{keys.url}/jwks")
    log = (work / "proxy.log").open("wb")
    proxy = subprocess.Popen([str(arguments.binary), "serve", "--config", str(config)], cwd=work, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
    load = None
    try:
        wait_ready(admin_url)
        script = work / "headers.lua"
        script.write_text(
            'wrk.headers["Authorization"] = "type=aad&ver=1.0&sig=' + token + '"\n'
            'wrk.headers["x-ms-documentdb-partitionkey"] = \'["p1"]\'\n'
            'wrk.headers["x-ms-version"] = "2020-07-15"\n'
        )
        load = subprocess.Popen(
            ["wrk", "-t", str(arguments.threads), "-c", str(arguments.connections), "-d", f"{arguments.duration}s", "-s", str(script), f"{public_url}/dbs/soak/colls/c/docs/i"],
            stdout=subprocess.PIPE,
            text=True,
        )
        arguments.csv.parent.mkdir(parents=True, exist_ok=True)
        samples: list[tuple[float, int, int]] = []
        started = time.monotonic()
        with arguments.csv.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["seconds", "rss_kib", "open_fds"])
            while load.poll() is None:
                elapsed = time.monotonic() - started
                rss, fds = sample(proxy.pid)
                samples.append((elapsed, rss, fds))
                writer.writerow([f"{elapsed:.0f}", rss, fds])
                file.flush()
                time.sleep(SAMPLE_SECONDS)
        print(load.stdout.read() if load.stdout else "")
        if proxy.poll() is not None:
            print(f"soak: FAILED: the proxy exited with status {proxy.returncode}; log {work / 'proxy.log'}")
            return 1
        # The first half is warm-up (allocator arenas, connection pools, token cache).
        second_half = samples[len(samples) // 2 :]
        if len(second_half) < 3:
            print("soak: too few samples to judge a trend; run for at least 60 s")
            return 2
        rss_slope = slope_per_minute([(seconds, rss) for seconds, rss, _ in second_half])
        fd_slope = slope_per_minute([(seconds, fds) for seconds, _, fds in second_half])
        print(f"soak: {len(samples)} samples in {arguments.csv}")
        print(f"soak: RSS {samples[0][1]} -> {samples[-1][1]} KiB, second-half trend {rss_slope:+.1f} KiB/min")
        print(f"soak: open fds {samples[0][2]} -> {samples[-1][2]}, second-half trend {fd_slope:+.2f} /min")
        if rss_slope > arguments.max_rss_kib_per_minute or fd_slope > arguments.max_fds_per_minute:
            print("soak: FAILED: resident memory or open descriptors kept growing")
            return 1
        print("soak: passed")
        return 0
    finally:
        if load and load.poll() is None:
            load.send_signal(signal.SIGTERM)
            load.wait(timeout=10)
        if proxy.poll() is None:
            proxy.send_signal(signal.SIGTERM)
            try:
                proxy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait()
        log.close()
        keys.close()
        backend.shutdown()


if __name__ == "__main__":
    sys.exit(main())
