//! husk-bench-startup's command line.

use std::path::{Path, PathBuf};

use super::density;
use super::runtime::Runtime;

pub const USAGE: &str = "\
Usage: husk-bench-startup [OPTIONS]

Measures what running a container in its own microVM costs against running
it on the host, in one run, and prints a markdown table per section:

  startup   create → start → exit → delete, and `run`, of a busybox `true` and
            of an `echo hi` (output checked), for husk's container backend,
            runc, crun and husk's VM backend; and, as the VMM reference,
            husk-vmm and qemu-system-x86_64 -M microvm booting the same kernel
            and initramfs to husk-init. Interleaved (A B C … C B A …);
            median, p10, p90, ratios against crun and against QEMU's boot.
  phases    husk's recorded startup phases (husk state: husk.timingsMicros)
            and the measured start, exit and delete, as stacked bars.
  overhead  host memory of an idle VM sandbox (128 MiB guest, sleep 3600):
            husk-vmm's RSS and PSS, the guest RAM the guest touched, and the
            VMM's overhead (the rest).
  density   N idle sandboxes created at once (VM: 64 MiB guests), N = 5, 10,
            20, 40, ... up to --density-max; stops at the first failure, or
            before the host's memory in use would pass --memory-cap-mib, or
            after a step that took over 150 s to create. Time until all are
            created and started, memory per sandbox. Also for the container
            backend.

Writes results.md (the tables, the machine and the versions compared),
startup.csv (every sample), startup.svg, phases.svg and density.svg to --out.

The VM parts need a KVM that can boot a guest. Where this host's cannot (no
kvm_intel/kvm_amd, or kvm_pvm), they are skipped with a note; scripts/bench
builds everything and runs this inside the nested test host there, or run
  tests/testhost/run -- target/release/husk-bench-startup --kernel VMLINUX --initrd INITRAMFS
Run as root. Needs runc, crun (Debian packages runc, crun), busybox-static,
and for the VM parts qemu-system-x86_64 (qemu-system-x86) and e2fsprogs.
Containers, state and bundles live under --scratch and are all removed at
the end, also after an error or Ctrl-C.

Options:
  --runs N              rounds of the startup section [default: 20; 12 inside
                        the nested test host (HUSK_TESTHOST=nested)]
  --quick               a smoke run: 2 rounds, density steps 2 and 4, one
                        overhead sample
  --skip-vm             only the host parts (no VM backend, no boots)
  --skip-density        leave out the density section
  --kernel PATH         the guest kernel (vmlinux) for the VM parts
  --initrd PATH         the guest initramfs (holding husk-init)
  --husk PATH           husk [default: next to this program]
  --vmm PATH            husk-vmm [default: next to this program]
  --runc PATH           [default: runc on PATH]
  --crun PATH           [default: crun on PATH]
  --qemu PATH           [default: qemu-system-x86_64 on PATH]
  --vm-density-max N    the largest VM density step [default: --density-max;
                        5 inside the nested test host (2 with --quick), whose
                        own kernel has crashed with 4 and 10 guests booting
                        at once]
  --density-max N       the largest density step [default: 100; 20 inside the
                        nested test host]
  --memory-cap-mib N    density keeps the host's memory in use (MemTotal −
                        MemAvailable) under this [default: 80% of MemTotal]
  --out DIR             where the results go [default: target/bench/startup]
  --scratch DIR         where bundles and state go [default: /dev/shm when it
                        is a tmpfs, like runc's state under /run; else the
                        temporary directory]

Time: inside the nested test host everything runs 10-30x slower (a VM boot
takes 3-5 s), so there the defaults are scaled down (12 rounds, density up to
20) to keep a default run on two cores under 20 minutes (about 12 expected:
some 40 s per round, a few minutes of density). On a host with hardware KVM a
default run takes a few minutes.
";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("{flag} needs a value")]
    MissingValue { flag: String },
    #[error("{flag} {value:?}: expected a whole number")]
    NotANumber { flag: String, value: String },
    #[error("{flag} must be at least 1")]
    Zero { flag: String },
    #[error("unknown argument {0:?} (see --help)")]
    Unknown(String),
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub runs: usize,
    pub quick: bool,
    pub skip_vm: bool,
    pub skip_density: bool,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub husk: PathBuf,
    pub vmm: PathBuf,
    pub runc: PathBuf,
    pub crun: PathBuf,
    pub qemu: PathBuf,
    pub density_max: usize,
    /// The largest VM density step (`--vm-density-max`).
    pub vm_density_max: usize,
    pub memory_cap_mib: Option<u64>,
    pub out: PathBuf,
    pub scratch: Option<PathBuf>,
}

/// Either options to run with, or a request for the usage text.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
}

impl Options {
    /// The samples of the overhead section.
    pub fn overhead_samples(&self) -> usize {
        if self.quick {
            1
        } else {
            3
        }
    }

    /// The density steps of `backend`.
    pub fn density_steps(&self, backend: Runtime) -> Vec<usize> {
        let max = match backend {
            Runtime::HuskVm => self.vm_density_max,
            _ => self.density_max,
        };
        if self.quick {
            density::steps(2, max.min(4))
        } else {
            density::steps(5, max)
        }
    }
}

