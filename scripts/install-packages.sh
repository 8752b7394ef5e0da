#!/usr/bin/env bash
# The packaged install of session-timeout; scripts/install.sh runs it (see
# there). Directly:
#
#   ./scripts/install-packages.sh [--no-build]     # as root
#
# 1. installs the missing build dependencies (scripts/deps.sh --build);
# 2. builds target/debian/*.deb (scripts/package.sh);
# 3. installs them with apt-get, unless the same version with the same files
#    is installed already (an edited /etc/session-timeout.toml is kept);
# 4. pam-auth-update --enable session-timeout, unless enabled;
# 5. starts timeoutd unless it runs (systemd, else /etc/init.d/timeoutd),
#    unless ST_INSTALL_START=0.
# A copy installed earlier by `install.sh --files` is removed first
# (scripts/uninstall.sh), so the module is not in the PAM stack twice.
set -euo pipefail
umask 022

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
[ "$(id -u)" -eq 0 ] || die "installing needs root (as root: ./scripts/install.sh; or: sudo ./scripts/install.sh)"
if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    die "no dpkg/apt-get here: use ./scripts/install.sh --files"
fi

package_args=()
case ${1:-} in
    --no-build) package_args+=(--no-build) ;;
    '') ;;
    *) die "unknown option: $1" ;;
esac

changed=0
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# --- 1. build dependencies -----------------------------------------------------
"$repo/scripts/deps.sh" --build | sed 's/^deps: /install: deps: /'

# --- 2. the packages -------------------------------------------------------------
"$repo/scripts/package.sh" "${package_args[@]}"
target=${CARGO_TARGET_DIR:-$repo/target}
debs=("$target"/debian/*.deb)
if [ "${#debs[@]}" -ne 2 ] || [ ! -f "${debs[0]}" ]; then
    die "expected two packages in $target/debian"
fi

# --- 3. install them, unless they are in place already ---------------------------
# Installed and identical: same version, status ii, and the same md5sums.
in_place() { # DEB
    local deb=$1 name arch version info
    name=$(dpkg-deb -f "$deb" Package)
    arch=$(dpkg-deb -f "$deb" Architecture)
    version=$(dpkg-deb -f "$deb" Version)
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$name:$arch" 2>/dev/null | tr -d ' ')" = "ii$version" ] ||
        return 1
    for info in "/var/lib/dpkg/info/$name:$arch.md5sums" "/var/lib/dpkg/info/$name.md5sums"; do
        if [ -f "$info" ]; then
            cmp -s <(dpkg-deb -I "$deb" md5sums) "$info" && return 0
            return 1
        fi
    done
    return 1
}

to_install=()
for deb in "${debs[@]}"; do
    if in_place "$deb"; then
        say "already installed: $(basename "$deb")"
    else
        to_install+=("$deb")
    fi
done
if [ "${#to_install[@]}" -gt 0 ]; then
    if [ -f /var/lib/session-timeout/install-manifest ]; then
        say "removing the copy installed by install.sh --files first"
        "$repo/scripts/uninstall.sh" --files
    fi
    say "apt-get install ${to_install[*]}"
    # --reinstall: a rebuilt package of the same version still replaces the old.
    apt-get "${apt_opts[@]}" install --reinstall --no-install-recommends "${to_install[@]}"
    changed=1
fi

# --- 4. the PAM profile ------------------------------------------------------------
if grep -Eq '^session[[:space:]]+required[[:space:]]+pam_session_timeout\.so' /etc/pam.d/common-session; then
    say "already enabled: PAM profile session-timeout (common-session, common-account)"
else
    say "pam-auth-update --enable session-timeout"
    pam-auth-update --enable session-timeout
    changed=1
fi

# --- 5. the daemon ---------------------------------------------------------------------
pid_running() {
    local pid
    pid=$(tr -dc 0-9 </run/session-timeout/timeoutd.pid 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = timeoutd ]
}
if [ "${ST_INSTALL_START:-1}" = 0 ]; then
    say "--no-start: not starting the daemon"
elif [ -d /run/systemd/system ]; then
    if systemctl is-enabled --quiet timeoutd && systemctl is-active --quiet timeoutd; then
        say "already running: timeoutd.service"
    else
        say "systemctl enable --now timeoutd"
        systemctl enable --now timeoutd
        changed=1
    fi
elif pid_running; then
    say "already running: timeoutd (pid $(tr -dc 0-9 </run/session-timeout/timeoutd.pid))"
else
    # No systemd, and the package's postinst did not start it (a policy-rc.d
    # that forbids starting services, as containers have, or no runlevel).
    say "/etc/init.d/timeoutd start"
    /etc/init.d/timeoutd start
    pid_running || die "timeoutd did not start: see /var/log/auth.log or journalctl -t timeoutd"
    changed=1
fi

if [ "$changed" = 0 ]; then
    say "done: everything was already installed; nothing changed"
else
    say "done: timeoutd and libpam-session-timeout installed, the PAM profile enabled, the daemon running"
    say "logs: journalctl -t timeoutd, or /var/log/auth.log under rsyslog; policy: /etc/session-timeout.toml"
fi
