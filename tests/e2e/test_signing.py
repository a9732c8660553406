"""The verifying double catches a proxy that signs with the wrong key, so the passing
signature checks elsewhere mean something."""

from __future__ import annotations

from e2e.conftest import start_test_proxy
from support import stack
from support.proxy_client import wait_for_audit
from support.sdk import run_client

# A valid base64 key that is not the emulator key the double expects.
WRONG_KEY = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw=="


def test_wrong_account_key_fails_verification(processes, certs, run_dir, cosmos_server, oidc, shop, token_for):
    record_path = run_dir / "wrong-key-double-requests.jsonl"
    checking_double = stack.start_cosmos_double(processes, certs, cosmos_server.url, record_path, name="wrong-key-double")
    proxy = start_test_proxy(
        processes, certs, run_dir, "cosmoguard-wrong-key", checking_double.url, oidc.issuer, key=WRONG_KEY
    )
    try:
        results = run_client("python", proxy.url, [{"op": "read_account"}], certs.ca_file, token=token_for("orders-app"))
    finally:
        processes.stop(proxy.process)
        processes.stop(checking_double.process)

    assert not results[0]["ok"], results
    audit = wait_for_audit(proxy, 0, lambda line: line.get("operation") == "read_account")
    assert audit, "no audit line for the account read"
    assert audit[0]["status"] >= 400, audit[0]
    records = stack.read_records(record_path)
    assert records, "the proxy sent nothing upstream"
    assert all(not record["verified"] for record in records), records
    assert all(record["auth_type"] == "master" for record in records)
    assert "signature does not match" in records[0]["reason"]
