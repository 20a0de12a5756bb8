//! What husk's benchmark programs share: statistics, the SVG plots, booting
//! the guest to husk-init with husk-vmm or QEMU, and how to tell whether
//! this host's KVM can boot a guest.

pub mod guest_boot;
pub mod plot;
pub mod stats;

use std::path::Path;

/// Whether this host's /dev/kvm can boot an ordinary guest.
pub fn kvm_can_boot() -> bool {
    let module = |name: &str| Path::new("/sys/module").join(name).exists();
    Path::new("/dev/kvm").exists()
        && !module("kvm_pvm")
        && (module("kvm_intel") || module("kvm_amd"))
}

/// Checks that every (flag, path) names an existing file.
pub fn require_files(files: &[(&str, &Path)]) -> Result<(), String> {
    match files.iter().find(|(_, path)| !path.is_file()) {
        Some((flag, path)) => Err(format!("{flag} {}: no such file", path.display())),
        None => Ok(()),
    }
}

/// The QEMU machine both benchmarks compare against: the leanest microvm
/// (no option ROMs, no ACPI tables — the guest kernel has no ACPI and reads
/// the MP table — no RTC), on KVM.
pub const QEMU_MACHINE: [&str; 6] = [
    "-M",
    "microvm,x-option-roms=off,acpi=off,rtc=off",
    "-accel",
    "kvm",
    "-cpu",
    "host",
];

/// Prints the husk-vmm-against-QEMU table (medians and the ratio per
/// metric) and writes `<name>.csv` and one `<name>-<metric>.svg` per metric
/// into `out`. `metrics` holds (key, label) pairs; each run's samples are in
/// the same order. Returns the CSV's path.
pub fn report_comparison(
    name: &str,
    what: &str,
    metrics: &[(&str, &str)],
    husk: &[Vec<f64>],
    qemu: &[Vec<f64>],
    out: &Path,
) -> Result<std::path::PathBuf, String> {
    use std::fmt::Write as _;

    println!(
        "\n{:<30} {:>12} {:>12} {:>14}",
        "(median)", "husk-vmm", "qemu", "husk / qemu"
    );
    let mut csv = format!(
        "vmm,run,{}\n",
        metrics
            .iter()
            .map(|(key, _)| *key)
            .collect::<Vec<_>>()
            .join(",")
    );
    for (vmm, samples) in [("husk-vmm", husk), ("qemu-microvm", qemu)] {
        for (run, sample) in samples.iter().enumerate() {
            let values: Vec<String> = sample.iter().map(|v| format!("{v:.1}")).collect();
            let _ = writeln!(csv, "{vmm},{run},{}", values.join(","));
        }
    }
    for (index, (key, label)) in metrics.iter().enumerate() {
        let column = |samples: &[Vec<f64>]| samples.iter().map(|s| s[index]).collect::<Vec<_>>();
        let (h, q) = (column(husk), column(qemu));
        let median = |v: &[f64]| stats::Summary::of(v).map_or(f64::NAN, |s| s.median);
        println!(
            "{label:<30} {:>12.1} {:>12.1} {:>14.3}",
            median(&h),
            median(&q),
            median(&h) / median(&q)
        );
        let svg = plot::strip_chart(
            &format!("{what} {label}, same guest, same KVM"),
            &[("husk-vmm", &h), ("qemu -M microvm", &q)],
        );
        let path = out.join(format!("{name}-{key}.svg"));
        std::fs::write(&path, svg).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    let csv_path = out.join(format!("{name}.csv"));
    std::fs::write(&csv_path, csv).map_err(|e| format!("write {}: {e}", csv_path.display()))?;
    println!("\nwrote {} and {name}-*.svg", csv_path.display());
    Ok(csv_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_report_writes_a_csv_row_per_run_and_an_svg_per_metric() {
        let out = std::env::temp_dir().join(format!("husk-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let metrics = [("a_mib_s", "a, MiB/s"), ("b_us", "b, us")];
        let husk = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        let qemu = vec![vec![2.0, 2.0]];
        let csv = report_comparison("t", "thing", &metrics, &husk, &qemu, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(csv).unwrap(),
            "vmm,run,a_mib_s,b_us\nhusk-vmm,0,1.0,2.0\nhusk-vmm,1,3.0,4.0\nqemu-microvm,0,2.0,2.0\n"
        );
        assert!(out.join("t-a_mib_s.svg").is_file() && out.join("t-b_us.svg").is_file());
        std::fs::remove_dir_all(out).unwrap();
    }
}
