#!/usr/bin/env bash
# Builds the Debian packages of session-timeout, offline, from this workspace:
#
#   ./scripts/package.sh [--no-build] [--deb-version VERSION]
#
# Writes target/debian/libpam-session-timeout_VERSION_ARCH.deb (the PAM module
# and its pam-auth-update profile) and target/debian/timeoutd_VERSION_ARCH.deb
# (timeoutd, timeoutctl, /etc/session-timeout.toml, the systemd unit, the init
# script, man pages and, when timeoutctl can generate them, shell completions).
# target/ is $CARGO_TARGET_DIR when that is set.
#
# Options:
#   --no-build              package the release binaries already in target/release.
#   --deb-version VERSION   the packages' version (default: the workspace's).
#   -h, --help              this text.
#
# Needs dpkg-dev (dpkg-architecture), gzip, and cargo-deb, which it installs
# with `cargo install --locked` at the pinned version if missing. Runs as any
# user; as root through sudo it builds as $SUDO_USER when they own the clone.
set -euo pipefail

readonly CARGO_DEB_VERSION=3.8.0  # builds with rustc >= 1.85, the workspace's rust-version

say() { printf 'package: %s\n' "$*"; }
die() { printf 'package: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/cargo-env.sh
. "$repo/scripts/cargo-env.sh"

build=1
deb_version=
while [ $# -gt 0 ]; do
    case $1 in
        --no-build) build=0; shift ;;
        --deb-version) [ $# -ge 2 ] || die "--deb-version needs a version"; deb_version=$2; shift 2 ;;
        --deb-version=*) deb_version=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

find_cargo "$repo" || die "cargo not found: install Rust (rustup), for root or for the user running sudo"
command -v dpkg-architecture >/dev/null 2>&1 || die "dpkg-architecture not found (apt-get install dpkg-dev)"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

target=${CARGO_TARGET_DIR:-$repo/target}
out=$target/debian
extra=$target/release/debian-extra   # man pages and completions, as cargo-deb assets

run_cargo() { "${cargo_cmd[@]}" "$@"; }

# Runs a command as the user who builds (so target/ keeps one owner).
as_builder() {
    if [ -n "$cargo_user" ]; then runuser -u "$cargo_user" -- "$@"; else "$@"; fi
}

if ! run_cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
    say "cargo install cargo-deb --version $CARGO_DEB_VERSION --locked"
    run_cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi

packages=(-p timeoutd -p pam_session_timeout)
# timeoutctl may be a crate of its own; its binary lands in target/release either way.
if grep -Eq '"timeoutctl"' "$repo/Cargo.toml"; then packages+=(-p timeoutctl); fi
if [ "$build" = 1 ]; then
    say "cargo build --release ${packages[*]}"
    run_cargo build --release --locked "${packages[@]}"
fi
for f in timeoutd timeoutctl libpam_session_timeout.so; do
    [ -f "$target/release/$f" ] || die "$target/release/$f is missing (run without --no-build)"
done

as_builder rm -rf "$extra"
as_builder mkdir -p "$extra/man" "$extra/completions/bash" "$extra/completions/zsh" "$out"
as_builder rm -f "$out"/*.deb

# --- man pages: markdown to roff (scripts/md2man.awk), gzip -9n ------------
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
date=$(git -C "$repo" log -1 --format=%cs 2>/dev/null || date -u +%F)
for src in docs/man/timeoutd.8.md docs/man/timeoutctl.1.md \
    docs/man/pam_session_timeout.8.md docs/session-timeout.toml.5.md; do
    page=$(basename "$src" .md)
    awk -v date="$date" -v version="$version" -f scripts/md2man.awk "$src" |
        gzip -9n | as_builder tee "$extra/man/$page.gz" >/dev/null
done
say "man pages: $(cd "$extra/man" && echo *)"

# --- shell completions, if timeoutctl can write them --------------------------
timeoutd_variant=()
if "$target/release/timeoutctl" completions bash >"$extra/completions.bash.tmp" 2>/dev/null &&
    "$target/release/timeoutctl" completions zsh >"$extra/completions.zsh.tmp" 2>/dev/null &&
    [ -s "$extra/completions.bash.tmp" ] && [ -s "$extra/completions.zsh.tmp" ]; then
    as_builder tee "$extra/completions/bash/timeoutctl" <"$extra/completions.bash.tmp" >/dev/null
    as_builder tee "$extra/completions/zsh/_timeoutctl" <"$extra/completions.zsh.tmp" >/dev/null
    say "shell completions: bash, zsh"
    timeoutd_variant=(--variant with-completions)
else
    say "notice: this timeoutctl has no 'completions bash|zsh' subcommand; packaging without shell completions"
fi
rm -f "$extra"/completions.*.tmp

# --- the packages --------------------------------------------------------------
deb_args=(--no-build --output "$out")
[ -z "$deb_version" ] || deb_args+=(--deb-version "$deb_version")
say "cargo deb -p timeoutd"
run_cargo deb "${deb_args[@]}" -p timeoutd "${timeoutd_variant[@]}"
say "cargo deb -p pam_session_timeout --multiarch=same"
run_cargo deb "${deb_args[@]}" -p pam_session_timeout --multiarch=same

# cargo-deb writes no DEBIAN/md5sums; add one (dpkg --verify, debsums and
# install.sh's "already installed?" check use it). Conffiles are not listed,
# as dh_md5sums does.
add_md5sums() { # DEB
    local deb=$1 dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/st-package.XXXXXX")
    dpkg-deb -R "$deb" "$dir/root"
    (cd "$dir/root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' |
        LC_ALL=C sort -z | xargs -0 md5sum) >"$dir/root/DEBIAN/md5sums"
    chmod 0644 "$dir/root/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz -b "$dir/root" "$dir/new.deb" >/dev/null
    # The builder (perhaps $SUDO_USER) replaces its own file.
    chmod 0755 "$dir"
    chmod 0644 "$dir/new.deb"
    as_builder cp "$dir/new.deb" "$deb"
    rm -rf "$dir"
}
for deb in "$out"/*.deb; do
    add_md5sums "$deb"
done

# The module must be where this host's libpam looks for it.
pam_deb=$(echo "$out"/libpam-session-timeout_*.deb)
[ -f "$pam_deb" ] || die "no libpam-session-timeout package in $out"
want=./usr/lib/$multiarch/security/pam_session_timeout.so
dpkg-deb -c "$pam_deb" | grep -F " $want" >/dev/null ||
    die "$pam_deb does not hold $want (DEB_HOST_MULTIARCH=$multiarch)"

for deb in "$out"/*.deb; do
    say "built $deb"
done
