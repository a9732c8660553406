#!/usr/bin/env bash
# Build the release binary of Cosmoguard. The container image (deploy/Dockerfile) and CI
# both run this script, so the image and the binary CI tests are built with the same
# command and flags.
#
# Usage: deploy/build-release.sh [--output DIR]
#   --output DIR  also copy the binary to DIR/cosmoguard (the Dockerfile uses this to take
#                 the binary out of a cache-mounted target directory).
# Cargo's own environment applies, CARGO_TARGET_DIR included. The binary is left at
# "${CARGO_TARGET_DIR:-<repository>/target}/release/cosmoguard".
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
output_dir=""

while (($# > 0)); do
    case "$1" in
        --output)
            if (($# < 2)); then
                echo "build-release: --output needs a directory" >&2
                exit 2
            fi
            output_dir="$2"
            shift 2
            ;;
        -h | --help)
            sed -n '2,10p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "build-release: unknown argument '$1'; see --help" >&2
            exit 2
            ;;
    esac
done

cd "$repo_root"
# --locked: fail instead of updating Cargo.lock, so the image holds exactly the
# dependency versions that were reviewed and tested.
cargo build --release --locked -p cosmoguard

target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
binary="$target_dir/release/cosmoguard"
if [[ ! -x $binary ]]; then
    echo "build-release: cargo finished but $binary is missing" >&2
    exit 1
fi

if [[ -n $output_dir ]]; then
    mkdir -p "$output_dir"
    cp "$binary" "$output_dir/cosmoguard"
    echo "build-release: copied $binary to $output_dir/cosmoguard"
else
    echo "build-release: built $binary"
fi
