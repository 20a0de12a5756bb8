//! The config.json corpus in `tests/corpus/` driven through `husk create`
//! on both backends.
//!
//! Every file in `bad-config/` is malformed or hostile: wrong types, huge
//! values, paths that climb out of the bundle, the root or the cgroup
//! hierarchy, missing required fields, JSON nested 100 000 deep, an
//! environment of 8 MiB. `husk create` must refuse each one with exit
//! status 1 and one line on stderr that names the config.json and holds
//! every fragment `bad-config/EXPECTED` lists for it (the field, and what
//! is wrong), within [`REFUSAL_TIME`] and [`MEMORY_ALLOWANCE`], and leave
//! nothing behind: no state directory under `--root`, no process, no mount,
//! no cgroup directory (the default one or the config's cgroupsPath), no
//! VM image or socket directory.
//!
//! The `vm` backend runs with a husk configuration whose kernel and
//! initramfs do not exist: it checks config.json before it looks for what
//! it boots, so the error must still be the config's and nothing boots.
//!
//! Every file in `good-config/` (unknown fields and annotations, which the
//! runtime-spec says a runtime must accept, and values at the edge of what
//! is allowed) is created by the `container` backend and deleted again; the
//! `vm` backend takes it as far as looking for its kernel.
//!
//! Needs root, busybox-static and a built husk: `cargo build --release -p
//! husk-shim`, then `HUSK_BIN=target/release/husk cargo test --release -p
//! husk-tests --test bad_config`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{mount_table, reap, HostBaseline, Husk, CALL_TIMEOUT};
use husk_tests::{path_str, wait_with_deadline};
use serde_json::Value;

/// runc's exit status for an error of its own.
const EXIT_ERROR: i32 = 1;

/// How long refusing a config may take. Reading and checking even the
/// 8 MiB corpus file takes well under a second; a refusal that takes
/// longer is a hang in the making.
const REFUSAL_TIME: Duration = Duration::from_secs(15);

/// How much memory (heap and other private memory, RLIMIT_DATA) husk may
/// use to refuse a config, beyond [`MEMORY_PER_CONFIG_BYTE`] times the
/// file's size; it needs less than 1 MiB for a small one.
const MEMORY_ALLOWANCE: u64 = 16 << 20;

/// Memory per byte of config.json: the text, the JSON tree and the typed
/// spec hold about a copy each (the 8 MiB corpus file needs 24 MiB).
const MEMORY_PER_CONFIG_BYTE: u64 = 4;

/// The husk configuration of the `vm` backend: what it boots does not
/// exist, so any create that gets past config.json fails naming these.
const MISSING_KERNEL: &str = "/nonexistent/husk-test/vmlinux";
const MISSING_INITRAMFS: &str = "/nonexistent/husk-test/husk-initramfs.cpio";

/// Where the vm backend puts the sockets of a state directory whose path
/// is too long for them.
const SHORT_SOCKET_ROOT: &str = "/run/husk-vm";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Which `husk create` calls refuse a bad config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Both backends, chosen with --backend.
    EveryBackend,
    /// Only the vm backend: the config is wrong about the VM (its
    /// `run.husk.vm.*` annotations), which the container backend does not
    /// read.
    VmOnly,
    /// Only when the bundle's `run.husk.backend` annotation picks the
    /// backend, that is without --backend (which overrides it).
    BackendAnnotation,
}

/// A file of `bad-config/` and what its refusal must say.
#[derive(Debug)]
struct BadCase {
    file: String,
    fragments: Vec<String>,
    scope: Scope,
}

