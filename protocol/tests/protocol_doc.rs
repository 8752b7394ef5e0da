//! Keeps `docs/PROTOCOL.md` from drifting away from the encoder.
//!
//! The document's hex example of a Register frame is produced here by the
//! real encoder, byte by byte, and must appear in the document verbatim. Every
//! kind byte, error code and target kind the code emits must have its section
//! or row, and each message's field table must add up to the size the encoder
//! actually writes (a field added, dropped or widened shows up as a size
//! mismatch).

// A test's helpers may panic: a failed assumption there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use session_timeout_proto::{
    encode_frame, AuthFacts, DeadlineInfo, ErrorCode, Registration, Request, Response,
    RevocationInfo, SessionInfo, SessionKey, TamperSeen, Target, WarningSent, MAX_FRAME, MAX_REPLY,
    VERSION,
};

const DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"));

/// The registration the document shows.
fn example_registration() -> Registration {
    Registration {
        user: "alice".into(),
        uid: 1000,
        service: "sshd".into(),
        tty: "ssh".into(),
        rhost: "10.0.0.7".into(),
        ruser: String::new(),
        pid: 4242,
        start_time: 987_654,
        loginuid: 1000,
        sessionid: 17,
        auth: Box::new(AuthFacts {
            methods: vec!["publickey".into()],
            ..AuthFacts::default()
        }),
    }
}

/// How a Register body is laid out, as the document's table states it.
enum Field {
    U8(&'static str),
    U32(&'static str),
    U64(&'static str),
    I64(&'static str),
    Str(&'static str),
    /// A `u16` count, then that many `str`.
    StrList(&'static str),
}

const REGISTER_FIELDS: [Field; 20] = [
    Field::Str("user"),
    Field::U32("uid"),
    Field::Str("service"),
    Field::Str("tty"),
    Field::Str("rhost"),
    Field::Str("ruser"),
    Field::U32("pid"),
    Field::U64("start_time"),
    Field::U32("loginuid"),
    Field::U32("sessionid"),
    Field::StrList("methods"),
    Field::U8("cert_state"),
    Field::Str("cert_key_type"),
    Field::U64("cert_serial"),
    Field::Str("cert_key_id"),
    Field::StrList("cert_principals"),
    Field::U64("cert_valid_after"),
    Field::U64("cert_valid_before"),
    Field::Str("cert_error"),
    Field::I64("runtime_max_at"),
];

/// Walks a frame and writes one annotated line per field.
struct Dump<'a> {
    frame: &'a [u8],
    at: usize,
    lines: Vec<String>,
}

impl<'a> Dump<'a> {
    fn take(&mut self, n: usize, note: String) -> &'a [u8] {
        let bytes = &self.frame[self.at..self.at + n];
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.lines
            .push(format!("{:04x}  {:<23}  {note}", self.at, hex.join(" ")));
        self.at += n;
        bytes
    }

    fn peek_be(&self, n: usize) -> u64 {
        self.frame[self.at..self.at + n]
            .iter()
            .fold(0, |acc, b| acc << 8 | u64::from(*b))
    }
}

fn annotated_dump(frame: &[u8]) -> String {
    let mut d = Dump {
        frame,
        at: 0,
        lines: vec![format!("{:<4}  {:<23}  {}", "off", "bytes", "meaning")],
    };
    let len = d.peek_be(4);
    d.take(
        4,
        format!("length = {len}: the bytes after these four (u32 BE)"),
    );
    let version = d.peek_be(1);
    d.take(1, format!("version = {version}"));
    let kind = d.peek_be(1);
    d.take(1, format!("kind = {kind} (Register)"));
    for field in REGISTER_FIELDS {
        match field {
            Field::U8(name) => {
                let v = d.peek_be(1);
                d.take(1, format!("{name} = {v} (u8)"));
            }
            Field::I64(name) => {
                let v = d.peek_be(8);
                d.take(8, format!("{name} = {v} (i64)"));
            }
            Field::StrList(name) => {
                let n = d.peek_be(2);
                d.take(2, format!("{name} count = {n} (u16)"));
                for _ in 0..n {
                    dump_str(&mut d, name);
                }
            }
            Field::U32(name) => {
                let v = d.peek_be(4);
                d.take(4, format!("{name} = {v} (u32)"));
            }
            Field::U64(name) => {
                let v = d.peek_be(8);
                d.take(8, format!("{name} = {v} (u64)"));
            }
            Field::Str(name) => dump_str(&mut d, name),
        }
    }
    assert_eq!(d.at, frame.len(), "the layout covers the whole frame");
    let mut out = d.lines.join("\n");
    out.push('\n');
    out
}

fn dump_str(d: &mut Dump, name: &str) {
    let n = d.peek_be(2) as usize;
    if n == 0 {
        d.take(2, format!("{name}: length 0, empty (no bytes follow)"));
    } else {
        d.take(2, format!("{name}: length {n} (u16 BE)"));
        let bytes = d.take(n, String::new());
        let text = String::from_utf8_lossy(bytes).into_owned();
        if let Some(last) = d.lines.last_mut() {
            last.push_str(&format!("{name} = {text:?}"));
        }
    }
}

/// The same frame as plain hex, 16 bytes a line, for tools like `xxd -r -p`.
fn plain_hex(frame: &[u8]) -> String {
    let mut out = String::new();
    for chunk in frame.chunks(16) {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&hex.join(" "));
        out.push('\n');
    }
    out
}

fn assert_in_doc(text: &str, what: &str) {
    assert!(
        DOC.contains(text),
        "docs/PROTOCOL.md lacks {what}; it must contain exactly:\n{text}"
    );
}

#[test]
fn the_register_example_is_what_the_encoder_writes() {
    let req = Request::Register(example_registration());
    let frame = encode_frame(&req.encode());
    assert_eq!(
        Request::decode(&frame[4..]).unwrap(),
        req,
        "the example decodes back"
    );
    assert_eq!(
        u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
        frame.len() - 4
    );
    assert_in_doc(&annotated_dump(&frame), "the annotated Register frame");
    assert_in_doc(&plain_hex(&frame), "the plain hex of the Register frame");
}

fn request_name(r: &Request) -> &'static str {
    // No wildcard arm: a new variant does not compile until it is named here
    // (then add a sample to `requests()` and a section to the document).
    match r {
        Request::Register(_) => "Register",
        Request::Unregister(_) => "Unregister",
        Request::CheckAccess { .. } => "CheckAccess",
        Request::List => "List",
        Request::Show { .. } => "Show",
        Request::Kill { .. } => "Kill",
        Request::Revoke { .. } => "Revoke",
        Request::Unrevoke { .. } => "Unrevoke",
        Request::Revocations => "Revocations",
        Request::Reload => "Reload",
        Request::Status => "Status",
        Request::Revalidate { .. } => "Revalidate",
        Request::SetDeadline { .. } => "SetDeadline",
        Request::ClearDeadline { .. } => "ClearDeadline",
        Request::Deadlines => "Deadlines",
        Request::DaemonStatus => "DaemonStatus",
    }
}

fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Registered { .. } => "Registered",
        Response::Unregistered { .. } => "Unregistered",
        Response::Refused { .. } => "Refused",
        Response::Access { .. } => "Access",
        Response::Sessions(_) => "Sessions",
        Response::Revocations(_) => "Revocations",
        Response::Deadlines(_) => "Deadlines",
        Response::DaemonState { .. } => "DaemonState",
        Response::Done { .. } => "Done",
        Response::Error { .. } => "Error",
    }
}

