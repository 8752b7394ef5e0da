//! Unit tests of `record`: the session line and its versions, hostile
//! names, the evidence fields, journal entries and replay.

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
