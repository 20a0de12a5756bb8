//! Runs a test's body in a child process of its own. Bodies that confine
//! themselves with seccomp need one: a violation kills the whole process
//! (SECCOMP_RET_KILL_PROCESS), and a filter can never be taken off again.

#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

/// Set in the child process; its value is the test's scratch directory.
const CHILD_ENV: &str = "HUSK_VMM_SECCOMP_TEST_CHILD";

/// In the child process a test started with [`run_in_child`]: the
/// scratch directory it was given.
pub fn child_scratch() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Runs the test named `test` of this test binary again, alone, in a child
/// process where [`child_scratch`] returns `scratch`; `configure` sets up
/// its stdio and the like. Returns what the child left behind.
pub fn run_in_child(test: &str, scratch: &str, configure: impl FnOnce(&mut Command)) -> Output {
    let executable = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(executable);
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scratch)
        // A backtrace's symbolization opens files no policy allows: a
        // panic under a filter would end in SIGSYS instead of its message.
        .env("RUST_BACKTRACE", "0");
    configure(&mut command);
    command.output().expect("run the test binary again")
}

/// A readable account of how a child ended, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?} (signal {:?})\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        output.status.signal(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The child was killed by seccomp: SIGSYS, the signal
/// SECCOMP_RET_KILL_PROCESS ends a process with (seccomp(2)).
pub fn assert_killed_by_seccomp(output: &Output) {
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGSYS),
        "expected death by SIGSYS: {}",
        describe(output)
    );
}

pub fn assert_succeeded(output: &Output) {
    assert!(output.status.success(), "{}", describe(output));
}
