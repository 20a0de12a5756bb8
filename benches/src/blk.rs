//! husk-bench-blk: virtio-blk throughput measured inside the guest (husk-init's
//! `blk-bench` selftest: O_DIRECT sequential 1 MiB reads and writes over the
//! whole disk, random 4 KiB reads), husk-vmm against QEMU's microvm with a
//! virtio-blk-device on the same raw image, same kernel and initramfs, same
//! KVM, alternating runs. Prints medians and husk/QEMU ratios; writes
//! `blk.csv` and one SVG per metric.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use husk_benches::{kvm_can_boot, report_comparison, require_files, QEMU_MACHINE};

const USAGE: &str = "\
Usage: husk-bench-blk --kernel VMLINUX --initrd INITRAMFS [OPTIONS]

Options:
  --runs N          runs per VMM [default: 3]
  --disk-mib N      size of the test disk [default: 256]
  --vmm PATH        husk-vmm binary [default: next to this program]
  --qemu PATH       QEMU binary [default: qemu-system-x86_64]
  --out DIR         where the disk image, blk.csv and the SVGs go [default: target/bench]
Needs a KVM that can boot a guest: run it through tests/testhost/run here.
";

const METRICS: [(&str, &str); 3] = [
    ("seq_read_mib_s", "sequential read, MiB/s"),
    ("seq_write_mib_s", "sequential write, MiB/s"),
    ("rand_read_4k_iops", "random 4 KiB read, IOPS"),
];
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

struct Options {
    runs: usize,
    disk_mib: u64,
    kernel: PathBuf,
    initrd: PathBuf,
    vmm: PathBuf,
    qemu: PathBuf,
    out: PathBuf,
}

fn parse_options() -> Result<Options, String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_default();
    let mut options = Options {
        runs: 3,
        disk_mib: 256,
        kernel: PathBuf::new(),
        initrd: PathBuf::new(),
        vmm: exe_dir.join("husk-vmm"),
        qemu: PathBuf::from("qemu-system-x86_64"),
        out: PathBuf::from("target/bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => options.runs = value()?.parse().map_err(|_| "--runs: expected a number")?,
            "--disk-mib" => {
                options.disk_mib = value()?
                    .parse()
                    .map_err(|_| "--disk-mib: expected a number")?
            }
            "--kernel" => options.kernel = value()?.into(),
            "--initrd" => options.initrd = value()?.into(),
            "--vmm" => options.vmm = value()?.into(),
            "--qemu" => options.qemu = value()?.into(),
            "--out" => options.out = value()?.into(),
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
    if options.runs == 0 || options.disk_mib == 0 {
        return Err("--runs and --disk-mib must be at least 1".into());
    }
    Ok(options)
}

fn cmdline() -> String {
    "console=ttyS0 reboot=k panic=-1 husk.selftest=blk-bench husk.exit=0".to_owned()
}

/// A fully written (not sparse) raw image, so both VMMs read real blocks.
fn make_disk(path: &Path, mib: u64) -> Result<(), String> {
    let mut file = fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let chunk = vec![0xa5u8; 1 << 20];
    for _ in 0..mib {
        file.write_all(&chunk)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    file.sync_all()
        .map_err(|e| format!("sync {}: {e}", path.display()))
}

/// Runs `command` to the end (bounded) and returns the metrics of its
/// blk-bench line.
fn measure(mut command: Command) -> Result<Vec<f64>, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("start {command:?}: {e}"))?;
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{command:?} ran past {RUN_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("husk-init selftest blk-bench ok"))
        .ok_or_else(|| format!("no blk-bench result from {command:?}\n{}", tail(&stdout)))?;
    METRICS
        .iter()
        .map(|(key, _)| {
            line.split_whitespace()
                .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                .ok_or_else(|| format!("no {key} in {line}"))
        })
        .collect()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn run(options: &Options) -> Result<(), String> {
    if !kvm_can_boot() {
        return Err("this host's KVM cannot boot a guest: run through tests/testhost/run".into());
    }
    fs::create_dir_all(&options.out)
        .map_err(|e| format!("create {}: {e}", options.out.display()))?;
    let disk = options.out.join("blk-disk.img");
    make_disk(&disk, options.disk_mib)?;
    let memory = "256";
    println!(
        "husk-bench-blk: {} runs, {} MiB disk, {memory} MiB guest, 1 vCPU",
        options.runs, options.disk_mib
    );

    let (mut husk, mut qemu): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    for run in 0..options.runs {
        let mut command = Command::new(&options.vmm);
        command
            .arg("--kernel")
            .arg(&options.kernel)
            .arg("--initrd")
            .arg(&options.initrd);
        command
            .arg("--disk")
            .arg(&disk)
            .args(["--memory-mib", memory, "--cmdline", &cmdline()]);
        husk.push(measure(command)?);

        let mut command = Command::new(&options.qemu);
        command
            .args(QEMU_MACHINE)
            .args(["-m", memory, "-smp", "1", "-no-reboot"]);
        command.args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
        ]);
        command
            .arg("-kernel")
            .arg(&options.kernel)
            .arg("-initrd")
            .arg(&options.initrd);
        command.args(["-append", &cmdline()]);
        command.arg("-drive").arg(format!(
            "id=disk0,file={},format=raw,if=none",
            disk.display()
        ));
        command.args(["-device", "virtio-blk-device,drive=disk0"]);
        qemu.push(measure(command)?);
        eprintln!(
            "run {}/{}: husk {:?}, qemu {:?}",
            run + 1,
            options.runs,
            husk[run],
            qemu[run]
        );
    }

    report_comparison("blk", "virtio-blk", &METRICS, &husk, &qemu, &options.out)?;
    let _ = fs::remove_file(&disk);
    Ok(())
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("husk-bench-blk: {message}");
            std::process::exit(2);
        }
    };
    if let Err(message) = run(&options) {
        eprintln!("husk-bench-blk: {message}");
        std::process::exit(1);
    }
}
