//! The container init's whole setup, recorded from the first mount to the
//! last capability call, for configs that differ in what a user would
//! notice: user, capabilities, seccomp, hostname, terminal.

use std::os::fd::AsFd;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::engine::rootfs::cgroup::CgroupMountSource;
use crate::engine::syscall::{Call, CapabilitySets, RecordingSyscall};
use crate::engine::test_bundle::TestBundle;

/// Stands in for the parent and the pty; remembers after how many system
/// calls each interaction happened.
struct Recorder<'a> {
    syscall: &'a RecordingSyscall,
    events: Vec<(&'static str, usize)>,
}

impl Interactions for Recorder<'_> {
    fn mounts_ready(&mut self) -> Result<(), InitError> {
        self.events
            .push(("mounts ready", self.syscall.calls().len()));
        Ok(())
    }

    fn set_up_console(&mut self) -> Result<(), InitError> {
        self.events.push(("console", self.syscall.calls().len()));
        Ok(())
    }
}

struct Run {
    calls: Vec<Call>,
    events: Vec<(&'static str, usize)>,
    result: Result<PreparedProcess, InitError>,
}

fn run(test: &TestBundle, syscall: RecordingSyscall, seccomp: Option<&CompiledSeccomp>) -> Run {
    let namespaces = NamespacePlan::from_bundle(&test.bundle);
    let cgroup = CgroupMountSource::None;
    // Stands in for the exec fifo, which the setup itself never touches.
    let dev_null = std::fs::File::open("/dev/null").unwrap();
    let context = InitContext {
        bundle: &test.bundle,
        namespaces: &namespaces,
        rootfs: RootfsPlan {
            bundle: &test.bundle,
            cgroup: &cgroup,
            in_user_namespace: false,
            own_network_namespace: true,
        },
        seccomp,
        exec_fifo: dev_null.as_fd(),
        console_socket: None,
        stdio: None,
        syscall: &syscall,
    };
    let mut recorder = Recorder {
        syscall: &syscall,
        events: Vec::new(),
    };
    let result = set_up_container(&context, &mut recorder);
    let events = recorder.events;
    Run {
        calls: syscall.calls(),
        events,
        result,
    }
}

/// The calls after the pivot_root (the rootfs part has its own tests).
fn after_pivot(calls: &[Call]) -> &[Call] {
    let pivot = calls
        .iter()
        .position(|call| matches!(call, Call::PivotRoot(_)))
        .expect("the setup pivots");
    &calls[pivot..]
}

const AUDIT_WRITE: u32 = 29;
const KILL: u32 = 5;
const NET_BIND_SERVICE: u32 = 10;

fn bounding_drops(kept: &[u32]) -> Vec<Call> {
    (0..=40)
        .filter(|capability| !kept.contains(capability))
        .map(Call::DropBoundingCapability)
        .collect()
}

#[test]
fn runc_default_spec_from_pivot_to_capabilities() {
    let test = TestBundle::new("init-default", |_| {});
    let run = run(&test, RecordingSyscall::new(), None);
    let prepared = run.result.unwrap();

    let remount_ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
    let mut expected = vec![
        Call::PivotRoot(test.rootfs()),
        Call::ReopenDevNull,
        Call::CreateDirAll("/".into()),
        Call::Mount {
            source: None,
            target: "/".into(),
            fstype: None,
            flags: remount_ro,
            data: None,
        },
        Call::Umask(0o022),
        Call::Sethostname("runc".into()),
    ];
    for path in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        expected.push(Call::Mount {
            source: Some(path.into()),
            target: path.into(),
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REC,
            data: None,
        });
        expected.push(Call::Mount {
            source: Some(path.into()),
            target: path.into(),
            fstype: None,
            flags: remount_ro,
            data: None,
        });
    }
    for path in [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
    ] {
        expected.push(Call::Mount {
            source: Some("/dev/null".into()),
            target: path.into(),
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        });
    }
    expected.push(Call::SetNoNewPrivileges);
    expected.push(Call::Setrlimit {
        resource: libc::RLIMIT_NOFILE,
        soft: 1024,
        hard: 1024,
    });
    expected.extend(bounding_drops(&[KILL, NET_BIND_SERVICE, AUDIT_WRITE]));
    expected.extend([
        Call::SetKeepCapabilities(true),
        Call::GiveStdioTo(0),
        Call::Chdir("/".into()),
        Call::Setgroups(vec![]),
        Call::Setresgid(0),
        Call::Setresuid(0),
        Call::SetKeepCapabilities(false),
        Call::Capset(CapabilitySets {
            effective: 1 << KILL | 1 << NET_BIND_SERVICE | 1 << AUDIT_WRITE,
            permitted: 1 << KILL | 1 << NET_BIND_SERVICE | 1 << AUDIT_WRITE,
            inheritable: 0,
        }),
        Call::ClearAmbientCapabilities,
        Call::RaiseAmbientCapability(KILL),
        Call::RaiseAmbientCapability(NET_BIND_SERVICE),
        Call::RaiseAmbientCapability(AUDIT_WRITE),
    ]);
    assert_eq!(after_pivot(&run.calls), expected.as_slice());

