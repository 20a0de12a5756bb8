//! husk-bench-startup: what running a container in its own microVM costs
//! against running it on the host, measured in one run — startup latency
//! (husk's VM and container backends, runc, crun, and husk-vmm against
//! QEMU microvm booting the same guest), husk's startup phases, the memory
//! of an idle VM sandbox, and how many idle sandboxes fit and how fast
//! they come up together. See `--help` (options.rs) for what each section
//! does, and each section's module for how it measures.

/// The parts, one file each under src/startup/ (where an inline module of
/// the crate root looks for its children).
mod startup {
    pub mod bundle;
    pub mod command;
    pub mod density;
    pub mod latency;
    pub mod memory;
    pub mod options;
    pub mod overhead;
    pub mod phases;
    pub mod report;
    pub mod runtime;
    pub mod sys;
}

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use husk_benches::guest_boot::GuestMachine;
use husk_benches::kvm_can_boot;

use self::startup::bundle::{Bundle, BundleError, BundleSpec};
use self::startup::density::{DensityError, DensityResult};
use self::startup::latency::{BootReference, LatencyError, Workload};
use self::startup::options::{Options, Parsed, USAGE};
use self::startup::overhead::OverheadError;
use self::startup::report::{Machine, Report};
use self::startup::runtime::{Programs, Runtime, RuntimeError, Runtimes};
use self::startup::{
    command, density, latency, memory, options, overhead, phases, report, runtime, sys,
};

/// The guest of the VM backend's startup runs and of the boot reference:
/// the same size, so that husk's VM backend, husk-vmm and QEMU boot alike.
const STARTUP_GUEST_MEMORY_MIB: u64 = 128;
const STARTUP_GUEST_VCPUS: u32 = 1;

