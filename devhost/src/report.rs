//! The demo's report as a page a person would rather look at than read:
//! `target/demo/report.html`, one self-contained file (inline SVG, inline CSS,
//! no script, nothing fetched), with the figures the text report prints: the
//! size of both tiers before and after, the records archived over the run, and
//! the hot and cold read latency distributions. Pure: data in, HTML out.

use std::fmt::Write as _;
use std::time::Duration;

/// What the page shows.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub title: String,
    /// `(label, value)` lines of the summary table.
    pub facts: Vec<(String, String)>,
    /// Bytes in Cosmos before archiving; in Cosmos and in the archive after.
    pub cosmos_before: u64,
    pub cosmos_after: u64,
    pub archive_after: u64,
    /// Records archived so far, sampled during the run: `(seconds since start, count)`.
    pub archived_over_time: Vec<(f64, u64)>,
    pub hot: Vec<Duration>,
    pub cold: Vec<Duration>,
    pub passed: bool,
}

const WIDTH: f64 = 640.0;
const HOT: &str = "#d9480f";
const COLD: &str = "#1864ab";
const ARCHIVE: &str = "#5c940d";

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// An axis from 0: ticks a round step apart (1, 2 or 5 × 10ⁿ), at most
/// [`MOST_TICKS`] intervals, up to the first tick at or above the data's
/// maximum; every label is exact.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    step: f64,
    intervals: u32,
}

const MOST_TICKS: u32 = 5;

impl Axis {
    fn to(max: f64) -> Self {
        if max.is_nan() || max <= 0.0 {
            return Self { step: 1.0, intervals: 1 };
        }
        let power = 10f64.powf((max / f64::from(MOST_TICKS)).log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * power)
            .find(|step| max / step <= f64::from(MOST_TICKS) * (1.0 + 1e-9))
            .unwrap_or(10.0 * power);
        Self { step, intervals: ((max / step - 1e-9).ceil() as u32).max(1) }
    }

    fn top(self) -> f64 {
        self.step * f64::from(self.intervals)
    }

    /// Each tick's value and label.
    fn ticks(self) -> Vec<(f64, String)> {
        let decimals = if self.step >= 1.0 { 0 } else { (-self.step.log10().floor()) as usize };
        (0..=self.intervals)
            .map(|k| {
                let v = self.step * f64::from(k);
                (v, if k == 0 { "0".to_owned() } else { format!("{v:.decimals$}") })
            })
            .collect()
    }
}

