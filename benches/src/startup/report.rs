//! What every section's report shares: percentiles, number formats, the
//! markdown table, the machine header, and the text that goes both to
//! stdout and into results.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Median and the 10th and 90th percentiles (among others) of a sample.
pub use husk_benches::stats::Summary as Spread;

use super::command;

/// The median, NaN for no values.
pub fn median(values: &[f64]) -> f64 {
    Spread::of(values).map_or(f64::NAN, |spread| spread.median)
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A number with as many decimals as its size deserves; "-" when there is
/// none.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        "-".to_string()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A ratio such as "3.52×"; "-" when it cannot be formed.
pub fn ratio(value: f64, base: f64) -> String {
    let ratio = value / base;
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "-".to_string()
    }
}

/// A GitHub-flavoured markdown table with the columns padded so it also
/// reads as plain text. The first `text_columns` columns are left-aligned,
/// the others (numbers) right-aligned.
pub fn markdown_table(headers: &[&str], text_columns: usize, rows: &[Vec<String>]) -> String {
    let first_number_column = text_columns;
    let width = |column: usize| {
        rows.iter()
            .filter_map(|row| row.get(column))
            .map(|cell| cell.chars().count())
            .chain([headers[column].chars().count(), 3])
            .max()
            .unwrap_or(3)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                if column < first_number_column {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut table = line(&mut headers.iter().copied());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(column, width)| {
            let dashes = "-".repeat(width - 1);
            if column < first_number_column {
                format!("{dashes}-")
            } else {
                format!("{dashes}:")
            }
        })
        .collect();
    let _ = writeln!(table, "| {} |", rule.join(" | "));
    for row in rows {
        table.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    table
}

/// What goes to stdout as it is measured and, all together, to results.md.
#[derive(Debug, Default)]
pub struct Report {
    text: String,
}

impl Report {
    /// Prints `text` and keeps it for results.md.
    pub fn add(&mut self, text: &str) {
        print!("{text}");
        self.text.push_str(text);
    }

    /// A section: a heading, a sentence saying what was measured, a table.
    pub fn section(&mut self, heading: &str, about: &str, table: &str) {
        self.add(&format!("\n## {heading}\n\n{about}\n\n{table}"));
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The first line of `PROGRAM --version`, or why there is none.
pub fn version_of(program: &Path) -> String {
    let mut version = Command::new(program);
    version.arg("--version");
    match command::run(version, Duration::from_secs(30)) {
        Ok(captured) => captured
            .stdout
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(error) => format!("unknown ({error})"),
    }
}

/// The machine the numbers come from.
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_mib: u64,
    pub kvm: String,
    pub kernel: String,
}

impl Machine {
    /// Reads /proc; `kvm` says where VMs ran (the test host's
    /// HUSK_TESTHOST, else whether this KVM can boot a guest).
    pub fn of_this_host(kvm: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown".to_string(), |(_, name)| name.trim().to_string());
        let cores = cpuinfo
            .lines()
            .filter(|line| line.starts_with("processor"))
            .count();
        let memory_mib = super::memory::host_memory().map_or(0, |(total, _)| total / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".to_string(), |release| release.trim().to_string());
        Self {
            cpu,
            cores,
            memory_mib,
            kvm,
            kernel,
        }
    }

    /// The header of results.md: the machine and the versions compared.
    pub fn header(&self, versions: &[(&str, String)], settings: &str) -> String {
        let mut rows = vec![
            vec!["CPU".to_string(), self.cpu.clone()],
            vec!["cores".to_string(), self.cores.to_string()],
            vec!["memory".to_string(), format!("{} MiB", self.memory_mib)],
            vec!["KVM".to_string(), self.kvm.clone()],
            vec!["kernel".to_string(), self.kernel.clone()],
        ];
        for (name, version) in versions {
            rows.push(vec![name.to_string(), version.clone()]);
        }
        format!(
            "# husk startup benchmark: VM versus container\n\n{}\nSettings: {settings}.\n",
            markdown_table(&["machine", ""], 2, &rows)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let values: Vec<f64> = (1..=11).rev().map(f64::from).collect();
        let spread = Spread::of(&values).unwrap();
        assert_eq!(
            (spread.median, spread.p10, spread.p90, spread.count),
            (6.0, 2.0, 10.0, 11)
        );
        let two = Spread::of(&[10.0, 20.0]).unwrap();
        assert_eq!((two.median, two.p10, two.p90), (15.0, 11.0, 19.0));
        assert_eq!(Spread::of(&[]), None);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn numbers_and_ratios_read_well() {
        assert_eq!(
            [1234.56, 45.67, 4.126, f64::NAN].map(number),
            ["1235", "45.7", "4.13", "-"]
        );
        assert_eq!(ratio(30.0, 20.0), "1.50×");
        assert_eq!(ratio(1.0, 0.0), "-");
    }

    #[test]
    fn tables_are_markdown_with_aligned_columns() {
        let table = markdown_table(
            &["runtime", "median ms"],
            1,
            &[
                vec!["crun".to_string(), "19.0".to_string()],
                vec!["husk vm".to_string(), "1234".to_string()],
            ],
        );
        assert_eq!(
            table,
            "| runtime | median ms |\n\
             | ------- | --------: |\n\
             | crun    |      19.0 |\n\
             | husk vm |      1234 |\n"
        );
    }

    #[test]
    fn the_header_names_the_machine_and_versions() {
        let machine = Machine {
            cpu: "AMD EPYC".to_string(),
            cores: 2,
            memory_mib: 4096,
            kvm: "nested".to_string(),
            kernel: "6.1.0".to_string(),
        };
        let header = machine.header(&[("crun", "crun version 1.8.1".to_string())], "20 runs");
        assert!(header.contains("| KVM     | nested "), "{header}");
        assert!(
            header.contains("| crun    | crun version 1.8.1 |"),
            "{header}"
        );
        assert!(header.contains("| ------- | ------"), "{header}");
        assert!(header.ends_with("\nSettings: 20 runs.\n"), "{header}");
    }
}
