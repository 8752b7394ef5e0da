//! The durable form of a session: one text line that survives a restart.
//! Pure: encoding and decoding only. Every field a user controls is escaped,
//! and a malformed line is an error, never a panic.

use crate::core::clock::Timestamp;
use crate::core::policy::TtyClass;
use crate::core::session::identity::Identity;
use crate::core::session::{Login, ProcRef, Scope, SessionId};

/// What is kept of a session across a restart: who, which processes, and its
/// history (registration time and last credited activity). Limits and the
/// rule are not kept: they come from the policy in force after the restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub login: Login,
    pub leader: ProcRef,
    pub scope: Scope,
    pub registered_at: Timestamp,
    pub last_activity: Timestamp,
    pub tty_class: TtyClass,
    pub tty_settled: bool,
    pub ttys: Vec<String>,
    /// Taken over from a login opened while the daemon was down.
    pub adopted: bool,
}

/// `s2` adds the login's identity (4 fields) after the 18 of `s1`; `s1`
/// lines are still read, as logins without one.
const VERSION: &str = "s2";
const VERSION_1: &str = "s1";

/// Escapes a field of a tab-separated state line (tabs, newlines, commas, backslashes).
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ',' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`esc`].
pub(crate) fn unesc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(','),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

fn list(items: &[String]) -> String {
    items.iter().map(|s| esc(s)).collect::<Vec<_>>().join(",")
}

fn unlist(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(',').map(unesc).collect()
}

impl SessionRecord {
    /// One line, without the newline.
    pub fn encode(&self) -> String {
        let scope = match self.scope {
            Scope::AuditSession(id) => format!("audit:{id}"),
            Scope::Subtree => "subtree".to_owned(),
        };
        let l = &self.login;
        [
            VERSION.to_owned(),
            self.id.0.to_string(),
            esc(&l.user),
            l.uid.to_string(),
            esc(&l.service),
            esc(&l.pam_tty),
            esc(&l.rhost),
            esc(&l.ruser),
            list(&l.groups),
            self.leader.pid.to_string(),
            self.leader.start_time.to_string(),
            scope,
            self.registered_at.0.to_string(),
            self.last_activity.0.to_string(),
            self.tty_class.as_str().to_owned(),
            u8::from(self.tty_settled).to_string(),
            list(&self.ttys),
            u8::from(self.adopted).to_string(),
        ]
        .into_iter()
        .chain(l.auth.encode())
        .collect::<Vec<_>>()
        .join("\t")
    }

