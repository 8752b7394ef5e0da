//! A minimal JSON value and writer (the harness needs no parser).

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Str(s.to_owned())
    }
}

impl From<String> for J {
    fn from(s: String) -> J {
        J::Str(s)
    }
}

impl From<bool> for J {
    fn from(b: bool) -> J {
        J::Bool(b)
    }
}

impl From<usize> for J {
    fn from(n: usize) -> J {
        J::Num(n as f64)
    }
}

impl From<u64> for J {
    fn from(n: u64) -> J {
        J::Num(n as f64)
    }
}

impl From<i64> for J {
    fn from(n: i64) -> J {
        J::Num(n as f64)
    }
}

impl From<u32> for J {
    fn from(n: u32) -> J {
        J::Num(f64::from(n))
    }
}

impl J {
    /// A number; NaN and infinities become null.
    pub fn num(v: f64) -> J {
        if v.is_finite() {
            J::Num(v)
        } else {
            J::Null
        }
    }

    pub fn opt(v: Option<f64>) -> J {
        v.map_or(J::Null, J::num)
    }

    pub fn obj<const N: usize>(fields: [(&str, J); N]) -> J {
        J::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, indent: usize) {
        let pad = |out: &mut String, n: usize| out.push_str(&"  ".repeat(n));
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(v) => {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    let _ = write!(out, "{}", *v as i64);
                } else {
                    let _ = write!(out, "{}", (v * 1e6).round() / 1e6);
                }
            }
            J::Str(s) => write_str(out, s),
            J::Arr(items) if items.is_empty() => out.push_str("[]"),
            J::Arr(items) => {
                let flat = items.iter().all(|i| matches!(i, J::Num(_) | J::Null));
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if flat {
                        if i > 0 {
                            out.push(' ');
                        }
                    } else {
                        out.push('\n');
                        pad(out, indent + 1);
                    }
                    item.write(out, indent + 1);
                }
                if !flat {
                    out.push('\n');
                    pad(out, indent);
                }
                out.push(']');
            }
            J::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('\n');
                    pad(out, indent + 1);
                    write_str(out, k);
                    out.push_str(": ");
                    v.write(out, indent + 1);
                }
                out.push('\n');
                pad(out, indent);
                out.push('}');
            }
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_values() {
        let v = J::obj([
            ("a", J::from(1u32)),
            ("b", J::Arr(vec![J::num(0.5), J::Null])),
            ("c", J::from("x\"y\n")),
            ("d", J::num(f64::NAN)),
        ]);
        assert_eq!(
            v.pretty(),
            "{\n  \"a\": 1,\n  \"b\": [0.5, null],\n  \"c\": \"x\\\"y\\n\",\n  \"d\": null\n}\n"
        );
    }
}
