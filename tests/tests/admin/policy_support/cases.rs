//! The config files the CLI tests (`c*`) check: a realistic policy, and
//! one invalid file per error class.

/// The CIS/STIG split: privileged 10 min, everyone else 15 min, automation
/// exempt, untrusted networks 1 h absolute, the console 5 min.
pub const CIS_STIG: &str = r#"[daemon]
socket = "/run/session-timeout/timeoutd.sock"

[defaults]
idle = "15m"
max = "12h"
warn = ["5m", "1m"]
grace = "10s"
message = "Session for {user} on {tty} will be closed in {remaining} ({reason}, rule {rule})."

[[rule]]
name = "privileged"
groups = ["sudo", "wheel"]
services = ["sshd*"]
idle = "10m"
max = "4h"

[[rule]]
name = "automation"
users = ["backup", "deploy-*"]
idle = "off"

[[rule]]
name = "untrusted-networks"
rhosts = ["!10.0.0.0/8", "!fd00::/8", "*"]
max = "1h"

[[rule]]
name = "console"
tty = "console"
idle = "5m"
"#;

/// One invalid file per error class. Each case is a line
/// `=== NAME LINE:COL CAUSE`, then the file, whose lines LINE counts.
pub const ERROR_CASES: &str = r#"=== unknown-key 3:1 unknown field `idel`
[defaults]
idle = "15m"
idel = "10m"
=== unknown-key-in-rule 3:1 unknown field `user`
[[rule]]
name = "a"
user = ["x"]
=== wrong-type-bool 2:16 invalid type: string "yes", expected a boolean
[defaults]
count_output = "yes"
=== wrong-type-number 2:8 invalid type: integer `900`
[defaults]
idle = 900
=== bad-duration 5:8 bad duration: "15 minutes"
[defaults]
max = "12h"
[[rule]]
name = "x"
idle = "15 minutes"
=== bare-number 2:8 bad duration: "900": a bare number
[defaults]
idle = "900"
=== warn-not-shorter 3:9 warning offset 10m in [defaults] is not shorter than its idle limit 10m
[defaults]
idle = "10m"
warn = ["10m", "1m"]
=== warn-not-shorter-in-rule 4:16 is not shorter than its max limit 1m
[[rule]]
name = "r"
max = "1m"
warn = ["30s", "2m"]
=== duplicate-name 5:8 duplicate rule name "a"
[[rule]]
name = "a"
users = ["x"]
[[rule]]
name = "a"
users = ["y"]
=== cidr-v4 2:11 malformed CIDR "10.0.0.0/33"
[[rule]]
rhosts = ["10.0.0.0/33"]
name = "net"
=== cidr-v6 3:26 malformed CIDR "fe80::/129"
[[rule]]
name = "net"
rhosts = ["!10.0.0.0/8", "fe80::/129"]
=== cidr-not-an-address 3:11 malformed CIDR "300.1.2.3/8"
[[rule]]
name = "net"
rhosts = ["300.1.2.3/8"]
=== unknown-placeholder 2:24 unknown placeholder {colour}
[defaults]
message = "Bye {user}, {colour} left"
=== bad-window-time 4:33 bad window: "7:00" is not a time HH:MM
[[rule]]
name = "office"
users = ["x"]
hours = ["Mon-Fri 07:00-19:00", "Mon 7:00-19:00"]
=== bad-window-day 2:10 bad window: "Moon" is not a day
[defaults]
hours = ["Moon 07:00-19:00"]
=== bad-daily 2:9 bad duration: "2 hours"
[defaults]
daily = "2 hours"
"#;
