//! Dependency-free SVG charts: a strip chart (every sample as a dot, the
//! median as a bar, one row per series, on a shared linear axis from zero),
//! stacked horizontal bars (one bar per subject, made of named segments
//! laid end to end), a line chart of (x, y) points, and a way to stack
//! several charts into one picture.

use std::fmt::Write;

use crate::stats::Summary;

const WIDTH: f64 = 760.0;
const ROW_HEIGHT: f64 = 60.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
/// Segment and series colours, told apart also next to each other.
const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78",
];
const BAR_ROW_HEIGHT: f64 = 44.0;
const BAR_THICKNESS: f64 = 24.0;
const LEGEND_ROW_HEIGHT: f64 = 18.0;
const LEGEND_ENTRY_WIDTH: f64 = 190.0;

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
    open_svg(&mut svg, height, title);
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

/// The opening tag of a chart and its white background.
fn open_svg(svg: &mut String, height: f64, title: &str) {
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
}

/// A tick label without a float's noise ("0.30000000000000004").
fn tick_label(value: f64) -> String {
    let rounded = (value * 1000.0).round() / 1000.0;
    format!("{rounded}")
}

/// Colour boxes with names, wrapped into rows from `top` down; returns the
/// height used.
fn legend(svg: &mut String, names: &[&str], top: f64) -> f64 {
    let per_row = ((WIDTH - LEFT / 2.0) / LEGEND_ENTRY_WIDTH).floor().max(1.0) as usize;
    for (index, name) in names.iter().enumerate() {
        let x = LEFT / 2.0 + (index % per_row) as f64 * LEGEND_ENTRY_WIDTH;
        let y = top + (index / per_row) as f64 * LEGEND_ROW_HEIGHT;
        let color = PALETTE[index % PALETTE.len()];
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{color}"/>"#,
            y - 10.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{y}">{}</text>"#,
            x + 16.0,
            escape(name)
        );
    }
    names.len().div_ceil(per_row) as f64 * LEGEND_ROW_HEIGHT
}

/// One horizontal bar per subject, `(label, segments)`, each segment a
/// `(name, length)` laid end to end from zero, on a shared linear axis in
/// `unit`. A segment name has the same colour in every bar; the legend
/// lists the names in the order they first appear. Negative or non-finite
/// lengths count as zero.
pub fn stacked_bars(title: &str, unit: &str, bars: &[(&str, &[(&str, f64)])]) -> String {
    let length = |value: f64| {
        if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        }
    };
    let mut names: Vec<&str> = Vec::new();
    for (_, segments) in bars {
        for (name, _) in segments.iter() {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    let total = |segments: &[(&str, f64)]| segments.iter().map(|(_, v)| length(*v)).sum::<f64>();
    let end = axis_end(bars.iter().map(|(_, s)| total(s)).fold(0.0, f64::max));
    let plot_width = WIDTH - LEFT - RIGHT - 50.0;
    let x = |value: f64| LEFT + value / end * plot_width;
    let axis_y = TOP + BAR_ROW_HEIGHT * bars.len() as f64;
    let per_row = ((WIDTH - LEFT / 2.0) / LEGEND_ENTRY_WIDTH).floor().max(1.0) as usize;
    let legend_height = names.len().div_ceil(per_row) as f64 * LEGEND_ROW_HEIGHT;
    let height = axis_y + 60.0 + legend_height + 10.0;
    let mut svg = String::new();
    open_svg(&mut svg, height, title);
    for tick in 0..=5 {
        let value = end * f64::from(tick) / 5.0;
        let tx = x(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{axis_y}" stroke="#ddd"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{tx:.1}" y="{}" text-anchor="middle">{}</text>"#,
            axis_y + 16.0,
            tick_label(value)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot_width / 2.0,
        axis_y + 36.0,
        escape(unit)
    );
    for (row, (label, segments)) in bars.iter().enumerate() {
        let top = TOP + BAR_ROW_HEIGHT * row as f64 + (BAR_ROW_HEIGHT - BAR_THICKNESS) / 2.0;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 10.0,
            top + BAR_THICKNESS / 2.0 + 4.0,
            escape(label)
        );
        let mut start = 0.0;
        for (name, value) in segments.iter() {
            let value = length(*value);
            let color = PALETTE[names.iter().position(|n| n == name).unwrap_or(0) % PALETTE.len()];
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{BAR_THICKNESS}" fill="{color}"><title>{}: {value:.1} {}</title></rect>"#,
                x(start),
                x(start + value) - x(start),
                escape(name),
                escape(unit)
            );
            start += value;
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}">{start:.1}</text>"#,
            x(start) + 4.0,
            top + BAR_THICKNESS / 2.0 + 4.0
        );
    }
    legend(&mut svg, &names, axis_y + 60.0);
    svg.push_str("</svg>\n");
    svg
}

