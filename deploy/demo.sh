#!/usr/bin/env bash
# Run the Cosmoguard demo on this machine, on loopback only:
#   1. install the test dependencies that the demo uses (tests/install.sh without the
#      prometheus package) and build the proxy;
#   2. clear deploy/demo/.run/ and generate a throwaway CA and certificates into it;
#   3. start cosmosdb-server (a Cosmos DB stand-in), oauth2-mock-server (an OpenID Connect
#      provider) and the proxy with deploy/demo/cosmoguard.toml and deploy/demo/policy.toml;
#   4. run the Python and Node SDKs through the proxy as four identities, and print what
#      was allowed and denied and the proxy's audit lines.
# Every process it starts is stopped by PID when it exits, also on failure. The run
# directory deploy/demo/.run/ (audit file, logs, configuration, certificates) is kept
# after the demo ends, so the audit file can be read afterwards, and the next run clears it.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tests_dir="$repo_dir/tests"
demo_dir="$repo_dir/deploy/demo"
work_dir="$demo_dir/.run"
python="$tests_dir/.venv/bin/python"
stop_timeout_seconds=5

log() { printf 'demo: %s\n' "$*"; }

declare -a started_pids=()
# Set once this run has cleared and recreated $work_dir, so that a failure before then
# does not point at the previous run's files.
work_dir_created=0
succeeded=0

stop_started_processes() {
    local index pid waited
    for ((index = ${#started_pids[@]} - 1; index >= 0; index--)); do
        pid="${started_pids[index]}"
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while kill -0 "$pid" 2>/dev/null && ((waited < stop_timeout_seconds * 10)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "process $pid did not stop after ${stop_timeout_seconds} s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

on_exit() {
    local status=$?
    stop_started_processes
    if ((succeeded == 1)); then
        log "the audit file is $work_dir/audit.jsonl; logs and configuration are in" \
            "$work_dir until the next run"
    elif ((work_dir_created == 1)); then
        log "failed (status $status); logs and configuration are in $work_dir"
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# Run a command in the background with its output in $work_dir/NAME.log, and remember its PID.
start_process() {
    local name="$1"
    shift
    "$@" >"$work_dir/$name.log" 2>&1 &
    started_pids+=("$!")
    log "started $name (pid $!)"
}

# Wait until URL returns HTTP 200, or fail after 30 s.
wait_for_http() {
    local name="$1" url="$2"
    "$python" - "$name" "$url" <<'PYTHON'
import ssl, sys, time, urllib.request
name, url = sys.argv[1], sys.argv[2]
context = ssl._create_unverified_context()  # Only waits for the port; the demo verifies TLS itself.
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(f"demo: {name} did not answer {url} with 200 within 30 s")
PYTHON
}

wait_for_port() {
    local name="$1" host="$2" port="$3"
    "$python" - "$name" "$host" "$port" <<'PYTHON'
import socket, sys, time
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        socket.create_connection((host, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(f"demo: {name} did not listen on {host}:{port} within 30 s")
PYTHON
}

log "installing the dependencies"
bash "$tests_dir/install.sh" --without-prometheus

cosmoguard="${COSMOGUARD_BIN:-${CARGO_TARGET_DIR:-$repo_dir/target}/debug/cosmoguard}"
if [[ -z ${COSMOGUARD_BIN:-} ]]; then
    log "building the proxy"
    (cd "$repo_dir" && cargo build -p cosmoguard)
fi

rm -rf "$work_dir"
mkdir -p "$work_dir"
work_dir_created=1
log "run directory $work_dir"
(cd "$tests_dir" && "$python" -m support.certs "$work_dir/pki" >/dev/null)

read -r cosmos_port oidc_port mint_port admin_port <<<"$(cd "$tests_dir" && "$python" -c '
from support.processes import free_port
print(free_port(), free_port(), free_port(), free_port())')"
proxy_port="$(cd "$tests_dir" && "$python" -c 'from support.processes import free_port; print(free_port("127.0.0.2"))')"
account_key="$(cd "$tests_dir" && "$python" -c 'from support.cosmos_double import EMULATOR_KEY; print(EMULATOR_KEY)')"

printf '%s\n' "$account_key" >"$work_dir/account.key"
chmod 600 "$work_dir/account.key"
cp "$demo_dir/policy.toml" "$work_dir/policy.toml"
sed -e "s/@PROXY_PORT@/$proxy_port/g" \
    -e "s/@ADMIN_PORT@/$admin_port/g" \
    -e "s/@COSMOS_PORT@/$cosmos_port/g" \
    -e "s/@OIDC_PORT@/$oidc_port/g" \
    "$demo_dir/cosmoguard.toml" >"$work_dir/cosmoguard.toml"

start_process cosmosdb-server node "$tests_dir/support/cosmosdb_server.js" \
    --host 127.0.0.1 --port "$cosmos_port" \
    --cert "$work_dir/pki/upstream.pem" --key "$work_dir/pki/upstream-key.pem"
wait_for_port cosmosdb-server 127.0.0.1 "$cosmos_port"

start_process oidc-provider node "$tests_dir/support/oidc_provider.mjs" \
    --host 127.0.0.1 --port "$oidc_port" --control-port "$mint_port"
wait_for_http oidc-provider "http://127.0.0.1:$mint_port/healthz"

# The operator creates the database and container once, with the account key.
log "creating the shop database and its orders and tenants containers on cosmosdb-server"
seed='[{"op": "create_database", "database": "shop", "if_not_exists": true},
       {"op": "create_container", "database": "shop", "container": "orders",
        "partition_key_path": "/customerId", "if_not_exists": true},
       {"op": "create_container", "database": "shop", "container": "tenants",
        "partition_key_path": "/tenantId", "if_not_exists": true}]'
# The Python SDK never verifies TLS for 127.0.0.1 and warns about it on every request.
seed_results="$(cd "$tests_dir" && printf '%s' "$seed" | PYTHONWARNINGS=ignore "$python" -m clients.cosmos_py \
    --endpoint "https://127.0.0.1:$cosmos_port" --ca-file "$work_dir/pki/ca.pem" --key "$account_key")"
if grep -q '"ok": false' <<<"$seed_results"; then
    printf '%s\n' "$seed_results" >&2
    exit 1
fi

start_process cosmoguard env NO_COLOR=1 "$cosmoguard" serve --config "$work_dir/cosmoguard.toml"
wait_for_http cosmoguard "http://127.0.0.1:$admin_port/readyz"
log "proxy ready at https://127.0.0.2:$proxy_port (admin http://127.0.0.1:$admin_port)"

(cd "$tests_dir" && PYTHONPATH="$tests_dir" "$python" "$demo_dir/run_demo.py" \
    --proxy-url "https://127.0.0.2:$proxy_port" \
    --ca-file "$work_dir/pki/ca.pem" \
    --issuer "http://127.0.0.1:$oidc_port" \
    --mint-url "http://127.0.0.1:$mint_port" \
    --audit "$work_dir/audit.jsonl")
succeeded=1
