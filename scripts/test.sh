#!/usr/bin/env bash
# The test command of session-timeout:
#
#   ./scripts/test.sh          # as root
#   sudo ./scripts/test.sh     # through sudo
#
# Installs the Debian packages the tests need (scripts/deps.sh), then runs the
# linters, builds the .deb packages (scripts/package.sh) and lints them, and
# runs every test, end-to-end and package tests included (they need root: they
# run their own sshd, create users and kill processes; the package tests run in
# a private mount namespace with overlays, tests/package/in-namespace.sh). Exits non-zero on the first
# failure. Extra arguments go to the test binaries, e.g. `--nocapture` or a
# test name filter.
set -euo pipefail

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root: the end-to-end tests run sshd and kill processes (as root: $0; or: sudo $0)"

cd "$(dirname "$(readlink -f "$0")")/.."
repo=$(pwd)

# Rust from root's rustup or, through sudo, from the invoking user's (used in
# place); cargo runs as root either way, since the tests need root.
export ST_CARGO_AS_ROOT=1
# shellcheck source=scripts/cargo-env.sh
. scripts/cargo-env.sh
find_cargo "$repo" || die "cargo not found: install Rust (rustup) for root or for the user running sudo"

# The end-to-end tests run target/debug/timeoutctl as unprivileged test users.
# A clone below a directory they cannot enter (/root is 0700) builds into a
# target directory they can reach instead.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
    d=$repo
    while [ "$d" != / ]; do
        if [ "$(( 0$(stat -c %a "$d") & 01 ))" -eq 0 ]; then
            CARGO_TARGET_DIR=/var/tmp/session-timeout-target-$(printf '%s' "$repo" | sha256sum | cut -c1-12)
            export CARGO_TARGET_DIR
            mkdir -p "$CARGO_TARGET_DIR"
            chmod 0755 "$CARGO_TARGET_DIR"
            printf 'test.sh: %s is not reachable by other users; building into %s\n' "$d" "$CARGO_TARGET_DIR"
            break
        fi
        d=$(dirname "$d")
    done
fi

step "scripts/deps.sh"
./scripts/deps.sh

step "shellcheck"
shellcheck scripts/*.sh .ci/run tests/package/*.sh debian/timeoutd.init \
    debian/timeoutd/* debian/libpam-session-timeout/*

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build --workspace"
cargo build --workspace

# The release binaries are built once, here; the package tests install these
# packages (tests/tests/install/package.rs) and never rebuild them.
step "scripts/package.sh"
./scripts/package.sh

step "lintian (errors and warnings fail; justified ones are overridden in debian/)"
lintian --fail-on error,warning --display-info "${CARGO_TARGET_DIR:-target}"/debian/*.deb

# The end-to-end tests mostly wait (idle limits, grace periods): run many at
# once. Every test binary runs even after one fails, so a red run shows every
# failure; the command still fails.
threads=${TEST_THREADS:-16}
step "cargo test --workspace --no-fail-fast -- --test-threads=$threads${*:+ $*}"
cargo test --workspace --no-fail-fast -- --test-threads="$threads" "$@"
./scripts/fuzz.sh  # cargo-fuzz: each target FUZZ_SECONDS (default 60)

step "all checks passed"
