//! The line format the small state files share (revocations, deadlines, the
//! quota ledger): `#` comments, blank lines skipped, one record per line with
//! its fields separated by tabs, and text fields escaped ([`esc`]). A field
//! that does not parse names its line in the error, never a panic.

use std::str::FromStr;

use session_timeout_proto::Target;

use crate::core::state::record::{esc, unesc};
use crate::core::time::clock::Timestamp;

/// One record line of a state file, split at its tabs.
pub(crate) struct Line<'a> {
    number: usize,
    what: &'static str,
    fields: Vec<&'a str>,
}

/// The record lines of `text`, numbered from 1; `what` names a record in the
/// errors ("line 3: malformed revocation").
pub(crate) fn records<'a>(text: &'a str, what: &'static str) -> impl Iterator<Item = Line<'a>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') && !line.trim().is_empty())
        .map(move |(n, line)| Line {
            number: n + 1,
            what,
            fields: line.split('\t').collect(),
        })
}

impl<'a> Line<'a> {
    /// The error for this line.
    pub(crate) fn bad(&self) -> String {
        format!("line {}: malformed {}", self.number, self.what)
    }

    /// The fields, if there are exactly `N` of them.
    pub(crate) fn fields<const N: usize>(&self) -> Result<[&'a str; N], String> {
        <[&str; N]>::try_from(self.fields.as_slice()).map_err(|_| self.bad())
    }

    /// A number field.
    pub(crate) fn number<T: FromStr>(&self, field: &str) -> Result<T, String> {
        field.parse().map_err(|_| self.bad())
    }

    /// A time field, milliseconds since the epoch.
    pub(crate) fn time(&self, field: &str) -> Result<Timestamp, String> {
        self.number(field).map(Timestamp)
    }

    /// A time field that may be `-`, for none.
    pub(crate) fn optional_time(&self, field: &str) -> Result<Option<Timestamp>, String> {
        match field {
            "-" => Ok(None),
            v => self.time(v).map(Some),
        }
    }

    /// A target from its two fields, `user|group` and the escaped name.
    pub(crate) fn target(&self, kind: &str, name: &str) -> Result<Target, String> {
        match kind {
            "user" => Ok(Target::User(unesc(name))),
            "group" => Ok(Target::Group(unesc(name))),
            _ => Err(self.bad()),
        }
    }
}

/// The two fields of a target: `user|group`, and the name escaped.
pub(crate) fn target_fields(target: &Target) -> (&'static str, String) {
    match target {
        Target::User(n) => ("user", esc(n)),
        Target::Group(n) => ("group", esc(n)),
    }
}

/// The field of an optional time: milliseconds, or `-` for none.
pub(crate) fn optional_time_field(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped_and_lines_keep_their_numbers() {
        let text = "# header\n\nuser\tana\n  \ngroup\tops\textra\n";
        let lines: Vec<Line<'_>> = records(text, "entry").collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].fields::<2>(), Ok(["user", "ana"]));
        assert_eq!(
            lines[1].fields::<2>(),
            Err("line 5: malformed entry".into())
        );
    }

    #[test]
    fn fields_that_do_not_parse_name_their_line() {
        let line = records("x\ty", "thing").next().unwrap();
        assert_eq!(line.time("12"), Ok(Timestamp(12)));
        assert_eq!(line.time("1.5"), Err("line 1: malformed thing".into()));
        assert_eq!(line.optional_time("-"), Ok(None));
        assert_eq!(
            line.number::<u32>("-1"),
            Err("line 1: malformed thing".into())
        );
        assert_eq!(
            line.target("group", "a\\tb"),
            Ok(Target::Group("a\tb".into()))
        );
        assert_eq!(
            line.target("host", "a"),
            Err("line 1: malformed thing".into())
        );
    }

    #[test]
    fn written_fields_read_back() {
        let (kind, name) = target_fields(&Target::User("a\tb".into()));
        let line = records("-", "t").next().unwrap();
        assert_eq!(line.target(kind, &name), Ok(Target::User("a\tb".into())));
        assert_eq!(optional_time_field(None), "-");
        assert_eq!(
            line.optional_time(&optional_time_field(Some(Timestamp(7)))),
            Ok(Some(Timestamp(7)))
        );
    }
}
