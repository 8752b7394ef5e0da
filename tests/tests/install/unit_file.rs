//! The shipped systemd unit, `etc/timeoutd.service`, against what the daemon
//! does at run time. No systemd runs here, so these read the file itself.

use std::fs;

use e2e::workspace_root;

/// The unit's sandbox must let the daemon open every socket it needs: its
/// own and syslog's (AF_UNIX), and sock_diag for the connection witness
/// (AF_NETLINK, `host/tcpinfo`). A family left out fails only under systemd,
/// with EAFNOSUPPORT, and loses that feature.
#[test]
fn the_unit_allows_every_socket_family_the_daemon_opens() {
    let unit = fs::read_to_string(workspace_root().join("etc/timeoutd.service")).unwrap();
    let allowed: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RestrictAddressFamilies="))
        .flat_map(str::split_whitespace)
        .collect();
    let tcpinfo =
        fs::read_to_string(workspace_root().join("timeoutd/src/host/tcpinfo/mod.rs")).unwrap();
    assert!(
        tcpinfo.contains("libc::AF_NETLINK"),
        "the witness uses netlink"
    );
    for family in ["AF_UNIX", "AF_NETLINK"] {
        assert!(allowed.contains(&family), "{family} not in {allowed:?}");
    }
}

/// Logins without a logind scope, and the root processes spared from them,
/// are moved into cgroups below the unit's own (`Delegate=yes`). systemd
/// kills a unit's whole cgroup on stop unless `KillMode=process`, and
/// applies a unit's cgroup limits and BPF filters to the whole subtree: with
/// `IPAddressDeny=any` those users could open no IP socket, with
/// `DevicePolicy=closed` no device but a terminal, and every upgrade (a
/// restart) logged them all out.
#[test]
fn the_unit_neither_ends_nor_fences_the_logins_in_its_cgroup() {
    let unit = fs::read_to_string(workspace_root().join("etc/timeoutd.service")).unwrap();
    let lines: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(lines.contains(&"Delegate=yes"));
    assert!(lines.contains(&"KillMode=process"), "{unit}");
    assert!(lines.contains(&"TasksMax=infinity"), "{unit}");
    let subtree_wide = [
        "IPAddressDeny=",
        "IPAddressAllow=",
        "IPIngressFilterPath=",
        "IPEgressFilterPath=",
        "DevicePolicy=",
        "DeviceAllow=",
        "PrivateDevices=",
        "ProtectClock=",
        "MemoryMax=",
        "MemoryHigh=",
        "CPUQuota=",
        "RestrictNetworkInterfaces=",
        "SocketBindDeny=",
    ];
    for l in &lines {
        assert!(
            !subtree_wide.iter().any(|d| l.starts_with(d)),
            "{l}: applies to the logins below the unit too"
        );
    }
}
