//! An exec'd process's setup, recorded: which namespaces it joins and in
//! what order, and what it becomes inside the container; and the requests
//! refused before anything is forked.

use std::fs::File;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;
use crate::engine::error_chain;
use crate::engine::syscall::{Call, CapabilitySets, RecordingSyscall};
use crate::engine::test_bundle::TestBundle;

/// A process.json as `runc exec --process` reads it, edited by the test.
fn process(edit: impl FnOnce(&mut Value)) -> Process {
    let mut value = json!({
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    edit(&mut value);
    serde_json::from_value(value).expect("a valid process")
}

/// Real files stand in for the namespace files: setns is only recorded.
fn stand_ins(namespaces: &[(LinuxNamespaceType, PathBuf)]) -> Vec<NamespaceFile> {
    namespaces
        .iter()
        .map(|(kind, path)| NamespaceFile {
            kind: *kind,
            path: path.clone(),
            file: File::open("/dev/null").unwrap(),
        })
        .collect()
}

fn setns(kind: LinuxNamespaceType, name: &str) -> Call {
    Call::Setns {
        kind,
        path: format!("/proc/42/ns/{name}").into(),
    }
}

#[test]
fn the_init_namespaces_are_joined_user_first_then_root_in_it() {
    let test = TestBundle::new("exec-userns", |config| {
        config["linux"]["namespaces"] = json!([
            {"type": "cgroup"}, {"type": "mount"}, {"type": "pid"}, {"type": "user"},
            {"type": "network", "path": "/proc/self/ns/net"}, {"type": "uts"}, {"type": "ipc"}
        ]);
        config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let namespaces = namespaces::container_namespaces(&test.bundle, 42);
    let process = process(|process| {
        process["oomScoreAdj"] = json!(-100);
        process["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 8192}]);
    });
    let syscall = RecordingSyscall::new();
    join_container(&syscall, &process, &stand_ins(&namespaces)).unwrap();
    assert_eq!(
        syscall.calls(),
        vec![
            // Still with the runtime's privileges.
            Call::WriteFile {
                path: "/proc/self/oom_score_adj".into(),
                contents: "-100".into()
            },
            Call::Setrlimit {
                resource: libc::RLIMIT_NOFILE,
                soft: 4096,
                hard: 8192
            },
            // The init's namespaces, the joined network one included.
            setns(LinuxNamespaceType::User, "user"),
            setns(LinuxNamespaceType::Ipc, "ipc"),
            setns(LinuxNamespaceType::Uts, "uts"),
            setns(LinuxNamespaceType::Network, "net"),
            setns(LinuxNamespaceType::Pid, "pid"),
            setns(LinuxNamespaceType::Mount, "mnt"),
            setns(LinuxNamespaceType::Cgroup, "cgroup"),
            Call::Setresgid(0),
            Call::Setgroups(vec![]),
            Call::Setresuid(0),
        ]
    );
}

#[test]
fn where_setgroups_is_denied_the_groups_are_left_alone() {
    let user_namespace = [(LinuxNamespaceType::User, PathBuf::from("/proc/42/ns/user"))];
    let syscall = RecordingSyscall::new().with_file("/proc/self/setgroups", "deny\n");
    join_container(&syscall, &process(|_| {}), &stand_ins(&user_namespace)).unwrap();
    assert_eq!(
        syscall.calls(),
        vec![
            setns(LinuxNamespaceType::User, "user"),
            Call::Setresgid(0),
            Call::Setresuid(0),
        ]
    );
}

#[test]
fn without_a_user_namespace_only_the_joins_happen() {
    let test = TestBundle::new("exec-default", |_| {});
    let namespaces = namespaces::container_namespaces(&test.bundle, 42);
    let syscall = RecordingSyscall::new();
    join_container(&syscall, &process(|_| {}), &stand_ins(&namespaces)).unwrap();
    assert_eq!(
        syscall.calls(),
        vec![
            setns(LinuxNamespaceType::Ipc, "ipc"),
            setns(LinuxNamespaceType::Uts, "uts"),
            setns(LinuxNamespaceType::Network, "net"),
            setns(LinuxNamespaceType::Pid, "pid"),
            setns(LinuxNamespaceType::Mount, "mnt"),
            setns(LinuxNamespaceType::Cgroup, "cgroup"),
        ]
    );
}

#[test]
fn a_failed_join_names_the_namespace_and_goes_no_further() {
    let test = TestBundle::new("exec-join-fails", |_| {});
    let namespaces = namespaces::container_namespaces(&test.bundle, 42);
    let syscall = RecordingSyscall::new().failing(
        |call| matches!(call, Call::Setns { kind, .. } if *kind == LinuxNamespaceType::Pid),
        libc::EPERM,
    );
    let error = join_container(&syscall, &process(|_| {}), &stand_ins(&namespaces)).unwrap_err();
    assert_eq!(
        error_chain(&error),
        "join the pid namespace /proc/42/ns/pid (setns): Operation not permitted"
    );
    assert_eq!(
        syscall.calls().last(),
        Some(&setns(LinuxNamespaceType::Pid, "pid"))
    );
}

const PASSWD: &str = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
const GROUP: &str = "wheel:x:10:app\n";
const KILL: u32 = 5;
const NET_BIND_SERVICE: u32 = 10;

fn seccomp_program() -> CompiledSeccomp {
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }))
    .unwrap();
    CompiledSeccomp::from_profile(&profile).unwrap()
}

#[test]
fn the_process_gets_its_own_user_capabilities_and_umask() {
    let process = process(|process| {
        process["user"] = json!({"uid": 0, "gid": 0, "username": "app", "umask": 0o077});
        process["cwd"] = json!("/home/app");
        process["noNewPrivileges"] = json!(true);
        process["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        });
    });
    let syscall = RecordingSyscall::new()
        .with_file("/etc/passwd", PASSWD)
        .with_file("/etc/group", GROUP);
    let seccomp = seccomp_program();
    let prepared = set_up_process(&syscall, &process, Some(&seccomp)).unwrap();

    let mut expected = vec![Call::Umask(0o077), Call::SetNoNewPrivileges];
    expected.extend(
        (0..=40)
            .filter(|capability| ![KILL, NET_BIND_SERVICE].contains(capability))
            .map(Call::DropBoundingCapability),
    );
    expected.extend([
        Call::SetKeepCapabilities(true),
        Call::GiveStdioTo(1000),
        Call::Chdir("/home/app".into()),
        Call::Setgroups(vec![10]),
        Call::Setresgid(1001),
        Call::Setresuid(1000),
        Call::SetKeepCapabilities(false),
        Call::Capset(CapabilitySets {
            effective: 1 << KILL,
            permitted: 1 << KILL,
            inheritable: 0,
        }),
        Call::ClearAmbientCapabilities,
        Call::RaiseAmbientCapability(NET_BIND_SERVICE),
    ]);
    // No rlimits here (set before the user namespace), and with
    // no_new_privs the filter waits for the execve.
    assert_eq!(syscall.calls(), expected);
    assert_eq!(
        prepared,
        PreparedProcess {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into(), "HOME=/home/app".into()],
            cwd: "/home/app".into(),
        }
    );
}

#[test]
fn without_no_new_privileges_the_filter_goes_on_before_the_capabilities_drop() {
    let process = process(|process| process["noNewPrivileges"] = json!(false));
    let syscall = RecordingSyscall::new();
    let seccomp = seccomp_program();
    set_up_process(&syscall, &process, Some(&seccomp)).unwrap();
    let calls = syscall.calls();
    let install = calls
        .iter()
        .position(|call| matches!(call, Call::InstallSeccomp { .. }))
        .expect("the container's filter is installed");
    let first_drop = calls
        .iter()
        .position(|call| matches!(call, Call::DropBoundingCapability(_)))
        .unwrap();
    assert!(install < first_drop);
    assert!(!calls.contains(&Call::SetNoNewPrivileges));
}

#[test]
fn an_apparmor_profile_is_asked_for_first() {
    let process = process(|process| process["apparmorProfile"] = json!("husk-exec"));
    let syscall = RecordingSyscall::new();
    set_up_process(&syscall, &process, None).unwrap();
    assert_eq!(
        syscall.calls()[0],
        Call::WriteFile {
            path: "/proc/self/attr/apparmor/exec".into(),
            contents: "exec husk-exec".into()
        }
    );
}

/// `exec` with everything but the process and the init pid fixed.
fn try_exec(bundle: &Bundle, process: &Process, init_pid: i32) -> EngineError {
    exec(&ExecOptions {
        container_id: "web",
        init_pid,
        bundle,
        cgroup: None,
        process,
        console_socket: None,
        stdio: Stdio::Inherit,
        syscall: &RecordingSyscall::new(),
    })
    .expect_err("refused before any fork")
}

#[test]
fn requests_that_cannot_run_are_refused_before_anything_starts() {
    let test = TestBundle::new("exec-refused", |_| {});
    let alive = std::process::id() as i32;
    let cases = [
        (
            process(|process| process["args"] = json!([])),
            alive,
            "exec in container \"web\": process.args: empty: name the program to run",
        ),
        (
            process(|process| process["cwd"] = json!("work")),
            alive,
            "exec in container \"web\": process.cwd: not an absolute path",
        ),
        (
            process(|process| process["terminal"] = json!(true)),
            alive,
            "exec in container \"web\": process.terminal: true, but no console socket was given to receive the pty (--console-socket)",
        ),
        (
            process(|_| {}),
            i32::MAX,
            "exec in container \"web\": its init process 2147483647 is not running",
        ),
    ];
    for (process, init_pid, expected) in cases {
        let error = try_exec(&test.bundle, &process, init_pid);
        assert_eq!(error_chain(&error), expected);
        assert_eq!(error.exit_code(), 1);
    }
}

#[test]
fn the_containers_seccomp_profile_is_compiled_before_anything_starts() {
    let test = TestBundle::new("exec-seccomp", |config| {
        config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let error = try_exec(&test.bundle, &process(|_| {}), std::process::id() as i32);
    assert!(
        error_chain(&error).contains("linux.seccomp.syscalls[0].action"),
        "{}",
        error_chain(&error)
    );
}
