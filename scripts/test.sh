#!/usr/bin/env bash
# The test command of session-timeout:
#
#   sudo ./scripts/test.sh
#
# Installs the Debian packages the tests need (scripts/deps.sh), then runs the
# linters and every test, end-to-end tests included (they need root: they run
# their own sshd, create users and kill processes). Exits non-zero on the first
# failure. Extra arguments go to the test binaries, e.g. `--nocapture` or a
# test name filter.
set -euo pipefail

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root: the end-to-end tests run sshd and kill processes (try: sudo $0)"

cd "$(dirname "$(readlink -f "$0")")/.."

if ! command -v cargo >/dev/null 2>&1; then
    for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
        if [ -x "$d/cargo" ]; then PATH=$d:$PATH; break; fi
    done
    export PATH
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (PATH=$PATH)"

step "scripts/deps.sh"
./scripts/deps.sh

step "shellcheck"
shellcheck scripts/*.sh .ci/run

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build --workspace"
cargo build --workspace

# The end-to-end tests mostly wait (idle limits, grace periods): run many at once.
threads=${TEST_THREADS:-16}
step "cargo test --workspace -- --test-threads=$threads${*:+ $*}"
cargo test --workspace -- --test-threads="$threads" "$@"
./scripts/fuzz.sh  # cargo-fuzz: each target FUZZ_SECONDS (default 60)

step "all checks passed"
