//! A dependency-free SVG strip chart: every sample as a dot, the median as a
//! bar, one row per series, on a shared linear axis from zero.

use std::fmt::Write;

use crate::stats::Summary;

const WIDTH: f64 = 760.0;
const ROW_HEIGHT: f64 = 60.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A "nice" axis end: 1, 2 or 5 times a power of ten, at least `max`.
fn axis_end(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|end| *end >= max)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn strip_chart(title: &str, series: &[(&str, &[f64])]) -> String {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0, f64::max);
    let end = axis_end(max);
    let plot_width = WIDTH - LEFT - RIGHT;
    let height = TOP + ROW_HEIGHT * series.len() as f64 + 50.0;
    let x = |value: f64| LEFT + value / end * plot_width;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" font-size="14" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let axis_y = TOP + ROW_HEIGHT * series.len() as f64;
    for tick in 0..=5 {
        let value = end * f64::from(tick) / 5.0;
        let tx = x(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{tx}" y1="{TOP}" x2="{tx}" y2="{axis_y}" stroke="#ddd"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{tx}" y="{}" text-anchor="middle">{value}</text>"#,
            axis_y + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">milliseconds</text>"#,
        LEFT + plot_width / 2.0,
        axis_y + 36.0
    );
    for (row, (name, values)) in series.iter().enumerate() {
        let color = COLORS[row % COLORS.len()];
        let center = TOP + ROW_HEIGHT * (row as f64 + 0.5);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 10.0,
            center + 4.0,
            escape(name)
        );
        for (i, value) in values.iter().enumerate() {
            // Spread dots vertically a little so equal values stay visible.
            let jitter = ((i * 7) % 11) as f64 - 5.0;
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}" fill-opacity="0.6"/>"#,
                x(*value),
                center + jitter * 2.0
            );
        }
        if let Some(summary) = Summary::of(values) {
            let mx = x(summary.median);
            let _ = writeln!(
                svg,
                r#"<line x1="{mx:.1}" y1="{}" x2="{mx:.1}" y2="{}" stroke="{color}" stroke-width="3"/>"#,
                center - 18.0,
                center + 18.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{mx:.1}" y="{}" text-anchor="middle" fill="{color}">median {:.1}</text>"#,
                center - 22.0,
                summary.median
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ends_are_round_and_cover_the_data() {
        assert_eq!(
            [0.3, 1.0, 1.5, 7.0, 120.0, 2500.0].map(axis_end),
            [0.5, 1.0, 2.0, 10.0, 200.0, 5000.0]
        );
        assert_eq!(axis_end(0.0), 1.0);
    }

    #[test]
    fn chart_has_a_dot_per_sample_and_a_median_per_series() {
        let svg = strip_chart("t <&>", &[("a", &[1.0, 2.0, 3.0]), ("b", &[4.0])]);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert_eq!(svg.matches("median ").count(), 2);
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
