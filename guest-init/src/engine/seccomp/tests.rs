//! Compilation errors, program shape, and behaviour: filters run in a forked
//! child that installs them and reports what its system calls returned.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};

use oci_spec::runtime::LinuxSeccomp;

use super::*;
use crate::engine::test_bundle::TestDir;

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap_or_else(|error| panic!("test profile: {error}\n{json}"))
}

fn docker_like() -> LinuxSeccomp {
    profile(include_str!("testdata/docker_like.json"))
}

/// How a filtered child ended, with the probe results it reported.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exited { code: i32, results: Vec<i32> },
    Killed { signal: i32, results: Vec<i32> },
}

/// 0 when a raw system call succeeded, else its errno. Allocation-free, as
/// everything run in the forked child must be.
fn errno_of(result: libc::c_long) -> i32 {
    if result < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

/// Forks; the child sets no_new_privs, installs `program`, runs each probe
/// and writes its result to a pipe. Only async-signal-safe work happens in
/// the child (the test harness is multi-threaded).
fn run_filtered(program: &BpfProgram, probes: &[&dyn Fn() -> i32]) -> Outcome {
    let (read_end, write_end) = pipe();
    // SAFETY: the child only calls prctl, seccomp, the probes' raw system
    // calls, write and _exit, none of which allocate or take locks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: plain prctl(2) on the calling process.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            // SAFETY: _exit(2) ends the child without running destructors.
            unsafe { libc::_exit(101) };
        }
        if install(program).is_err() {
            // SAFETY: as above.
            unsafe { libc::_exit(102) };
        }
        for probe in probes {
            let result = probe();
            // SAFETY: writes the 4 bytes of `result` to the pipe.
            unsafe { libc::write(write_end, (&result as *const i32).cast(), 4) };
        }
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    collect(pid, read_end, write_end)
}

/// (read end, write end) of a new pipe, close-on-exec.
fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(result, 0, "pipe2: {}", io::Error::last_os_error());
    (fds[0], fds[1])
}

/// Reads the child's reports and waits for it.
fn collect(pid: i32, read_end: i32, write_end: i32) -> Outcome {
    // SAFETY: the parent's copy of the write end is ours to close.
    unsafe { libc::close(write_end) };
    // SAFETY: `read_end` is an open descriptor owned by nothing else.
    let mut reader = File::from(unsafe { OwnedFd::from_raw_fd(read_end) });
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    let results = bytes
        .chunks_exact(4)
        .map(|chunk| i32::from_ne_bytes(chunk.try_into().unwrap()))
        .collect();
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", io::Error::last_os_error());
    if libc::WIFSIGNALED(status) {
        Outcome::Killed {
            signal: libc::WTERMSIG(status),
            results,
        }
    } else {
        Outcome::Exited {
            code: libc::WEXITSTATUS(status),
            results,
        }
    }
}

/// clone(2) without a new stack behaves like fork; a child it creates
/// leaves at once.
fn raw_clone(flags: libc::c_long) -> i32 {
    // SAFETY: no stack, no tid pointers: the kernel duplicates the caller,
    // whose copy exits immediately below.
    let result = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if result == 0 {
        // SAFETY: ends the duplicate without touching shared state.
        unsafe { libc::_exit(0) };
    }
    if result > 0 {
        // SAFETY: reaps the duplicate; a null status pointer is allowed.
        unsafe { libc::waitpid(result as i32, std::ptr::null_mut(), 0) };
    }
    errno_of(result)
}

fn syscall0(number: libc::c_long) -> i32 {
    // SAFETY: a system call without arguments touches no memory of ours.
    errno_of(unsafe { libc::syscall(number) })
}

fn getcwd_probe() -> i32 {
    let mut buffer = [0u8; 512];
    // SAFETY: the kernel writes at most buffer.len() bytes into `buffer`.
    errno_of(unsafe { libc::syscall(libc::SYS_getcwd, buffer.as_mut_ptr(), buffer.len()) })
}

fn error_text(json: &str) -> String {
    compile(&profile(json)).unwrap_err().to_string()
}

/// Fails unless compiling `json` is refused with a message that starts with
/// `field`, the profile field at fault.
fn assert_refused_naming(json: &str, field: &str) {
    let message = error_text(json);
    assert!(message.starts_with(field), "{message}");
}

