//! The load test with the VM backend: the container backend's cycle
//! (`load_common`), each container in its own VM, scaled down to what an
//! emulated test host runs in minutes, with the same leftover checks and
//! the VM's own: no husk-vmm (nor its jailed child), no image, no socket
//! directory. Then one VM takes 50 execs, and husk-vmm must not grow with
//! them: its own memory (outside the guest's RAM), descriptors and threads
//! after the 50th are those after the 10th.
//!
//! `HUSK_LOAD_VM_CYCLES` cycles (6 unless set) on `HUSK_LOAD_VM_PARALLEL`
//! threads (1 unless set). Needs a KVM that boots guests (tests/run-all
//! runs this inside the test host), root, busybox-static, e2fsprogs, the
//! guest kernel, initramfs and husk-vmm (HUSK_KERNEL, HUSK_INITRAMFS,
//! HUSK_VMM) and a built husk (HUSK_BIN, else target/release/husk).

mod load_common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use std::{fs, thread};

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{
    children_of, is_running, read_pid_file, reap, vm_files_of_record, wait_until, Husk,
};
use husk_tests::{path_str, BOOT_TIMEOUT};
use load_common::{
    assert_nothing_left, run_cycles, test_dirs, CreatedThings, CyclePlan, HostBefore, LoadSettings,
    SeenProcess, TestMarks,
};
use serde_json::json;

/// Where the VM backend puts sockets when the state directory's path is
/// too long for them (shim/src/backend/vm/layout.rs, SHORT_SOCKET_ROOT).
const SHORT_SOCKET_ROOT: &str = "/run/husk-vm";

/// The execs of the long-lived VM, and the one after which husk-vmm is
/// first measured: by then whatever it allocates once for execs is there.
const LONG_LIVED_EXECS: usize = 50;
const BASELINE_EXEC: usize = 10;

/// How much husk-vmm's own memory may grow from the 10th exec to the
/// 50th: allocator noise, not a per-exec cost (40 execs of a leak of a
/// relay's buffers would be several MiB).
const ALLOWED_VMM_GROWTH_KIB: u64 = 1024;

/// The names in a directory; none when it does not exist.
fn names_in(directory: &Path) -> BTreeSet<String> {
    fs::read_dir(directory)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The host files container `id`'s record names (its image, sockets,
/// socket directory, logs, hooks), and husk-vmm's jailed child: the pid
/// recorded only waits for it (husk-vmm `--jail`), and it holds the VM.
fn created_things(husk: &Husk, id: &str, pid: i32) -> Result<CreatedThings, String> {
    let files = husk
        .record(id)
        .and_then(|record| vm_files_of_record(&record))
        .map_err(|error| format!("container {id}: {error}"))?;
    let processes = jailed_child(pid)
        .and_then(|child| {
            let comm = fs::read_to_string(format!("/proc/{child}/comm")).ok()?;
            Some(SeenProcess {
                pid: child,
                comm: comm.trim().to_string(),
            })
        })
        .into_iter()
        .collect();
    Ok(CreatedThings { files, processes })
}

/// The child of husk-vmm `pid` that runs the VM when it jailed itself;
/// None when it runs the VM itself.
fn jailed_child(pid: i32) -> Option<i32> {
    children_of(pid).first().copied()
}

/// One mapping of /proc/PID/smaps (proc(5)).
struct Mapping {
    start: u64,
    end: u64,
    /// `rw?p`: what guest RAM is (MAP_PRIVATE, read-write).
    private_writable: bool,
    /// No file and no [name].
    anonymous: bool,
    /// A [name]: heap, stack, vdso.
    special: bool,
    rss_kib: u64,
}

/// The mappings of process `pid`.
fn mappings(pid: i32) -> Vec<Mapping> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps"))
        .unwrap_or_else(|error| panic!("read /proc/{pid}/smaps: {error}"));
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap_or_default();
        let bounds = range.split_once('-').and_then(|(start, end)| {
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
            ))
        });
        if let Some((start, end)) = bounds {
            let permissions = fields.next().unwrap_or_default();
            // Offset, device and inode, then the name, if any.
            let name: Vec<&str> = fields.skip(3).collect();
            mappings.push(Mapping {
                start,
                end,
                private_writable: permissions.starts_with("rw") && permissions.ends_with('p'),
                anonymous: name.is_empty(),
                special: name.first().is_some_and(|name| name.starts_with('[')),
                rss_kib: 0,
            });
        } else if range == "Rss:" {
            if let Some(last) = mappings.last_mut() {
                last.rss_kib = fields.next().and_then(|kib| kib.parse().ok()).unwrap_or(0);
            }
        }
    }
    mappings
}

