//! husk-bench-boot: how fast husk-vmm boots the guest to husk-init, against
//! QEMU's `microvm` machine booting the very same kernel and initramfs on
//! the same KVM, in one run; plus husk-vmm's setup time and memory overhead.
//!
//! Each boot is timed from just before the VMM process is spawned to the
//! moment husk-init's ready line arrives on the VMM's serial output (stdout),
//! the same way for both VMMs. Boots of the two alternate so drift hits both
//! alike. Prints a table, writes `boot.csv` and `boot.svg`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use std::{fs, thread};

use husk_benches::guest_boot::{
    boot_to_ready, husk_vmm_command, qemu_microvm_command, read_all, timing, BootSample,
    GuestMachine,
};
use husk_benches::stats::Summary;
use husk_benches::{kvm_can_boot, plot, require_files};

const USAGE: &str = "\
Usage: husk-bench-boot --kernel VMLINUX --initrd INITRAMFS [OPTIONS]

Boots the kernel and initramfs N times with husk-vmm and N times with
qemu-system-x86_64 -M microvm on this host's KVM, and prints start-to-ready
times (medians, spread, the husk/QEMU ratio), husk-vmm's setup time (start to
first KVM_RUN) and both VMMs' memory overhead (RSS minus touched guest RAM).
Where this host's KVM cannot boot a guest (no kvm_intel/kvm_amd), only the
setup time is measured: run it through tests/testhost/run for the rest.

Options:
  --runs N          boots per VMM [default: 10]
  --vmm PATH        husk-vmm binary [default: next to this program]
  --qemu PATH       QEMU binary [default: qemu-system-x86_64]
  --memory-mib N    guest memory [default: 128]
  --vcpus N         guest vCPUs [default: 1]
  --out DIR         where boot.csv and boot.svg go [default: target/bench]
  --setup-only      only measure husk-vmm's setup time
";

struct Options {
    runs: usize,
    kernel: PathBuf,
    initrd: PathBuf,
    vmm: PathBuf,
    qemu: PathBuf,
    memory_mib: u64,
    vcpus: u32,
    out: PathBuf,
    setup_only: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_default();
    let mut options = Options {
        runs: 10,
        kernel: PathBuf::new(),
        initrd: PathBuf::new(),
        vmm: exe_dir.join("husk-vmm"),
        qemu: PathBuf::from("qemu-system-x86_64"),
        memory_mib: 128,
        vcpus: 1,
        out: PathBuf::from("target/bench"),
        setup_only: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => options.runs = value()?.parse().map_err(|_| "--runs: expected a number")?,
            "--kernel" => options.kernel = value()?.into(),
            "--initrd" => options.initrd = value()?.into(),
            "--vmm" => options.vmm = value()?.into(),
            "--qemu" => options.qemu = value()?.into(),
            "--memory-mib" => {
                options.memory_mib = value()?
                    .parse()
                    .map_err(|_| "--memory-mib: expected a number")?
            }
            "--vcpus" => {
                options.vcpus = value()?.parse().map_err(|_| "--vcpus: expected a number")?
            }
            "--out" => options.out = value()?.into(),
            "--setup-only" => options.setup_only = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    require_files(&[
        ("--kernel", &options.kernel),
        ("--initrd", &options.initrd),
        ("--vmm", &options.vmm),
    ])?;
    if options.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(options)
}

fn machine(options: &Options) -> GuestMachine<'_> {
    GuestMachine {
        kernel: &options.kernel,
        initrd: &options.initrd,
        memory_mib: options.memory_mib,
        vcpus: options.vcpus,
    }
}

fn husk_command(options: &Options, serial: &str, exit: &str) -> Command {
    husk_vmm_command(&options.vmm, &machine(options), serial, exit)
}

fn qemu_command(options: &Options) -> Command {
    qemu_microvm_command(&options.qemu, &machine(options))
}

/// husk-vmm's setup (start → first KVM_RUN) alone: works on any KVM, even
/// one that can't run the guest further. The VMM is stopped with SIGTERM
/// once the guest is entered (husk-vmm holds a SIGTERM that comes earlier
/// until its event loop runs, so the timings always come out).
fn measure_setup(options: &Options) -> Result<Vec<f64>, String> {
    let mut samples = Vec::new();
    for _ in 0..options.runs {
        let mut child = husk_command(options, "none", "hold")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {}: {e}", options.vmm.display()))?;
        thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let stderr = read_all(child.stderr.take().unwrap());
        let _ = child.wait();
        let stderr = stderr.join().unwrap_or_default();
        let ms = timing(&stderr, "first_kvm_run")
            .ok_or_else(|| format!("no first_kvm_run timing: {stderr}"))?;
        samples.push(ms);
    }
    Ok(samples)
}

