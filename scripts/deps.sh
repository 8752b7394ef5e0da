#!/usr/bin/env bash
# Installs the Debian packages that building and testing session-timeout need.
#
#   sudo ./scripts/deps.sh            # building and testing
#   sudo ./scripts/deps.sh --build    # building only (scripts/install.sh)
#
# Idempotent: packages already installed are left alone, and `apt-get update`
# runs only when something is missing. Installing openssh-server would start the
# host's sshd on port 22 where there is no systemd (invoke-rc.d); a temporary
# /usr/sbin/policy-rc.d (exit 101) forbids that for the duration of the install.
set -euo pipefail

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo $0)"

export DEBIAN_FRONTEND=noninteractive

# Building the product: linker, C headers, libpam, the PAM module directory
# lookup and the packaging (dpkg-architecture). `--build` installs only these
# (scripts/install.sh on a fresh machine).
build_packages=(gcc libc6-dev libpam0g-dev pkg-config dpkg-dev)

packages=(
    # the product and its end-to-end tests
    openssh-server openssh-client
    # st-bench --peers: Debian's autolog, run with a config of its own
    autolog
    libpam0g-dev libpam-wrapper pamtester
    tmux screen procps passwd util-linux bsdutils iproute2 ca-certificates
    # the tests' helper processes (a pid hopper, a process whose main thread exits)
    perl
    "${build_packages[@]}"
    # timeoutctl report's SVG test renders the picture (rsvg-convert)
    librsvg2-bin
    # re-validation against a real directory (tests/tests/admin/revalidate_ldap.rs)
    slapd ldap-utils sssd-ldap libnss-sss libpam-sss
    # linting the shell scripts (scripts/test.sh)
    shellcheck
    # the package tests (tests/tests/install/package.rs): lint the .debs, verify the
    # unit, a real rsyslogd, man(1) for the installed pages
    lintian systemd rsyslog man-db
)
case ${1:-} in
    --build) packages=("${build_packages[@]}") ;;
    '') ;;
    *) die "unknown option: $1 (--build: only what building needs)" ;;
esac

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    say "all ${#packages[@]} packages already installed"
else
    say "missing: ${missing[*]}"

    created_policy=0
    cleanup() {
        if [ "$created_policy" = 1 ]; then
            rm -f /usr/sbin/policy-rc.d
            say "removed the temporary /usr/sbin/policy-rc.d"
        fi
    }
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        say "creating a temporary /usr/sbin/policy-rc.d (exit 101) so no service starts"
        printf '#!/bin/sh\n# Temporary, from session-timeout scripts/deps.sh\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        created_policy=1
        chmod 0755 /usr/sbin/policy-rc.d
    else
        say "/usr/sbin/policy-rc.d already exists; leaving it as it is"
    fi

    # slapd would otherwise make a database and config of its own; the test
    # runs slapd with its own config in a temp dir.
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
    # libnss-sss and libpam-sss add sss to the host's nsswitch.conf and PAM
    # stack; the test uses copies in a private mount namespace, so the host's
    # login stack is put back as it was (below).
    nsswitch_before=$(mktemp)
    cp -p /etc/nsswitch.conf "$nsswitch_before"
    apt_opts=(-y -q -o DPkg::Lock::Timeout=300)
    # apt-get update only when the package lists cannot serve the install.
    say "apt-get install --no-install-recommends ${missing[*]}"
    if ! apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"; then
        say "apt-get update, then again"
        apt-get "${apt_opts[@]}" update
        apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"
    fi
    if ! cmp -s "$nsswitch_before" /etc/nsswitch.conf; then
        cp -p "$nsswitch_before" /etc/nsswitch.conf
        say "/etc/nsswitch.conf put back as it was before the install"
    fi
    rm -f "$nsswitch_before"
    if [ -e /usr/share/pam-configs/sss ] && grep -qs pam_sss /etc/pam.d/common-account; then
        pam-auth-update --disable sss
        say "pam-auth-update --disable sss: the host's PAM stack stays without pam_sss"
    fi
fi

# sshd refuses to start without its privilege separation directory.
mkdir -p /run/sshd
chmod 0755 /run/sshd
say "/run/sshd present (0755)"

# autolog's own service would log out every idle user of this host with the
# package's /etc/autolog.conf at the next boot; st-bench runs it with a
# config of its own, so the service stays disabled.
if [ -e /lib/systemd/system/autolog.service ] || [ -e /etc/init.d/autolog ]; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now autolog.service >/dev/null 2>&1 || true
    fi
    update-rc.d autolog disable >/dev/null 2>&1 || true
    say "autolog's service disabled (st-bench --peers runs it with its own config)"
fi
