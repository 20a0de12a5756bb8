//! The load test's cycle, and what it checks afterwards, for both backends
//! (tests/load.rs: the container backend on this host; tests/load_vm.rs:
//! the VM backend in the test host).
//!
//! A cycle is what runc's callers do for a short-lived container: `husk
//! create` of a detached container without a terminal, `husk start`, one
//! `husk exec` whose output is checked, then either `husk kill KILL`, a
//! wait for the exit and `husk delete` (containerd's order), or `husk
//! delete --force` (podman rm -f). Worker threads share one `--root`, as
//! the shims of one containerd do, and run cycles until the count is done.
//!
//! Afterwards nothing of the test may be left on the host: no process, no
//! unreaped child, no mount, no state directory, no cgroup, no descriptor
//! opened by the test process or held by any process on the test's
//! directories; and no husk call may have grown in memory from the first
//! cycles to the last.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use std::{fs, thread};

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{container_cgroup_dirs, is_running, process_state, read_text, Husk};
use husk_tests::path_str;

/// How many cycles, and how many run at once, from the environment.
pub struct LoadSettings {
    pub cycles: usize,
    pub parallel: usize,
}

impl LoadSettings {
    /// `$cycles_variable` cycles (else `default_cycles`) on
    /// `$parallel_variable` threads (else `default_parallel`). A value that
    /// is not a positive number fails the test naming the variable.
    pub fn from_env(
        cycles_variable: &str,
        default_cycles: usize,
        parallel_variable: &str,
        default_parallel: usize,
    ) -> LoadSettings {
        let read = |variable: &str, default: usize| match std::env::var(variable) {
            Err(std::env::VarError::NotPresent) => default,
            Ok(text) => match text.trim().parse::<usize>() {
                Ok(value) if value > 0 => value,
                _ => panic!("{variable}={text:?}: expected a positive whole number"),
            },
            Err(error) => panic!("{variable}: {error}"),
        };
        let cycles = read(cycles_variable, default_cycles);
        let parallel = read(parallel_variable, default_parallel).min(cycles);
        LoadSettings { cycles, parallel }
    }
}

/// What makes a host object the test's: a container ID starting with
/// `id_prefix`, or a path under one of `dirs` (its bundles, its scratch
/// directory, which holds the `--root`).
pub struct TestMarks {
    pub id_prefix: String,
    pub dirs: Vec<PathBuf>,
    /// husk's `--root`.
    pub root: PathBuf,
}

impl TestMarks {
    /// Whether `text` (an argument, a link target, a mount line) names
    /// one of the test's containers or directories.
    fn names_the_test(&self, text: &str) -> bool {
        text.contains(&self.id_prefix)
            || self.dirs.iter().any(|dir| {
                let dir = dir.to_string_lossy();
                // The whole name: /tmp/x-12 must not match /tmp/x-123.
                text.match_indices(dir.as_ref()).any(|(at, _)| {
                    !text[at + dir.len()..]
                        .chars()
                        .next()
                        .is_some_and(|next| next.is_alphanumeric() || "-_.".contains(next))
                })
            })
    }
}

/// What the host held before the cycles: the test process's descriptors
/// (number and target) and the mount table.
pub struct HostBefore {
    own_descriptors: BTreeMap<i32, String>,
    mounts: BTreeSet<String>,
}

impl HostBefore {
    pub fn take() -> HostBefore {
        HostBefore {
            own_descriptors: own_descriptors(),
            mounts: mount_lines(),
        }
    }
}

/// The test process's open descriptors and their targets
/// (/proc/self/fd, proc(5)), less the one that lists them.
fn own_descriptors() -> BTreeMap<i32, String> {
    let listing = format!("/proc/{}/fd", std::process::id());
    fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .flatten()
        .filter_map(|entry| {
            let number = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            (target != listing).then_some((number, target))
        })
        .collect()
}

