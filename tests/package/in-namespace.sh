#!/usr/bin/env bash
# Package tests of session-timeout, run where nothing can reach the host:
#
#   unshare --mount --propagation private --pid --fork --mount-proc -- \
#       tests/package/in-namespace.sh packages DEBDIR
#   unshare ... -- tests/package/in-namespace.sh quickstart CLONE
#
# tests/tests/install/package.rs runs it and asserts its output and the host's state.
# The script is pid 1 of its own pid namespace, so every process it starts
# (sshd, rsyslogd, timeoutd, ssh) is killed by the kernel when it exits. It
# mounts a tmpfs on /run and /tmp and an overlay (upper layer on that tmpfs)
# over /etc, /usr, /var, /root and /home: dpkg, apt, useradd and
# pam-auth-update write only into the overlay, which vanishes with the mount
# namespace. Test users (prefix "stpkg") live only in the overlay's /etc/passwd;
# they are also deleted on exit.
#
#   packages: apt-get install of the two .deb files, pam-auth-update, a real
#     sshd (the installed /etc/pam.d/sshd) on a free loopback port, a real
#     rsyslogd writing authpriv to a file, the daemon started by the package's
#     init script (no systemd here); a login registered, warned and ended;
#     `su -` to a revoked user refused; an upgrade while a session is live;
#     remove; purge.
#   quickstart: the build dependencies purged, then scripts/install.sh from a
#     copy of the clone (as a fresh Debian 12 with only Rust would run it),
#     twice; a login ended by the installed daemon.
#   quickstart-sudo: the same through sudo: root has no Rust, the invoking user
#     has (the host root's toolchain, lent read-only), owns the clone, and runs
#     install.sh as sudo would (SUDO_USER, secure_path); then the toolchain
#     lookup of scripts/test.sh under the same conditions.
#
# Each check prints "ok: WHAT"; a failed one prints "FAIL: WHAT" and the logs,
# and exits 1. The last line is "package-test: passed MODE".
# A && B || fail: fail exits, so this is if-then-else here.
# shellcheck disable=SC2015,SC2016
set -euo pipefail
umask 022

R=/run/st-pkg
IDLE=15        # the test policy's idle limit, seconds
WARN=8         # its one warning, seconds before the deadline
GRACE=2
# An idle session ends IDLE..IDLE+8 s after its last input (the kernel's 8 s
# atime steps), plus the grace period, plus slack for a loaded 2-core host.
END_MIN=$IDLE
END_MAX=$((IDLE + 8 + GRACE + 8))

