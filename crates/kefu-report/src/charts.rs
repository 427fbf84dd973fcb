//! Inline SVG charts: a 13-month line or bar chart and a horizontal bar chart, drawn as
//! plain SVG elements so the page needs no script, font file or network to show them.
//!
//! Why not a plotting crate: plotters lays text out with font files (its `ttf` feature) or
//! not at all, and these charts need only axes, a path and labels that the browser lays
//! out itself (Chinese included).

use std::fmt::Write;

/// How values are shown on axes and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Whole numbers with thousands separators.
    Count,
    /// A share 0..1, shown as a percentage.
    Percent,
    /// A plain number with one decimal.
    Decimal,
}

impl Scale {
    pub fn format(self, v: f64) -> String {
        match self {
            Scale::Count => thousands(v.round() as i64),
            Scale::Percent => format!("{:.1}%", v * 100.0),
            Scale::Decimal => format!("{v:.1}"),
        }
    }

    /// An axis label, with as many decimals as the tick step needs.
    fn tick(self, v: f64, step: f64) -> String {
        match self {
            // 12,500 is "12.5k", not "12k"; 10,000 is "10k".
            Scale::Count if v.abs() >= 10_000.0 => {
                let text = format!("{:.*}", places(step / 1000.0), v / 1000.0);
                let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
                let fraction = fraction.trim_end_matches('0');
                let whole = thousands(whole.parse::<i64>().unwrap_or(0));
                if fraction.is_empty() {
                    format!("{whole}k")
                } else {
                    format!("{whole}.{fraction}k")
                }
            }
            Scale::Count => thousands(v.round() as i64),
            Scale::Percent => format!("{:.*}%", places(step * 100.0), v * 100.0),
            Scale::Decimal => format!("{:.*}", places(step), v),
        }
    }
}

/// The decimals that show every multiple of `step` exactly (2.5 → 1, 0.05 → 2), at most 4.
fn places(step: f64) -> usize {
    (0..4)
        .find(|&d| {
            let scaled = step.abs() * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(4)
}

pub use kefu_model::number::thousands;

/// Escapes text for SVG/HTML content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 230.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

/// Round tick values covering `lo..=hi` (about five): steps of 1, 2, 2.5 or 5 times a
/// power of ten, and for counts (`integral`) whole steps only — no "0 2 5 8 10 12" from
/// a step of 2.5 rounded.
fn ticks(lo: f64, hi: f64, integral: bool) -> Vec<f64> {
    let (lo, hi) = if hi - lo < 1e-12 {
        (lo - lo.abs().max(1.0) * 0.1, hi + hi.abs().max(1.0) * 0.1)
    } else {
        (lo, hi)
    };
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let whole = |s: &f64| !integral || (*s >= 1.0 && (s - s.round()).abs() < 1e-9);
    let step = [1.0, 2.0, 2.5, 5.0, 10.0, 20.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw && whole(s))
        .unwrap_or(10.0 * magnitude)
        .max(if integral { 1.0 } else { 0.0 });
    let first = (lo / step).floor() * step;
    let mut out = Vec::new();
    let mut v = first;
    while v <= hi + step * 0.999 && out.len() < 12 {
        // Rounded to the step's precision, so that 0.1 + 0.2 prints as 0.3.
        out.push((v / step).round() * step);
        v += step;
    }
    out
}

struct Frame {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Frame {
    fn new(values: &[Option<f64>], from_zero: bool, scale: Scale) -> Self {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        let mut lo = present.iter().copied().fold(f64::INFINITY, f64::min);
        let mut hi = present.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if present.is_empty() {
            (lo, hi) = (0.0, 1.0);
        }
        if from_zero {
            lo = lo.min(0.0);
        }
        let ticks = ticks(lo, hi, scale == Scale::Count);
        Frame {
            lo: ticks[0],
            hi: *ticks.last().expect("at least one tick"),
            ticks,
        }
    }

    fn y(&self, v: f64) -> f64 {
        let plot = HEIGHT - TOP - BOTTOM;
        TOP + plot * (1.0 - (v - self.lo) / (self.hi - self.lo).max(1e-12))
    }

    fn axes(&self, svg: &mut String, scale: Scale) {
        let step = match self.ticks.as_slice() {
            [a, b, ..] => b - a,
            _ => 1.0,
        };
        for t in &self.ticks {
            let y = self.y(*t);
            let _ = write!(
                svg,
                r##"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e3e6ea"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#555">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                escape(&scale.tick(*t, step))
            );
        }
    }
}

fn open(svg: &mut String, title: &str, height: f64) {
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{}">"#,
        escape(title)
    );
}

fn x_labels(svg: &mut String, labels: &[String], x: impl Fn(usize) -> f64) {
    // Skip labels so that they do not overlap (about 6.5 px a character at 10 px).
    let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let room = (WIDTH - LEFT - RIGHT) / labels.len().max(1) as f64;
    let every = ((widest * 6.5 + 6.0) / room).ceil().max(1.0) as usize;
    for (i, label) in labels.iter().enumerate().step_by(every) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#555">{}</text>"##,
            x(i),
            HEIGHT - BOTTOM + 16.0,
            escape(label)
        );
    }
}

/// The frame of a chart over `labels`: the open SVG with its axes and labels, the value
/// frame, and the width of one label's slot.
fn plot(
    title: &str,
    labels: &[String],
    values: &[Option<f64>],
    scale: Scale,
    from_zero: bool,
) -> (String, Frame, f64) {
    let frame = Frame::new(values, from_zero, scale);
    let mut svg = String::new();
    open(&mut svg, title, HEIGHT);
    frame.axes(&mut svg, scale);
    let step = (WIDTH - LEFT - RIGHT) / labels.len().max(1) as f64;
    x_labels(&mut svg, labels, |i| LEFT + step * (i as f64 + 0.5));
    (svg, frame, step)
}

