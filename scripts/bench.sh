#!/usr/bin/env bash
# The full benchmark run of docs/BENCHMARKS.md, from one build:
#
#   sudo ./scripts/bench.sh            # build once, run st-bench twice,
#                                      # write the results into docs/BENCHMARKS.md
#   sudo ./scripts/bench.sh --runs 1   # more st-bench options are passed on
#
# The JSON of both runs goes to target/bench-results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench: must run as root (try: sudo $0)" >&2; exit 1; }
cargo build --release --workspace
cargo build --release -p timeoutctl --example report_corpus
start=$(date +%s)
status=0
target/release/st-bench --runs 2 --write-doc docs/BENCHMARKS.md \
    --out target/bench-results.json --markdown target/bench-results.md "$@" || status=$?
echo "bench: st-bench took $(( ($(date +%s) - start) / 60 )) min, exit status $status" >&2
exit "$status"