/// The resident part of a guest RAM of `guest_kib` among `mappings`:
/// husk-vmm maps it as one private anonymous mapping with the initramfs
/// mapped copy-on-write over part of it, so it is a run of adjacent private
/// writable mappings (no [name]), one anonymous at least, adding up to
/// exactly the guest's size.
fn guest_resident_kib(mappings: &[Mapping], guest_kib: u64) -> Option<u64> {
    (0..mappings.len()).find_map(|first| {
        let (mut size, mut resident, mut has_anonymous) = (0, 0, false);
        for (index, mapping) in mappings.iter().enumerate().skip(first) {
            let adjacent = index == first || mappings[index - 1].end == mapping.start;
            if !adjacent || !mapping.private_writable || mapping.special || size >= guest_kib {
                return None;
            }
            size += (mapping.end - mapping.start) / 1024;
            resident += mapping.rss_kib;
            has_anonymous |= mapping.anonymous;
            if size == guest_kib && has_anonymous {
                return Some(resident);
            }
        }
        None
    })
}

/// A status line's number (`Threads:`, `VmRSS:`), from /proc/PID/status.
fn status_value(pid: i32, key: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("read /proc/{pid}/status: {error}"));
    text.lines()
        .find_map(|line| {
            line.strip_prefix(key)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("/proc/{pid}/status has no {key} line"))
}

/// husk-vmm measured: the waiter and its jailed child (or the one process
/// when it is not jailed) together.
#[derive(Debug, Clone, Copy)]
struct VmmSample {
    /// VmRSS, guest RAM included.
    rss_kib: u64,
    /// Resident outside the guest's RAM: husk-vmm's own memory.
    own_kib: u64,
    descriptors: usize,
    threads: u64,
}

impl VmmSample {
    fn take(pid: i32, guest_kib: u64) -> VmmSample {
        let holder = jailed_child(pid).unwrap_or(pid);
        let processes: Vec<i32> = if holder == pid {
            vec![pid]
        } else {
            vec![pid, holder]
        };
        let mut sample = VmmSample {
            rss_kib: 0,
            own_kib: 0,
            descriptors: 0,
            threads: 0,
        };
        for process in processes {
            let mapped = mappings(process);
            let resident: u64 = mapped.iter().map(|mapping| mapping.rss_kib).sum();
            let guest = if process == holder {
                guest_resident_kib(&mapped, guest_kib).unwrap_or_else(|| {
                    panic!(
                        "/proc/{process}/smaps: no run of private writable mappings of exactly \
                         {guest_kib} KiB, the guest's RAM (has husk-vmm's memory layout changed?)"
                    )
                })
            } else {
                0
            };
            sample.rss_kib += status_value(process, "VmRSS:");
            sample.own_kib += resident - guest;
            sample.threads += status_value(process, "Threads:");
            sample.descriptors += fs::read_dir(format!("/proc/{process}/fd"))
                .unwrap_or_else(|error| panic!("list /proc/{process}/fd: {error}"))
                .count();
        }
        sample
    }

    /// No more descriptors or threads than `baseline`, and own memory
    /// within [`ALLOWED_VMM_GROWTH_KIB`] of it.
    fn within(&self, baseline: &VmmSample) -> bool {
        self.own_kib <= baseline.own_kib + ALLOWED_VMM_GROWTH_KIB
            && self.descriptors <= baseline.descriptors
            && self.threads <= baseline.threads
    }
}