say() { printf '%s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*"
    for f in "$R"/apt-*.log "$R"/auth.log "$R"/sshd.log "$R"/*.out; do
        [ -f "$f" ] || continue
        printf -- '--- %s (last 60 lines)\n' "$f"
        tail -n 60 "$f" | cat -v
    done
    exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
    local limit=$1 what=$2 end
    shift 2
    end=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || fail "$what (not within ${limit}s)"
        sleep 0.2
    done
}

[ "$$" = 1 ] || { echo "in-namespace.sh: must be pid 1 of a new pid namespace (see the header)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "in-namespace.sh: must run as root" >&2; exit 2; }
mode=${1:-}
src=${2:-}
case $mode in
    packages | quickstart | quickstart-sudo) ;;
    *) echo "usage: $0 packages DEBDIR | quickstart CLONE | quickstart-sudo CLONE" >&2; exit 2 ;;
esac
src=$(readlink -f "$src")
[ -d "$src" ] || { echo "in-namespace.sh: no such directory: $src" >&2; exit 2; }

# --- the private world --------------------------------------------------------

say "pidns: $(readlink /proc/self/ns/pid)"
sshd_pam_before=$(sha256sum </etc/pam.d/sshd)

mount -t tmpfs -o mode=0755 st-pkg-run /run
mkdir -p "$R"/upper "$R"/work "$R"/keys "$R"/src /run/sshd /run/lock
chmod 0755 /run/sshd
# The input is copied before /tmp is hidden (it may live there).
if [ "$mode" = packages ]; then
    cp "$src"/*.deb "$R"/src/
else
    tar -C "$src" --exclude=./target --exclude=./fuzz/target -cf - . | tar -C "$R"/src -xf -
fi
if [ "$mode" = quickstart-sudo ]; then
    # The toolchain the sudo user will have: root's rustup, read-only.
    [ -d /root/.rustup ] && [ -x /root/.cargo/bin/cargo ] || fail "quickstart-sudo needs rustup in /root/.rustup"
    mkdir -p "$R/host-rustup"
    mount --bind /root/.rustup "$R/host-rustup"
    mount -o remount,bind,ro "$R/host-rustup"
fi
for d in etc usr var root home; do
    mkdir -p "$R/upper/$d" "$R/work/$d"
    mount -t overlay "st-pkg-$d" -o "lowerdir=/$d,upperdir=$R/upper/$d,workdir=$R/work/$d" "/$d"
done
mount -t tmpfs -o mode=1777 st-pkg-tmp /tmp
ok "private /run, /tmp and overlays over /etc /usr /var /root /home"

# Host packages' services stay down, ours must start: the host's policy-rc.d
# (if any) goes, in the overlay only.
rm -f /usr/sbin/policy-rc.d
# A host booted with sysvinit, in runlevel 2: invoke-rc.d asks runlevel(8),
# which here is systemd's and fails without a running systemd.
rm -f /sbin/runlevel
printf '#!/bin/sh\n# package test: sysvinit runlevel 2\necho "N 2"\n' >/sbin/runlevel
chmod 0755 /sbin/runlevel
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=60)

# Test users: a prefix no real account has, unique per run.
prefix=stpkg$(printf '%04x%04x' "$RANDOM" "$RANDOM")
users=()
cleanup() {
    local u
    for u in "${users[@]}"; do userdel -r "$u" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# Their uids are far above any real or other-test account's: processes in this
# pid namespace are visible from the host's, where another test run's clean-up
# kills the processes of its own users by uid.
next_uid=$((3900000000 + (RANDOM * 32768 + RANDOM) % 10000000 * 10))
make_user() { # NAME [PASSWORD]
    useradd -m -l -u "$next_uid" -U -s /bin/bash "$1"
    next_uid=$((next_uid + 1))
    users+=("$1")
    [ -f "$R/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$R/id_ed25519"
    install -m 0644 "$R/id_ed25519.pub" "$R/keys/$1"
    if [ -n "${2:-}" ]; then
        printf '%s:%s\n' "$1" "$2" | chpasswd
        printf '%s\n' "$2" >"$R/pw-$1"
    fi
}

# --- syslog, sshd, ssh keys -------------------------------------------------------

start_rsyslog() {
    mkdir -p "$R/rsyslog"
    cat >"$R/rsyslog.conf" <<EOF
global(workDirectory="$R/rsyslog")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$R/log")
authpriv.* action(type="omfile" file="$R/auth.log")
EOF
    rsyslogd -n -f "$R/rsyslog.conf" -i "$R/rsyslog.pid" >"$R/rsyslogd.log" 2>&1 &
    wait_for 10 "rsyslogd listens on $R/log" test -S "$R/log"
    ok "rsyslogd (pid $!) writes authpriv to $R/auth.log"
}

free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 20000))
        if [ -z "$(ss -Htln "sport = :$p")" ]; then echo "$p"; return; fi
    done
    fail "no free loopback port"
}

start_sshd() {
    ssh-keygen -q -t ed25519 -N '' -f "$R/ssh_host_ed25519_key"
    [ -f "$R/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$R/id_ed25519"
    port=$(free_port)
    cat >"$R/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $R/ssh_host_ed25519_key
PidFile $R/sshd.pid
UsePAM yes
AuthorizedKeysFile $R/keys/%u
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PrintMotd no
UseDNS no
EOF
    # Started as /usr/sbin/sshd: PAM service "sshd", the installed /etc/pam.d/sshd.
    /usr/sbin/sshd -D -e -f "$R/sshd_config" >"$R/sshd.log" 2>&1 &
    sshd_pid=$!
    wait_for 10 "sshd listens on 127.0.0.1:$port" sh -c "ss -Htln 'sport = :$port' | grep -q ."
    ok "sshd (pid $sshd_pid) on 127.0.0.1:$port, PAM service sshd"
}

ssh_opts() {
    printf '%s\n' -i "$R/id_ed25519" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
}

# login NAME USER: an interactive `ssh -tt` whose input is a FIFO the test
# writes to (nothing written: the session is idle). Sets NAME_pid, NAME_t0,
# and fd NAME_fd for typing.
login() {
    local name=$1 user=$2 fd
    mkfifo "$R/$name.in"
    exec {fd}<>"$R/$name.in"
    eval "${name}_fd=$fd"
    eval "${name}_t0=$(now)"
    mapfile -t opts < <(ssh_opts)
    ssh -tt "${opts[@]}" "$user@127.0.0.1" <"$R/$name.in" >"$R/$name.out" 2>&1 &
    eval "${name}_pid=$!"
}
type_in() { # NAME TEXT
    local fd
    eval "fd=\${$1_fd}"
    printf '%s\n' "$2" >&"$fd"
}
output_has() { grep -qF -- "$2" "$R/$1.out"; }
logged() { grep -E -- "$1" "$R/auth.log"; }
alive() { kill -0 "$1" 2>/dev/null; }

# ended NAME WHAT: waits for the login to end, checks it ended on time.
ended_on_time() {
    local name=$1 what=$2 pid t0 t
    eval "pid=\${${name}_pid} t0=\${${name}_t0}"
    wait_for $((END_MAX + 5)) "$what: the session ends" sh -c "! kill -0 $pid"
    t=$(elapsed "$t0" "$(now)")
    awk -v t="$t" -v lo="$END_MIN" -v hi="$END_MAX" 'BEGIN { exit !(t >= lo && t <= hi) }' ||
        fail "$what: ended ${t}s after login, outside ${END_MIN}..${END_MAX}s"
    ok "$what: ended ${t}s after login (bounds ${END_MIN}..${END_MAX}s)"
}

test_config() {
    cat <<EOF
# session-timeout package test policy
[daemon]
socket = "/run/session-timeout/timeoutd.sock"
syslog = "$R/log"
state_dir = "/var/lib/session-timeout"

[defaults]
idle = "${IDLE}s"
max = "12h"
warn = ["${WARN}s"]
grace = "${GRACE}s"
EOF
}

daemon_pid() { tr -dc 0-9 </run/session-timeout/timeoutd.pid 2>/dev/null; }
daemon_running() {
    local p
    p=$(daemon_pid) && [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = timeoutd ]
}
no_daemon() { ! pgrep -x timeoutd >/dev/null; }
pkg_status() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' '; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

# Leftovers of ours in the overlay's upper layers (what dpkg & co. wrote),
# without logs and caches that merely mention the packages.
leftovers() {
    (cd "$R/upper" && find . -path ./var/log -prune -o -path ./var/cache -prune -o \
        -path ./var/lib/dpkg/status-old -prune -o -path ./var/lib/apt -prune -o \
        \( -iname '*timeout*' -print \))
    grep -rlF -e pam_session_timeout -e session-timeout "$R/upper/etc/pam.d" "$R/upper/var/lib/pam" 2>/dev/null || true
}

# --- packages ------------------------------------------------------------------------

check_pam_profile_enabled() {
    grep -E '^session[[:space:]]+required[[:space:]]+pam_session_timeout\.so' /etc/pam.d/common-session >/dev/null ||
        fail "common-session has the session line"
    grep -E '^account[[:space:]]+required[[:space:]]+pam_session_timeout\.so' /etc/pam.d/common-account >/dev/null ||
        fail "common-account has the account line"
    ! grep -F pam_session_timeout /etc/pam.d/common-session-noninteractive >/dev/null ||
        fail "common-session-noninteractive (cron) must not have the module"
    [ "$(sha256sum </etc/pam.d/sshd)" = "$sshd_pam_before" ] || fail "/etc/pam.d/sshd must not change"
    # pam_loginuid comes before "@include common-session" in sshd and login.
    for svc in sshd login; do
        [ -f "/etc/pam.d/$svc" ] || continue
        awk '/pam_loginuid\.so/ && !l { l = NR } /^@include common-session$/ && !c { c = NR }
             END { exit !(l && c && l < c) }' "/etc/pam.d/$svc" ||
            fail "/etc/pam.d/$svc: pam_loginuid before @include common-session"
    done
    grep -E '^@include common-session$' /etc/pam.d/su >/dev/null || fail "/etc/pam.d/su includes common-session"
    # pam_systemd (libpam-systemd, same priority, ordered by name) comes first,
    # so a login is already in its logind scope when it registers.
    if grep -q 'pam_systemd\.so' /etc/pam.d/common-session; then
        awk '/pam_systemd\.so/ && !s { s = NR } /pam_session_timeout\.so/ && !t { t = NR }
             END { exit !(s && t && s < t) }' /etc/pam.d/common-session ||
            fail "common-session: pam_systemd before pam_session_timeout"
        ok "common-session: pam_systemd before pam_session_timeout"
    else
        ok "common-session: no pam_systemd (libpam-systemd not installed), nothing to order"
    fi
}

run_packages() {
    local debs=("$R"/src/*.deb) f
    [ "${#debs[@]}" = 2 ] || fail "expected 2 .deb files in $src, found ${#debs[@]}"

    start_rsyslog
    t=$(now)
    apt-get "${apt_opts[@]}" install --no-install-recommends "${debs[@]}" >"$R/apt-install.log" 2>&1 ||
        fail "apt-get install ./*.deb"
    ok "apt-get install of ${debs[*]##*/} in $(elapsed "$t" "$(now)")s"
    [ "$(pkg_status timeoutd)" = ii ] && [ "$(pkg_status libpam-session-timeout)" = ii ] ||
        fail "both packages installed (ii)"
    wait_for 10 "the init script started timeoutd (no systemd)" daemon_running
    ok "timeoutd started by the package without systemd (pid $(daemon_pid))"

    for f in /usr/sbin/timeoutd /usr/bin/timeoutctl /etc/init.d/timeoutd \
        /lib/systemd/system/timeoutd.service /usr/share/pam-configs/session-timeout \
        "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)/security/pam_session_timeout.so"; do
        [ -e "$f" ] || fail "installed: $f"
    done
    for page in timeoutd.8 timeoutctl.1 pam_session_timeout.8 session-timeout.toml.5; do
        man -w "${page%.*}" >/dev/null 2>&1 || fail "man page ${page%.*}($page##*.) installed"
    done
    ok "files, unit, init script, profile, module and man pages installed"
    grep -qx 'idle = "15m"' /etc/session-timeout.toml && grep -qx 'max = "12h"' /etc/session-timeout.toml &&
        grep -qx 'warn = \["5m", "1m"\]' /etc/session-timeout.toml ||
        fail "the conffile's defaults: idle 15m, max 12h, warnings 5m and 1m"
    grep -qx 'state_dir = "/var/lib/session-timeout"' /etc/session-timeout.toml &&
        grep -qx 'StateDirectory=session-timeout' /lib/systemd/system/timeoutd.service ||
        fail "the unit's StateDirectory= matches [daemon] state_dir"
    ok "conffile defaults idle 15m, max 12h, warn 5m and 1m; StateDirectory matches state_dir"
    if command -v systemd-analyze >/dev/null 2>&1; then
        systemd-analyze verify /lib/systemd/system/timeoutd.service >"$R/verify.log" 2>&1 ||
            { cat "$R/verify.log"; fail "systemd-analyze verify timeoutd.service"; }
        ok "systemd-analyze verify timeoutd.service: clean"
    fi

    pam-auth-update --enable session-timeout
    check_pam_profile_enabled
    ok "pam-auth-update --enable session-timeout: common-session and common-account, interactive only, after pam_loginuid"

    # The test policy; a broken file makes reload (the unit's ExecReload) fail.
    printf 'idle = "15 minutes"\n' >/etc/session-timeout.toml
    if timeoutctl reload >"$R/reload.out" 2>&1; then fail "timeoutctl reload must fail on a rejected config"; fi
    test_config >/etc/session-timeout.toml
    timeoutctl reload >"$R/reload.out" 2>&1 || fail "timeoutctl reload accepts the test policy"
    ok "timeoutctl reload: non-zero on a rejected file, zero on a valid one"
    # [daemon] syslog needs a restart: the package's init script does it.
    invoke-rc.d timeoutd restart >/dev/null || fail "invoke-rc.d timeoutd restart"
    wait_for 10 "timeoutd restarted" daemon_running
    wait_for 10 "daemon_start in the log file" logged 'timeoutd.*event=daemon_start'
    ok "events reach rsyslog's file ($R/auth.log)"

    start_sshd
    local u1=${prefix}a u2=${prefix}b u3=${prefix}c
    make_user "$u1"
    make_user "$u2"
    make_user "$u3" "st-$RANDOM-$RANDOM"

    # 1. Registered, warned, ended, with the events in the log file.
    login idle "$u1"
    # 2. At the same time: `su -` to a revoked user from inside a session.
    login su "$u2"
    wait_for 20 "the idle login is registered" sh -c "timeoutctl list --json | grep -qF '\"user\":\"$u1\"'"
    wait_for 10 "session_open for $u1 in the log" logged "event=session_open .*user=$u1"
    ok "login of $u1 registered (timeoutctl list, event=session_open) through common-session"
    run_su_check "$u2" "$u3"
    wait_for $((END_MAX + 5)) "the warning on $u1's terminal" output_has idle "will be closed in"
    wait_for 5 "session_warn in the log" logged "event=session_warn .*user=$u1"
    ended_on_time idle "idle login of $u1"
    wait_for 10 "session_expired reason=idle" logged "event=session_expired .*user=$u1.*reason=idle|event=session_expired .*reason=idle.*user=$u1"
    wait_for 10 "session_terminated" logged "event=session_terminated .*user=$u1"
    ok "warning on the terminal; session_warn, session_expired reason=idle, session_terminated in rsyslog's file"

    # 3. Upgrade to a rebuilt package (same binaries, bumped version) while a
    #    session is live: it is still ended on time.
    run_upgrade "$u1" "$u3"

    # 4. remove: daemon stopped, PAM profile gone, conffile and state kept.
    apt-get "${apt_opts[@]}" remove timeoutd >"$R/apt-remove.log" 2>&1 || fail "apt-get remove timeoutd"
    # timeoutd keeps its conffiles (rc); libpam-session-timeout has none, so
    # dpkg forgets it at once. It went because it depends on timeoutd.
    [ "$(pkg_status timeoutd)" = rc ] || fail "after remove timeoutd is rc, not '$(pkg_status timeoutd)'"
    case $(pkg_status libpam-session-timeout) in
        '' | un | rc) ;;
        *) fail "removing timeoutd removes libpam-session-timeout too, not '$(pkg_status libpam-session-timeout)'" ;;
    esac
    wait_for 10 "no timeoutd after remove" no_daemon
    # (The e2e harness's own /etc/pam.d/sshd-* files, from the host, name the
    # module by path; the stacks that packages manage are these.)
    ! grep -F pam_session_timeout /etc/pam.d/common-* /etc/pam.d/sshd /etc/pam.d/login /etc/pam.d/su \
        >/dev/null 2>&1 || fail "no pam_session_timeout line in the PAM stacks after remove"
    ! grep -rqF pam_session_timeout "$R/upper/etc/pam.d" 2>/dev/null ||
        fail "nothing written to /etc/pam.d names the module after remove"
    [ -f /etc/session-timeout.toml ] || fail "remove keeps the conffile"
    [ -d /var/lib/session-timeout ] || fail "remove keeps the state dir"
    [ ! -e /usr/share/pam-configs/session-timeout ] || fail "remove deletes the profile file"
    mapfile -t opts < <(ssh_opts)
    ssh "${opts[@]}" "$u1@127.0.0.1" true || fail "ssh logins still work after remove"
    ok "remove: daemon stopped, profile out of common-session/common-account, conffile and state kept, ssh works"

    # 5. purge: nothing of ours left.
    apt-get "${apt_opts[@]}" purge timeoutd libpam-session-timeout >"$R/apt-purge.log" 2>&1 ||
        fail "apt-get purge"
    case $(pkg_status timeoutd)$(pkg_status libpam-session-timeout) in
        '' | un | unun) ;;
        *) fail "purge: dpkg forgot both packages" ;;
    esac
    for f in /etc/session-timeout.toml /etc/init.d/timeoutd /var/lib/session-timeout /run/session-timeout \
        /usr/share/pam-configs/session-timeout /lib/systemd/system/timeoutd.service; do
        [ ! -e "$f" ] || fail "purge leaves $f"
    done
    left=$(leftovers)
    [ -z "$left" ] || fail "purge leaves, in the overlay's upper layer: $left"
    ok "purge: no conffile, no state dir, no profile, nothing named *timeout* written anywhere"
}