fn mount_lines() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The pids in /proc, this process's excepted.
fn other_pids() -> Vec<i32> {
    let own = std::process::id() as i32;
    fs::read_dir("/proc")
        .expect("list /proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != own)
        .collect()
}

/// A process's arguments joined by spaces; empty once it has ended.
fn command_line(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|byte| *byte == 0)
                .filter(|argument| !argument.is_empty())
                .map(|argument| String::from_utf8_lossy(argument).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Live processes of the test: an argument naming one of its containers
/// or directories, a current directory, root or executable under its
/// directories, or a cgroup named after one of its containers (the
/// container's processes, husk-vmm), as "pid: command line (why)".
fn leftover_processes(marks: &TestMarks) -> Vec<String> {
    let mut found = Vec::new();
    for pid in other_pids() {
        if !is_running(pid) {
            continue;
        }
        let arguments = command_line(pid);
        let mut reasons = Vec::new();
        if marks.names_the_test(&arguments) {
            reasons.push("its arguments name the test".to_string());
        }
        for link in ["cwd", "root", "exe"] {
            if let Ok(target) = fs::read_link(format!("/proc/{pid}/{link}")) {
                if marks.dirs.iter().any(|dir| target.starts_with(dir)) {
                    reasons.push(format!("{link} is {}", target.display()));
                }
            }
        }
        let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if let Some(line) = cgroups.lines().find(|line| {
            line.rsplit(':').next().is_some_and(|path| {
                path.split('/')
                    .any(|part| part.starts_with(&marks.id_prefix))
            })
        }) {
            reasons.push(format!("cgroup {line}"));
        }
        // Looked at again: one that ended meanwhile is no leftover.
        if !reasons.is_empty() && is_running(pid) {
            found.push(format!("{pid}: {arguments} ({})", reasons.join("; ")));
        }
    }
    found
}

/// Children of the test process not reaped: husk calls and container
/// inits are all reaped by the cycles, so any child left, even a zombie, is
/// something husk left to its caller (this subreaper) without saying so.
fn unreaped_children() -> Vec<String> {
    let own = std::process::id() as i32;
    other_pids()
        .into_iter()
        .filter_map(|pid| {
            let (state, parent) = process_state(pid)?;
            (parent == own).then(|| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!(
                    "{pid} ({}, state {state}): {}",
                    comm.trim(),
                    command_line(pid)
                )
            })
        })
        .collect()
}

/// Descriptors of any process (this one included) on a path under the
/// test's directories, as "pid fd -> target".
fn descriptors_into_test_dirs(marks: &TestMarks) -> Vec<String> {
    let mut pids = other_pids();
    pids.push(std::process::id() as i32);
    let mut found = Vec::new();
    for pid in pids {
        let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            if marks.dirs.iter().any(|dir| target.starts_with(dir)) {
                found.push(format!(
                    "pid {pid} ({}) fd {} -> {}",
                    command_line(pid),
                    entry.file_name().to_string_lossy(),
                    target.display()
                ));
            }
        }
    }
    found
}

/// The directories of every cgroup hierarchy mounted here (v1 controllers
/// and the v2 unified tree alike, from /proc/self/mountinfo) whose name
/// starts with the test's ID prefix: the default cgroupsPath is
/// `/husk/<id>`, but a leftover anywhere counts.
fn leftover_cgroups(marks: &TestMarks) -> Vec<PathBuf> {
    let mount_points: BTreeSet<PathBuf> = mount_lines()
        .iter()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let fstype = tail.split_whitespace().next()?;
            let mount_point = head.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect();
    let mut found = Vec::new();
    for mount_point in mount_points {
        let mut pending = vec![mount_point];
        while let Some(directory) = pending.pop() {
            let Ok(entries) = fs::read_dir(&directory) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    continue;
                }
                let path = entry.path();
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&marks.id_prefix)
                {
                    found.push(path.clone());
                }
                pending.push(path);
            }
        }
    }
    found
}