    // The createContainer hooks ran between the mounts and the pivot.
    let pivot = run.calls.len() - expected.len();
    assert_eq!(run.events, vec![("mounts ready", pivot)]);
    assert_eq!(
        prepared,
        PreparedProcess {
            args: vec!["sh".into()],
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "TERM=xterm".into(),
                "HOME=/".into()
            ],
            cwd: "/".into(),
        }
    );
}

#[test]
fn a_named_user_gets_its_ids_groups_and_home() {
    let test = TestBundle::new("init-user", |config| {
        config["process"]["user"] =
            json!({"uid": 0, "gid": 0, "username": "app", "additionalGids": [4], "umask": 0o077});
        config["process"]["cwd"] = json!("/home/app/work");
    });
    let syscall = RecordingSyscall::new()
        .with_file(
            "/etc/passwd",
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .with_file("/etc/group", "wheel:x:10:app\nother:x:11:root\n");
    let run = run(&test, syscall, None);
    let prepared = run.result.unwrap();
    let calls = after_pivot(&run.calls);
    assert!(calls.contains(&Call::Umask(0o077)));
    assert!(calls.contains(&Call::CreateDirAll("/home/app/work".into())));
    let switch = calls
        .iter()
        .position(|call| *call == Call::SetKeepCapabilities(true))
        .unwrap();
    assert_eq!(
        &calls[switch..switch + 7],
        &[
            Call::SetKeepCapabilities(true),
            Call::GiveStdioTo(1000),
            Call::Chdir("/home/app/work".into()),
            Call::Setgroups(vec![10, 4]),
            Call::Setresgid(1001),
            Call::Setresuid(1000),
            Call::SetKeepCapabilities(false),
        ]
    );
    assert!(prepared.env.contains(&"HOME=/home/app".to_string()));
}

#[test]
fn an_unknown_user_fails_before_any_identity_change() {
    let test = TestBundle::new("init-nouser", |config| {
        config["process"]["user"] = json!({"uid": 0, "gid": 0, "username": "ghost"});
    });
    let syscall = RecordingSyscall::new().with_file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    let run = run(&test, syscall, None);
    let error = run.result.unwrap_err();
    assert_eq!(
        crate::engine::error_chain(&error),
        "process.user.username: \"ghost\": no such user in the container's /etc/passwd"
    );
    assert!(!run
        .calls
        .iter()
        .any(|call| matches!(call, Call::Setresuid(_) | Call::Capset(_))));
}

fn seccomp_program() -> CompiledSeccomp {
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }))
    .unwrap();
    CompiledSeccomp {
        program: crate::engine::seccomp::compile(&profile).unwrap(),
        flags: 0,
    }
}

#[test]
fn without_no_new_privileges_seccomp_goes_on_before_capabilities_drop() {
    let test = TestBundle::new("init-seccomp-privileged", |config| {
        config["process"]["noNewPrivileges"] = json!(false);
    });
    let seccomp = seccomp_program();
    let run = run(&test, RecordingSyscall::new(), Some(&seccomp));
    run.result.unwrap();
    let position = |wanted: fn(&Call) -> bool| run.calls.iter().position(wanted).unwrap();
    let install = position(|call| matches!(call, Call::InstallSeccomp { .. }));
    assert!(install < position(|call| matches!(call, Call::DropBoundingCapability(_))));
    assert!(install > position(|call| matches!(call, Call::Setrlimit { .. })));
    assert!(!run.calls.contains(&Call::SetNoNewPrivileges));
}

