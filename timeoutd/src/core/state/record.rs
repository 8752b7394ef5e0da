//! The durable form of a session: one text line that survives a restart.
//! Pure: encoding and decoding only. Every field a user controls is escaped,
//! and a malformed line is an error, never a panic.

use std::fmt::Write as _;

use crate::core::policy::TtyClass;
use crate::core::session::evidence::{DryRunMemory, Evidence, Gap};
use crate::core::session::identity::Identity;
use crate::core::session::{Login, ProcRef, Scope, SessionId};
use crate::core::time::clock::Timestamp;

/// What is kept of a session across a restart: who, which processes, and its
/// history (registration time, last credited activity and the evidence for
/// its summary). Limits and the rule are not kept: they come from the policy
/// in force after the restart.
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
    /// The login's cgroup (path inside the cgroup2 hierarchy), when it has
    /// one: the 19th field (`-` for none); lines written before it existed have 18.
    pub cgroup: Option<String>,
    /// Idle gaps, warnings, tampers, dry-run expiries.
    pub evidence: Evidence,
}

/// `s2` adds, after the 18 fields of `s1`, the login's identity (4 fields),
/// its cgroup, and its evidence ending with [`END_MARK`]; `s1` lines are
/// still read, as logins without any of them.
const VERSION: &str = "s2";
const VERSION_1: &str = "s1";
/// Fields of an `s1` record.
const FIELDS_BASE: usize = 18;
/// Fields of the identity, after the base.
const FIELDS_IDENTITY: usize = 4;
/// Fields of an `s2` record; the last is [`END_MARK`].
const FIELDS_V2: usize = FIELDS_BASE + FIELDS_IDENTITY + 10;
/// Ends an `s2` record, so that a line torn inside it is refused rather than
/// read with a shortened number.
const END_MARK: &str = "e";

/// Escapes a field of a tab-separated state line (tabs, newlines, commas, backslashes).
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_esc(&mut out, s);
    out
}

/// Appends `s` escaped as [`esc`] does.
fn push_esc(out: &mut String, s: &str) {
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

fn unlist(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split(',').map(unesc).collect()
}

impl SessionRecord {
    /// One line, without the newline (the daemon appends records to its
    /// buffers with [`SessionRecord::encode_into`]).
    #[cfg(test)]
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(256);
        self.encode_into(&mut out);
        out
    }

    /// Appends [`SessionRecord::encode`] to `out`, building no field apart.
    pub fn encode_into(&self, out: &mut String) {
        let l = &self.login;
        let e = &self.evidence;
        let mut f = Fields { out, first: true };
        f.text(VERSION);
        f.num(self.id.0);
        f.esc(&l.user);
        f.num(l.uid);
        f.esc(&l.service);
        f.esc(&l.pam_tty);
        f.esc(&l.rhost);
        f.esc(&l.ruser);
        f.list(&l.groups);
        f.num(self.leader.pid);
        f.num(self.leader.start_time);
        match self.scope {
            Scope::AuditSession(id) => f.num(format_args!("audit:{id}")),
            Scope::Subtree => f.text("subtree"),
        }
        f.num(self.registered_at.0);
        f.num(self.last_activity.0);
        f.text(self.tty_class.as_str());
        f.num(u8::from(self.tty_settled));
        f.list(&self.ttys);
        f.num(u8::from(self.adopted));
        for field in l.auth.encode() {
            f.text(&field);
        }
        match &self.cgroup {
            Some(c) => f.esc(c),
            None => f.text("-"),
        }
        f.num(e.idle_max);
        f.num(e.idle_total);
        f.num(e.warnings);
        f.num(e.tampers);
        f.num(e.dry_run_expiries);
        f.gaps(e.gaps());
        f.deadline(e.dry_run.idle);
        f.deadline(e.dry_run.max);
        f.text(END_MARK);
    }

    pub fn decode(line: &str) -> Result<Self, String> {
        let f: Vec<&str> = line.split('\t').collect();
        let v2 =
            f.first() == Some(&VERSION) && f.len() == FIELDS_V2 && f[FIELDS_V2 - 1] == END_MARK;
        let v1 = f.first() == Some(&VERSION_1) && f.len() == FIELDS_BASE;
        if !(v1 || v2) {
            return Err(format!("not a session record ({} fields)", f.len()));
        }
        let auth = if v2 {
            Identity::decode(&f[FIELDS_BASE..FIELDS_BASE + FIELDS_IDENTITY])?
        } else {
            Identity::default()
        };
        let tail = FIELDS_BASE + FIELDS_IDENTITY;
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
            cgroup: if v2 {
                Some(f[tail]).filter(|c| *c != "-").map(unesc)
            } else {
                None
            },
            evidence: if v2 {
                decode_evidence(&f[tail + 1..])?
            } else {
                Evidence::default()
            },
        })
    }
}

