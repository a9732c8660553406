#!/usr/bin/env bash
# Soak test: 10 minutes (by default) of steady wrk load through a release build of the
# proxy on 127.0.0.1, sampling its resident memory and open file descriptors every 10 s
# into target/soak.csv. Fails when either grows over the second half of the run.
# Not part of CI: it needs a quiet machine and takes the whole duration.
#
#   bash bench/soak.sh                    # 600 s at 32 connections
#   bash bench/soak.sh --duration 60      # a one-minute dry run
#
# Extra arguments go to bench/soak.py (--connections, --csv, --max-rss-kib-per-minute, ...).
# Needs wrk (Debian package `wrk`) and the test virtual environment (bash tests/install.sh).
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_dir"

command -v wrk >/dev/null || { echo "soak: wrk is missing; install the Debian package wrk" >&2; exit 1; }
[[ -x tests/.venv/bin/python ]] || { echo "soak: tests/.venv is missing; run bash tests/install.sh" >&2; exit 1; }

nice -n 19 cargo build --release -p cosmoguard
exec tests/.venv/bin/python bench/soak.py "$@"