#[test]
fn notify_is_refused_naming_the_entry() {
    let message = error_text(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_LOG"},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    assert_eq!(
        message,
        "linux.seccomp.syscalls[3].action: SCMP_ACT_NOTIFY is not supported by husk"
    );
    let message = error_text(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#);
    assert_eq!(
        message,
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is not supported by husk"
    );
}

#[test]
fn an_argument_index_above_five_is_refused() {
    assert_refused_naming(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mmap"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
        "linux.seccomp.syscalls[0].args[1].index: 6 is not",
    );
}

#[test]
fn architectures_must_include_x86_64() {
    assert_refused_naming(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}"#,
        "linux.seccomp.architectures",
    );
    // x86 and x32 next to x86_64, as in Docker's profile, are accepted.
    compile(&profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]}"#,
    ))
    .unwrap();
}

#[test]
fn flags_map_to_seccomp_flags_and_notify_only_flags_are_refused() {
    let flags = filter_flags(&profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]}"#,
    ))
    .unwrap();
    assert_eq!(
        u64::from(flags),
        libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_TSYNC
    );
    let message = error_text(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    );
    assert!(message.starts_with("linux.seccomp.flags: "), "{message}");
    assert!(message.ends_with("is not supported by husk"), "{message}");
}

#[test]
fn an_errno_that_does_not_fit_sixteen_bits_is_refused() {
    assert_refused_naming(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}"#,
        "linux.seccomp.syscalls[0].errnoRet: 70000",
    );
    assert_refused_naming(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 65536}"#,
        "linux.seccomp.defaultErrnoRet: 65536",
    );
}

#[test]
fn an_entry_without_names_is_refused() {
    assert_refused_naming(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": [], "action": "SCMP_ACT_ERRNO"}]}"#,
        "linux.seccomp.syscalls[0].names",
    );
}

#[test]
fn names_x86_64_lacks_are_skipped() {
    let program = compile(&profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["_llseek", "arm_fadvise64_64"], "action": "SCMP_ACT_KILL"}]}"#,
    ))
    .unwrap();
    let mut expected = prologue();
    expected.push(statement(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    assert_eq!(program, expected);
}

fn segment_summary(json: &str) -> Vec<(SeccompAction, Vec<i64>)> {
    let seccomp = profile(json);
    let default_action = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "defaultAction",
        "defaultErrnoRet",
    )
    .unwrap();
    segments(&seccomp, &default_action)
        .unwrap()
        .into_iter()
        .map(|segment| (segment.action, segment.rules.into_keys().collect()))
        .collect()
}

#[test]
fn rules_share_a_segment_unless_profile_order_forbids_it() {
    let (read, write, close) = (libc::SYS_read, libc::SYS_write, libc::SYS_close);
    assert_eq!(
        segment_summary(
            r#"{"defaultAction": "SCMP_ACT_KILL", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["close"], "action": "SCMP_ACT_ALLOW"}]}"#
        ),
        vec![
            (SeccompAction::Allow, vec![read, close]),
            (SeccompAction::Errno(1), vec![write]),
        ]
    );
    // read's ERRNO rule sits between two ALLOW rules for read: three segments.
    assert_eq!(
        segment_summary(
            r#"{"defaultAction": "SCMP_ACT_KILL", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 10, "op": "SCMP_CMP_GT"}]},
                {"names": ["read", "close"], "action": "SCMP_ACT_ALLOW"}]}"#
        ),
        vec![
            (SeccompAction::Allow, vec![read, close]),
            (SeccompAction::Errno(1), vec![read]),
            (SeccompAction::Allow, vec![read]),
        ]
    );
}

#[test]
fn default_action_rules_nothing_overrides_are_dropped() {
    assert_eq!(
        segment_summary(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["write"], "action": "SCMP_ACT_ALLOW"}]}"#
        ),
        vec![
            (SeccompAction::Errno(1), vec![libc::SYS_write]),
            (SeccompAction::Allow, vec![libc::SYS_write]),
        ]
    );
}