/// The fields of a record line as they are appended, tab-separated.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    fn next(&mut self) -> &mut String {
        if !self.first {
            self.out.push('\t');
        }
        self.first = false;
        self.out
    }

    /// A field written as it is (the daemon's own words and encodings).
    fn text(&mut self, s: &str) {
        self.next().push_str(s);
    }

    /// A number, or another value whose text needs no escaping.
    fn num(&mut self, v: impl std::fmt::Display) {
        // Writing to a String cannot fail.
        let _ = write!(self.next(), "{v}");
    }

    /// Text a user or a client controls.
    fn esc(&mut self, s: &str) {
        push_esc(self.next(), s);
    }

    /// `a,b,c`, each item escaped.
    fn list(&mut self, items: &[String]) {
        let out = self.next();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_esc(out, item);
        }
    }

    /// `offset:len,…`.
    fn gaps(&mut self, gaps: &[Gap]) {
        let out = self.next();
        for (i, g) in gaps.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            let _ = write!(out, "{sep}{}:{}", g.offset, g.len);
        }
    }

    /// Milliseconds, or `-` for none.
    fn deadline(&mut self, at: Option<Timestamp>) {
        match at {
            Some(t) => self.num(t.0),
            None => self.text("-"),
        }
    }
}

/// Fields 18 to 25 of a record: the evidence.
fn decode_evidence(f: &[&str]) -> Result<Evidence, String> {
    let num = |i: usize| -> Result<u64, String> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("evidence field {i} is not a number"))
    };
    let count = |i: usize| -> Result<u32, String> {
        num(i)
            .and_then(|n| u32::try_from(n).map_err(|_| format!("evidence field {i} is too large")))
    };
    let deadline = |i: usize| -> Result<Option<Timestamp>, String> {
        match f.get(i).copied() {
            Some("-") => Ok(None),
            Some(v) => v
                .parse()
                .map(|ms| Some(Timestamp(ms)))
                .map_err(|_| format!("evidence field {i} is not a time")),
            None => Err("evidence is cut short".into()),
        }
    };
    let mut gaps = Vec::new();
    let list = f.get(5).copied().unwrap_or("");
    for pair in list.split(',').filter(|p| !p.is_empty()) {
        let (off, len) = pair.split_once(':').ok_or("bad gap")?;
        gaps.push(Gap {
            offset: off.parse().map_err(|_| "bad gap offset")?,
            len: len.parse().map_err(|_| "bad gap length")?,
        });
    }
    let mut e = Evidence::default().restored(gaps);
    e.idle_max = num(0)?;
    e.idle_total = num(1)?;
    e.warnings = count(2)?;
    e.tampers = count(3)?;
    e.dry_run_expiries = count(4)?;
    e.dry_run = DryRunMemory {
        idle: deadline(6)?,
        max: deadline(7)?,
        absolute: None,
    };
    Ok(e)
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
    /// One journal line, with its newline.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(256);
        self.encode_into(&mut out);
        out
    }

    /// Appends the line to `out`.
    pub fn encode_into(&self, out: &mut String) {
        match self {
            Self::Upsert(r) => {
                out.push_str("U\t");
                r.encode_into(out);
                out.push('\n');
            }
            Self::Gone(id) => {
                let _ = writeln!(out, "G\t{id}");
            }
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
            cgroup: None,
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn the_cgroup_round_trips_and_old_lines_without_it_still_read() {
        let mut r = sample(7);
        r.cgroup = Some("/timeoutd-1a2b/s-7\tx".into());
        assert_eq!(SessionRecord::decode(&r.encode()).unwrap(), r);
        // A line written before the field existed: 18 fields, no cgroup.
        let line = sample(8).encode();
        let mut old: Vec<&str> = line.split('\t').take(18).collect();
        old[0] = "s1";
        let mut expected = sample(8);
        expected.login.auth = Identity::default();
        assert_eq!(SessionRecord::decode(&old.join("\t")).unwrap(), expected);
        // A line with the cgroup but torn before its end mark is refused.
        let full = r.encode();
        let torn: Vec<&str> = full.split('\t').take(19).collect();
        assert!(SessionRecord::decode(&torn.join("\t")).is_err());
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
    fn a_line_is_built_in_one_buffer_as_the_fields_were_joined_before() {
        let mut r = sample(7);
        r.cgroup = Some("/timeoutd-1a2b/s-7\tx".into());
        r.scope = Scope::Subtree;
        let expected = [
            r"s2",
            r"7",
            r"al\tice\n\cx\\",
            r"1001",
            r"sshd",
            r"ssh",
            r"2001:db8::1",
            r"",
            r"alice,a\cb",
            r"4242",
            r"99",
            r"subtree",
            r"1700000000123",
            r"1700000050000",
            r"pty",
            r"1",
            r"pts/1,pts/3",
            r"0",
            r"publickey",
            r"7:1700000600000:id\twith:colons",
            r"alice",
            r"-",
            r"/timeoutd-1a2b/s-7\tx",
            r"0",
            r"0",
            r"0",
            r"0",
            r"0",
            r"",
            r"-",
            r"-",
            r"e",
        ]
        .join("\t");
        assert_eq!(r.encode(), expected);
        let mut journal = String::from("G\t5\n");
        JournalEntry::Upsert(Box::new(with_evidence(9))).encode_into(&mut journal);
        JournalEntry::Gone(SessionId(6)).encode_into(&mut journal);
        let lines: Vec<&str> = journal.lines().collect();
        assert_eq!(lines[0], "G\t5");
        assert_eq!(lines[1], format!("U\t{}", with_evidence(9).encode()));
        assert_eq!(lines[2], "G\t6");
        assert_eq!(
            JournalEntry::decode(lines[1]).unwrap(),
            JournalEntry::Upsert(Box::new(with_evidence(9)))
        );
    }

    fn with_evidence(id: u64) -> SessionRecord {
        let mut r = sample(id);
        let mut e = Evidence::default();
        e.add_gap(Gap { offset: 0, len: 75 });
        e.add_gap(Gap {
            offset: 600,
            len: 12,
        });
        e.warnings = 3;
        e.tampers = 1;
        e.dry_run_expiries = 2;
        e.dry_run.idle = Some(Timestamp(1_700_000_900_000));
        r.evidence = e;
        r
    }

    #[test]
    fn evidence_round_trips_and_old_records_still_read() {
        let r = with_evidence(7);
        let line = r.encode();
        assert!(
            line.ends_with("\t75\t75\t3\t1\t2\t0:75,600:12\t1700000900000\t-\te"),
            "{line}"
        );
        assert_eq!(SessionRecord::decode(&line).unwrap(), r);
        // A record written before the evidence was kept: its first 18 fields.
        let mut old: Vec<&str> = line.split('\t').take(18).collect();
        old[0] = "s1";
        let old = SessionRecord::decode(&old.join("\t")).unwrap();
        assert_eq!(old.evidence, Evidence::default());
        let mut login = r.login.clone();
        login.auth = Identity::default();
        assert_eq!(old.login, login);
        // A line torn anywhere inside the evidence is refused.
        for cut in line.len() - 40..line.len() {
            assert!(
                SessionRecord::decode(&line[..cut]).is_err(),
                "{}",
                &line[..cut]
            );
        }
        let bad = line.replace("0:75,600:12", "0:75,x");
        assert!(SessionRecord::decode(&bad).is_err());
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