    pub fn decode(line: &str) -> Result<Self, String> {
        let f: Vec<&str> = line.split('\t').collect();
        let auth = match (f.first().copied(), f.len()) {
            (Some(VERSION_1), 18) => Identity::default(),
            (Some(VERSION), 22) => Identity::decode(&f[18..])?,
            _ => return Err(format!("not a session record ({} fields)", f.len())),
        };
        let num = |i: usize| -> Result<u64, String> {
            f[i].parse()
                .map_err(|_| format!("field {i} is not a number"))
        };
        let int = |i: usize| -> Result<i64, String> {
            f[i].parse()
                .map_err(|_| format!("field {i} is not a number"))
        };
        let u32f = |i: usize| -> Result<u32, String> {
            f[i].parse()
                .map_err(|_| format!("field {i} is not a number"))
        };
        let flag = |i: usize| -> Result<bool, String> {
            match f[i] {
                "0" => Ok(false),
                "1" => Ok(true),
                _ => Err(format!("field {i} is not 0 or 1")),
            }
        };
        let scope = match f[11] {
            "subtree" => Scope::Subtree,
            s => Scope::AuditSession(
                s.strip_prefix("audit:")
                    .and_then(|n| n.parse().ok())
                    .ok_or("bad scope")?,
            ),
        };
        Ok(Self {
            id: SessionId(num(1)?),
            login: Login {
                user: unesc(f[2]),
                uid: u32f(3)?,
                service: unesc(f[4]),
                pam_tty: unesc(f[5]),
                rhost: unesc(f[6]),
                ruser: unesc(f[7]),
                groups: unlist(f[8]),
                auth,
            },
            leader: ProcRef {
                pid: u32f(9)?,
                start_time: num(10)?,
            },
            scope,
            registered_at: Timestamp(int(12)?),
            last_activity: Timestamp(int(13)?),
            tty_class: TtyClass::parse(f[14]).ok_or("bad tty class")?,
            tty_settled: flag(15)?,
            ttys: unlist(f[16]),
            adopted: flag(17)?,
        })
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalEntry {
    /// The session as it is now (insert or replace).
    Upsert(Box<SessionRecord>),
    /// The session is gone.
    Gone(SessionId),
}

impl JournalEntry {
    pub fn encode(&self) -> String {
        match self {
            Self::Upsert(r) => format!("U\t{}\n", r.encode()),
            Self::Gone(id) => format!("G\t{id}\n"),
        }
    }

    pub fn decode(line: &str) -> Result<Self, String> {
        match line.split_once('\t') {
            Some(("U", rest)) => SessionRecord::decode(rest).map(|r| Self::Upsert(Box::new(r))),
            Some(("G", id)) => id
                .parse()
                .map(|n| Self::Gone(SessionId(n)))
                .map_err(|_| "bad id".to_owned()),
            _ => Err("unknown journal entry".into()),
        }
    }
}

/// Replays a snapshot and then a journal into the live set, in order.
/// Returns the records and how many lines were unreadable (a torn last line
/// after a crash is one of those, and is simply skipped).
pub fn replay(snapshot: &str, journal: &str) -> (Vec<SessionRecord>, usize) {
    let mut live: std::collections::HashMap<SessionId, SessionRecord> =
        std::collections::HashMap::new();
    let mut bad = 0;
    for line in snapshot.lines().chain(journal.lines()) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match JournalEntry::decode(line) {
            Ok(JournalEntry::Upsert(r)) => {
                live.insert(r.id, *r);
            }
            Ok(JournalEntry::Gone(id)) => {
                live.remove(&id);
            }
            Err(_) => bad += 1,
        }
    }
    let mut out: Vec<SessionRecord> = live.into_values().collect();
    out.sort_by_key(|r| r.id);
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(id: u64) -> SessionRecord {
        SessionRecord {
            id: SessionId(id),
            login: Login {
                user: "al\tice\n,x\\".into(),
                uid: 1001,
                service: "sshd".into(),
                pam_tty: "ssh".into(),
                rhost: "2001:db8::1".into(),
                ruser: String::new(),
                groups: vec!["alice".into(), "a,b".into()],
                auth: crate::core::session::identity::Identity {
                    methods: vec!["publickey".into()],
                    cert: crate::core::session::identity::CertUse::Read(
                        crate::core::session::identity::CertFacts {
                            key_id: "id\twith:colons".into(),
                            serial: 7,
                            principals: vec!["alice".into()],
                            valid_before: Some(Timestamp(1_700_000_600_000)),
                        },
                    ),
                    runtime_max_at: None,
                },
            },
            leader: ProcRef {
                pid: 4242,
                start_time: 99,
            },
            scope: Scope::AuditSession(17),
            registered_at: Timestamp(1_700_000_000_123),
            last_activity: Timestamp(1_700_000_050_000),
            tty_class: TtyClass::Pty,
            tty_settled: true,
            ttys: vec!["pts/1".into(), "pts/3".into()],
            adopted: false,
        }
    }

    #[test]
    fn records_round_trip_with_hostile_names() {
        let r = sample(5);
        let line = r.encode();
        assert!(!line.contains('\n'));
        assert_eq!(SessionRecord::decode(&line).unwrap(), r);
        let mut sub = sample(6);
        sub.scope = Scope::Subtree;
        sub.ttys.clear();
        sub.login.groups.clear();
        assert_eq!(SessionRecord::decode(&sub.encode()).unwrap(), sub);
    }

    #[test]
    fn a_record_of_the_previous_version_is_read_without_an_identity() {
        let line = sample(5).encode();
        let fields: Vec<&str> = line.split('\t').collect();
        let old = ["s1"]
            .into_iter()
            .chain(fields[1..18].iter().copied())
            .collect::<Vec<_>>()
            .join("\t");
        let r = SessionRecord::decode(&old).unwrap();
        assert_eq!(r.login.auth, Identity::default());
        assert_eq!(r.login.user, sample(5).login.user);
        assert!(SessionRecord::decode(&format!("{old}\t-\t-\t\t-")).is_err());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let line = JournalEntry::Upsert(Box::new(sample(1))).encode();
        let line = line.trim_end();
        for cut in 0..line.len() {
            if line.is_char_boundary(cut) {
                let _ = JournalEntry::decode(&line[..cut]);
            }
        }
        assert!(JournalEntry::decode("U\ts1\t1").is_err());
        assert!(JournalEntry::decode("X\t1").is_err());
        assert!(JournalEntry::decode("G\tnope").is_err());
    }

    #[test]
    fn replay_applies_upserts_and_removals_and_skips_a_torn_tail() {
        let snapshot = JournalEntry::Upsert(Box::new(sample(1))).encode()
            + &JournalEntry::Upsert(Box::new(sample(2))).encode();
        let mut moved = sample(2);
        moved.last_activity = Timestamp(1_700_000_099_000);
        let mut journal = JournalEntry::Gone(SessionId(1)).encode();
        journal += &JournalEntry::Upsert(Box::new(moved.clone())).encode();
        journal += &JournalEntry::Upsert(Box::new(sample(3))).encode();
        journal += "U\ts1\t4\tbo"; // a crash in the middle of a write
        let (live, bad) = replay(&snapshot, &journal);
        assert_eq!(bad, 1);
        let ids: Vec<u64> = live.iter().map(|r| r.id.0).collect();
        assert_eq!(ids, [2, 3]);
        assert_eq!(live[0], moved);
    }
}