/// One VM, [`LONG_LIVED_EXECS`] execs each checked, husk-vmm measured
/// after the [`BASELINE_EXEC`]th and the last; then deleted, its
/// processes, files and state gone. Returns the two samples.
fn exec_many_in_one_vm(husk: &Husk, bundle: &Bundle, id: &str) -> (VmmSample, VmmSample) {
    let pid_file = husk.file("long-lived.pid");
    husk.run(&[
        "--backend",
        "vm",
        "create",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        id,
    ])
    .success();
    let pid = read_pid_file(&pid_file);
    let record = husk.record(id).unwrap_or_else(|error| panic!("{error}"));
    let memory_mib: u64 = record["husk"]["paths"]["extra"]["vmMemoryMib"]
        .as_str()
        .and_then(|mib| mib.parse().ok())
        .unwrap_or_else(|| panic!("the record of {id} has no vmMemoryMib:\n{record}"));
    let created = created_things(husk, id, pid).unwrap_or_else(|error| panic!("{error}"));
    husk.run(&["start", id]).success();

    let mut baseline = None;
    for exec in 1..=LONG_LIVED_EXECS {
        let token = format!("long-lived-exec-{exec}");
        let run = husk.run(&["exec", id, "echo", &token]);
        assert_eq!(run.success(), format!("{token}\n"), "exec {exec} in {id}");
        if exec == BASELINE_EXEC {
            baseline = Some(VmmSample::take(pid, memory_mib * 1024));
        }
    }
    let baseline = baseline.expect("the baseline exec ran");
    // An exec's relay may still be closing when husk exec returns: give it
    // a moment before calling anything left a leak.
    let settle = Instant::now() + Duration::from_secs(5);
    let mut last = VmmSample::take(pid, memory_mib * 1024);
    while !last.within(&baseline) && Instant::now() < settle {
        thread::sleep(Duration::from_millis(100));
        last = VmmSample::take(pid, memory_mib * 1024);
    }
    assert!(
        last.within(&baseline),
        "husk-vmm grew with execs: after exec {BASELINE_EXEC} {baseline:?}, after exec \
         {LONG_LIVED_EXECS} {last:?} (own memory may grow {ALLOWED_VMM_GROWTH_KIB} KiB; \
         descriptors and threads not at all)"
    );

    husk.run(&["delete", "--force", id]).success();
    wait_until(&format!("husk-vmm {pid} ends"), BOOT_TIMEOUT, || {
        !is_running(pid)
    });
    assert_eq!(reap(pid), 128 + libc::SIGKILL, "husk-vmm's status");
    let left: Vec<String> = created
        .files
        .iter()
        .filter(|file| file.exists())
        .map(|file| file.display().to_string())
        .chain(
            created
                .processes
                .iter()
                .filter(|process| process.still_runs())
                .map(|process| format!("process {} ({})", process.pid, process.comm)),
        )
        .collect();
    assert!(
        left.is_empty(),
        "after delete of {id}, still there: {left:?}"
    );
    (baseline, last)
}

#[test]
fn vm_backend_cycles_leave_nothing_behind() {
    let settings = LoadSettings::from_env("HUSK_LOAD_VM_CYCLES", 6, "HUSK_LOAD_VM_PARALLEL", 1);
    let before = HostBefore::take();
    let short_sockets_before = names_in(Path::new(SHORT_SOCKET_ROOT));
    let husk = Husk::vm("load");
    let bundles: Vec<Bundle> = (0..settings.parallel)
        .map(|worker| {
            let mut bundle = Bundle::busybox(&format!("load-vm-w{worker}"));
            bundle.set("/process/args", json!(["sleep", "100000"])).set(
                "/annotations",
                json!({"run.husk.vm.boot-timeout": BOOT_TIMEOUT.as_secs().to_string()}),
            );
            bundle
        })
        .collect();
    let id_prefix = format!("load-vm-{}-", std::process::id());
    let marks = TestMarks {
        id_prefix: id_prefix.clone(),
        dirs: test_dirs(&husk, &bundles),
        root: husk.root(),
    };
    let plan = CyclePlan {
        husk: &husk,
        create_flags: &["--backend", "vm"],
        exit_timeout: BOOT_TIMEOUT,
        created_things: &created_things,
    };

    let report = run_cycles(&plan, &settings, &bundles, &id_prefix);
    report.print_summary("load (VM backend)");
    let (after_baseline, after_last) =
        exec_many_in_one_vm(&husk, &bundles[0], &format!("{id_prefix}long-lived"));
    let _ = writeln!(
        std::io::stderr(),
        "  husk-vmm after exec {BASELINE_EXEC}: {after_baseline:?}\n  husk-vmm after exec \
         {LONG_LIVED_EXECS}: {after_last:?}"
    );

    assert_nothing_left(&before, &marks, &report);
    let new_short_sockets: Vec<String> = names_in(Path::new(SHORT_SOCKET_ROOT))
        .difference(&short_sockets_before)
        .cloned()
        .collect();
    assert!(
        new_short_sockets.is_empty(),
        "socket directories left in {SHORT_SOCKET_ROOT}: {new_short_sockets:?}"
    );
    report.assert_no_memory_growth();
}