#[test]
fn with_no_new_privileges_seccomp_waits_for_the_exec() {
    let test = TestBundle::new("init-seccomp-nnp", |_| {});
    let seccomp = seccomp_program();
    let run = run(&test, RecordingSyscall::new(), Some(&seccomp));
    run.result.unwrap();
    // Installed after start, right before execve, outside this function.
    assert!(!run
        .calls
        .iter()
        .any(|call| matches!(call, Call::InstallSeccomp { .. })));
    assert!(run.calls.contains(&Call::SetNoNewPrivileges));
}

#[test]
fn the_console_is_set_up_after_the_pivot_and_before_read_only_remounts() {
    let test = TestBundle::new("init-terminal", |config| {
        config["process"]["terminal"] = json!(true);
    });
    let run = run(&test, RecordingSyscall::new(), None);
    run.result.unwrap();
    let (name, at) = run.events[1];
    assert_eq!(name, "console");
    assert_eq!(
        run.calls[at - 1],
        Call::CreateDirAll("/".into()),
        "right after the cwd"
    );
    assert!(
        matches!(&run.calls[at], Call::Mount { target, flags, .. } if target == Path::new("/") && flags & libc::MS_RDONLY != 0)
    );
}

#[test]
fn hostname_domainname_and_sysctls_in_the_container_namespaces() {
    let test = TestBundle::new("init-uts", |config| {
        config["hostname"] = json!("box");
        config["domainname"] = json!("example.org");
        config["linux"]["sysctl"] = json!({"kernel.shmmni": "8192", "net.ipv4.ip_forward": "1"});
    });
    let run = run(&test, RecordingSyscall::new(), None);
    run.result.unwrap();
    let calls = after_pivot(&run.calls);
    let start = calls
        .iter()
        .position(|call| *call == Call::Sethostname("box".into()))
        .unwrap();
    assert_eq!(
        &calls[start..start + 4],
        &[
            Call::Sethostname("box".into()),
            Call::Setdomainname("example.org".into()),
            Call::WriteFile {
                path: "/proc/sys/kernel/shmmni".into(),
                contents: "8192".into()
            },
            Call::WriteFile {
                path: "/proc/sys/net/ipv4/ip_forward".into(),
                contents: "1".into()
            },
        ]
    );
}

#[test]
fn a_failing_capset_is_reported_with_the_field() {
    let test = TestBundle::new("init-capset", |_| {});
    let syscall =
        RecordingSyscall::new().failing(|call| matches!(call, Call::Capset(_)), libc::EPERM);
    let error = run(&test, syscall, None).result.unwrap_err();
    assert_eq!(
        crate::engine::error_chain(&error),
        "process.capabilities: set effective, permitted and inheritable (capset): Operation not permitted"
    );
    assert_eq!(error.exit_code(), 1);
}

#[test]
fn stage_one_enters_the_user_namespace_first_and_waits_for_its_maps() {
    let test = TestBundle::new("init-stage-one", |config| {
        config["process"]["oomScoreAdj"] = json!(-500);
        config["linux"]["namespaces"] = json!([
            {"type": "pid"}, {"type": "network", "path": "/proc/self/ns/net"},
            {"type": "mount"}, {"type": "user"}, {"type": "uts"}, {"type": "cgroup"}
        ]);
        config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let plan = NamespacePlan::from_bundle(&test.bundle);
    // A real file stands in for the namespace file: setns is only recorded.
    let joined = vec![NamespaceFile {
        kind: oci_spec::runtime::LinuxNamespaceType::Network,
        path: "/proc/self/ns/net".into(),
        file: std::fs::File::open("/dev/null").unwrap(),
    }];
    let syscall = RecordingSyscall::new();
    let mut maps_requested_after = None;
    enter(&syscall, &plan, &joined, Some(-500), || {
        maps_requested_after = Some(syscall.calls().len());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        syscall.calls(),
        vec![
            Call::WriteFile {
                path: "/proc/self/oom_score_adj".into(),
                contents: "-500".into()
            },
            Call::Setns {
                kind: oci_spec::runtime::LinuxNamespaceType::Network,
                path: "/proc/self/ns/net".into()
            },
            Call::Unshare(libc::CLONE_NEWUSER),
            Call::Setresgid(0),
            Call::Setgroups(vec![]),
            Call::Setresuid(0),
            // The cgroup namespace waits for the init (after the cgroup join).
            Call::Unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS),
        ]
    );
    assert_eq!(
        maps_requested_after,
        Some(3),
        "the maps come right after the user namespace"
    );
    assert!(plan.new_cgroup && plan.init_needs_fork);
}