/// `bad-config/EXPECTED`: `FILE<TAB>FRAGMENT[<TAB>SCOPE]` per line, one
/// line per fragment, `#` for comments. SCOPE is `vm` or `annotation`
/// ([`Scope`]); absent, every backend refuses the file.
fn bad_cases() -> Vec<BadCase> {
    let path = corpus_dir().join("bad-config/EXPECTED");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let mut cases: Vec<BadCase> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let columns: Vec<&str> = line.split('\t').collect();
        let (file, fragment, scope) = match columns[..] {
            [file, fragment] => (file, fragment, None),
            [file, fragment, scope] => (file, fragment, Some(scope)),
            _ => panic!(
                "{}:{}: not FILE<TAB>FRAGMENT[<TAB>SCOPE]: {line:?}",
                path.display(),
                number + 1
            ),
        };
        assert!(
            !fragment.is_empty(),
            "{}:{}: an empty fragment",
            path.display(),
            number + 1
        );
        let scope = scope.map(|scope| match scope {
            "vm" => Scope::VmOnly,
            "annotation" => Scope::BackendAnnotation,
            other => panic!(
                "{}:{}: unknown scope {other:?}; use vm or annotation",
                path.display(),
                number + 1
            ),
        });
        match cases.iter_mut().find(|case| case.file == file) {
            Some(case) => {
                if let Some(scope) = scope {
                    assert_eq!(
                        case.scope,
                        scope,
                        "{}:{}: {file} given two scopes",
                        path.display(),
                        number + 1
                    );
                }
                case.fragments.push(fragment.to_string());
            }
            None => cases.push(BadCase {
                file: file.to_string(),
                fragments: vec![fragment.to_string()],
                scope: scope.unwrap_or(Scope::EveryBackend),
            }),
        }
    }
    cases
}