/// Horizontal bars: Cosmos before; Cosmos and the archive after (stacked).
fn tiers_chart(r: &DemoReport) -> String {
    let axis = Axis::to(mb(r.cosmos_before.max(r.cosmos_after + r.archive_after)));
    let top = axis.top();
    let (left, right, bar) = (130.0, WIDTH - 20.0, 34.0);
    let x = |v: f64| left + (right - left) * v / top;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {WIDTH} 210" role="img" aria-label="Storage in each tier before and after archiving">"#
    );
    let rows = [
        ("before", vec![("Cosmos DB", mb(r.cosmos_before), HOT)]),
        ("after", vec![("Cosmos DB", mb(r.cosmos_after), HOT), ("archive (zstd)", mb(r.archive_after), ARCHIVE)]),
    ];
    for (i, (label, parts)) in rows.iter().enumerate() {
        let y = 20.0 + i as f64 * 60.0;
        let _ =
            write!(svg, r#"<text x="{}" y="{}" text-anchor="end" class="label">{label}</text>"#, left - 10.0, y + 22.0);
        let mut at = 0.0;
        for (name, value, colour) in parts {
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{y}" width="{:.1}" height="{bar}" fill="{colour}"><title>{name}: {value:.1} MB</title></rect>"#,
                x(at),
                (x(at + value) - x(at)).max(1.0)
            );
            at += value;
        }
        let total = parts.iter().map(|p| p.1).sum::<f64>();
        let _ = write!(svg, r#"<text x="{:.1}" y="{}" class="value">{total:.1} MB</text>"#, x(total) + 6.0, y + 22.0);
    }
    let _ = write!(svg, r#"<line x1="{left}" y1="140" x2="{right}" y2="140" class="axis"/>"#);
    for (v, label) in axis.ticks() {
        let _ = write!(svg, r#"<text x="{:.1}" y="156" text-anchor="middle" class="tick">{label}</text>"#, x(v));
    }
    let _ = write!(svg, r#"<text x="{}" y="174" text-anchor="middle" class="label">MB</text>"#, (left + right) / 2.0);
    legend(&mut svg, left, 190.0, &[("Cosmos DB", HOT), ("archive (Blob, zstd)", ARCHIVE)]);
    svg.push_str("</svg>");
    svg
}

/// A line chart of `(x, y)` points with axes from 0.
fn line_chart(points: &[(f64, f64)], x_label: &str, y_label: &str, colour: &str, aria: &str) -> String {
    let (left, right, top, bottom) = (60.0, WIDTH - 20.0, 15.0, 200.0);
    let x_axis = Axis::to(points.iter().map(|p| p.0).fold(0.0, f64::max));
    let y_axis = Axis::to(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let (x_max, y_max) = (x_axis.top(), y_axis.top());
    let x = |v: f64| left + (right - left) * v / x_max;
    let y = |v: f64| bottom - (bottom - top) * v / y_max;
    let mut svg = format!(r#"<svg viewBox="0 0 {WIDTH} 250" role="img" aria-label="{}">"#, esc(aria));
    axes(&mut svg, (left, right, top, bottom), x_axis, y_axis, x_label, y_label);
    let path: Vec<String> = points.iter().map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect();
    let _ = write!(svg, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.5"/>"#, path.join(" "));
    svg.push_str("</svg>");
    svg
}

fn axes(
    svg: &mut String,
    (left, right, top, bottom): (f64, f64, f64, f64),
    x_axis: Axis,
    y_axis: Axis,
    xl: &str,
    yl: &str,
) {
    let _ = write!(svg, r#"<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>"#);
    let _ = write!(svg, r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" class="axis"/>"#);
    for (v, label) in x_axis.ticks() {
        let px = left + (right - left) * v / x_axis.top();
        let _ =
            write!(svg, r#"<text x="{px:.1}" y="{}" text-anchor="middle" class="tick">{label}</text>"#, bottom + 16.0);
    }
    for (v, label) in y_axis.ticks() {
        let py = bottom - (bottom - top) * v / y_axis.top();
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end" class="tick">{label}</text>"#,
            left - 6.0,
            py + 4.0
        );
        if v > 0.0 {
            let _ = write!(svg, r#"<line x1="{left}" y1="{py:.1}" x2="{right}" y2="{py:.1}" class="grid"/>"#);
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" class="label">{}</text>"#,
        (left + right) / 2.0,
        bottom + 38.0,
        esc(xl)
    );
    let _ = write!(
        svg,
        r#"<text x="14" y="{}" text-anchor="middle" class="label" transform="rotate(-90 14 {})">{}</text>"#,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0,
        esc(yl)
    );
}

/// A row of colour keys at `y`, from `left`.
fn legend(svg: &mut String, left: f64, y: f64, keys: &[(&str, &str)]) {
    for (i, (name, colour)) in keys.iter().enumerate() {
        let lx = left + i as f64 * 200.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{y}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}" class="tick">{name}</text>"#,
            lx + 18.0,
            y + 10.0
        );
    }
}

/// The share of reads answered within each latency: one line per tier.
fn latency_chart(hot: &[Duration], cold: &[Duration]) -> String {
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let cdf = |v: &[Duration]| -> Vec<(f64, f64)> {
        let mut sorted: Vec<f64> = v.iter().map(ms).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len().max(1) as f64;
        let mut points = vec![(0.0, 0.0)];
        points.extend(sorted.iter().enumerate().map(|(i, x)| (*x, (i + 1) as f64 / n * 100.0)));
        points
    };
    let (left, right, top, bottom) = (60.0, WIDTH - 20.0, 15.0, 200.0);
    // The 99th percentile bounds the axis, so one slow outlier does not flatten the rest.
    let mut all: Vec<f64> = hot.iter().chain(cold).map(ms).collect();
    all.sort_by(f64::total_cmp);
    let p99 = all.get(((all.len() as f64 * 0.99) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(1.0);
    let x_axis = Axis::to(p99);
    let x_max = x_axis.top();
    let x = |v: f64| left + (right - left) * v.min(x_max) / x_max;
    let y = |v: f64| bottom - (bottom - top) * v / 100.0;
    let mut svg = format!(r#"<svg viewBox="0 0 {WIDTH} 270" role="img" aria-label="Read latency, hot and archived">"#);
    axes(&mut svg, (left, right, top, bottom), x_axis, Axis::to(100.0), "milliseconds", "% of reads within");
    for (points, colour) in [(cdf(hot), HOT), (cdf(cold), COLD)] {
        let path: Vec<String> = points.iter().map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect();
        let _ =
            write!(svg, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.5"/>"#, path.join(" "));
    }
    legend(&mut svg, left, 252.0, &[("hot (Cosmos DB)", HOT), ("archived (Blob)", COLD)]);
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn html(r: &DemoReport) -> String {
    let archived: Vec<(f64, f64)> = r.archived_over_time.iter().map(|(t, n)| (*t, *n as f64)).collect();
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>
body {{ font: 15px/1.45 system-ui, sans-serif; color: #212529; max-width: 720px; margin: 2em auto; padding: 0 1em; }}
h1 {{ font-size: 1.5em; margin-bottom: 0.2em; }} h2 {{ font-size: 1.1em; margin-top: 2em; }}
.verdict {{ display: inline-block; padding: 0.15em 0.7em; border-radius: 4px; color: white; font-weight: 600; }}
.pass {{ background: #2b8a3e; }} .fail {{ background: #c92a2a; }}
table {{ border-collapse: collapse; width: 100%; }} td {{ padding: 0.3em 0.5em; border-bottom: 1px solid #e9ecef; vertical-align: top; }}
td:first-child {{ color: #495057; white-space: nowrap; width: 10em; }}
svg {{ width: 100%; height: auto; }} .axis {{ stroke: #495057; }} .grid {{ stroke: #e9ecef; }}
.tick {{ font-size: 12px; fill: #495057; }} .label {{ font-size: 13px; fill: #212529; }} .value {{ font-size: 13px; fill: #212529; font-weight: 600; }}
</style></head><body>
<h1>{title}</h1><p><span class="verdict {class}">{verdict}</span></p>"#,
        title = esc(&r.title),
        class = if r.passed { "pass" } else { "fail" },
        verdict = if r.passed { "PASS" } else { "FAILED" },
    );
    page.push_str("<table>");
    for (k, v) in &r.facts {
        let _ = write!(page, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    page.push_str("</table>");
    let _ = write!(page, "<h2>Storage in each tier</h2>{}", tiers_chart(r));
    let _ = write!(
        page,
        "<h2>Records archived over the run</h2>{}",
        line_chart(&archived, "seconds into the run", "records archived", ARCHIVE, "Records archived over the run")
    );
    let _ = write!(
        page,
        "<h2>Read latency: hot and archived records</h2><p>The share of reads answered within each time, through the host stand-in.</p>{}",
        latency_chart(&r.hot, &r.cold)
    );
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DemoReport {
        DemoReport {
            title: "billing archive demo <report>".into(),
            facts: vec![("records".into(), "seeded 3000 & archived 1500".into())],
            cosmos_before: 90_000_000,
            cosmos_after: 45_000_000,
            archive_after: 7_000_000,
            archived_over_time: vec![(0.0, 0), (1.0, 400), (2.5, 1500)],
            hot: (1..=100).map(|i| Duration::from_micros(2_000 + i * 30)).collect(),
            cold: (1..=100).map(|i| Duration::from_micros(6_000 + i * 90)).collect(),
            passed: true,
        }
    }

    #[test]
    fn the_page_is_self_contained_and_shows_every_figure() {
        let page = html(&sample());
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>\n"));
        assert_eq!(page.matches("<svg").count(), 3, "three charts");
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="), "nothing fetched");
        assert!(page.contains("&lt;report&gt;") && page.contains("3000 &amp; archived"), "text is escaped");
        assert!(page.contains("90.0 MB") && page.contains("52.0 MB"), "tier totals before and after");
        assert!(page.contains("hot (Cosmos DB)") && page.contains("archived (Blob)"));
        assert!(page.contains(r#"class="verdict pass""#));
    }

    #[test]
    fn axes_tick_at_round_steps_and_every_label_is_exact() {
        // The demo's own figures once printed `0, 2, 5, 8, 10` MB, `0.8, 1.5, 2.2` s, `62.5, 188` records.
        let cases: [(f64, f64, &[&str]); 8] = [
            (10.3, 5.0, &["0", "5", "10", "15"]),
            (9.8, 2.0, &["0", "2", "4", "6", "8", "10"]),
            (2.2, 0.5, &["0", "0.5", "1.0", "1.5", "2.0", "2.5"]),
            (250.0, 50.0, &["0", "50", "100", "150", "200", "250"]),
            (188.0, 50.0, &["0", "50", "100", "150", "200"]),
            (100.0, 20.0, &["0", "20", "40", "60", "80", "100"]),
            (0.07, 0.02, &["0", "0.02", "0.04", "0.06", "0.08"]),
            (0.0, 1.0, &["0", "1"]),
        ];
        for (max, step, labels) in cases {
            let axis = Axis::to(max);
            assert!((axis.step - step).abs() < 1e-12, "{max}: {axis:?}");
            assert!(axis.top() >= max && axis.intervals <= MOST_TICKS, "{max}: {axis:?}");
            let got: Vec<String> = axis.ticks().into_iter().map(|(_, l)| l).collect();
            assert_eq!(got, labels, "{max}");
        }
        for max in [0.013, 0.7, 3.0, 7.5, 41.9, 103.7, 1200.0, 2402.0, 57_000.0] {
            let axis = Axis::to(max);
            let mantissa = axis.step / 10f64.powf(axis.step.log10().floor());
            assert!([1.0, 2.0, 5.0].iter().any(|m| (m - mantissa).abs() < 1e-9), "{max}: step {}", axis.step);
            for (k, (v, label)) in axis.ticks().into_iter().enumerate() {
                assert!((label.parse::<f64>().unwrap() - v).abs() < 1e-9, "{max}: tick {k} printed {label} for {v}");
            }
        }
    }
}
