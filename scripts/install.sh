#!/usr/bin/env bash
# Installs session-timeout on this host and starts it:
#
#   ./scripts/install.sh          # as root
#   sudo ./scripts/install.sh     # through sudo
#
# On Debian (the default): installs the build dependencies that are missing
# (apt: gcc, libc6-dev, libpam0g-dev, pkg-config, dpkg-dev), builds the two
# packages with scripts/package.sh (which installs cargo-deb if missing),
# installs them with apt-get, enables the PAM profile with
# `pam-auth-update --enable session-timeout` (common-session and
# common-account: sshd, login and su), and starts the daemon (systemd, or the
# init script). Rust comes from root's or $SUDO_USER's rustup (~/.cargo/bin);
# as root through sudo it builds as $SUDO_USER when they own the clone.
# Idempotent: when the built packages are already installed, unchanged, the
# profile enabled and the daemon running, it changes nothing.
#
# Options:
#   --no-build      package the binaries already in target/release.
#   --no-start      do not start the daemon.
#   --files         copy files instead of installing packages (below).
#   --destdir DIR   (implies --files) install below DIR instead of / (also:
#                   DESTDIR=DIR in the environment). Never starts anything.
#   -h, --help      this text.
#
# With --files, the files are copied one by one (for hosts without dpkg, and
# for the tests' scratch roots): the daemon, the module, the sample config,
# the systemd unit, the re-validation PAM service /etc/pam.d/session-timeout
# and one marked PAM line appended to /etc/pam.d/sshd.
# Options for that mode only:
#   --from DIR      take the already-built timeoutd, libpam_session_timeout.so
#                   (and timeoutctl, if there) from DIR; implies --no-build.
#   --pam-dir DIR   PAM module directory (path on the target system). Default:
#                   asked of pkg-config, dpkg-architecture or gcc, e.g.
#                   /lib/x86_64-linux-gnu/security on Debian 12.
# It never overwrites an existing /etc/session-timeout.toml or
# /etc/pam.d/session-timeout and adds the PAM
# line only once. Every file and directory it creates is listed in
# /var/lib/session-timeout/install-manifest, which scripts/uninstall.sh uses to
# remove exactly those.
set -euo pipefail
umask 022

readonly MARKER='# session-timeout:managed'
readonly CONFIG=/etc/session-timeout.toml
readonly PAM_FILE=/etc/pam.d/sshd
readonly REVALIDATE_PAM=/etc/pam.d/session-timeout
readonly STATE_DIR=/var/lib/session-timeout
readonly MANIFEST=$STATE_DIR/install-manifest
readonly UNIT=/lib/systemd/system/timeoutd.service
readonly RUN_DIR=/run/session-timeout
readonly PIDFILE=$RUN_DIR/timeoutd.pid

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)

destdir=${DESTDIR-}
from=
build=1
start=1
pam_dir=
files=0
[ -z "$destdir" ] || files=1
while [ $# -gt 0 ]; do
    case $1 in
        --files) files=1; shift ;;
        --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$2; files=1; shift 2 ;;
        --destdir=*) destdir=${1#*=}; files=1; shift ;;
        --from) [ $# -ge 2 ] || die "--from needs a directory"; from=$2; build=0; shift 2 ;;
        --from=*) from=${1#*=}; build=0; shift ;;
        --no-build) build=0; shift ;;
        --no-start) start=0; shift ;;
        --pam-dir) [ $# -ge 2 ] || die "--pam-dir needs a directory"; pam_dir=$2; shift 2 ;;
        --pam-dir=*) pam_dir=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

# An empty DESTDIR (or "/") means the real system.
destdir=${destdir%"${destdir##*[!/]}"}
if [ -n "$destdir" ]; then
    destdir=$(realpath -m -- "$destdir")
    [ "$destdir" != / ] || destdir=
fi
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    die "installing into / needs root (try: sudo $0)"
fi
[ -z "$destdir" ] || say "DESTDIR=$destdir"

if [ "$files" = 0 ]; then
    if [ -n "$from" ] || [ -n "$pam_dir" ]; then
        die "--from and --pam-dir need --files (the packages decide)"
    fi
    package_args=()
    [ "$build" = 1 ] || package_args+=(--no-build)
    export ST_INSTALL_START=$start
    exec "$repo/scripts/install-packages.sh" "${package_args[@]}"
fi

# --- what to install -------------------------------------------------------

find_cargo() {
    local h
    if command -v cargo >/dev/null 2>&1; then command -v cargo; return; fi
    for h in "${HOME:-/root}" /root; do
        if [ -x "$h/.cargo/bin/cargo" ]; then echo "$h/.cargo/bin/cargo"; return; fi
    done
    return 1
}

