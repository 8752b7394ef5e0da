//! The results: headline figures with their targets, per-phase details, and
//! their rendering as markdown and JSON.

use std::fmt::Write;

use crate::results::json::J;

/// One headline figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub key: String,
    pub label: String,
    pub value: Option<f64>,
    pub unit: String,
    /// Passes when `value <= limit`.
    pub limit: Option<f64>,
    pub note: String,
}

impl Figure {
    pub fn verdict(&self) -> &'static str {
        match (self.value, self.limit) {
            (None, _) => "ERROR",
            (Some(_), None) => "",
            (Some(v), Some(l)) if v <= l => "PASS",
            (Some(_), Some(_)) => "FAIL",
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub meta: Vec<(String, String)>,
    pub figures: Vec<Figure>,
    pub details: Vec<(String, J)>,
    /// Markdown blocks of the phases (their own tables).
    pub sections: Vec<(String, String)>,
    pub errors: Vec<String>,
}

pub fn fmt_value(v: f64, unit: &str) -> String {
    let a = v.abs();
    let digits = if v == v.trunc() {
        0
    } else if a >= 100.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a >= 0.01 {
        3
    } else {
        5
    };
    let u = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    format!("{v:.digits$}{u}")
}

impl Report {
    pub fn meta(&mut self, k: &str, v: impl ToString) {
        self.meta.push((k.to_owned(), v.to_string()));
    }

    /// A figure without a target.
    pub fn figure(&mut self, key: &str, label: &str, value: Option<f64>, unit: &str) {
        self.add(key, label, value, unit, None, "");
    }

    /// A figure with the target `value <= limit`.
    pub fn target(
        &mut self,
        key: &str,
        label: &str,
        value: Option<f64>,
        unit: &str,
        limit: f64,
        note: &str,
    ) {
        self.add(key, label, value, unit, Some(limit), note);
    }

    fn add(
        &mut self,
        key: &str,
        label: &str,
        value: Option<f64>,
        unit: &str,
        limit: Option<f64>,
        note: &str,
    ) {
        self.figures.push(Figure {
            key: key.to_owned(),
            label: label.to_owned(),
            value: value.filter(|v| v.is_finite()),
            unit: unit.to_owned(),
            limit,
            note: note.to_owned(),
        });
    }

    pub fn detail(&mut self, phase: &str, j: J) {
        self.details.push((phase.to_owned(), j));
    }

    pub fn section(&mut self, title: &str, markdown: String) {
        self.sections.push((title.to_owned(), markdown));
    }

    pub fn error(&mut self, phase: &str, e: impl std::fmt::Display) {
        self.errors.push(format!("{phase}: {e}"));
    }

    pub fn has(&self, key: &str) -> bool {
        self.figures.iter().any(|f| f.key == key)
    }

    pub fn missing(&self) -> Vec<&Figure> {
        self.figures.iter().filter(|f| f.value.is_none()).collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = String::from("# st-bench results\n\n");
        for (k, v) in &self.meta {
            let _ = writeln!(s, "- {k}: {v}");
        }
        s.push_str("\n## Targets\n\n| figure | measured | target | result |\n|---|---|---|---|\n");
        for f in self.figures.iter().filter(|f| f.limit.is_some()) {
            let measured = f
                .value
                .map_or("not measured".into(), |v| fmt_value(v, &f.unit));
            let limit = f
                .limit
                .map_or(String::new(), |l| format!("≤ {}", fmt_value(l, &f.unit)));
            let note = if f.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", f.note)
            };
            let _ = writeln!(
                s,
                "| {}{note} | {measured} | {limit} | {} |",
                f.label,
                f.verdict()
            );
        }
        s.push_str("\n## Other figures\n\n| figure | value |\n|---|---|\n");
        for f in self.figures.iter().filter(|f| f.limit.is_none()) {
            let measured = f.value.map_or("MISSING".into(), |v| fmt_value(v, &f.unit));
            let _ = writeln!(s, "| {} | {measured} |", f.label);
        }
        for (title, body) in &self.sections {
            let _ = write!(s, "\n## {title}\n\n{body}");
            if !body.ends_with('\n') {
                s.push('\n');
            }
        }
        if !self.errors.is_empty() {
            s.push_str("\n## Errors\n\n");
            for e in &self.errors {
                let _ = writeln!(s, "- {}", e.replace('\n', " "));
            }
        }
        s
    }

    pub fn json(&self) -> J {
        let meta = J::Obj(
            self.meta
                .iter()
                .map(|(k, v)| (k.clone(), J::from(v.as_str())))
                .collect(),
        );
        let figures = J::Arr(
            self.figures
                .iter()
                .map(|f| {
                    J::obj([
                        ("key", J::from(f.key.as_str())),
                        ("label", J::from(f.label.as_str())),
                        ("value", J::opt(f.value)),
                        ("unit", J::from(f.unit.as_str())),
                        ("target_max", J::opt(f.limit)),
                        ("result", J::from(f.verdict())),
                    ])
                })
                .collect(),
        );
        let details = J::Obj(self.details.clone());
        let errors = J::Arr(self.errors.iter().map(|e| J::from(e.as_str())).collect());
        J::obj([
            ("meta", meta),
            ("figures", figures),
            ("details", details),
            ("errors", errors),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_tables() {
        let mut r = Report::default();
        r.target("a", "lateness p99", Some(12.5), "ms", 200.0, "");
        r.target("b", "cpu", Some(1.0), "%", 0.5, "at 10000");
        r.target("c", "rss", None, "KiB", 2.0, "");
        r.figure("d", "floor", Some(0.04), "ms");
        let v: Vec<&str> = r.figures.iter().map(Figure::verdict).collect();
        assert_eq!(v, ["PASS", "FAIL", "ERROR", ""]);
        let md = r.markdown();
        assert!(
            md.contains("| lateness p99 | 12.50 ms | ≤ 200 ms | PASS |"),
            "{md}"
        );
        assert!(md.contains("| floor | 0.040 ms |"), "{md}");
        assert_eq!(fmt_value(0.0, ""), "0");
        assert_eq!(fmt_value(0.00035, "ms"), "0.00035 ms");
        assert_eq!(r.missing().len(), 1);
    }
}