#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error(
        "{} not found: install Debian's {package} package (apt-get install {package}{}), \
         or name it with {flag}",
        program.display(),
        if *package == "runc" || *package == "crun" { "; scripts/install-host-deps does" } else { "" }
    )]
    MissingProgram {
        program: PathBuf,
        package: &'static str,
        flag: &'static str,
    },
    #[error("{flag} {}: no such file{hint}", path.display())]
    MissingFile {
        flag: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error(
        "the VM parts need the guest: give --kernel VMLINUX and --initrd INITRAMFS \
         (kernel-config/build and guest-init/build print them; scripts/bench passes them), \
         or --skip-vm"
    )]
    NoGuest,
    #[error("become the subreaper of the containers (prctl PR_SET_CHILD_SUBREAPER)")]
    Subreaper(#[source] io::Error),
    #[error("handle Ctrl-C")]
    Signals(#[source] io::Error),
    #[error("make {}", path.display())]
    Scratch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("make the bundles")]
    Bundle(#[from] BundleError),
    #[error("set up the runtimes")]
    Runtime(#[from] RuntimeError),
    #[error("startup")]
    Latency(#[from] LatencyError),
    #[error("overhead")]
    Overhead(#[from] OverheadError),
    #[error("density")]
    Density(#[from] DensityError),
}

/// The scratch directory, removed with everything in it when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create(parent: Option<&Path>) -> Result<Self, BenchError> {
        let parent = match parent {
            Some(parent) => parent.to_path_buf(),
            None if sys::is_tmpfs(Path::new("/dev/shm")) => PathBuf::from("/dev/shm"),
            None => std::env::temp_dir(),
        };
        let path = parent.join(format!("husk-bench-startup.{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| BenchError::Scratch {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            eprintln!(
                "husk-bench-startup: remove {}: {error}",
                self.path.display()
            );
        }
    }
}

/// `name` as given when it has a slash, else found on PATH (and in the
/// sbin directories, where Debian puts runc).
fn find_program(
    name: &Path,
    package: &'static str,
    flag: &'static str,
) -> Result<PathBuf, BenchError> {
    let missing = || BenchError::MissingProgram {
        program: name.to_path_buf(),
        package,
        flag,
    };
    if name.components().count() > 1 {
        return if name.is_file() {
            Ok(name.to_path_buf())
        } else {
            Err(missing())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(missing)
}

fn require_file(flag: &'static str, path: &Path, hint: &'static str) -> Result<(), BenchError> {
    if path.is_file() {
        return Ok(());
    }
    Err(BenchError::MissingFile {
        flag,
        path: path.to_path_buf(),
        hint,
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Copies of the runtimes' executables in `dir` (under the scratch
/// directory, a tmpfs where there is one), which every command then runs:
/// where the executables live on a slow file system (the nested test
/// host's root is a 9p share of the host's), each exec would pay for the
/// pages it reads, more for a larger binary, which is not what the runtimes
/// cost on a host. Their shared libraries stay where they are. husk-vmm and
/// QEMU stay too: the boot reference compares them as installed.
fn local_copies(programs: &Programs, dir: &Path) -> Result<Programs, BenchError> {
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let copy = |name: &str, program: &Path| -> Result<PathBuf, BenchError> {
        let target = dir.join(name);
        std::fs::copy(program, &target).map_err(|source| BenchError::Write {
            path: target.clone(),
            source,
        })?;
        Ok(target)
    };
    Ok(Programs {
        husk: copy("husk", &programs.husk)?,
        runc: copy("runc", &programs.runc)?,
        crun: copy("crun", &programs.crun)?,
    })
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|source| BenchError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Where VMs run, for the header.
fn kvm_mode() -> String {
    match std::env::var("HUSK_TESTHOST") {
        Ok(mode) if mode == "nested" => {
            "nested (inside the test host: every time inflated 10-30x by the emulator; \
             compare ratios)"
                .to_string()
        }
        Ok(mode) if !mode.is_empty() => mode,
        _ if kvm_can_boot() => "direct".to_string(),
        _ => "cannot boot a guest here (no kvm_intel/kvm_amd, or kvm_pvm)".to_string(),
    }
}

/// The guest and VMMs of the VM parts, checked.
struct VmParts {
    kernel: PathBuf,
    initrd: PathBuf,
    vmm: PathBuf,
    qemu: PathBuf,
}

fn vm_parts(options: &Options) -> Result<VmParts, BenchError> {
    let (Some(kernel), Some(initrd)) = (&options.kernel, &options.initrd) else {
        return Err(BenchError::NoGuest);
    };
    require_file("--kernel", kernel, " (kernel-config/build prints the path)")?;
    require_file("--initrd", initrd, " (guest-init/build prints the path)")?;
    require_file(
        "--vmm",
        &options.vmm,
        " (cargo build --release -p husk-vmm)",
    )?;
    Ok(VmParts {
        kernel: absolute(kernel),
        initrd: absolute(initrd),
        vmm: absolute(&options.vmm),
        qemu: find_program(&options.qemu, "qemu-system-x86", "--qemu")?,
    })
}

fn run(options: &Options) -> Result<(), BenchError> {
    sys::become_subreaper().map_err(BenchError::Subreaper)?;
    sys::stop_on_interrupt().map_err(BenchError::Signals)?;
    require_file(
        "--husk",
        &options.husk,
        " (cargo build --release -p husk-shim)",
    )?;
    let programs = Programs {
        husk: absolute(&options.husk),
        runc: find_program(&options.runc, "runc", "--runc")?,
        crun: find_program(&options.crun, "crun", "--crun")?,
    };
    let mut notes = Vec::new();
    let vm = if options.skip_vm {
        notes.push("--skip-vm: the VM parts were left out.".to_string());
        None
    } else if !kvm_can_boot() {
        notes.push(
            "This host's KVM cannot boot a guest (no kvm_intel/kvm_amd, or kvm_pvm): the VM \
             parts (husk --backend vm, the husk-vmm and QEMU microvm boot reference, overhead, \
             VM density) were skipped. Run them with scripts/bench, or with \
             `tests/testhost/run -- target/release/husk-bench-startup --kernel VMLINUX \
             --initrd INITRAMFS`."
                .to_string(),
        );
        None
    } else {
        Some(vm_parts(options)?)
    };
    for note in &notes {
        eprintln!("husk-bench-startup: {note}");
    }

    let scratch = Scratch::create(options.scratch.as_deref())?;
    let husk_config = scratch.path.join("husk-config.json");
    runtime::write_husk_config(
        &husk_config,
        vm.as_ref().map(|vm| vm.kernel.as_path()),
        vm.as_ref().map(|vm| vm.initrd.as_path()),
        vm.as_ref().map(|vm| vm.vmm.as_path()),
    )?;
    let mut versions = vec![
        ("husk", report::version_of(&programs.husk)),
        ("runc", report::version_of(&programs.runc)),
        ("crun", report::version_of(&programs.crun)),
    ];
    if let Some(vm) = &vm {
        versions.push(("qemu", report::version_of(&vm.qemu)));
    }
    let programs = local_copies(&programs, &scratch.path.join("bin"))?;
    let runtimes = Runtimes::new(programs.clone(), husk_config, &scratch.path)?;
    let id_prefix = format!("hb{}", std::process::id());
    let compared: Vec<Runtime> = [
        Runtime::HuskContainer,
        Runtime::HuskVm,
        Runtime::Runc,
        Runtime::Crun,
    ]
    .into_iter()
    .filter(|runtime| *runtime != Runtime::HuskVm || vm.is_some())
    .collect();

    let mut report = Report::default();
    let memory_total_mib = memory::host_memory().map_or(0, |(total, _)| total / 1024);
    let memory_cap_mib = options.memory_cap_mib.unwrap_or(memory_total_mib * 8 / 10);
    let settings = format!(
        "{} rounds; VM backend and boot reference: {STARTUP_GUEST_MEMORY_MIB} MiB, \
         {STARTUP_GUEST_VCPUS} vCPU; density steps {:?} (VM: {:?}){}, memory cap \
         {memory_cap_mib} MiB; \
         state, bundles and copies of the husk, runc and crun executables on {}",
        options.runs,
        options.density_steps(Runtime::HuskContainer),
        options.density_steps(Runtime::HuskVm),
        if options.skip_density {
            " (skipped)"
        } else {
            ""
        },
        scratch.path.display()
    );
    report.add(&Machine::of_this_host(kvm_mode()).header(&versions, &settings));
    for note in &notes {
        report.add(&format!("\n> {note}\n"));
    }

    let bundles_dir = scratch.path.join("bundles");
    let startup_memory = STARTUP_GUEST_MEMORY_MIB.to_string();
    let startup_annotations = [("run.husk.vm.memory-mib", startup_memory.as_str())];
    let mut bundles = BTreeMap::new();
    for workload in Workload::ALL {
        let spec = BundleSpec {
            args: workload.args(),
            annotations: &startup_annotations,
        };
        let bundle = Bundle::create(&bundles_dir.join(workload.key()), &programs.runc, &spec)?;
        bundles.insert(workload, bundle);
    }

    let boot = vm.as_ref().map(|vm| BootReference {
        vmm: &vm.vmm,
        qemu: &vm.qemu,
        machine: GuestMachine {
            kernel: &vm.kernel,
            initrd: &vm.initrd,
            memory_mib: STARTUP_GUEST_MEMORY_MIB,
            vcpus: STARTUP_GUEST_VCPUS,
        },
    });
    let startup = latency::measure(
        &runtimes,
        &compared,
        &bundles,
        boot.as_ref(),
        options.runs,
        &id_prefix,
    )?;
    report.section(
        "Startup",
        &format!(
            "Milliseconds from spawning the first runtime command to the last one's exit, \
             {} rounds interleaved. create → start → exit → delete waits for the container \
             process as its subreaper; `run` is one foreground command. × crun and × QEMU boot \
             divide the median by crun's (same workload and measure) and by QEMU microvm's \
             boot of the same guest to husk-init.",
            options.runs
        ),
        &startup.table(&compared),
    );
    let bars = phases::bars(&startup.lifecycles, &compared);
    report.section(
        "Phases",
        "busybox `true`, median of each segment. husk's segments end at the phase named \
         (husk state: husk.timingsMicros; guest_* are the guest's clock placed on husk's); \
         create (rest) is husk's exec and exit; start, exit (start returned → process ended) \
         and delete are measured by the benchmark.",
        &phases::table(&bars),
    );

    if let Some(vm) = &vm {
        let memory = overhead::GUEST_MEMORY_MIB.to_string();
        let bundle = Bundle::create(
            &bundles_dir.join("idle-128"),
            &programs.runc,
            &BundleSpec {
                args: &["sleep", "3600"],
                annotations: &[("run.husk.vm.memory-mib", memory.as_str())],
            },
        )?;
        let samples =
            overhead::measure(&runtimes, &bundle, options.overhead_samples(), &id_prefix)?;
        report.section(
            "Overhead",
            &format!(
                "Host memory of one idle VM sandbox: husk --backend vm, {} MiB guest, \
                 `sleep 3600`, read 1 s after start; median of {}. Guest RAM touched is the \
                 resident part of husk-vmm's guest memory mappings (initramfs included). \
                 husk-vmm is {}.",
                overhead::GUEST_MEMORY_MIB,
                samples.len(),
                vm.vmm.display()
            ),
            &overhead::table(&samples, Some(&startup.boots)),
        );
    }

    let mut densities: Vec<DensityResult> = Vec::new();
    if !options.skip_density {
        let memory = density::GUEST_MEMORY_MIB.to_string();
        let timeout = density::BOOT_TIMEOUT_SECONDS.to_string();
        let bundle = Bundle::create(
            &bundles_dir.join("idle-64"),
            &programs.runc,
            &BundleSpec {
                args: &["sleep", "3600"],
                annotations: &[
                    ("run.husk.vm.memory-mib", memory.as_str()),
                    ("run.husk.vm.boot-timeout", timeout.as_str()),
                ],
            },
        )?;
        let backends: Vec<Runtime> = [Runtime::HuskVm, Runtime::HuskContainer]
            .into_iter()
            .filter(|backend| compared.contains(backend))
            .collect();
        for backend in backends {
            densities.push(density::measure(
                &runtimes,
                backend,
                &bundle,
                &options.density_steps(backend),
                memory_cap_mib,
                &id_prefix,
            )?);
        }
        report.section(
            "Density",
            &format!(
                "N idle `sleep 3600` sandboxes (VM: {} MiB guests): all N creates spawned at \
                 once, then all N starts; seconds until the last finished; memory per sandbox \
                 2 s later (sum of the sandbox processes' PSS / N; for the VM backend also \
                 that PSS less the guest RAM the guests touched / N, husk-vmm's own cost per \
                 sandbox with its code shared; and the host's MemAvailable drop / N). All \
                 killed and deleted before the next step.",
                density::GUEST_MEMORY_MIB
            ),
            &density::table(&densities),
        );
    }

    std::fs::create_dir_all(&options.out).map_err(|source| BenchError::Write {
        path: options.out.clone(),
        source,
    })?;
    let mut written = Vec::new();
    let mut output = |name: &str, text: &str| -> Result<(), BenchError> {
        let path = options.out.join(name);
        write(&path, text)?;
        written.push(path.display().to_string());
        Ok(())
    };
    output("results.md", report.text())?;
    output("startup.csv", &startup.csv())?;
    output("startup.svg", &startup.svg(&compared))?;
    output("phases.svg", &phases::svg(&bars))?;
    if !densities.is_empty() {
        output("density.svg", &density::svg(&densities))?;
    }
    println!("\nwrote {}", written.join(", "));
    Ok(())
}

fn main() {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|path| path.parent().map(Path::to_owned))
        .unwrap_or_default();
    let nested = std::env::var("HUSK_TESTHOST").is_ok_and(|mode| mode == "nested");
    let options = match options::parse(std::env::args().skip(1), &exe_dir, nested) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return;
        }
        Err(error) => {
            eprintln!("husk-bench-startup: {error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&options) {
        eprintln!("husk-bench-startup: {}", command::error_chain(&error));
        std::process::exit(1);
    }
}
