#!/usr/bin/env bash
# Reverses scripts/install.sh.
#
#   ./scripts/uninstall.sh [--purge]     # as root (or through sudo)
#   ./scripts/uninstall.sh --files [--destdir DIR]
#
# Options:
#   --purge         also delete /etc/session-timeout.toml and the daemon's
#                   state (apt-get purge); without it they are kept.
#   --files         only undo an `install.sh --files` copy (below).
#   --destdir DIR   (implies --files) uninstall from below DIR instead of /
#                   (also: DESTDIR=DIR in the environment). Never stops anything.
#   -h, --help      this text.
#
# Packages installed by install.sh are removed with apt-get (remove stops the
# daemon and takes the PAM profile out of common-session and common-account).
# Then, if install.sh --files copied files here: stops the daemon (systemd, or
# the PID in /run/session-timeout/timeoutd.pid), removes the line carrying
# "# session-timeout:managed" from /etc/pam.d/sshd, then the files and
# directories listed in /var/lib/session-timeout/install-manifest. A file
# changed since install (such as an edited /etc/session-timeout.toml) is left
# in place and reported, and so is a directory that is not empty.
set -euo pipefail

readonly MARKER='# session-timeout:managed'
readonly PAM_FILE=/etc/pam.d/sshd
readonly STATE_DIR=/var/lib/session-timeout
readonly MANIFEST=$STATE_DIR/install-manifest
readonly UNIT=/lib/systemd/system/timeoutd.service
readonly PIDFILE=/run/session-timeout/timeoutd.pid

say() { printf 'uninstall: %s\n' "$*"; }
die() { printf 'uninstall: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

destdir=${DESTDIR-}
files=0
purge=0
[ -z "$destdir" ] || files=1
while [ $# -gt 0 ]; do
    case $1 in
        --files) files=1; shift ;;
        --purge) purge=1; shift ;;
        --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$2; files=1; shift 2 ;;
        --destdir=*) destdir=${1#*=}; files=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

destdir=${destdir%"${destdir##*[!/]}"}
if [ -n "$destdir" ]; then
    destdir=$(cd "$destdir" 2>/dev/null && pwd) || die "no such directory: $destdir"
    [ "$destdir" != / ] || destdir=
fi
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
    die "uninstalling from / needs root (try: sudo $0)"
fi
[ -z "$destdir" ] || say "DESTDIR=$destdir"

# --- the packages ---------------------------------------------------------------
if [ "$files" = 0 ] && command -v dpkg-query >/dev/null 2>&1; then
    pkgs=()
    for p in libpam-session-timeout timeoutd; do
        case $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | tr -d ' ') in
            ii | iU | iF | iH) pkgs+=("$p") ;;
            rc) [ "$purge" = 0 ] || pkgs+=("$p") ;;
        esac
    done
    if [ "${#pkgs[@]}" -gt 0 ]; then
        if [ "$purge" = 1 ]; then action=purge; else action=remove; fi
        say "apt-get $action ${pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get -y -q "$action" "${pkgs[@]}"
    else
        say "no session-timeout packages installed"
    fi
    if [ ! -f "$MANIFEST" ] && ! grep -qF -- "$MARKER" "$PAM_FILE" 2>/dev/null; then
        say "done"
        exit 0
    fi
fi

manifest=()
if [ -f "$destdir$MANIFEST" ]; then
    mapfile -t manifest <"$destdir$MANIFEST"
else
    say "no $destdir$MANIFEST: only the PAM line (if any) will be removed"
fi

in_manifest() { # KIND PATH
    local e k p
    for e in "${manifest[@]}"; do
        read -r k _ p <<<"$e"
        if [ "$k" = "$1" ] && [ "$p" = "$2" ]; then return 0; fi
    done
    return 1
}

# --- the PAM line, first: logins must not name a module that is gone -------

pam_file=$destdir$PAM_FILE
if [ -f "$pam_file" ] && grep -qF -- "$MARKER" "$pam_file"; then
    tmp=$(dirname "$pam_file")/.$(basename "$pam_file").session-timeout-tmp
    grep -vF -- "$MARKER" "$pam_file" >"$tmp" || true
    if in_manifest n "$PAM_FILE" && [ -s "$tmp" ] && [ -z "$(tail -c 1 "$tmp")" ]; then
        # install.sh ended the last line with a newline; take it back.
        truncate -s -1 "$tmp"
    fi
    # Replaced atomically (sshd never reads a half-written file), with the
    # original's owner and mode.
    chown --reference="$pam_file" "$tmp"
    chmod --reference="$pam_file" "$tmp"
    mv -f "$tmp" "$pam_file"
    say "removed the session-timeout line from $pam_file"
else
    say "no session-timeout line in $pam_file"
fi

# --- stop the daemon --------------------------------------------------------

if [ -n "$destdir" ]; then
    say "DESTDIR set: not stopping any daemon"
elif [ -d /run/systemd/system ] && systemctl cat timeoutd.service >/dev/null 2>&1; then
    say "systemctl disable --now timeoutd"
    systemctl disable --now timeoutd || true
else
    pid=$(tr -dc 0-9 <"$PIDFILE" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = timeoutd ]; then
        say "stopping timeoutd (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 50); do
            [ -d "/proc/$pid" ] || break
            sleep 0.2
        done
        if [ -d "/proc/$pid" ]; then
            say "timeoutd (pid $pid) did not exit in 10 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    else
        say "no running timeoutd"
    fi
    # Without systemd, install.sh made /run/session-timeout; the daemon should
    # remove its own pid file, but one left by a killed daemon is stale.
    if [ -n "$pid" ] && [ ! -d "/proc/$pid" ]; then rm -f "$PIDFILE"; fi
    rmdir /run/session-timeout 2>/dev/null || true
fi

# --- files, then directories, newest first ----------------------------------

for e in "${manifest[@]}"; do
    read -r kind hash path <<<"$e"
    [ "$kind" = f ] || continue
    f=$destdir$path
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then
        say "already gone: $f"
    elif [ ! -f "$f" ] || [ "$(sha256sum <"$f" | cut -d' ' -f1)" != "$hash" ]; then
        say "KEPT $f: it changed since it was installed"
    else
        rm -f "$f"
        say "removed $f"
    fi
done

rm -f "$destdir$MANIFEST" "$destdir$MANIFEST.tmp"

for ((i = ${#manifest[@]} - 1; i >= 0; i--)); do
    read -r kind hash path <<<"${manifest[$i]}"
    [ "$kind" = d ] || continue
    d=$destdir$path
    if [ ! -d "$d" ]; then
        say "already gone: $d"
    elif rmdir "$d" 2>/dev/null; then
        say "removed directory $d"
    else
        say "KEPT directory $d: not empty"
    fi
done

if [ -z "$destdir" ] && [ -d /run/systemd/system ] && in_manifest f "$UNIT"; then
    systemctl daemon-reload || true
fi
say "done"
