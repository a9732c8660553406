"""`cosmoguard policy check` and `policy explain` on policies whose time windows name a time
zone, run as a policy author runs them, and every command that prints to standard output
run with its output closed early."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from e2e.conftest import require_binary
from support.stack import REPO_DIR

ZONED_POLICY = """version = 1

[[rules]]
id = "support-office-hours"
actions = ["items/read"]
scopes = ["/dbs/shop"]
principal = { groups = ["support"] }
[rules.when]
time_zone = "America/New_York"
not_before = 2027-01-04T09:00:00
[[rules.when.any]]
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
[[rules.when.any]]
time_zone = "Asia/Tokyo"
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
"""

CLAIMS = {"iss": "https://idp.example", "sub": "agent-7", "groups": ["support"]}


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(require_binary()), "policy", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )


def explain(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Explain a read of one order by the support agent under the zoned policy."""
    policy = tmp_path / "policy.toml"
    policy.write_text(ZONED_POLICY, encoding="utf-8")
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(CLAIMS), encoding="utf-8")
    return run(
        "explain", "--policy", str(policy), "--claims", str(claims),
        "--request", "GET /dbs/shop/colls/orders/docs/1",
        "--header", 'x-ms-documentdb-partitionkey:["a"]',
        *arguments,
    )


def explain_at(tmp_path: Path, moment: str) -> dict:
    result = explain(tmp_path, "--at", moment, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_zoned_policy_checks_clean(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(ZONED_POLICY, encoding="utf-8")
    result = run("check", str(policy), "--deny-warnings")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 warnings" in result.stdout


def test_unknown_time_zone_fails_check_with_its_line(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(ZONED_POLICY.replace("Asia/Tokyo", "Asia/Tokio"), encoding="utf-8")
    result = run("check", str(policy))
    assert result.returncode == 1
    assert "policy.toml:15:13: unknown time zone `Asia/Tokio`" in result.stdout + result.stderr


def test_explain_reads_hours_in_each_zone(tmp_path):
    # Monday 2027-01-04: 09:30 in New York, and 23:30 in Tokyo.
    morning = explain_at(tmp_path, "2027-01-04T14:30:00Z")
    assert morning["decision"]["effect"] == "allow", morning
    # The same Monday at 08:30 in New York is before `not_before`, which is New York time.
    early = explain_at(tmp_path, "2027-01-04T08:30:00-05:00")
    assert early["decision"]["effect"] == "deny", early
    # Tuesday 09:30 in Tokyo is Monday 19:30 in New York.
    tokyo = explain_at(tmp_path, "2027-01-05T09:30:00+09:00")
    assert tokyo["decision"]["effect"] == "allow", tokyo
    # Saturday morning in both offices.
    weekend = explain_at(tmp_path, "2027-01-09T10:00:00-05:00")
    assert weekend["decision"]["effect"] == "deny", weekend


def test_explain_rejects_time_without_offset(tmp_path):
    result = explain(tmp_path, "--at", "2027-01-04T09:30:00")
    assert result.returncode == 2
    assert "RFC 3339 date-time with an offset" in result.stderr


def run_into_closed_pipe(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the binary with standard output on a pipe whose read end is already closed, as
    it is once a reader such as `head` has read all it needed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [str(require_binary()), *arguments],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
        )
    finally:
        os.close(write_end)


def test_explain_output_closed_early_exits_cleanly(tmp_path):
    """A reader such as `head` that closes the pipe early ends explain without a panic."""
    policy = tmp_path / "policy.toml"
    policy.write_text(ZONED_POLICY, encoding="utf-8")
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(CLAIMS), encoding="utf-8")
    result = run_into_closed_pipe(
        "policy", "explain", "--policy", str(policy), "--claims", str(claims),
        "--request", "GET /dbs/shop/colls/orders/docs/1", "--at", "2027-01-04T14:30:00Z",
    )
    assert "panicked" not in result.stderr
    assert result.returncode == 0, result.stderr


def test_check_output_closed_early_exits_cleanly(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(ZONED_POLICY, encoding="utf-8")
    result = run_into_closed_pipe("policy", "check", str(policy))
    assert "panicked" not in result.stderr
    assert result.returncode == 0, result.stderr


def test_check_output_closed_early_keeps_failure(tmp_path):
    """A policy with errors still fails the check when its error lines cannot be written."""
    policy = tmp_path / "policy.toml"
    policy.write_text(ZONED_POLICY.replace("Asia/Tokyo", "Asia/Tokio"), encoding="utf-8")
    result = run_into_closed_pipe("policy", "check", str(policy))
    assert "panicked" not in result.stderr
    assert result.returncode == 1, result.stderr
    assert "policy.toml: 1 error" in result.stderr


def test_check_failure_with_both_streams_closed_keeps_status(tmp_path):
    """A failed check still exits 1, not with a panic, when standard error is a closed pipe
    too, as with `2>&1 | head`."""
    policy = tmp_path / "policy.toml"
    policy.write_text(ZONED_POLICY.replace("Asia/Tokyo", "Asia/Tokio"), encoding="utf-8")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [str(require_binary()), "policy", "check", str(policy)],
            stdout=write_end, stderr=write_end, timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1


def test_import_azure_output_closed_early_exits_cleanly():
    examples = REPO_DIR / "policy" / "examples" / "azure"
    result = run_into_closed_pipe(
        "policy", "import-azure",
        "--definitions", str(examples / "role-definitions.json"),
        "--assignments", str(examples / "role-assignments.json"),
    )
    assert "panicked" not in result.stderr
    assert result.returncode == 0, result.stderr


def test_sign_output_closed_early_exits_cleanly():
    result = run_into_closed_pipe(
        "sign", "--key", "a2V5", "--verb", "GET", "--resource-type", "dbs",
        "--resource-link", "dbs/shop", "--date", "Thu, 27 Apr 2017 00:51:12 GMT",
    )
    assert "panicked" not in result.stderr
    assert result.returncode == 0, result.stderr


CONFIG = """[listener]
address = "127.0.0.2:8443"
[listener.tls]
certificate = "proxy.pem"
private_key = "proxy-key.pem"

[upstream]
endpoint = "https://127.0.0.1:8081"
[upstream.credential]
kind = "key"
key_file = "account.key"

[[issuers]]
issuer = "https://127.0.0.1:8080"
audiences = ["api://cosmoguard"]

[policy]
file = "policy.toml"
"""


def test_config_check_output_closed_early_exits_cleanly(tmp_path):
    """`cosmoguard check` on a configuration whose certificates are on another machine."""
    config = tmp_path / "cosmoguard.toml"
    config.write_text(CONFIG, encoding="utf-8")
    (tmp_path / "policy.toml").write_text(ZONED_POLICY, encoding="utf-8")
    result = run_into_closed_pipe("check", "--config", str(config), "--skip-missing-files")
    assert "panicked" not in result.stderr
    assert result.returncode == 0, result.stderr