/// A line over `labels` (e.g. 13 months); missing values break the line.
pub fn line(title: &str, labels: &[String], values: &[Option<f64>], scale: Scale) -> String {
    let (mut svg, frame, step) = plot(title, labels, values, scale, false);
    let x = |i: usize| LEFT + step * (i as f64 + 0.5);
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1} ",
                    if pen_down { "L" } else { "M" },
                    x(i),
                    frame.y(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if !d.is_empty() {
        let _ = write!(
            svg,
            r##"<path class="series" d="{}" fill="none" stroke="#1f6fb2" stroke-width="2.2"/>"##,
            d.trim_end()
        );
    }
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f6fb2"><title>{}: {}</title></circle>"##,
                x(i),
                frame.y(*v),
                escape(&labels[i]),
                escape(&scale.format(*v))
            );
        }
    }
    if let Some((i, Some(v))) = values.iter().enumerate().next_back() {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" font-weight="bold" fill="#1f6fb2">{}</text>"##,
            x(i),
            frame.y(*v) - 8.0,
            escape(&scale.format(*v))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical bars over `labels`; the last bar (the report's month) is highlighted.
pub fn bars(title: &str, labels: &[String], values: &[Option<f64>], scale: Scale) -> String {
    let (mut svg, frame, step) = plot(title, labels, values, scale, true);
    let x = |i: usize| LEFT + step * (i as f64 + 0.5);
    let zero = frame.y(0.0f64.clamp(frame.lo, frame.hi));
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else { continue };
        let y = frame.y(*v);
        let (top, height) = if y < zero {
            (y, zero - y)
        } else {
            (zero, y - zero)
        };
        let colour = if i + 1 == values.len() {
            "#d9822b"
        } else {
            "#7fa7cf"
        };
        let w = step * 0.7;
        // A path rather than <rect>, so every chart draws its data as paths.
        let _ = write!(
            svg,
            r#"<path class="series" d="M{:.1} {:.1} h{w:.1} v{height:.1} h-{w:.1} Z" fill="{colour}"><title>{}: {}</title></path>"#,
            x(i) - w / 2.0,
            top,
            escape(&labels[i]),
            escape(&scale.format(*v))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one row per label, values written at the bar ends.
pub fn hbars(title: &str, labels: &[String], values: &[f64], scale: Scale) -> String {
    let row = 22.0;
    let label_width = 180.0;
    let height = TOP + row * labels.len().max(1) as f64 + 8.0;
    let max = values.iter().copied().fold(0.0, f64::max).max(1e-12);
    let mut svg = String::new();
    open(&mut svg, title, height);
    let span = WIDTH - label_width - 70.0;
    for (i, (label, v)) in labels.iter().zip(values).enumerate() {
        let y = TOP + row * i as f64;
        let w = (v / max * span).max(1.0);
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12" fill="#333">{}</text><path class="series" d="M{label_width:.1} {:.1} h{w:.1} v{:.1} h-{w:.1} Z" fill="#5b9bd5"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#333">{}</text>"##,
            label_width - 8.0,
            y + 14.0,
            escape(label),
            y + 3.0,
            row - 6.0,
            label_width + w + 6.0,
            y + 14.0,
            escape(&scale.format(*v))
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = ticks(0.0, 87.0, true);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() >= 87.0);
        assert!(
            t.windows(2).all(|w| ((w[1] - w[0]) - 20.0).abs() < 1e-9),
            "{t:?}"
        );
        let flat = ticks(5.0, 5.0, true);
        assert!(flat.len() >= 2 && flat[0] <= 5.0 && *flat.last().unwrap() >= 5.0);
        // Counts up to 12: a step of 2.5 would print as 0 2 5 8 10 12; whole steps only.
        let labels = |t: &[f64]| -> Vec<String> {
            let step = t[1] - t[0];
            t.iter().map(|v| Scale::Count.tick(*v, step)).collect()
        };
        assert_eq!(labels(&ticks(0.0, 12.0, true)), ["0", "5", "10", "15"]);
        assert_eq!(labels(&ticks(0.0, 3.0, true)), ["0", "1", "2", "3"]);
        // Thousands keep the step's decimals: 12.5k, not 12k.
        assert_eq!(
            labels(&ticks(0.0, 12_000.0, true)),
            ["0", "2,500", "5,000", "7,500", "10k", "12.5k"]
        );
        // Shares: 0.1 + 0.2 is 0.3 on the axis.
        let shares = ticks(0.0, 0.9, false);
        assert_eq!(
            shares
                .iter()
                .map(|v| Scale::Percent.tick(*v, 0.2))
                .collect::<Vec<_>>(),
            ["0%", "20%", "40%", "60%", "80%", "100%"]
        );
    }

    #[test]
    fn a_missing_month_breaks_the_line_and_labels_are_escaped() {
        let labels: Vec<String> = ["a<b", "2", "3", "4"].map(String::from).to_vec();
        let svg = line(
            "t",
            &labels,
            &[Some(1.0), None, Some(2.0), Some(3.0)],
            Scale::Count,
        );
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }

    #[test]
    fn formats() {
        assert_eq!(Scale::Percent.format(0.925), "92.5%");
        assert_eq!(Scale::Count.format(1234567.0), "1,234,567");
        assert_eq!(thousands(-1234), "-1,234");
        assert_eq!(Scale::Percent.tick(0.0155, 0.0005), "1.55%");
        assert_eq!(Scale::Percent.tick(0.8, 0.05), "80%");
        assert_eq!(Scale::Percent.tick(0.815, 0.005), "81.5%");
    }
}