/// Parses the arguments (without the program name). `exe_dir` is where
/// husk and husk-vmm are looked for by default; `nested` says whether this
/// runs inside the nested test host.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    exe_dir: &Path,
    nested: bool,
) -> Result<Parsed, OptionsError> {
    let mut args = args.into_iter();
    let mut runs = None;
    let mut density_max = None;
    let mut vm_density_max = None;
    let mut options = Options {
        runs: 20,
        quick: false,
        skip_vm: false,
        skip_density: false,
        kernel: None,
        initrd: None,
        husk: exe_dir.join("husk"),
        vmm: exe_dir.join("husk-vmm"),
        runc: PathBuf::from("runc"),
        crun: PathBuf::from("crun"),
        qemu: PathBuf::from("qemu-system-x86_64"),
        density_max: 0,
        vm_density_max: 0,
        memory_cap_mib: None,
        out: PathBuf::from("target/bench/startup"),
        scratch: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| OptionsError::MissingValue { flag: flag.clone() })
        };
        let number = |value: String| -> Result<u64, OptionsError> {
            let parsed: u64 = value.parse().map_err(|_| OptionsError::NotANumber {
                flag: flag.clone(),
                value: value.clone(),
            })?;
            if parsed == 0 {
                return Err(OptionsError::Zero { flag: flag.clone() });
            }
            Ok(parsed)
        };
        match flag.as_str() {
            "--runs" => runs = Some(number(value()?)? as usize),
            "--quick" => options.quick = true,
            "--skip-vm" => options.skip_vm = true,
            "--skip-density" => options.skip_density = true,
            "--kernel" => options.kernel = Some(value()?.into()),
            "--initrd" => options.initrd = Some(value()?.into()),
            "--husk" => options.husk = value()?.into(),
            "--vmm" => options.vmm = value()?.into(),
            "--runc" => options.runc = value()?.into(),
            "--crun" => options.crun = value()?.into(),
            "--qemu" => options.qemu = value()?.into(),
            "--density-max" => density_max = Some(number(value()?)? as usize),
            "--vm-density-max" => vm_density_max = Some(number(value()?)? as usize),
            "--memory-cap-mib" => options.memory_cap_mib = Some(number(value()?)?),
            "--out" => options.out = value()?.into(),
            "--scratch" => options.scratch = Some(value()?.into()),
            "-h" | "--help" => return Ok(Parsed::Help),
            other => return Err(OptionsError::Unknown(other.to_string())),
        }
    }
    // --quick sets the defaults of a smoke run; what is given explicitly
    // wins, wherever it stands.
    options.runs = runs.unwrap_or(match (options.quick, nested) {
        (true, _) => 2,
        (false, true) => 12,
        (false, false) => 20,
    });
    options.density_max = density_max.unwrap_or(if nested { 20 } else { 100 });
    // The nested test host's own kernel has crashed (a vCPU thread of its
    // KVM overflowing its stack under the emulator) with 10 guests booting
    // at once, and once with 4: a crash ends the whole run, results and all.
    options.vm_density_max = vm_density_max.unwrap_or(match (nested, options.quick) {
        (true, true) => 2,
        (true, false) => 5,
        (false, _) => options.density_max,
    });
    Ok(Parsed::Run(Box::new(options)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_run(args: &[&str], nested: bool) -> Result<Options, OptionsError> {
        match parse(
            args.iter().map(|a| a.to_string()),
            Path::new("/opt/husk"),
            nested,
        )? {
            Parsed::Run(options) => Ok(*options),
            Parsed::Help => panic!("not a help request"),
        }
    }

    #[test]
    fn defaults_find_husk_next_to_the_program_and_scale_density_when_nested() {
        let options = parse_run(&[], false).unwrap();
        assert_eq!(options.runs, 20);
        assert_eq!(options.husk, Path::new("/opt/husk/husk"));
        assert_eq!(options.vmm, Path::new("/opt/husk/husk-vmm"));
        let all = [5, 10, 20, 40, 80, 100];
        assert_eq!(options.density_steps(Runtime::HuskContainer), all);
        assert_eq!(options.density_steps(Runtime::HuskVm), all);
        assert_eq!(options.overhead_samples(), 3);
        let nested = parse_run(&[], true).unwrap();
        let container_steps = nested.density_steps(Runtime::HuskContainer);
        assert_eq!((nested.runs, container_steps), (12, vec![5, 10, 20]));
        assert_eq!(nested.density_steps(Runtime::HuskVm), [5]);
        let quick = parse_run(&["--quick"], true).unwrap();
        assert_eq!(quick.runs, 2);
        assert_eq!(quick.density_steps(Runtime::HuskVm), [2]);
        let told = parse_run(&["--vm-density-max", "10"], true).unwrap();
        assert_eq!(told.density_steps(Runtime::HuskVm), [5, 10]);
    }

    #[test]
    fn quick_is_a_smoke_run_unless_told_otherwise() {
        let quick = parse_run(&["--quick", "--skip-vm"], false).unwrap();
        assert_eq!((quick.runs, quick.skip_vm), (2, true));
        assert_eq!(quick.density_steps(Runtime::HuskContainer), [2, 4]);
        assert_eq!(quick.overhead_samples(), 1);
        let more = parse_run(&["--runs", "5", "--quick", "--density-max", "3"], false).unwrap();
        assert_eq!(more.runs, 5);
        assert_eq!(more.density_steps(Runtime::HuskVm), [2, 3]);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert_eq!(
            parse_run(&["--runs", "many"], false),
            Err(OptionsError::NotANumber {
                flag: "--runs".to_string(),
                value: "many".to_string()
            })
        );
        assert_eq!(
            parse_run(&["--runs", "0"], false),
            Err(OptionsError::Zero {
                flag: "--runs".to_string()
            })
        );
        assert_eq!(
            parse_run(&["--kernel"], false),
            Err(OptionsError::MissingValue {
                flag: "--kernel".to_string()
            })
        );
        assert_eq!(
            parse_run(&["--fast"], false),
            Err(OptionsError::Unknown("--fast".to_string()))
        );
        assert_eq!(
            parse(["--help".to_string()], Path::new("/"), false),
            Ok(Parsed::Help)
        );
    }
}