run_su_check() { # SESSION_USER REVOKED_USER
    local a=$1 b=$2 pw
    pw=$(cat "$R/pw-$b")
    type_in su 'echo UP-$((20+22))'
    wait_for 20 "$a's shell is up" output_has su UP-42
    timeoutctl revoke --user "$b" --reason package-test >/dev/null || fail "timeoutctl revoke --user $b"
    type_in su "su - $b -c 'echo SU-\$((40+2))'"
    wait_for 15 "su asks for $b's password" output_has su "Password:"
    type_in su "$pw"
    wait_for 15 "su to revoked $b is refused" sh -c "grep -qiE 'denied|revoked|refused' '$R/su.out'"
    ! output_has su "SU-42" || fail "su to revoked $b must not run the command"
    wait_for 10 "login_refused for $b in the log" logged "event=login_refused .*user=$b"
    ok "su - $b from inside $a's session refused while $b is revoked (event=login_refused)"
    # Control: the same su works once the revocation is lifted.
    timeoutctl unrevoke --user "$b" >/dev/null || fail "timeoutctl unrevoke --user $b"
    type_in su "su - $b -c 'echo SU-\$((40+2))'"
    wait_for 15 "su asks for the password again" sh -c "[ \$(grep -cF 'Password:' '$R/su.out') -ge 2 ]"
    type_in su "$pw"
    wait_for 15 "su to $b works after unrevoke" output_has su "SU-42"
    ok "control: the same su works after unrevoke"
    type_in su "exit"
}