/// The `.json` files of a corpus folder, sorted.
fn json_files(folder: &str) -> Vec<String> {
    let dir = corpus_dir().join(folder);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("list {}: {error}", dir.display()))
        .map(|entry| {
            entry
                .expect("read a corpus entry")
                .file_name()
                .into_string()
                .expect("corpus file names are UTF-8")
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The husk under test must be named: these tests are about what a built
/// binary says, and a stale fallback build would test something else.
fn require_husk_bin() {
    let Some(binary) = std::env::var_os("HUSK_BIN") else {
        panic!(
            "HUSK_BIN is not set: build husk (cargo build --release -p husk-shim) and run with \
             HUSK_BIN=target/release/husk"
        );
    };
    assert!(
        Path::new(&binary).is_file(),
        "HUSK_BIN={} does not exist",
        Path::new(&binary).display()
    );
}

/// A husk on a state root of its own for `backend` ("container" or "vm");
/// the vm backend gets a configuration whose kernel and initramfs are
/// missing.
fn husk_for(name: &str, backend: &str) -> Husk {
    require_husk_bin();
    let husk = Husk::new(&format!("bad-config-{name}-{backend}")).with_backend(backend);
    if backend == "vm" {
        let configuration = serde_json::json!({
            "kernel": MISSING_KERNEL,
            "initramfs": MISSING_INITRAMFS,
        });
        fs::write(husk.file("husk-config.json"), configuration.to_string())
            .expect("write the husk configuration");
    }
    husk
}

/// A container ID of its own for each case and backend: the default cgroup
/// `/husk/<id>` is shared by every test on this host.
fn case_id(backend: &str, file: &str) -> String {
    format!(
        "cfg-{backend}-{}-{}",
        file.trim_end_matches(".json"),
        std::process::id()
    )
}

/// A fresh busybox bundle whose config.json is the corpus file `file` of
/// `folder`, byte for byte.
fn bundle_with(folder: &str, file: &str, backend: &str) -> Bundle {
    let bundle = Bundle::busybox(&format!(
        "bad-config-{backend}-{}",
        file.trim_end_matches(".json")
    ));
    fs::copy(
        corpus_dir().join(folder).join(file),
        bundle.dir.join("config.json"),
    )
    .unwrap_or_else(|error| panic!("copy {folder}/{file} into the bundle: {error}"));
    bundle
}

/// What one `husk create` did.
struct Created {
    /// None when a signal ended it.
    code: Option<i32>,
    /// The signal that ended it.
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `husk create --bundle BUNDLE [--pid-file FILE] ID` to the end,
/// killing it after [`CALL_TIMEOUT`]. With `data_limit`, husk gets at most
/// that many bytes of heap and other private memory (setrlimit(2)
/// RLIMIT_DATA): an allocation past it fails.
fn create(
    husk: &Husk,
    bundle: &Path,
    id: &str,
    pid_file: Option<&Path>,
    data_limit: Option<u64>,
) -> Created {
    let stdout_path = husk.file(&format!("{id}.stdout"));
    let stderr_path = husk.file(&format!("{id}.stderr"));
    let mut args = vec!["create", "--bundle", path_str(bundle)];
    if let Some(pid_file) = pid_file {
        args.extend(["--pid-file", path_str(pid_file)]);
    }
    args.push(id);
    let mut command = husk.command(&args);
    command
        .stdout(fs::File::create(&stdout_path).expect("create husk's stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("create husk's stderr file"))
        .stdin(Stdio::null());
    if let Some(limit) = data_limit {
        let limit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: the closure runs in the forked child before exec and only
        // calls setrlimit(2), which is async-signal-safe, on a value it owns.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_DATA, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("start husk");
    let status = wait_with_deadline(&mut child, CALL_TIMEOUT);
    let elapsed = started.elapsed();
    let read =
        |path: &Path| String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
    let Some(status) = status else {
        panic!(
            "husk create ran past {CALL_TIMEOUT:?} and was killed; stderr:\n{}",
            read(&stderr_path)
        );
    };
    Created {
        code: status.code(),
        signal: status.signal(),
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
        elapsed,
    }
}

/// Fails when husk ran out of the memory [`create`] gave it: it was
/// killed (a failed allocation aborts) or said so.
fn assert_within_memory(created: &Created, limit: u64, config_size: u64) {
    let out_of_memory = created.signal.is_some()
        || created.stderr.contains("memory allocation")
        || created.stderr.contains("out of memory");
    assert!(
        !out_of_memory,
        "husk needed more than the {} KiB of memory it may use to refuse a {config_size}-byte \
         config (signal {:?}); stderr:\n{}",
        limit >> 10,
        created.signal,
        created.stderr
    );
}

/// The mount points of this host's cgroup hierarchies (proc(5),
/// /proc/self/mountinfo: field 5, filesystem type after " - ").
fn cgroup_mount_points() -> Vec<PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let fstype = tail.split_whitespace().next()?;
            let mount_point = head.split_whitespace().nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect()
}

/// `base` joined with `relative` and cleaned lexically, as a path that
/// climbs with ".." would land.
fn lexical_join(base: &Path, relative: &Path) -> PathBuf {
    let mut joined = base.to_path_buf();
    for component in relative.components() {
        match component {
            Component::ParentDir => {
                joined.pop();
            }
            Component::Normal(part) => joined.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    joined
}

/// Where a cgroup for the config's `linux.cgroupsPath` would appear in
/// each hierarchy, wherever ".." would take it; none when the file is no
/// regular file (a device never ends), does not parse or has no
/// cgroupsPath.
fn cgroups_path_dirs(config: &Path) -> Vec<PathBuf> {
    if !fs::metadata(config).is_ok_and(|metadata| metadata.is_file()) {
        return Vec::new();
    }
    let Some(cgroups_path) = fs::read(config)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|config| {
            config
                .pointer("/linux/cgroupsPath")?
                .as_str()
                .map(PathBuf::from)
        })
    else {
        return Vec::new();
    };
    cgroup_mount_points()
        .iter()
        .map(|mount_point| lexical_join(mount_point, &cgroups_path))
        .collect()
}

/// What a create could leave on this host, taken before it: the mount
/// table and the cgroup directories and socket directories that already
/// exist.
struct Before {
    host: HostBaseline,
    mounts: BTreeSet<String>,
    absent_cgroups: Vec<PathBuf>,
    socket_dirs: BTreeSet<PathBuf>,
}

fn socket_dirs() -> BTreeSet<PathBuf> {
    fs::read_dir(SHORT_SOCKET_ROOT)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default()
}

impl Before {
    fn take(config: &Path) -> Before {
        Before {
            host: HostBaseline::take(),
            mounts: mount_table(),
            absent_cgroups: cgroups_path_dirs(config)
                .into_iter()
                .filter(|dir| !dir.exists())
                .collect(),
            socket_dirs: socket_dirs(),
        }
    }

    /// Fails naming what container `id` of `husk`, made from `bundle`,
    /// left on this host.
    fn assert_nothing_left(&self, husk: &Husk, bundle: &Path, id: &str) {
        let root = husk.root();
        self.host.assert_nothing_left(&root, id);
        let in_root: Vec<PathBuf> = fs::read_dir(&root)
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        assert_eq!(
            in_root,
            Vec::<PathBuf>::new(),
            "--root {} is not empty",
            root.display()
        );
        let bundle_text = bundle.to_string_lossy();
        let new_mounts: Vec<String> = mount_table()
            .difference(&self.mounts)
            .filter(|line| line.contains(bundle_text.as_ref()))
            .cloned()
            .collect();
        assert_eq!(
            new_mounts,
            Vec::<String>::new(),
            "mounts of the bundle are still there"
        );
        let cgroups: Vec<&PathBuf> = self
            .absent_cgroups
            .iter()
            .filter(|dir| dir.exists())
            .collect();
        assert_eq!(
            cgroups,
            Vec::<&PathBuf>::new(),
            "cgroup directories for linux.cgroupsPath were made"
        );
        let sockets: Vec<PathBuf> = socket_dirs()
            .difference(&self.socket_dirs)
            .cloned()
            .collect();
        assert_eq!(
            sockets,
            Vec::<PathBuf>::new(),
            "socket directories left in {SHORT_SOCKET_ROOT}"
        );
    }
}

/// `husk create` of the bad corpus file `case` must fail as the module
/// documentation says.
fn assert_refused(husk: &Husk, backend: &str, case: &BadCase) {
    let bundle = bundle_with("bad-config", &case.file, backend);
    let config = bundle.dir.join("config.json");
    let id = case_id(backend, &case.file);
    let before = Before::take(&config);
    let size = fs::metadata(&config).map_or(0, |metadata| metadata.len());
    let memory_limit = MEMORY_ALLOWANCE + MEMORY_PER_CONFIG_BYTE * size;
    let created = create(husk, &bundle.dir, &id, None, Some(memory_limit));
    assert_within_memory(&created, memory_limit, size);
    assert_eq!(
        created.code,
        Some(EXIT_ERROR),
        "husk create exited {:?}, not {EXIT_ERROR}; stderr:\n{}",
        created.code,
        created.stderr
    );
    assert_eq!(created.stdout, "", "husk create printed on stdout");
    let message = created
        .stderr
        .strip_prefix("husk: ")
        .and_then(|message| message.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("stderr is not `husk: MESSAGE`:\n{}", created.stderr));
    assert!(
        !message.contains('\n'),
        "more than one line of error:\n{message}"
    );
    if backend == "vm" {
        assert!(
            !message.contains(MISSING_KERNEL) && !message.contains(MISSING_INITRAMFS),
            "the vm backend looked for what it boots before it checked config.json \
             (the config error must come first):\n{message}"
        );
    }
    let config_text = config.display().to_string();
    assert!(
        message.contains(&config_text),
        "the error does not name {config_text}:\n{message}"
    );
    for fragment in &case.fragments {
        assert!(
            message.contains(fragment.as_str()),
            "expected {fragment:?} in:\n{message}"
        );
    }
    assert!(
        created.elapsed < REFUSAL_TIME,
        "refusing took {:?} (at most {REFUSAL_TIME:?})",
        created.elapsed
    );
    before.assert_nothing_left(husk, &bundle.dir, &id);
}

/// `husk create` of the config `file` of `folder` must succeed on the
/// container backend; then `husk delete --force` takes it all away.
fn assert_created_and_deleted(husk: &Husk, folder: &str, file: &str) {
    let bundle = bundle_with(folder, file, "container");
    let config = bundle.dir.join("config.json");
    let id = case_id("container", file);
    let before = Before::take(&config);
    let pid_file = husk.file(&format!("{id}.pid"));
    let created = create(husk, &bundle.dir, &id, Some(&pid_file), None);
    assert_eq!(
        created.code,
        Some(0),
        "husk create exited {:?}; stderr:\n{}",
        created.code,
        created.stderr
    );
    assert_eq!(husk.status(&id), "created");
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("read the pid file")
        .trim()
        .parse()
        .expect("a pid in the pid file");
    husk.run(&["delete", "--force", &id]).success();
    // SIGKILL: 128 + 9. The test process is the init's subreaper, as
    // conmon is.
    assert_eq!(reap(pid), 137, "the container init did not end by SIGKILL");
    before.assert_nothing_left(husk, &bundle.dir, &id);
}

/// Runs `check` for each item, catching failures, and fails once at the
/// end naming every item that failed.
fn check_each<T>(items: &[T], name: impl Fn(&T) -> String, check: impl Fn(&T)) {
    let failed: Vec<String> = items
        .iter()
        .filter_map(|item| {
            panic::catch_unwind(AssertUnwindSafe(|| check(item)))
                .err()
                .map(|payload| {
                    let reason = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
                        .unwrap_or_default();
                    format!("{}: {reason}", name(item))
                })
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed:\n\n{}",
        failed.len(),
        items.len(),
        failed.join("\n\n")
    );
}

fn refuse_all(backend: &str, scopes: &[Scope]) {
    let husk = husk_for("refused", backend);
    let cases: Vec<BadCase> = bad_cases()
        .into_iter()
        .filter(|case| scopes.contains(&case.scope))
        .collect();
    assert!(!cases.is_empty(), "no bad-config cases for {backend}");
    check_each(
        &cases,
        |case| case.file.clone(),
        |case| assert_refused(&husk, backend, case),
    );
}

// ---- the corpus itself ----

#[test]
fn every_corpus_file_has_its_expectations_and_every_expectation_its_file() {
    let cases = bad_cases();
    let listed: BTreeSet<&str> = cases.iter().map(|case| case.file.as_str()).collect();
    let files = json_files("bad-config");
    let on_disk: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(
        on_disk.difference(&listed).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "bad-config files without a line in EXPECTED"
    );
    assert_eq!(
        listed.difference(&on_disk).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "EXPECTED lines for files that are not in bad-config"
    );
    assert!(
        !json_files("good-config").is_empty(),
        "good-config holds no config"
    );
}

// ---- bad configs ----

#[test]
fn the_container_backend_refuses_every_bad_config_and_leaves_nothing() {
    refuse_all("container", &[Scope::EveryBackend]);
}

#[test]
fn the_vm_backend_refuses_every_bad_config_before_it_looks_for_a_kernel() {
    refuse_all("vm", &[Scope::EveryBackend, Scope::VmOnly]);
}

#[test]
fn a_backend_annotation_that_names_no_backend_is_refused() {
    require_husk_bin();
    // No --backend: the annotation is what picks the backend.
    let husk = Husk::new("bad-config-annotation").without_backend_flag();
    let cases: Vec<BadCase> = bad_cases()
        .into_iter()
        .filter(|case| case.scope == Scope::BackendAnnotation)
        .collect();
    assert!(
        !cases.is_empty(),
        "no bad-config cases with scope annotation"
    );
    check_each(
        &cases,
        |case| case.file.clone(),
        |case| assert_refused(&husk, "annotation", case),
    );
}

#[test]
fn a_config_json_that_never_ends_or_never_opens_is_refused_at_once() {
    // What a corpus file cannot be: config.json as a device that never
    // ends, or a FIFO with no writer, whose open would wait forever.
    for backend in ["container", "vm"] {
        let husk = husk_for("special", backend);
        let kinds = [("dev-zero", "a character device"), ("fifo", "a FIFO")];
        check_each(
            &kinds,
            |(name, _)| format!("{backend}: {name}"),
            |(name, kind)| {
                let bundle = Bundle::busybox(&format!("bad-config-{backend}-{name}"));
                let config = bundle.dir.join("config.json");
                fs::remove_file(&config).expect("remove config.json");
                if *name == "fifo" {
                    let path =
                        std::ffi::CString::new(path_str(&config)).expect("a path without NUL");
                    // SAFETY: `path` is a valid NUL-terminated string for the
                    // call.
                    let made = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
                    assert_eq!(made, 0, "mkfifo: {}", std::io::Error::last_os_error());
                } else {
                    symlink("/dev/zero", &config).expect("link config.json to /dev/zero");
                }
                let id = case_id(backend, name);
                let before = Before::take(&config);
                let created = create(&husk, &bundle.dir, &id, None, Some(MEMORY_ALLOWANCE));
                assert_within_memory(&created, MEMORY_ALLOWANCE, 0);
                assert_eq!(
                    created.code,
                    Some(EXIT_ERROR),
                    "stderr:\n{}",
                    created.stderr
                );
                assert!(
                    created.stderr.contains(&format!(
                        "{}: not a regular file but {kind}",
                        config.display()
                    )),
                    "stderr:\n{}",
                    created.stderr
                );
                assert!(created.elapsed < REFUSAL_TIME, "took {:?}", created.elapsed);
                before.assert_nothing_left(&husk, &bundle.dir, &id);
            },
        );
    }
}

// ---- good configs ----

#[test]
fn the_container_backend_creates_every_good_config_and_deletes_it() {
    let husk = husk_for("accepted", "container");
    let files = json_files("good-config");
    check_each(&files, Clone::clone, |file| {
        assert_created_and_deleted(&husk, "good-config", file)
    });
}

#[test]
fn the_container_backend_does_not_read_the_vm_annotations() {
    // run.husk.vm.* size a VM; the container backend has none and, as
    // runc with annotations it does not know, creates the container.
    let husk = husk_for("vm-annotations", "container");
    let files: Vec<String> = bad_cases()
        .into_iter()
        .filter(|case| case.scope == Scope::VmOnly)
        .map(|case| case.file)
        .collect();
    assert!(!files.is_empty(), "no bad-config cases with scope vm");
    check_each(&files, Clone::clone, |file| {
        assert_created_and_deleted(&husk, "bad-config", file)
    });
}

#[test]
fn the_vm_backend_takes_every_good_config_as_far_as_its_kernel() {
    let husk = husk_for("accepted", "vm");
    let files = json_files("good-config");
    check_each(&files, Clone::clone, |file| {
        let bundle = bundle_with("good-config", file, "vm");
        let config = bundle.dir.join("config.json");
        let id = case_id("vm", file);
        let before = Before::take(&config);
        let created = create(&husk, &bundle.dir, &id, None, None);
        assert_eq!(
            created.code,
            Some(EXIT_ERROR),
            "stderr:\n{}",
            created.stderr
        );
        assert!(
            created
                .stderr
                .contains(&format!("guest kernel (vmlinux) {MISSING_KERNEL}")),
            "the config was refused, or something else failed first:\n{}",
            created.stderr
        );
        before.assert_nothing_left(&husk, &bundle.dir, &id);
    });
}