if [ "$build" = 1 ]; then
    from=$repo/target/release
    build_user=
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && [ "$(id -u)" -eq 0 ] &&
        [ "$(stat -c %U "$repo")" = "$SUDO_USER" ]; then
        # The checkout belongs to the user who ran sudo: build as them, with
        # their toolchain, so that target/ stays theirs.
        user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        user_env=(env HOME="$user_home" PATH="$user_home/.cargo/bin:$PATH")
        if runuser -u "$SUDO_USER" -- "${user_env[@]}" sh -c 'command -v cargo' >/dev/null 2>&1; then
            build_user=$SUDO_USER
        fi
    fi
    if [ -n "$build_user" ]; then
        say "building as $build_user: cargo build --release --workspace"
        runuser -u "$build_user" -- "${user_env[@]}" \
            cargo build --release --workspace --manifest-path "$repo/Cargo.toml"
    else
        cargo=$(find_cargo) || die "cargo not found (install Rust, or use --no-build --from DIR)"
        say "building: cargo build --release --workspace"
        "$cargo" build --release --workspace --manifest-path "$repo/Cargo.toml"
    fi
elif [ -z "$from" ]; then
    from=$repo/target/release
fi
[ -d "$from" ] || die "no such directory: $from"
from=$(cd "$from" && pwd)
for f in timeoutd libpam_session_timeout.so; do
    [ -f "$from/$f" ] || die "$from/$f is missing (build first, or name the right --from DIR)"
done
say "installing from $from"

if [ -z "$pam_dir" ]; then
    libdir=$(pkg-config --variable=libdir pam 2>/dev/null || true)
    if [ -n "$libdir" ]; then
        pam_dir=$libdir/security
    else
        triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
                  gcc -print-multiarch 2>/dev/null || true)
        [ -n "$triplet" ] || die "cannot tell the PAM module directory: give --pam-dir DIR"
        # Debian 12 keeps modules in /lib/TRIPLET/security, later releases in
        # /usr/lib/TRIPLET/security: take the one that holds pam_unix.so.
        pam_dir=/lib/$triplet/security
        if [ ! -e "$pam_dir/pam_unix.so" ] && [ -e "/usr/lib/$triplet/security/pam_unix.so" ]; then
            pam_dir=/usr/lib/$triplet/security
        fi
    fi