run_upgrade() { # USER REVOKED_USER
    local u=$1 revoked=$2 old new pid_before d
    old=$(pkg_version timeoutd)
    new="$old+upgrade1"
    mkdir -p "$R/upgrade"
    for d in "$R"/src/*.deb; do
        rm -rf "$R/upgrade/tree"
        dpkg-deb -R "$d" "$R/upgrade/tree"
        sed -i "s/^Version: .*/Version: $new/" "$R/upgrade/tree/DEBIAN/control"
        dpkg-deb --root-owner-group -Zxz -b "$R/upgrade/tree" "$R/upgrade/$(basename "${d%%_*}")_${new}_up.deb" >/dev/null
    done
    rm -rf "$R/upgrade/tree"
    login upg "$u"
    wait_for 20 "the login before the upgrade is registered" sh -c "timeoutctl list --json | grep -qF '\"user\":\"$u\"'"
    timeoutctl revoke --user "$revoked" --ttl 1h --reason upgrade-test >/dev/null || fail "revoke before the upgrade"
    pid_before=$(daemon_pid)
    apt-get "${apt_opts[@]}" install --no-install-recommends "$R"/upgrade/*.deb >"$R/apt-upgrade.log" 2>&1 ||
        fail "apt-get install of the $new packages"
    [ "$(pkg_version timeoutd)" = "$new" ] && [ "$(pkg_version libpam-session-timeout)" = "$new" ] ||
        fail "both packages at $new"
    wait_for 10 "timeoutd running after the upgrade" daemon_running
    [ "$(daemon_pid)" != "$pid_before" ] || fail "the upgrade restarted the daemon"
    # shellcheck disable=SC2154 # set by login() through eval
    alive "$upg_pid" || fail "the live session survives the upgrade"
    wait_for 10 "session_restored for $u" logged "event=session_restored .*user=$u"
    grep -qx "idle = \"${IDLE}s\"" /etc/session-timeout.toml || fail "the upgrade kept the edited conffile"
    timeoutctl revocations | grep -F "$revoked" >/dev/null || fail "the revocation of $revoked survives the upgrade"
    ok "upgrade $old -> $new while $u is logged in: daemon restarted (pid $pid_before -> $(daemon_pid)), session restored, revocation kept, conffile kept"
    ended_on_time upg "login live across the upgrade"
}

# --- quick start ------------------------------------------------------------------------

purge_build_deps() {
    local purge=() p
    # A fresh machine has none of the build dependencies: purge them (in the overlay).
    for p in libpam0g-dev gcc pkg-config dpkg-dev; do
        [ "$(pkg_status "$p")" = ii ] && purge+=("$p")
    done
    if [ "${#purge[@]}" -gt 0 ]; then
        apt-get "${apt_opts[@]}" purge "${purge[@]}" >"$R/apt-purge-deps.log" 2>&1 || fail "purge ${purge[*]}"
    fi
    ! command -v cc >/dev/null && [ ! -e /usr/include/security/pam_appl.h ] ||
        fail "build dependencies gone before the quick start"
    ok "purged in the overlay: ${purge[*]:-nothing to purge}"
}

run_quickstart() {
    local clone=$R/src before after
    purge_build_deps

    start_rsyslog
    # A fresh clone builds into its own target/, as a new user's would.
    unset CARGO_TARGET_DIR
    t=$(now)
    (cd "$clone" && ./scripts/install.sh) >"$R/install-1.out" 2>&1 || fail "first ./scripts/install.sh (see $R/install-1.out)"
    ok "./scripts/install.sh from a fresh copy of the clone: $(elapsed "$t" "$(now)")s"
    grep -E '^install: (deps: missing|deps: all|apt-get install|pam-auth-update|/etc/init.d|systemctl|done)' \
        "$R/install-1.out" | sed 's/^/  first run: /'
    grep -E '^package: (cargo|built)|Finished' "$R/install-1.out" | sed 's/^/  first run: /'
    [ "$(pkg_status timeoutd)" = ii ] && [ "$(pkg_status libpam-session-timeout)" = ii ] ||
        fail "install.sh installed both packages"
    wait_for 10 "timeoutd running" daemon_running
    check_pam_profile_enabled
    ok "packages installed, daemon running, profile enabled for sshd (common-session)"

    # Idempotent: a second run changes nothing.
    before=$(state_fingerprint)
    (cd "$clone" && ./scripts/install.sh) >"$R/install-2.out" 2>&1 || fail "second ./scripts/install.sh"
    after=$(state_fingerprint)
    [ "$before" = "$after" ] || fail "the second install.sh changed something: $(diff <(echo "$before") <(echo "$after"))"
    grep -q "nothing changed" "$R/install-2.out" || fail "the second run says it had nothing to do"
    grep -E '^install: (already|done)' "$R/install-2.out" | sed 's/^/  second run: /'
    ok "second ./scripts/install.sh: nothing changed (packages, /etc, daemon pid)"

    test_config >/etc/session-timeout.toml
    invoke-rc.d timeoutd restart >/dev/null || fail "restart with the test policy"
    wait_for 10 "timeoutd restarted" daemon_running
    start_sshd
    local u=${prefix}q
    make_user "$u"
    login qs "$u"
    wait_for 20 "the login is registered" sh -c "timeoutctl list --json | grep -qF '\"user\":\"$u\"'"
    ended_on_time qs "quick-start install: idle ssh login"
    wait_for 10 "session_expired in the log" logged "event=session_expired .*user=$u"
    ok "the quick-start install ends a real ssh login"
}

# What the namespace changed in /etc, /usr and /var (the overlay's upper
# layers: the host's own later changes, such as other tests' users in
# /etc/passwd, are in the lower layer and not seen), plus the package states
# and the daemon's pid. Logs are left out.
state_fingerprint() {
    dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' | sort | sha256sum
    (cd "$R/upper" && find etc usr var -path var/log -prune -o \( -type f -o -type l \) -print0 |
        sort -z | xargs -0 sha256sum)
    echo "daemon pid $(daemon_pid)"
}

# As `sudo ./scripts/install.sh` runs it: root's environment from sudo's
# env_reset and secure_path, and SUDO_USER naming the invoking user.
as_sudo_from() { # USER COMMAND...
    local user=$1
    shift
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LOGNAME=root USER=root TERM=dumb SHELL=/bin/bash \
        SUDO_USER="$user" SUDO_UID="$(id -u "$user")" SUDO_GID="$(id -g "$user")" \
        SUDO_COMMAND="$*" "$@"
}

run_quickstart_sudo() {
    local u=${prefix}s home clone before after
    purge_build_deps
    make_user "$u"
    home=$(getent passwd "$u" | cut -d: -f6)
    # The user's rustup: the toolchain lent read-only, their own cargo home
    # (the proxies, cargo-deb, and the crates the workspace needs, so the build
    # stays offline).
    mkdir -p "$home/.rustup" "$home/.cargo"
    mount --bind "$R/host-rustup" "$home/.rustup"
    cp -a /root/.cargo/bin "$home/.cargo/bin"
    [ -d /root/.cargo/registry ] && cp -a /root/.cargo/registry "$home/.cargo/registry"
    chown -R "$u:" "$home/.cargo"
    # Root has no Rust at all (whiteouts in the overlay only).
    rm -rf /root/.cargo /root/.rustup
    ! command -v cargo >/dev/null || fail "root must have no cargo for this test"
    clone=$home/session-timeout
    cp -a "$R/src" "$clone"
    chown -R "$u:" "$clone"
    ok "root has no Rust; $u has rustup in ~/.cargo/bin and owns the clone $clone"

    start_rsyslog
    t=$(now)
    (cd "$clone" && as_sudo_from "$u" ./scripts/install.sh) >"$R/install-1.out" 2>&1 ||
        fail "sudo ./scripts/install.sh (see $R/install-1.out)"
    ok "sudo ./scripts/install.sh as $u: $(elapsed "$t" "$(now)")s"
    grep -E '^install: (deps: missing|apt-get install|pam-auth-update|/etc/init.d|done)' \
        "$R/install-1.out" | sed 's/^/  first run: /'
    [ "$(pkg_status timeoutd)" = ii ] && [ "$(pkg_status libpam-session-timeout)" = ii ] ||
        fail "install.sh through sudo installed both packages"
    wait_for 10 "timeoutd running" daemon_running
    check_pam_profile_enabled
    [ "$(stat -c %U "$clone/target/release/timeoutd")" = "$u" ] &&
        [ "$(stat -c %U "$clone/target/debian")" = "$u" ] ||
        fail "the build ran as $u: target/ is theirs"
    ok "packages installed, daemon running, profile enabled; target/ built as $u"

    before=$(state_fingerprint)
    (cd "$clone" && as_sudo_from "$u" ./scripts/install.sh) >"$R/install-2.out" 2>&1 ||
        fail "second sudo ./scripts/install.sh"
    after=$(state_fingerprint)
    [ "$before" = "$after" ] || fail "the second install.sh changed something: $(diff <(echo "$before") <(echo "$after"))"
    grep -q "nothing changed" "$R/install-2.out" || fail "the second run says it had nothing to do"
    ok "second sudo ./scripts/install.sh: nothing changed"

    # scripts/test.sh's lookup: cargo as root with the user's toolchain.
    (cd "$clone" && as_sudo_from "$u" bash -c \
        'export ST_CARGO_AS_ROOT=1; . scripts/cargo-env.sh; find_cargo "$PWD" && [ -z "$cargo_user" ] &&
         [ "$(id -u)" = 0 ] && "${cargo_cmd[@]}" --version && rustc --version') >"$R/lookup.out" 2>&1 ||
        { cat "$R/lookup.out"; fail "test.sh's toolchain lookup through sudo"; }
    ok "test.sh's lookup through sudo: root runs $(head -n 1 "$R/lookup.out") from $u's rustup"
}

case $mode in
    packages) run_packages ;;
    quickstart) run_quickstart ;;
    quickstart-sudo) run_quickstart_sudo ;;
esac
say "package-test: passed $mode"