#[test]
fn errno_rules_argument_conditions_and_the_default_action() {
    let program = compile(&profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    let dir = TestDir::new("seccomp-mkdir");
    let private = CString::new(dir.join("private").into_os_string().into_encoded_bytes()).unwrap();
    let shared = CString::new(dir.join("shared").into_os_string().into_encoded_bytes()).unwrap();
    let mkdir = |path: &CString, mode: libc::c_long| {
        // SAFETY: `path` is a NUL-terminated string alive for the call.
        errno_of(unsafe { libc::syscall(libc::SYS_mkdir, path.as_ptr(), mode) })
    };
    let outcome = run_filtered(
        &program,
        &[
            &getcwd_probe,
            &|| mkdir(&private, 0o700),
            &|| mkdir(&shared, 0o755),
            &|| syscall0(libc::SYS_getppid),
            &|| syscall0(libc::SYS_getpid),
        ],
    );
    let created = (dir.join("private").exists(), dir.join("shared").exists());
    assert_eq!(
        outcome,
        Outcome::Exited {
            code: 0,
            results: vec![libc::ENOSYS, libc::EACCES, 0, libc::EPERM, 0]
        }
    );
    assert_eq!(created, (false, true));
}

#[test]
fn the_first_matching_entry_wins_across_actions() {
    let program = compile(&profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13, "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["getppid", "getuid", "getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
            {"names": ["write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}"#,
    ))
    .unwrap();
    let kill_self = |signal: libc::c_long| {
        // SAFETY: getpid and kill take plain integers.
        errno_of(unsafe { libc::syscall(libc::SYS_kill, libc::getpid(), signal) })
    };
    let outcome = run_filtered(
        &program,
        &[
            &|| syscall0(libc::SYS_getppid),
            &|| syscall0(libc::SYS_getuid),
            &|| syscall0(libc::SYS_getgid),
            &|| kill_self(0),
            &|| kill_self(libc::SIGUSR1.into()),
        ],
    );
    assert_eq!(
        outcome,
        Outcome::Exited {
            code: 0,
            results: vec![libc::EIO, 0, libc::EACCES, 0, libc::EINVAL]
        }
    );
}

#[test]
fn repeated_argument_indexes_are_ored_like_runc() {
    // personality(0xffffffff) or personality(1): each condition a rule of its
    // own, so either matches.
    let program = compile(&profile(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "args": [
                {"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap();
    let personality = |persona: libc::c_long| {
        // SAFETY: personality takes an integer; 0xffffffff only queries.
        errno_of(unsafe { libc::syscall(libc::SYS_personality, persona) })
    };
    let outcome = run_filtered(
        &program,
        &[&|| personality(0xffff_ffff), &|| personality(1), &|| {
            personality(0)
        }],
    );
    assert_eq!(
        outcome,
        Outcome::Exited {
            code: 0,
            results: vec![libc::EIO, libc::EIO, 0]
        }
    );
}

#[test]
fn kill_and_trap_actions_end_the_process_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
    ] {
        let program = compile(&profile(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {{"names": ["getppid"], "action": "{action}"}}]}}"#
        )))
        .unwrap();
        let outcome = run_filtered(
            &program,
            &[&|| syscall0(libc::SYS_getpid), &|| {
                syscall0(libc::SYS_getppid)
            }],
        );
        assert_eq!(
            outcome,
            Outcome::Killed {
                signal: libc::SIGSYS,
                results: vec![0]
            },
            "{action}"
        );
    }
}