fn row(label: &str, values: &[f64]) {
    match Summary::of(values) {
        Some(s) => println!(
            "{label:<40} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            s.median, s.p25, s.p75, s.min, s.max
        ),
        None => println!("{label:<40} {:>9}", "-"),
    }
}

fn header(title: &str) {
    println!("\n{title}");
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "(ms)", "median", "p25", "p75", "min", "max"
    );
}

fn median(values: &[f64]) -> f64 {
    Summary::of(values).map_or(f64::NAN, |s| s.median)
}

fn run(options: &Options) -> Result<(), String> {
    let bootable = kvm_can_boot() && !options.setup_only;
    println!(
        "husk-bench-boot: {} runs, {} MiB, {} vCPU(s), kernel {}",
        options.runs,
        options.memory_mib,
        options.vcpus,
        options.kernel.display()
    );
    if !bootable {
        let setup = measure_setup(options)?;
        header("husk-vmm setup, process start → first KVM_RUN");
        row("husk-vmm setup", &setup);
        println!(
            "\nthis host's KVM cannot boot a guest (or --setup-only): boot comparison skipped;"
        );
        println!("run through tests/testhost/run for it");
        return Ok(());
    }

    let guest_kib = options.memory_mib * 1024;
    let (mut husk, mut qemu) = (Vec::new(), Vec::new());
    for run in 0..options.runs {
        husk.push(boot_to_ready(
            husk_command(options, "stdout", "hold"),
            guest_kib,
            libc::SIGTERM,
        )?);
        qemu.push(boot_to_ready(
            qemu_command(options),
            guest_kib,
            libc::SIGKILL,
        )?);
        eprintln!(
            "run {}/{}: husk-vmm {:.1} ms, qemu microvm {:.1} ms",
            run + 1,
            options.runs,
            husk[run].ready_ms,
            qemu[run].ready_ms
        );
    }

    let ready = |samples: &[BootSample]| samples.iter().map(|s| s.ready_ms).collect::<Vec<_>>();
    let overhead = |samples: &[BootSample]| {
        samples
            .iter()
            .map(|s| s.rss_kib.saturating_sub(s.guest_kib) as f64)
            .collect::<Vec<_>>()
    };
    let (husk_ready, qemu_ready) = (ready(&husk), ready(&qemu));
    header("boot, process start → husk-init ready line on the serial console");
    row("husk-vmm", &husk_ready);
    row("qemu -M microvm", &qemu_ready);
    let init_marker: Vec<f64> = husk.iter().filter_map(|s| s.init_started_ms).collect();
    row("husk-vmm start → init marker (own clock)", &init_marker);
    let first_run: Vec<f64> = husk.iter().filter_map(|s| s.first_kvm_run_ms).collect();
    row("husk-vmm start → first KVM_RUN", &first_run);
    println!(
        "\nratio husk-vmm / qemu microvm (median boot): {:.3}",
        median(&husk_ready) / median(&qemu_ready)
    );

    println!("\nmemory at the ready line (KiB)            median      min      max");
    for (label, values) in [
        ("husk-vmm overhead (RSS - guest RAM)", overhead(&husk)),
        ("qemu overhead (RSS - guest RAM)", overhead(&qemu)),
    ] {
        let s = Summary::of(&values).unwrap();
        println!(
            "{label:<40} {:>9.0} {:>8.0} {:>8.0}",
            s.median, s.min, s.max
        );
    }

    fs::create_dir_all(&options.out)
        .map_err(|e| format!("create {}: {e}", options.out.display()))?;
    let mut csv = String::from("vmm,run,ready_ms,rss_kib,guest_kib\n");
    for (name, samples) in [("husk-vmm", &husk), ("qemu-microvm", &qemu)] {
        for (i, s) in samples.iter().enumerate() {
            csv.push_str(&format!(
                "{name},{i},{:.3},{},{}\n",
                s.ready_ms, s.rss_kib, s.guest_kib
            ));
        }
    }
    let csv_path = options.out.join("boot.csv");
    fs::write(&csv_path, csv).map_err(|e| format!("write {}: {e}", csv_path.display()))?;
    let svg = plot::strip_chart(
        "Boot to husk-init ready line (ms), same kernel and initramfs, same KVM",
        &[("husk-vmm", &husk_ready), ("qemu -M microvm", &qemu_ready)],
    );
    let svg_path = options.out.join("boot.svg");
    fs::write(&svg_path, svg).map_err(|e| format!("write {}: {e}", svg_path.display()))?;
    println!("\nwrote {} and {}", csv_path.display(), svg_path.display());
    Ok(())
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("husk-bench-boot: {message}");
            std::process::exit(2);
        }
    };
    if let Err(message) = run(&options) {
        eprintln!("husk-bench-boot: {message}");
        std::process::exit(1);
    }
}
