//! `--svg FILE`: two histograms, session lifetimes and each session's
//! longest idle gap, on a log time axis from 1 s to 1 week (shorter values
//! in the first bar, longer in the last), with the current limits (the most
//! common in the summaries, red) and the what-if limits (blue) as labelled
//! dashed vertical lines.

use std::fmt::Write as _;

use crate::report::show::table::human;
use crate::report::tally::hist::LogHistogram;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;
const BINS: usize = 48;
/// The axis spans 1 s .. 1 week.
const AXIS_MAX: f64 = 604_800.0;
const TICKS: [(f64, &str); 8] = [
    (1.0, "1s"),
    (10.0, "10s"),
    (60.0, "1m"),
    (600.0, "10m"),
    (3600.0, "1h"),
    (21_600.0, "6h"),
    (86_400.0, "1d"),
    (604_800.0, "1w"),
];

/// A limit line: which, the value in seconds, and whether it is the what-if.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub name: &'static str,
    pub secs: u64,
    pub what_if: bool,
}

/// What one panel shows.
pub struct Panel<'a> {
    pub title: String,
    pub hist: &'a LogHistogram,
    pub lines: Vec<Line>,
}

fn x_of(secs: f64) -> f64 {
    let frac = secs.clamp(1.0, AXIS_MAX).ln() / AXIS_MAX.ln();
    LEFT + frac * (WIDTH - LEFT - RIGHT)
}

fn bins(h: &LogHistogram) -> [u64; BINS] {
    let mut out = [0u64; BINS];
    for (v, n) in h.iter() {
        let frac = (v.max(1) as f64).ln() / AXIS_MAX.ln();
        let i = ((frac * BINS as f64) as usize).min(BINS - 1);
        out[i] += n;
    }
    out
}

/// A round step for about five y ticks up to `max`.
fn y_step(max: u64) -> u64 {
    let rough = (max.max(1) as f64 / 5.0).max(1.0);
    let mag = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * mag);
    step as u64
}

fn axes(out: &mut String, top: f64, ymax: u64, step: u64) {
    let (y0, y1) = (top + PANEL - BOTTOM, top + TOP);
    let _ = write!(
        out,
        r##"<g id="x-axis" class="axis"><line x1="{LEFT}" y1="{y0}" x2="{}" y2="{y0}" stroke="#333"/>"##,
        WIDTH - RIGHT
    );
    for (secs, label) in TICKS {
        let x = x_of(secs);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            y0 + 5.0,
            y0 + 18.0
        );
    }
    let _ = write!(
        out,
        r##"</g><g id="y-axis" class="axis"><line x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y1}" stroke="#333"/>"##
    );
    let mut v = 0;
    while v <= ymax {
        let y = y0 - (v as f64 / ymax as f64) * (y0 - y1);
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}" stroke="#333"/><line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>"##,
            LEFT - 5.0,
            WIDTH - RIGHT,
            LEFT - 8.0,
            y + 4.0
        );
        v += step;
    }
    let _ = write!(
        out,
        r##"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">sessions</text></g>"##,
        (y0 + y1) / 2.0
    );
}

fn limit_lines(out: &mut String, top: f64, lines: &[Line]) {
    let (y0, y1) = (top + PANEL - BOTTOM, top + TOP);
    for (i, l) in lines.iter().enumerate() {
        let x = x_of(l.secs as f64);
        let (class, color, who) = if l.what_if {
            ("what-if", "#1f5fd6", "what-if")
        } else {
            ("current", "#d62728", "current")
        };
        let ly = y1 - 6.0 + 14.0 * i as f64;
        let anchor = if x > WIDTH - 200.0 { "end" } else { "start" };
        let dx = if anchor == "end" { -4.0 } else { 4.0 };
        let _ = write!(
            out,
            r##"<line class="limit {class}" data-limit="{}" x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="{color}" stroke-width="2" stroke-dasharray="6 4"/><text x="{:.1}" y="{ly:.1}" fill="{color}" stroke="white" stroke-width="4" paint-order="stroke" text-anchor="{anchor}" font-weight="bold">{who} {} {}</text>"##,
            l.name,
            y1 - 10.0,
            x + dx,
            l.name,
            human(Some(l.secs))
        );
    }
}

fn panel(out: &mut String, index: usize, p: &Panel<'_>) {
    let top = index as f64 * PANEL;
    let counts = bins(p.hist);
    let peak = counts.iter().copied().max().unwrap_or(0).max(1);
    let step = y_step(peak);
    let ymax = peak.div_ceil(step) * step;
    let _ = write!(
        out,
        r##"<text class="title" x="{}" y="{}" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"##,
        WIDTH / 2.0,
        top + 22.0,
        xml(&p.title)
    );
    axes(out, top, ymax, step);
    let (y0, y1) = (top + PANEL - BOTTOM, top + TOP);
    for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
        let xa = x_of(AXIS_MAX.powf(i as f64 / BINS as f64));
        let xb = x_of(AXIS_MAX.powf((i + 1) as f64 / BINS as f64));
        let h = (*n as f64 / ymax as f64) * (y0 - y1);
        let _ = write!(
            out,
            r##"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#7f9fbf"/>"##,
            xa + 0.5,
            y0 - h,
            (xb - xa - 1.0).max(0.5)
        );
    }
    limit_lines(out, top, &p.lines);
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle">time (log scale; under 1s in the first bar, over 1w in the last)</text>"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        y0 + 36.0
    );
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole picture.
pub fn render(panels: &[Panel<'_>]) -> String {
    let height = PANEL * panels.len() as f64;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"##
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut out, i, p);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(y_step(1), 1);
        assert_eq!(y_step(7), 2);
        assert_eq!(y_step(40), 10);
        assert_eq!(y_step(1234), 500);
    }

    #[test]
    fn bins_cover_the_axis() {
        let mut h = LogHistogram::default();
        [0, 1, 59, 3600, 604_800, 10_000_000]
            .iter()
            .for_each(|v| h.add(*v));
        let b = bins(&h);
        assert_eq!(b.iter().sum::<u64>(), 6);
        assert_eq!(b[0], 2);
        assert_eq!(b[BINS - 1], 2);
    }
}
