#!/usr/bin/env bash
# shellcheck disable=SC2034  # cargo_cmd and cargo_user are for the caller
# Sourced by the scripts that run cargo: finds a Rust toolchain for root or for
# the user who ran sudo, so `sudo ./scripts/X.sh` and `./scripts/X.sh` as root
# both work with Rust installed by rustup for either of them.
#
# After `find_cargo`, the caller runs "${cargo_cmd[@]}" ARGS...: cargo itself,
# or cargo as $SUDO_USER (runuser) when they own the clone, so that target/ stays
# theirs. $cargo_user says which user builds (empty: the current one).
#
# When only $SUDO_USER has Rust but root must run cargo (a clone root owns, or
# the tests), their toolchain is used in place, read-only (RUSTUP_HOME), while
# root keeps its own cargo home for downloads and installed tools.

cargo_cmd=()
cargo_user=

_home_of() { getent passwd "$1" | cut -d: -f6; }

find_cargo() { # [REPO]: the clone, to decide whether to build as $SUDO_USER
    local repo=${1:-} h user_home
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && [ "$(id -u)" -eq 0 ]; then
        user_home=$(_home_of "$SUDO_USER")
    fi
    # The invoking user's clone, and they have Rust: build as them.
    if [ -n "${user_home:-}" ] && [ -n "$repo" ] && [ "$(stat -c %U "$repo")" = "$SUDO_USER" ] &&
        [ -x "$user_home/.cargo/bin/cargo" ] && [ "${ST_CARGO_AS_ROOT:-0}" != 1 ]; then
        cargo_user=$SUDO_USER
        cargo_cmd=(runuser -u "$SUDO_USER" -- env HOME="$user_home"
            PATH="$user_home/.cargo/bin:$PATH" cargo)
        return 0
    fi
    if command -v cargo >/dev/null 2>&1; then
        cargo_cmd=("$(command -v cargo)")
        return 0
    fi
    for h in "${HOME:-/root}" /root; do
        if [ -x "$h/.cargo/bin/cargo" ]; then
            export PATH=$h/.cargo/bin:$PATH
            cargo_cmd=("$h/.cargo/bin/cargo")
            return 0
        fi
    done
    if [ -n "${user_home:-}" ] && [ -x "$user_home/.cargo/bin/cargo" ]; then
        export PATH=$user_home/.cargo/bin:$PATH
        if [ -d "$user_home/.rustup" ] && [ -z "${RUSTUP_HOME:-}" ]; then
            export RUSTUP_HOME=$user_home/.rustup
        fi
        cargo_cmd=("$user_home/.cargo/bin/cargo")
        return 0
    fi
    return 1
}
