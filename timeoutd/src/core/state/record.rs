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
#[path = "record_tests.rs"]
mod tests;