#[test]
fn log_allows_the_call() {
    let program = compile(&profile(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
            {"names": ["write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}"#,
    ))
    .unwrap();
    let outcome = run_filtered(&program, &[&|| syscall0(libc::SYS_getppid)]);
    assert_eq!(
        outcome,
        Outcome::Exited {
            code: 0,
            results: vec![0]
        }
    );
}

#[test]
fn x32_system_calls_are_killed_even_when_the_default_allows() {
    let program = compile(&profile(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#)).unwrap();
    let x32_getpid = (X32_SYSCALL_BIT as libc::c_long) | libc::SYS_getpid;
    let outcome = run_filtered(
        &program,
        &[&|| syscall0(-1), &|| syscall0(libc::SYS_getpid), &|| {
            syscall0(x32_getpid)
        }],
    );
    assert_eq!(
        outcome,
        Outcome::Killed {
            signal: libc::SIGSYS,
            // System call -1 reaches the rules (and the kernel's ENOSYS).
            results: vec![libc::ENOSYS, 0]
        }
    );
}

#[test]
fn docker_like_profile_fits_in_bpf_maxinsns() {
    let program = compile(&docker_like()).unwrap();
    // 7 prologue instructions, 5 per unconditional system call, more for
    // conditions, one default return.
    assert!(
        program.len() > 7 + 5 * 300,
        "{} instructions",
        program.len()
    );
    assert!(
        program.len() <= BPF_MAXINSNS,
        "{} instructions",
        program.len()
    );
}

#[test]
fn docker_like_profile_lets_a_normal_program_run() {
    let program = compile(&docker_like()).unwrap();
    let shell = CString::new("/bin/sh").unwrap();
    let script = CString::new(
        "echo started; ls / >/dev/null && cat /proc/self/status >/dev/null && \
         dir=$(mktemp -d) && rmdir \"$dir\" && echo done",
    )
    .unwrap();
    let arg0 = CString::new("sh").unwrap();
    let dash_c = CString::new("-c").unwrap();
    let argv = [
        arg0.as_ptr(),
        dash_c.as_ptr(),
        script.as_ptr(),
        std::ptr::null(),
    ];
    let (read_end, write_end) = pipe();
    // SAFETY: the child only calls dup2, prctl, seccomp, execv and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: all descriptors and strings were set up before fork.
        unsafe {
            libc::dup2(write_end, 1);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || install(&program).is_err()
            {
                libc::_exit(102);
            }
            libc::execv(shell.as_ptr(), argv.as_ptr());
            libc::_exit(103);
        }
    }
    // SAFETY: the parent's copy of the write end is ours to close.
    unsafe { libc::close(write_end) };
    let mut output = String::new();
    // SAFETY: `read_end` is an open descriptor owned by nothing else.
    let read_end = unsafe { OwnedFd::from_raw_fd(read_end) };
    File::from(read_end).read_to_string(&mut output).unwrap();
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "shell status {status:#x}, output {output:?}"
    );
    assert_eq!(output, "started\ndone\n");
}

#[test]
fn docker_like_profile_denies_with_the_right_errno() {
    let program = compile(&docker_like()).unwrap();
    let with_args = |number: libc::c_long, first: libc::c_long, second: libc::c_long| {
        // SAFETY: integer arguments only; the calls below take no pointers
        // or accept null ones.
        errno_of(unsafe { libc::syscall(number, first, second, 0, 0, 0) })
    };
    let outcome = run_filtered(
        &program,
        &[
            // clone3 answers ENOSYS so glibc falls back to clone.
            &|| with_args(libc::SYS_clone3, 0, 0),
            &|| raw_clone(libc::SIGCHLD.into()),
            &|| raw_clone(libc::c_long::from(libc::CLONE_NEWUSER | libc::SIGCHLD)),
            &|| with_args(libc::SYS_unshare, libc::CLONE_NEWNS.into(), 0),
            &|| with_args(libc::SYS_personality, 0xffff_ffff, 0),
            &|| with_args(libc::SYS_personality, 0x040_0000, 0),
            &|| {
                with_args(
                    libc::SYS_socket,
                    libc::AF_UNIX.into(),
                    libc::SOCK_STREAM.into(),
                )
            },
            &|| {
                with_args(
                    libc::SYS_socket,
                    libc::AF_VSOCK.into(),
                    libc::SOCK_STREAM.into(),
                )
            },
            &|| with_args(libc::SYS_ptrace, libc::PTRACE_TRACEME.into(), 0),
            &getcwd_probe,
        ],
    );
    assert_eq!(
        outcome,
        Outcome::Exited {
            code: 0,
            results: vec![
                libc::ENOSYS,
                0,
                libc::EPERM,
                libc::EPERM,
                0,
                libc::EPERM,
                0,
                libc::EPERM,
                libc::EPERM,
                0
            ]
        }
    );
}

/// `count` entries, each one system call with six ANDed 64-bit conditions.
fn conditional_entries(count: usize, action: &str) -> Vec<String> {
    syscalls::all()
        .take(count)
        .map(|(name, _)| {
            let args: Vec<String> = (0..6)
                .map(|index| format!(r#"{{"index": {index}, "value": 1, "op": "SCMP_CMP_EQ"}}"#))
                .collect();
            format!(
                r#"{{"names": ["{name}"], "action": "{action}", "args": [{}]}}"#,
                args.join(", ")
            )
        })
        .collect()
}

#[test]
fn a_profile_beyond_bpf_maxinsns_is_refused_clearly() {
    // One segment too large for seccompiler.
    let entries = conditional_entries(300, "SCMP_ACT_ALLOW");
    let json = format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{}]}}"#,
        entries.join(",")
    );
    let error = compile(&profile(&json)).unwrap_err();
    assert!(matches!(error, SeccompError::TooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("limit of 4096"), "{error}");

    // Segments that fit one by one but not together.
    let mut entries = conditional_entries(100, "SCMP_ACT_ALLOW");
    entries.extend(
        conditional_entries(200, "SCMP_ACT_LOG")
            .into_iter()
            .skip(100),
    );
    let json = format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{}]}}"#,
        entries.join(",")
    );
    match compile(&profile(&json)) {
        Err(SeccompError::TooLarge { length }) => assert!(length > BPF_MAXINSNS),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn installing_an_empty_program_is_refused() {
    assert!(matches!(
        install(&Vec::new()),
        Err(SeccompError::EmptyProgram)
    ));
}