fn error_code_name(c: ErrorCode) -> &'static str {
    match c {
        ErrorCode::Malformed => "Malformed",
        ErrorCode::PermissionDenied => "PermissionDenied",
        ErrorCode::NotFound => "NotFound",
        ErrorCode::Internal => "Internal",
    }
}

/// One of each request, with every string and list empty (so that its size
/// is the smallest the field table allows).
fn requests() -> Vec<Request> {
    vec![
        Request::Register(Registration::default()),
        Request::Unregister(SessionKey::default()),
        Request::CheckAccess {
            user: String::new(),
            service: String::new(),
            rhost: String::new(),
        },
        Request::List,
        Request::Show { id: 0 },
        Request::Kill {
            id: 0,
            reason: String::new(),
        },
        Request::Revoke {
            target: Target::User(String::new()),
            ttl_secs: 0,
            reason: String::new(),
        },
        Request::Unrevoke {
            target: Target::User(String::new()),
        },
        Request::Revocations,
        Request::Reload,
        Request::Status,
        Request::Revalidate {
            user: String::new(),
        },
        Request::SetDeadline {
            target: Target::User(String::new()),
            at: 0,
            reason: String::new(),
        },
        Request::ClearDeadline {
            target: Target::User(String::new()),
        },
        Request::Deadlines,
        Request::DaemonStatus,
    ]
}

fn responses() -> Vec<Response> {
    vec![
        Response::Registered {
            session_id: 0,
            banner: String::new(),
        },
        Response::Unregistered { session_id: 0 },
        Response::Refused {
            message: String::new(),
        },
        Response::Access {
            allowed: false,
            message: String::new(),
        },
        Response::Sessions(Vec::new()),
        Response::Revocations(Vec::new()),
        Response::Deadlines(Vec::new()),
        Response::DaemonState {
            sessions: 0,
            log_lines_dropped: 0,
        },
        Response::Done {
            message: String::new(),
        },
        Response::Error {
            code: ErrorCode::Malformed,
            message: String::new(),
        },
    ]
}