/// Fails the test listing everything of the test still on the host (see
/// the module's documentation), compared with `before`; `cycles` is what
/// the cycles saw.
pub fn assert_nothing_left(before: &HostBefore, marks: &TestMarks, cycles: &LoadReport) {
    let mut problems: Vec<String> = Vec::new();
    let mut report = |what: &str, items: Vec<String>| {
        if !items.is_empty() {
            problems.push(format!("{what}:\n  {}", items.join("\n  ")));
        }
    };
    report("processes of the test still run", leftover_processes(marks));
    report(
        "processes the cycles recorded (a jailed husk-vmm's child) still run",
        cycles
            .records
            .iter()
            .flat_map(|record| &record.processes)
            .filter(|process| process.still_runs())
            .map(|process| format!("{} ({})", process.pid, process.comm))
            .collect(),
    );
    report(
        "children of the test process were never reaped",
        unreaped_children(),
    );
    let mounts_now = mount_lines();
    report(
        "mounts naming the test's containers or directories appeared",
        mounts_now
            .difference(&before.mounts)
            .filter(|line| marks.names_the_test(line))
            .cloned()
            .collect(),
    );
    report(
        &format!("husk's --root {} still holds", marks.root.display()),
        fs::read_dir(&marks.root)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.path().display().to_string())
                    .collect()
            })
            .unwrap_or_default(),
    );
    report(
        "cgroups of the test's containers are still there",
        leftover_cgroups(marks)
            .iter()
            .map(|path| path.display().to_string())
            .collect(),
    );
    let descriptors_now = own_descriptors();
    report(
        "the test process has descriptors it did not have before",
        descriptors_now
            .iter()
            .filter(|(number, target)| before.own_descriptors.get(number) != Some(target))
            .map(|(number, target)| format!("fd {number} -> {target}"))
            .collect(),
    );
    report(
        "descriptors point into the test's directories",
        descriptors_into_test_dirs(marks),
    );
    assert!(
        problems.is_empty(),
        "left behind after the cycles:\n{}",
        problems.join("\n")
    );
}

/// A process a cycle saw, which must be gone once the container is
/// deleted: its pid and its name (/proc/PID/comm) then, so that a new
/// process given the same pid is not taken for it.
#[derive(Debug, Clone)]
pub struct SeenProcess {
    pub pid: i32,
    pub comm: String,
}

impl SeenProcess {
    /// Whether it still runs (not a zombie, not replaced by another
    /// program under its pid).
    pub fn still_runs(&self) -> bool {
        is_running(self.pid)
            && fs::read_to_string(format!("/proc/{}/comm", self.pid))
                .is_ok_and(|comm| comm.trim() == self.comm)
    }
}

/// What a backend records of a created container, to check after delete.
#[derive(Debug, Default)]
pub struct CreatedThings {
    /// Host files the container's record names (a VM's image, sockets,
    /// socket directory).
    pub files: Vec<PathBuf>,
    /// Processes besides the container's pid (a jailed husk-vmm's child).
    pub processes: Vec<SeenProcess>,
}

/// How a backend runs a cycle.
pub struct CyclePlan<'a> {
    pub husk: &'a Husk,
    /// Arguments before `create` (`--backend vm`).
    pub create_flags: &'a [&'a str],
    /// How long the container's process may take to end after a kill.
    pub exit_timeout: Duration,
    /// What to remember of a created container (called after create with
    /// its ID and pid).
    pub created_things: &'a (dyn Fn(&Husk, &str, i32) -> Result<CreatedThings, String> + Sync),
}

/// One husk call of a cycle.
#[derive(Debug, Clone, Copy)]
pub struct CallRecord {
    pub verb: &'static str,
    pub peak_rss_kib: u64,
    pub took: Duration,
}