fi
case $pam_dir in /*) ;; *) die "--pam-dir must be an absolute path: $pam_dir" ;; esac
pam_dir=${pam_dir%"${pam_dir##*[!/]}"}
say "PAM module directory: $pam_dir"

pam_line=$(awk '!/^[[:space:]]*(#|$)/ { print; exit }' "$repo/etc/pam.d-sshd.line")
[ -n "$pam_line" ] || die "no PAM line in $repo/etc/pam.d-sshd.line"

# --- the manifest ----------------------------------------------------------
# One entry per line: "f SHA256 PATH" (a file we created), "d - PATH" (a
# directory we created), "n - PATH" (we added a newline to end PATH's last
# line before appending the PAM line). Paths are on the target, without DESTDIR.

manifest=()
if [ -f "$destdir$MANIFEST" ]; then
    mapfile -t manifest <"$destdir$MANIFEST"
fi
manifest_written=0

in_manifest() { # KIND PATH
    local e k p
    for e in "${manifest[@]}"; do
        read -r k _ p <<<"$e"
        if [ "$k" = "$1" ] && [ "$p" = "$2" ]; then return 0; fi
    done
    return 1
}

write_manifest() {
    [ -d "$destdir$STATE_DIR" ] || return 0
    local tmp=$destdir$MANIFEST.tmp
    if [ ${#manifest[@]} -gt 0 ]; then printf '%s\n' "${manifest[@]}" >"$tmp"; else : >"$tmp"; fi
    chmod 0600 "$tmp"
    mv -f "$tmp" "$destdir$MANIFEST"
    manifest_written=1
}

record() { # KIND HASH PATH; replaces an entry of the same kind and path
    local i k p
    for i in "${!manifest[@]}"; do
        read -r k _ p <<<"${manifest[$i]}"
        if [ "$k" = "$1" ] && [ "$p" = "$3" ]; then
            manifest[i]="$1 $2 $3"
            write_manifest
            return
        fi
    done
    manifest+=("$1 $2 $3")
    write_manifest
}

# mkdir -p, recording each directory it creates.
make_dir() { # PATH MODE
    local path=$1 mode=$2 parent
    [ -d "$destdir$path" ] && return 0
    [ -e "$destdir$path" ] && die "$destdir$path exists and is not a directory"
    parent=$(dirname "$path")
    [ "$parent" = "$path" ] || make_dir "$parent" 0755
    mkdir -m "$mode" "$destdir$path"
    chmod "$mode" "$destdir$path"
    say "created directory $destdir$path ($mode)"
    record d - "$path"
}

# Copies SRC to PATH atomically (a running daemon or an sshd that has the
# module mapped keeps its old copy). Records PATH if it did not exist before.
install_file() { # SRC PATH MODE
    local src=$1 path=$2 mode=$3 dst tmp existed=0
    dst=$destdir$path
    make_dir "$(dirname "$path")" 0755
    [ -e "$dst" ] && existed=1
    tmp=$(dirname "$dst")/.$(basename "$dst").install-tmp
    cp -f "$src" "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dst"
    if [ "$existed" = 0 ] || in_manifest f "$path"; then
        record f "$(sha256sum <"$dst" | cut -d' ' -f1)" "$path"
        if [ "$existed" = 1 ]; then say "updated $dst ($mode)"; else say "installed $dst ($mode)"; fi
    else
        say "replaced $dst ($mode; it existed before, so uninstall will leave it)"
    fi
}

# --- install ---------------------------------------------------------------

[ -z "$destdir" ] || mkdir -p "$destdir"

# The state directory first: it holds the manifest.
make_dir "$STATE_DIR" 0700
if [ "$(stat -c %a "$destdir$STATE_DIR")" != 700 ]; then
    chmod 0700 "$destdir$STATE_DIR"
    say "set $destdir$STATE_DIR to 0700"
fi
[ "$manifest_written" = 1 ] || write_manifest

install_file "$from/timeoutd" /usr/sbin/timeoutd 0755
if [ -f "$from/timeoutctl" ]; then
    install_file "$from/timeoutctl" /usr/bin/timeoutctl 0755
else
    say "no timeoutctl in $from; skipped"
fi
install_file "$from/libpam_session_timeout.so" "$pam_dir/pam_session_timeout.so" 0644
install_file "$repo/etc/timeoutd.service" "$UNIT" 0644

if [ -e "$destdir$CONFIG" ]; then
    say "kept the existing $destdir$CONFIG"
else
    install_file "$repo/etc/session-timeout.toml" "$CONFIG" 0644
fi
if [ -e "$destdir$REVALIDATE_PAM" ]; then
    say "kept the existing $destdir$REVALIDATE_PAM"
else
    install_file "$repo/etc/pam.d/session-timeout" "$REVALIDATE_PAM" 0644
fi

# The PAM line goes last among the files, once the module is in place: a
# `required` line naming a missing module would refuse every ssh login.
pam_file=$destdir$PAM_FILE
if [ ! -f "$pam_file" ]; then
    say "WARNING: $pam_file does not exist (is openssh-server installed?); PAM line not added"
elif grep -qF -- "$MARKER" "$pam_file"; then
    say "PAM line already in $pam_file"
elif grep -Eq '^[^#]*pam_session_timeout\.so' "$pam_file"; then
    say "$pam_file already names pam_session_timeout.so (added by hand); left alone"
else
    if [ -s "$pam_file" ] && [ -n "$(tail -c 1 "$pam_file")" ]; then
        printf '\n' >>"$pam_file"
        record n - "$PAM_FILE"
    fi
    # Appended in place: keeps the file's inode, owner and mode.
    printf '%s %s\n' "$pam_line" "$MARKER" >>"$pam_file"
    say "appended to $pam_file: $pam_line"
fi

# --- start -----------------------------------------------------------------

if [ -n "$destdir" ]; then
    say "DESTDIR set: not starting the daemon"
    say "done"
    exit 0
fi
if [ "$start" = 0 ]; then
    say "--no-start: not starting the daemon"
    say "done"
    exit 0
fi

if timeout 10 /usr/sbin/timeoutd --help 2>&1 | grep -q -- '--check-config'; then
    say "checking the config: timeoutd --check-config $CONFIG"
    /usr/sbin/timeoutd --check-config "$CONFIG" || die "$CONFIG is not valid; daemon not (re)started"
else
    say "this timeoutd has no --check-config; config not checked"
fi

# Prints the PID in the pid file if it is a live timeoutd.
running_pid() {
    local pid
    [ -r "$PIDFILE" ] || return 1
    pid=$(tr -dc 0-9 <"$PIDFILE")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = timeoutd ] || return 1
    echo "$pid"
}

if [ -d /run/systemd/system ]; then
    say "systemctl daemon-reload"
    systemctl daemon-reload
    say "systemctl enable timeoutd; systemctl restart timeoutd"
    systemctl enable timeoutd
    systemctl restart timeoutd
    systemctl --no-pager --lines=0 status timeoutd || true
else
    if pid=$(running_pid); then
        say "stopping the running timeoutd (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 50); do
            [ -d "/proc/$pid" ] || break
            sleep 0.2
        done
        if [ -d "/proc/$pid" ]; then
            say "timeoutd (pid $pid) did not exit in 10 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    mkdir -p "$RUN_DIR"
    chmod 0755 "$RUN_DIR"
    say "no systemd: starting /usr/sbin/timeoutd --config $CONFIG (it daemonizes)"
    /usr/sbin/timeoutd --config "$CONFIG" </dev/null || die "timeoutd failed to start (exit $?)"
    for _ in $(seq 25); do
        if pid=$(running_pid); then break; fi
        sleep 0.2
    done
    if pid=$(running_pid); then
        say "timeoutd running, pid $pid"
    else
        say "WARNING: no live timeoutd in $PIDFILE after 5 s"
    fi
    say "note: without systemd nothing starts timeoutd at boot; arrange that yourself"
fi
say "done"