/// Points `(x, y)` joined by lines, one series each, on linear axes from
/// zero, with a legend under the chart.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
) -> String {
    let points = || series.iter().flat_map(|(_, points)| points.iter());
    let x_end = axis_end(points().map(|p| p.0).fold(0.0, f64::max));
    let y_end = axis_end(points().map(|p| p.1).fold(0.0, f64::max));
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = 220.0;
    let axis_y = TOP + plot_height;
    let x = |value: f64| LEFT + value / x_end * plot_width;
    let y = |value: f64| axis_y - value / y_end * plot_height;
    let names: Vec<&str> = series.iter().map(|(name, _)| *name).collect();
    let per_row = ((WIDTH - LEFT / 2.0) / LEGEND_ENTRY_WIDTH).floor().max(1.0) as usize;
    let height = axis_y + 60.0 + names.len().div_ceil(per_row) as f64 * LEGEND_ROW_HEIGHT + 10.0;
    let mut svg = String::new();
    open_svg(&mut svg, height, title);
    for tick in 0..=5 {
        let fraction = f64::from(tick) / 5.0;
        let (tx, ty) = (x(x_end * fraction), y(y_end * fraction));
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{axis_y}" stroke="#ddd"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{tx:.1}" y="{}" text-anchor="middle">{}</text>"#,
            axis_y + 16.0,
            tick_label(x_end * fraction)
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{}" y2="{ty:.1}" stroke="#ddd"/>"##,
            LEFT + plot_width
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            ty + 4.0,
            tick_label(y_end * fraction)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot_width / 2.0,
        axis_y + 36.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{}" text-anchor="middle" transform="rotate(-90 20 {})">{}</text>"#,
        TOP + plot_height / 2.0,
        TOP + plot_height / 2.0,
        escape(y_label)
    );
    for (index, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (px, py) in points.iter() {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"><title>{}: {px}, {py:.1}</title></circle>"#,
                x(*px),
                y(*py),
                escape(name)
            );
        }
    }
    legend(&mut svg, &names, axis_y + 60.0);
    svg.push_str("</svg>\n");
    svg
}