/// One finished cycle.
#[derive(Debug)]
pub struct CycleRecord {
    pub cycle: usize,
    pub calls: Vec<CallRecord>,
    /// The processes besides the container's own that it had.
    pub processes: Vec<SeenProcess>,
}

/// What a run of cycles did.
pub struct LoadReport {
    pub records: Vec<CycleRecord>,
    pub parallel: usize,
    pub wall: Duration,
}

/// The verbs of a cycle, in order, for the summary.
const VERBS: [&str; 5] = ["create", "start", "exec", "kill", "delete"];

/// Runs `settings.cycles` cycles on `settings.parallel` threads, worker N
/// with `bundles[N]` (each cycle a new container ID, `<id_prefix>wN-cM`).
/// Fails the test with every failed cycle, naming the cycle, the call and
/// its output; the first failure stops the other workers.
pub fn run_cycles(
    plan: &CyclePlan,
    settings: &LoadSettings,
    bundles: &[Bundle],
    id_prefix: &str,
) -> LoadReport {
    assert!(bundles.len() >= settings.parallel, "a bundle per worker");
    let next_cycle = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let records = Mutex::new(Vec::with_capacity(settings.cycles));
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    thread::scope(|scope| {
        for (worker, bundle) in bundles.iter().enumerate().take(settings.parallel) {
            let (next_cycle, stop, records, failures) = (&next_cycle, &stop, &records, &failures);
            scope.spawn(move || loop {
                let cycle = next_cycle.fetch_add(1, Ordering::Relaxed);
                if cycle >= settings.cycles || stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = format!("{id_prefix}w{worker}-c{cycle}");
                match run_cycle(plan, bundle, &id, cycle) {
                    Ok(record) => records.lock().unwrap().push(record),
                    Err(error) => {
                        // Stop the others first: the cleanup may wait for
                        // a whole call timeout on a wedged container.
                        stop.store(true, Ordering::Relaxed);
                        let cleanup = delete_after_failure(plan.husk, &id);
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("cycle {cycle} (container {id}): {error}{cleanup}"));
                        break;
                    }
                }
            });
        }
    });
    let wall = started.elapsed();
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of the cycles failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    let mut records = records.into_inner().unwrap();
    records.sort_by_key(|record| record.cycle);
    assert_eq!(records.len(), settings.cycles, "every cycle ran");
    LoadReport {
        records,
        parallel: settings.parallel,
        wall,
    }
}

/// One husk call of a cycle; an error names the call and quotes its
/// output.
fn call(
    husk: &Husk,
    calls: &mut Vec<CallRecord>,
    verb: &'static str,
    args: &[&str],
) -> Result<String, String> {
    let started = Instant::now();
    let measured = husk.run_measured(args);
    calls.push(CallRecord {
        verb,
        peak_rss_kib: measured.peak_rss_kib,
        took: started.elapsed(),
    });
    let run = &measured.run;
    let outcome = if measured.timed_out {
        format!("ran past {:?} and was killed", husk.timeout())
    } else if run.code == Some(0) {
        return Ok(run.stdout.clone());
    } else if let Some(signal) = measured.signal {
        format!("was killed by signal {signal}")
    } else {
        format!("exited {}", run.code.unwrap_or(-1))
    };
    Err(format!(
        "husk {} {outcome}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        run.stdout,
        run.stderr
    ))
}

