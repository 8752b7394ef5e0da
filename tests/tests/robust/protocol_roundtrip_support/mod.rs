//! Helpers for `protocol_roundtrip.rs` only: the value generator (`Rng`)
//! and the fuzz seed corpus's sample values (`corpus`).

pub mod corpus;

use session_timeout_proto::{
    AuthFacts, Cert, DeadlineInfo, ErrorCode, Registration, Request, Response, RevocationInfo,
    SessionInfo, SessionKey, TamperSeen, Target, WarningSent,
};

/// xorshift64* (Vigna): tiny, fast and good enough to drive a generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// Integers biased to the edges, where codecs break.
    pub fn u64(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => self.below(300),
            3 => u64::from(u32::MAX) + self.below(3),
            _ => self.next(),
        }
    }

    pub fn u32(&mut self) -> u32 {
        self.u64() as u32
    }

    pub fn i64(&mut self) -> i64 {
        match self.below(5) {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => -(self.below(1000) as i64),
            _ => self.next() as i64,
        }
    }

    /// Strings with the characters that break escaping and UTF-8 handling:
    /// empty, ASCII, controls, NUL, multi-byte, astral, and now and then long.
    pub fn string(&mut self) -> String {
        const POOL: &[char] = &[
            'a',
            'Z',
            '0',
            ' ',
            '"',
            '\\',
            '\n',
            '\t',
            '\0',
            '\x1b',
            '\x07',
            '=',
            ',',
            'é',
            'ß',
            '\u{9b}',
            '\u{200b}',
            '日',
            '\u{fffd}',
            '😀',
            '\u{10ffff}',
        ];
        let len = match self.below(40) {
            0..=3 => 0,
            4 => 200 + self.below(800) as usize,
            _ => self.below(24) as usize,
        };
        (0..len)
            .map(|_| POOL[self.below(POOL.len() as u64) as usize])
            .collect()
    }

    pub fn vec<T>(&mut self, max: u64, mut f: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let n = self.below(max + 1);
        (0..n).map(|_| f(self)).collect()
    }

    pub fn target(&mut self) -> Target {
        if self.bool() {
            Target::User(self.string())
        } else {
            Target::Group(self.string())
        }
    }

    pub fn registration(&mut self) -> Registration {
        Registration {
            user: self.string(),
            uid: self.u32(),
            service: self.string(),
            tty: self.string(),
            rhost: self.string(),
            ruser: self.string(),
            pid: self.u32(),
            start_time: self.u64(),
            loginuid: self.u32(),
            sessionid: self.u32(),
            // Within the caps the daemon enforces; the corpus has a full one.
            auth: Box::new(AuthFacts {
                methods: self.vec(3, |r| {
                    ["publickey", "password", "keyboard-interactive/pam"][r.below(3) as usize]
                        .to_owned()
                }),
                cert: Cert::None,
                runtime_max_at: if self.bool() {
                    0
                } else {
                    self.below(1 << 40) as i64
                },
            }),
        }
    }

    pub fn request(&mut self) -> Request {
        match self.below(16) {
            0 => Request::Register(self.registration()),
            1 => Request::Unregister(SessionKey {
                pid: self.u32(),
                start_time: self.u64(),
                session_id: self.u64(),
            }),
            2 => Request::CheckAccess {
                user: self.string(),
                service: self.string(),
                rhost: self.string(),
            },
            3 => Request::List,
            4 => Request::Show { id: self.u64() },
            5 => Request::Kill {
                id: self.u64(),
                reason: self.string(),
            },
            6 => Request::Revoke {
                target: self.target(),
                ttl_secs: self.u64(),
                reason: self.string(),
            },
            7 => Request::Unrevoke {
                target: self.target(),
            },
            8 => Request::Revocations,
            9 => Request::Reload,
            10 => Request::Revalidate {
                user: self.string(),
            },
            11 => Request::SetDeadline {
                target: self.target(),
                at: self.i64(),
                reason: self.string(),
            },
            12 => Request::ClearDeadline {
                target: self.target(),
            },
            13 => Request::Deadlines,
            14 => Request::DaemonStatus,
            _ => Request::Status,
        }
    }

    pub fn session_info(&mut self) -> SessionInfo {
        SessionInfo {
            id: self.u64(),
            user: self.string(),
            uid: self.u32(),
            service: self.string(),
            tty: self.string(),
            rhost: self.string(),
            rule: self.string(),
            state: self.string(),
            started: self.i64(),
            last_activity: self.i64(),
            idle_deadline: self.i64(),
            max_deadline: self.i64(),
            now: self.i64(),
            leader_pid: self.u32(),
            audit_session: self.u32(),
            pids: self.vec(6, Rng::u32),
            warnings: self.vec(3, |r| WarningSent {
                reason: r.string(),
                at: r.i64(),
                deadline: r.i64(),
            }),
            tampers: self.vec(3, |r| TamperSeen {
                tty: r.string(),
                at: r.i64(),
            }),
            dry_run: self.below(2) == 1,
            daily_quota: self.i64(),
            quota_used: self.i64(),
        }
    }

    pub fn error_code(&mut self) -> ErrorCode {
        [
            ErrorCode::Malformed,
            ErrorCode::PermissionDenied,
            ErrorCode::NotFound,
            ErrorCode::Internal,
        ][self.below(4) as usize]
    }

    pub fn response(&mut self) -> Response {
        match self.below(10) {
            0 => Response::Registered {
                session_id: self.u64(),
                banner: self.string(),
            },
            1 => Response::Unregistered {
                session_id: self.u64(),
            },
            2 => Response::Refused {
                message: self.string(),
            },
            3 => Response::Access {
                allowed: self.bool(),
                message: self.string(),
            },
            4 => Response::Sessions(self.vec(4, Rng::session_info)),
            5 => Response::Revocations(self.vec(4, |r| RevocationInfo {
                target: r.target(),
                since: r.i64(),
                until: r.i64(),
                reason: r.string(),
                by_uid: r.u32(),
            })),
            6 => Response::Done {
                message: self.string(),
            },
            7 => Response::Deadlines(self.vec(4, |r| DeadlineInfo {
                target: r.target(),
                since: r.i64(),
                at: r.i64(),
                reason: r.string(),
                by_uid: r.u32(),
            })),
            8 => Response::DaemonState {
                sessions: self.u32(),
                log_lines_dropped: self.u64(),
            },
            _ => Response::Error {
                code: self.error_code(),
                message: self.string(),
            },
        }
    }
}