/// `(width, height)` from a chart's opening `<svg ...>` tag.
fn svg_size(svg: &str) -> (f64, f64) {
    let tag = svg.split('>').next().unwrap_or_default();
    let attribute = |name: &str| {
        tag.split(&format!(" {name}=\"")[..])
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    (attribute("width"), attribute("height"))
}

/// Several charts, each a whole `<svg>` as the functions here make them,
/// one below the other in one picture.
pub fn stack_vertically(charts: &[String]) -> String {
    let sizes: Vec<(f64, f64)> = charts.iter().map(|chart| svg_size(chart)).collect();
    let width = sizes.iter().map(|size| size.0).fold(0.0, f64::max);
    let height: f64 = sizes.iter().map(|size| size.1).sum();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">"#
    );
    let mut offset = 0.0;
    for (chart, (_, chart_height)) in charts.iter().zip(&sizes) {
        // A nested <svg> is its own viewport, placed by x and y.
        let placed = chart.replacen("<svg ", &format!(r#"<svg x="0" y="{offset}" "#), 1);
        svg.push_str(&placed);
        offset += chart_height;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that every tag is closed in order (what an XML parser would
    /// refuse first) and returns the element names in document order.
    fn elements_if_well_formed(svg: &str) -> Vec<String> {
        let mut open: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').expect("a tag without '>'") + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name), "misnested </{name}>");
            } else {
                let name = tag.split_whitespace().next().unwrap().trim_end_matches('/');
                seen.push(name.to_string());
                if !tag.ends_with('/') {
                    open.push(name.to_string());
                }
            }
            let text = &rest[end + 1
                ..rest[end + 1..]
                    .find('<')
                    .map_or(rest.len(), |n| n + end + 1)];
            assert!(
                !text.contains('&') || text.contains("&amp;") || text.contains("&lt;"),
                "raw & in {text:?}"
            );
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "unclosed {open:?}");
        seen
    }

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

    #[test]
    fn stacked_bars_draw_each_segment_end_to_end_with_one_colour_per_name() {
        let svg = stacked_bars(
            "phases <vm>",
            "ms",
            &[
                (
                    "husk vm",
                    &[("boot", 30.0), ("create", 10.0), ("exit", 5.0)],
                ),
                ("crun", &[("create", 8.0), ("exit", 2.0)]),
            ],
        );
        let elements = elements_if_well_formed(&svg);
        // A background, five segments and three legend boxes.
        assert_eq!(elements.iter().filter(|e| *e == "rect").count(), 1 + 5 + 3);
        assert!(svg.contains("phases &lt;vm&gt;"));
        // "create" is the second name in both bars' colours and the legend.
        assert_eq!(svg.matches(r##"fill="#ff7f0e""##).count(), 3);
        // The longest bar (45) fits on an axis to 50; the totals are printed.
        assert!(svg.contains(">50<") && svg.contains(">45.0<") && svg.contains(">10.0<"));
        // The second segment of the first bar starts where the first ends.
        let x_of = |name: &str| {
            let at = svg.find(&format!("<title>{name}:")).unwrap();
            let tag_start = svg[..at].rfind("<rect").unwrap();
            let x: f64 = svg[tag_start..]
                .split("x=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let width: f64 = svg[tag_start..]
                .split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (x, width)
        };
        let (boot_x, boot_width) = x_of("boot");
        let (create_x, _) = x_of("create");
        assert!((boot_x + boot_width - create_x).abs() < 0.2);
    }

    #[test]
    fn line_chart_has_a_line_and_a_dot_per_point() {
        let svg = line_chart(
            "density",
            "sandboxes",
            "seconds",
            &[
                ("vm", &[(5.0, 1.0), (10.0, 2.5)]),
                ("container", &[(5.0, 0.1)]),
            ],
        );
        let elements = elements_if_well_formed(&svg);
        assert_eq!(elements.iter().filter(|e| *e == "polyline").count(), 2);
        assert_eq!(elements.iter().filter(|e| *e == "circle").count(), 3);
        assert!(svg.contains(">sandboxes<") && svg.contains(">container<"));
    }

    #[test]
    fn stacked_charts_sit_one_below_the_other() {
        let first = strip_chart("a", &[("x", &[1.0])]);
        let second = strip_chart("b", &[("y", &[2.0]), ("z", &[3.0])]);
        let (_, first_height) = svg_size(&first);
        let (_, second_height) = svg_size(&second);
        let svg = stack_vertically(&[first, second]);
        elements_if_well_formed(&svg);
        assert_eq!(svg_size(&svg), (WIDTH, first_height + second_height));
        assert!(svg.contains(&format!(r#"<svg x="0" y="{first_height}" "#)));
    }
}