/// Waits for `pid`, a child of this subreaper, to end within `timeout`,
/// and returns its status as a shell shows it (128 + N for signal N).
fn reap_within(pid: i32, timeout: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid, writable int for the call.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if reaped == pid {
            if libc::WIFEXITED(status) {
                return Ok(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Ok(128 + libc::WTERMSIG(status));
            }
        } else if reaped < 0 {
            return Err(format!(
                "waitpid({pid}): {} (is the test process its subreaper?)",
                std::io::Error::last_os_error()
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!("process {pid} did not end within {timeout:?}"));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// create → start → exec → kill, wait, delete (even cycles) or delete
/// --force, wait (odd cycles); then the container's state directory,
/// recorded files, cgroups and processes must be gone.
fn run_cycle(
    plan: &CyclePlan,
    bundle: &Bundle,
    id: &str,
    cycle: usize,
) -> Result<CycleRecord, String> {
    let husk = plan.husk;
    let mut calls = Vec::with_capacity(VERBS.len());
    let pid_file = husk.file(&format!("{id}.pid"));
    let mut create = plan.create_flags.to_vec();
    create.extend([
        "create",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        id,
    ]);
    call(husk, &mut calls, "create", &create)?;
    let text = read_text(&pid_file);
    let pid: i32 = text.trim().parse().map_err(|_| {
        format!(
            "create succeeded but its pid file {} holds {text:?}",
            pid_file.display()
        )
    })?;
    let _ = fs::remove_file(&pid_file);
    let created = (plan.created_things)(husk, id, pid)?;
    finish_cycle(plan, &mut calls, id, cycle, pid)?;
    // The container's process itself was reaped: it is gone for sure.
    check_gone(husk, id, &created.files, &created.processes)?;
    Ok(CycleRecord {
        cycle,
        calls,
        processes: created.processes,
    })
}

/// `husk delete --force` of a container whose cycle failed, so that the
/// failure is all the test reports; says how the cleanup went wrong, if it
/// did (empty when it went right).
fn delete_after_failure(husk: &Husk, id: &str) -> String {
    let mut ignored = Vec::new();
    match call(husk, &mut ignored, "delete", &["delete", "--force", id]) {
        Ok(_) => String::new(),
        Err(cleanup) => format!("\nthen, cleaning up the container, {cleanup}"),
    }
}

/// From start to delete, for container `id` whose process is `pid`.
fn finish_cycle(
    plan: &CyclePlan,
    calls: &mut Vec<CallRecord>,
    id: &str,
    cycle: usize,
    pid: i32,
) -> Result<(), String> {
    let husk = plan.husk;
    call(husk, calls, "start", &["start", id])?;
    let token = format!("load-cycle-{cycle}");
    let output = call(husk, calls, "exec", &["exec", id, "echo", &token])?;
    if output != format!("{token}\n") {
        return Err(format!(
            "husk exec {id} echo {token} printed {output:?}, not {token:?} and a newline"
        ));
    }
    let status = if cycle % 2 == 0 {
        call(husk, calls, "kill", &["kill", id, "KILL"])?;
        let status = reap_within(pid, plan.exit_timeout)?;
        call(husk, calls, "delete", &["delete", id])?;
        status
    } else {
        call(husk, calls, "delete", &["delete", "--force", id])?;
        reap_within(pid, plan.exit_timeout)?
    };
    if status != 128 + libc::SIGKILL {
        return Err(format!(
            "the container's process {pid} ended with {status}, not {} (SIGKILL)",
            128 + libc::SIGKILL
        ));
    }
    Ok(())
}

/// Nothing of container `id` is left once it is deleted.
fn check_gone(
    husk: &Husk,
    id: &str,
    files: &[PathBuf],
    processes: &[SeenProcess],
) -> Result<(), String> {
    let mut left: Vec<String> = Vec::new();
    let state_dir = husk.root().join(id);
    if state_dir.exists() {
        left.push(format!("state directory {}", state_dir.display()));
    }
    left.extend(
        files
            .iter()
            .filter(|file| file.exists())
            .map(|file| format!("file {}", file.display())),
    );
    left.extend(
        container_cgroup_dirs(id)
            .iter()
            .map(|dir| format!("cgroup {}", dir.display())),
    );
    left.extend(
        processes
            .iter()
            .filter(|process| process.still_runs())
            .map(|process| format!("process {} ({})", process.pid, process.comm)),
    );
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("after delete, still there: {}", left.join(", ")))
    }
}

/// The median of `values` (the upper one of an even count); None when
/// there are none.
fn median(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// One verb's peak memory and time in the first and the last tenth of the
/// cycles.
struct VerbFigures {
    verb: &'static str,
    first_rss_kib: u64,
    last_rss_kib: u64,
    median_millis: u64,
}

impl LoadReport {
    /// The cycles of the first and of the last tenth (at least one each).
    fn tenths(&self) -> (&[CycleRecord], &[CycleRecord]) {
        let tenth = self.records.len().div_ceil(10).max(1);
        (
            &self.records[..tenth],
            &self.records[self.records.len() - tenth..],
        )
    }

    fn verb_figures(&self) -> Vec<VerbFigures> {
        let (first, last) = self.tenths();
        let peaks = |records: &[CycleRecord], verb: &str| -> Vec<u64> {
            records
                .iter()
                .flat_map(|record| &record.calls)
                .filter(|call| call.verb == verb)
                .map(|call| call.peak_rss_kib)
                .collect()
        };
        VERBS
            .iter()
            .filter_map(|&verb| {
                let times = self
                    .records
                    .iter()
                    .flat_map(|record| &record.calls)
                    .filter(|call| call.verb == verb)
                    .map(|call| call.took.as_millis() as u64)
                    .collect();
                Some(VerbFigures {
                    verb,
                    first_rss_kib: median(peaks(first, verb))?,
                    last_rss_kib: median(peaks(last, verb))?,
                    median_millis: median(times)?,
                })
            })
            .collect()
    }

    /// Writes the figures to stderr: cycles, wall time, cycles per second,
    /// and each verb's median peak RSS in the first and last tenth and its
    /// median time. Straight to the stderr handle, not through eprintln!,
    /// which libtest captures: the figures belong in the run's log.
    pub fn print_summary(&self, title: &str) {
        let cycles = self.records.len();
        let seconds = self.wall.as_secs_f64();
        let mut text = format!(
            "{title}: {cycles} cycles, {} at once, in {seconds:.1} s ({:.2} cycles/s)\n",
            self.parallel,
            cycles as f64 / seconds
        );
        for figures in self.verb_figures() {
            text.push_str(&format!(
                "  husk {:<6} peak RSS median: first 10% {} KiB, last 10% {} KiB; median time {} ms\n",
                figures.verb, figures.first_rss_kib, figures.last_rss_kib, figures.median_millis
            ));
        }
        let _ = std::io::stderr().write_all(text.as_bytes());
    }

    /// Fails the test when a verb's median peak RSS in the last tenth of
    /// the cycles exceeds that in the first tenth by more than a quarter or
    /// 2 MiB, whichever is larger: every call is a new process, so only
    /// what husk keeps on the host between calls can make it grow.
    pub fn assert_no_memory_growth(&self) {
        let grown: Vec<String> = self
            .verb_figures()
            .iter()
            .filter(|figures| {
                let allowed = (figures.first_rss_kib + figures.first_rss_kib / 4)
                    .max(figures.first_rss_kib + 2048);
                figures.last_rss_kib > allowed
            })
            .map(|figures| {
                format!(
                    "husk {}: median peak RSS {} KiB in the first 10% of the cycles, {} KiB in \
                     the last",
                    figures.verb, figures.first_rss_kib, figures.last_rss_kib
                )
            })
            .collect();
        assert!(
            grown.is_empty(),
            "husk's memory grew over the cycles:\n{}",
            grown.join("\n")
        );
    }
}

/// The test's directories for [`TestMarks`]: each bundle's and the one
/// holding husk's `--root` (and the calls' output files).
pub fn test_dirs(husk: &Husk, bundles: &[Bundle]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = bundles.iter().map(|bundle| bundle.dir.clone()).collect();
    dirs.push(
        husk.root()
            .parent()
            .map(Path::to_path_buf)
            .expect("the root is in a scratch directory"),
    );
    dirs
}
