//! The phases section: where a create → start → exit → delete of `true`
//! spends its time, per runtime, as a stacked bar.
//!
//! husk records its phases during `create` (DESIGN.md "Startup phases";
//! `husk state`: husk.timingsMicros, µs after the husk command started);
//! each becomes the segment that ends at it, from the phase before it (or
//! from husk's start). `create (rest)` is what the benchmark measured of
//! `create` beyond the last phase: the exec of husk before its clock
//! starts, and its exit. `start`, `exit` (from `start` returning until the
//! container process ended) and `delete` are the benchmark's own
//! measurements, the only segments runc and crun have besides `create`.
//! Each segment is the median over the runs.

use std::collections::BTreeMap;

use husk_benches::plot;

use super::report::{self, markdown_table, median, number};
use super::runtime::{Lifecycle, Runtime};

/// One runtime's bar: (segment, median ms) in order.
pub type Bar = (Runtime, Vec<(String, f64)>);

/// husk's phase names in the order they happen (by median time).
fn phase_order(lifecycles: &[Lifecycle]) -> Vec<String> {
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for lifecycle in lifecycles {
        for (name, micros) in &lifecycle.phases {
            times.entry(name).or_default().push(*micros as f64);
        }
    }
    let mut names: Vec<(f64, &str)> = times
        .iter()
        .map(|(name, micros)| (median(micros), *name))
        .collect();
    names.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    names
        .into_iter()
        .map(|(_, name)| name.to_string())
        .collect()
}

/// The segments of one runtime's bar (see the module documentation).
pub fn bar(lifecycles: &[Lifecycle]) -> Vec<(String, f64)> {
    let order = phase_order(lifecycles);
    let mut segments: Vec<(String, Vec<f64>)> = order
        .iter()
        .map(|name| (name.clone(), Vec::new()))
        .collect();
    let mut rest = Vec::new();
    for lifecycle in lifecycles {
        let mut previous_ms = 0.0;
        for (index, name) in order.iter().enumerate() {
            if let Some(micros) = lifecycle.phases.get(name) {
                let at_ms = *micros as f64 / 1000.0;
                segments[index].1.push((at_ms - previous_ms).max(0.0));
                previous_ms = at_ms;
            }
        }
        rest.push((report::millis(lifecycle.create) - previous_ms).max(0.0));
    }
    let create_name = if order.is_empty() {
        "create"
    } else {
        "create (rest)"
    };
    segments.push((create_name.to_string(), rest));
    for (name, step) in [
        (
            "start",
            (|l: &Lifecycle| l.start) as fn(&Lifecycle) -> std::time::Duration,
        ),
        ("exit", |l: &Lifecycle| l.exit),
        ("delete", |l: &Lifecycle| l.delete),
    ] {
        let values = lifecycles.iter().map(|l| report::millis(step(l))).collect();
        segments.push((name.to_string(), values));
    }
    segments
        .into_iter()
        .map(|(name, values)| (name, median(&values)))
        .collect()
}

/// Every runtime's bar, in the order compared.
pub fn bars(lifecycles: &BTreeMap<Runtime, Vec<Lifecycle>>, compared: &[Runtime]) -> Vec<Bar> {
    compared
        .iter()
        .filter_map(|runtime| Some((*runtime, bar(lifecycles.get(runtime)?))))
        .collect()
}

/// The table: each runtime's segments with their median milliseconds.
pub fn table(bars: &[Bar]) -> String {
    let mut rows = Vec::new();
    for (runtime, segments) in bars {
        let total: f64 = segments.iter().map(|(_, ms)| ms).sum();
        for (name, ms) in segments {
            rows.push(vec![
                runtime.name().to_string(),
                name.clone(),
                number(*ms),
                format!("{:.0} %", ms / total * 100.0),
            ]);
        }
    }
    markdown_table(
        &["runtime", "segment (ends at)", "median ms", "share"],
        2,
        &rows,
    )
}

/// phases.svg.
pub fn svg(bars: &[Bar]) -> String {
    let segments: Vec<Vec<(&str, f64)>> = bars
        .iter()
        .map(|(_, segments)| segments.iter().map(|(n, ms)| (n.as_str(), *ms)).collect())
        .collect();
    let rows: Vec<(&str, &[(&str, f64)])> = bars
        .iter()
        .zip(&segments)
        .map(|((runtime, _), segments)| (runtime.name(), segments.as_slice()))
        .collect();
    plot::stacked_bars(
        "busybox true: create → start → exit → delete, median of each segment",
        "milliseconds",
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lifecycle(create_ms: u64, phases: &[(&str, u64)]) -> Lifecycle {
        Lifecycle {
            create: Duration::from_millis(create_ms),
            start: Duration::from_millis(5),
            exit: Duration::from_millis(1),
            delete: Duration::from_millis(8),
            phases: phases.iter().map(|(n, us)| (n.to_string(), *us)).collect(),
        }
    }

    #[test]
    fn husk_phases_become_segments_in_time_order() {
        let lifecycles = [
            lifecycle(
                50,
                &[
                    ("cli_created", 40_000),
                    ("cli_bundle_loaded", 2_000),
                    ("create_returned", 30_000),
                ],
            ),
            lifecycle(
                70,
                &[
                    ("cli_created", 60_000),
                    ("cli_bundle_loaded", 4_000),
                    ("create_returned", 50_000),
                ],
            ),
        ];
        let segments = bar(&lifecycles);
        let names: Vec<&str> = segments.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "cli_bundle_loaded",
                "create_returned",
                "cli_created",
                "create (rest)",
                "start",
                "exit",
                "delete"
            ]
        );
        let values: Vec<f64> = segments.iter().map(|(_, ms)| *ms).collect();
        assert_eq!(values, [3.0, 37.0, 10.0, 10.0, 5.0, 1.0, 8.0]);
    }

    #[test]
    fn a_runtime_without_phases_has_the_measured_steps() {
        let segments = bar(&[lifecycle(20, &[])]);
        assert_eq!(
            segments,
            [
                ("create", 20.0),
                ("start", 5.0),
                ("exit", 1.0),
                ("delete", 8.0)
            ]
            .map(|(n, ms)| (n.to_string(), ms))
        );
        let bars = vec![(Runtime::Crun, segments)];
        let table = table(&bars);
        assert!(
            table.contains("| crun    | create            |      20.0 |  59 % |"),
            "{table}"
        );
        assert!(svg(&bars).contains("<title>create: 20.0 milliseconds</title>"));
    }
}
