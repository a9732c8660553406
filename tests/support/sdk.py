"""Run the SDK client scripts in tests/clients/ as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.processes import TESTS_DIR

CLIENT_TIMEOUT_SECONDS = 180


class ClientError(RuntimeError):
    """A client script crashed or printed something other than one result per operation."""


def run_client(
    sdk: str,
    endpoint: str,
    ops: list[dict],
    ca_file: Path | None,
    token: str | None = None,
    key: str | None = None,
) -> list[dict]:
    """Run `ops` with the "python" or "node" SDK client and return one result per operation."""
    if sdk == "python":
        argv = [sys.executable, "-m", "clients.cosmos_py"]
    elif sdk == "node":
        argv = ["node", str(TESTS_DIR / "clients" / "cosmos_node.js")]
    else:
        raise ValueError(f"unknown SDK {sdk!r}; use python or node")
    argv += ["--endpoint", endpoint]
    if ca_file is not None:
        argv += ["--ca-file", str(ca_file)]
    if token is not None:
        argv += ["--token", token]
    else:
        argv += ["--key", key or ""]
    completed = subprocess.run(
        argv,
        input=json.dumps(ops),
        capture_output=True,
        text=True,
        cwd=TESTS_DIR,
        timeout=CLIENT_TIMEOUT_SECONDS,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or len(lines) != len(ops):
        raise ClientError(
            f"{sdk} client exited with status {completed.returncode} and printed {len(lines)} "
            f"results for {len(ops)} operations\nstdout:\n{completed.stdout[-3000:]}\n"
            f"stderr:\n{completed.stderr[-3000:]}"
        )
    return [json.loads(line) for line in lines]
