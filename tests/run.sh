#!/usr/bin/env bash
# The one test command: install the test dependencies, build the workspace, run the Rust
# tests, then the end-to-end tests. Exits non-zero when any step fails.
# Extra arguments go to pytest, for example `tests/run.sh -k authentication`.
set -uo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_dir" || exit 1

declare -a step_results=()
failed=0

run_step() {
    local name="$1"
    shift
    printf '\n==> %s\n' "$name"
    local started=$SECONDS
    if "$@"; then
        step_results+=("ok      $name ($((SECONDS - started)) s)")
        return 0
    fi
    step_results+=("FAILED  $name ($((SECONDS - started)) s)")
    failed=1
    return 1
}

# A formatting or lint failure does not stop the build and tests, so one run shows every
# failure; a failed install or build does, because nothing after it could run.
if run_step "install test dependencies" bash tests/install.sh; then
    run_step "cargo fmt --check" cargo fmt --all --check
    if run_step "cargo build --workspace" cargo build --workspace --locked; then
        run_step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
        run_step "cargo test --workspace" cargo test --workspace --locked
        run_step "deploy manifests and configs" env COSMOGUARD_BIN="${COSMOGUARD_BIN:-${CARGO_TARGET_DIR:-$repo_dir/target}/debug/cosmoguard}" bash deploy/validate.sh
        run_step "end-to-end tests (pytest)" tests/.venv/bin/pytest tests/ -q -rfEs "$@"
    fi
fi

printf '\n==> summary\n'
for result in "${step_results[@]}"; do
    printf '  %s\n' "$result"
done
if ((failed != 0)); then
    printf 'tests/run.sh: FAILED (logs of the end-to-end processes are under tests/.run/)\n'
    exit 1
fi
printf 'tests/run.sh: all steps passed\n'
