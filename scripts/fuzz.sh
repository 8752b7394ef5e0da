#!/usr/bin/env bash
# Fuzzes the frame decoder, the config parser and the module's SSH_AUTH_INFO_0 and
# certificate readers with cargo-fuzz (libFuzzer):
#
#   ./scripts/fuzz.sh                  # each target for FUZZ_SECONDS (default 60)
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh frame
#
# Targets live in fuzz/ (its own workspace, outside the main one). Each run
# starts from the committed seed corpus fuzz/corpus/<target>/ and writes the
# inputs it finds to a scratch directory, so the committed corpus only changes
# by hand. A crash, a panic, a leak or a timeout fails the script; libFuzzer
# saves the input under fuzz/artifacts/<target>/ and prints how to replay it.
#
# Only stable Rust is available: cargo-fuzz's nightly-only flags
# (-Zsanitizer=address) are enabled on the stable compiler with
# RUSTC_BOOTSTRAP=1, for this build only.
set -euo pipefail

die() { printf 'fuzz.sh: error: %s\n' "$*" >&2; exit 1; }

cd "$(dirname "$(readlink -f "$0")")/.."

if ! command -v cargo >/dev/null 2>&1; then
    export PATH=${HOME:-/root}/.cargo/bin:/root/.cargo/bin:$PATH
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found (PATH=$PATH)"

seconds=${FUZZ_SECONDS:-60}
case $seconds in
    '' | *[!0-9]*) die "FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    printf '==> cargo install --locked cargo-fuzz\n'
    cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(frame config authinfo)
fi

export RUSTC_BOOTSTRAP=1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/st-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

for t in "${targets[@]}"; do
    [ -d "fuzz/corpus/$t" ] || die "no seed corpus fuzz/corpus/$t"
    mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
    printf '==> cargo fuzz run %s (%ss)\n' "$t" "$seconds"
    # -max_total_time bounds the run; -timeout fails an input that takes over
    # 10 s; -rss_limit_mb fails a leak or an allocation bomb. libFuzzer prints
    # a line per new input: keep them in a log, show the end of it.
    log=$scratch/$t.log
    if (cd fuzz && cargo fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1) >"$log" 2>&1; then
        grep -E '^(Done |stat::)' "$log" || tail -n 5 "$log"
    else
        tail -n 80 "$log" >&2
        die "target $t failed: see the report above; the input is in fuzz/artifacts/$t/"
    fi
done
printf '==> fuzzing passed: %s, %ss each\n' "${targets[*]}" "$seconds"