/// The rows of the first Markdown table after `heading`, before the next heading.
fn table_after(heading: &str) -> Vec<Vec<String>> {
    let start = DOC
        .find(heading)
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md lacks the heading {heading:?}"));
    let section = &DOC[start + heading.len()..];
    let end = section.find("\n#").unwrap_or(section.len());
    section[..end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // the header row and its |---| rule
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

/// The encoded size of a field table's types when every string and list is empty.
fn empty_size(heading: &str) -> usize {
    table_after(heading)
        .iter()
        .map(|row| {
            let ty = row.get(1).map_or("", String::as_str);
            match ty {
                "u8" | "bool" => 1,
                "u16" | "str" => 2,
                "u32" => 4,
                "u64" | "i64" => 8,
                "target" => 3, // u8 kind + an empty str
                t if t.contains('×') => 0,
                t => panic!("{heading}: unknown type {t:?} in the field table"),
            }
        })
        .sum()
}

fn heading(kind: u8, name: &str) -> String {
    format!("\n### Kind {kind}: {name}\n")
}

#[test]
fn every_request_kind_has_its_section_and_a_table_of_the_right_size() {
    let mut seen = Vec::new();
    for req in requests() {
        let body = req.encode();
        let (kind, name) = (body[1], request_name(&req));
        assert!(!seen.contains(&kind), "kind {kind} is used twice");
        seen.push(kind);
        let h = heading(kind, name);
        assert_in_doc(&h, "a request section");
        assert_in_doc(&format!("| {kind} | {name} | request |"), "a summary row");
        assert_eq!(
            empty_size(&h),
            body.len() - 2,
            "{name}: the field table does not add up to the encoded body"
        );
    }
}

#[test]
fn every_response_kind_has_its_section_and_a_table_of_the_right_size() {
    let mut seen = Vec::new();
    for resp in responses() {
        let body = resp.encode();
        let (kind, name) = (body[1], response_name(&resp));
        assert!(!seen.contains(&kind), "kind {kind} is used twice");
        seen.push(kind);
        let h = heading(kind, name);
        assert_in_doc(&h, "a response section");
        assert_in_doc(&format!("| {kind} | {name} | response |"), "a summary row");
        assert_eq!(
            empty_size(&h),
            body.len() - 2,
            "{name}: the field table does not add up to the encoded body"
        );
    }
}

#[test]
fn the_record_tables_add_up_to_the_encoded_records() {
    let empty = Response::Sessions(Vec::new()).encode().len();
    let one = Response::Sessions(vec![SessionInfo::default()])
        .encode()
        .len();
    assert_eq!(empty_size("\n### Record: SessionInfo\n"), one - empty);
    // Version 2 added dry_run, version 3 the quota as the record's last fields.
    let rows = table_after("\n### Record: SessionInfo\n");
    let last = rows.last().map(|r| (r[0].as_str(), r[1].as_str()));
    assert_eq!(last, Some(("quota_used", "i64")));
    let dry = Response::Sessions(vec![SessionInfo {
        dry_run: true,
        quota_used: 7,
        ..SessionInfo::default()
    }])
    .encode();
    assert_eq!(
        dry[dry.len() - 17],
        1,
        "dry_run is encoded before the quota, as 1"
    );
    assert_eq!(dry.last(), Some(&7), "quota_used is encoded last");
    let with_lists = Response::Sessions(vec![SessionInfo {
        pids: vec![1],
        warnings: vec![WarningSent {
            reason: String::new(),
            at: 0,
            deadline: 0,
        }],
        tampers: vec![TamperSeen {
            tty: String::new(),
            at: 0,
        }],
        ..SessionInfo::default()
    }])
    .encode()
    .len();
    assert_eq!(
        4 + empty_size("\n### Record: WarningSent\n") + empty_size("\n### Record: TamperSeen\n"),
        with_lists - one,
        "one pid, one warning and one tamper add what their tables say"
    );
    let empty = Response::Revocations(Vec::new()).encode().len();
    let one = Response::Revocations(vec![RevocationInfo {
        target: Target::User(String::new()),
        since: 0,
        until: 0,
        reason: String::new(),
        by_uid: 0,
    }])
    .encode()
    .len();
    assert_eq!(empty_size("\n### Record: RevocationInfo\n"), one - empty);
    let empty = Response::Deadlines(Vec::new()).encode().len();
    let one = Response::Deadlines(vec![DeadlineInfo {
        target: Target::User(String::new()),
        since: 0,
        at: 0,
        reason: String::new(),
        by_uid: 0,
    }])
    .encode()
    .len();
    assert_eq!(empty_size("\n### Record: DeadlineInfo\n"), one - empty);
}

#[test]
fn error_codes_target_kinds_and_limits_are_the_codes() {
    for code in [
        ErrorCode::Malformed,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::Internal,
    ] {
        let name = error_code_name(code);
        assert_in_doc(&format!("| {} | {name} |", code as u8), "an error code row");
    }
    for (target, name) in [
        (Target::User("u".into()), "User"),
        (Target::Group("g".into()), "Group"),
    ] {
        let body = Request::Unrevoke { target }.encode();
        assert_in_doc(&format!("| {} | {name} |", body[2]), "a target kind row");
    }
    assert_in_doc(&format!("`VERSION` = {VERSION}"), "the version");
    assert_in_doc(&format!("`MAX_FRAME` = {MAX_FRAME} bytes"), "MAX_FRAME");
    assert_in_doc(&format!("`MAX_REPLY` = {MAX_REPLY} bytes"), "MAX_REPLY");
}
