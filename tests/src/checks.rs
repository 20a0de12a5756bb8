//! What a user would check from inside a container, as data: each check
//! tweaks a busybox bundle and says what the container must print. The
//! same checks run on the host through husk-engine (tests/engine_host.rs)
//! and inside a VM through husk-init (tests/engine_vm.rs), so both places
//! apply the runtime spec alike.

use serde_json::json;

use crate::bundle::Bundle;

/// Declares one `#[test]` per `test_name => CHECK` pair that hands
/// `checks::CHECK` to `$runner`, a `fn(&Check)` that runs the check's
/// bundle one way (husk-engine on the host, husk-init in a VM, the husk
/// CLI) and calls [`Check::verify`] on what came out. A test file writes
/// `husk_tests::check_tests! { run with check; exit_status => EXIT_STATUS, }`.
#[macro_export]
macro_rules! check_tests {
    (run with $runner:path; $($test:ident => $check:ident,)*) => {
        $(
            #[test]
            fn $test() {
                $runner(&$crate::checks::$check);
            }
        )*
    };
}

/// [`check_tests!`] for every check a container engine must pass wherever
/// it runs (tests/engine_host.rs and tests/engine_vm.rs), followed by the
/// caller's own pairs, so that both places keep running the same list.
#[macro_export]
macro_rules! engine_check_tests {
    (run with $runner:path; $($test:ident => $check:ident,)*) => {
        $crate::check_tests! {
            run with $runner;
            hostname_and_pid_1 => HOSTNAME_AND_PID_1,
            uid_gid_and_groups => UID_GID_AND_GROUPS,
            a_user_name_is_looked_up_in_the_container => USER_NAME_LOOKED_UP,
            all_five_capability_sets => ALL_FIVE_CAPABILITY_SETS,
            runc_default_capabilities_for_root => RUNC_DEFAULT_CAPABILITIES,
            seccomp_denies_with_the_configured_errno => SECCOMP_ERRNO,
            masked_paths_are_empty => MASKED_PATHS,
            read_only_paths_and_root_cannot_be_written => READ_ONLY_PATHS_AND_ROOT,
            rlimits_apply => RLIMITS,
            env_cwd_umask_and_home => ENV_CWD_UMASK_AND_HOME,
            pids_limit_stops_a_fork_loop => PIDS_LIMIT,
            memory_limit_is_visible_and_enforced => MEMORY_LIMIT,
            exit_status_passes_through => EXIT_STATUS,
            $($test => $check,)*
        }
    };
}

/// What the container must show.
pub enum Expect {
    /// Exit 0 with exactly this on stdout.
    Stdout(&'static str),
    /// Exit 0, this on stdout, and stderr containing the second text.
    StdoutAndStderr(&'static str, &'static str),
    /// This exit code (128+N for a signal), whatever it printed.
    Code(i32),
    /// This exit code, this stdout, stderr containing the text.
    Everything(i32, &'static str, &'static str),
}

pub struct Check {
    pub name: &'static str,
    pub configure: fn(&mut Bundle),
    pub expect: Expect,
}

impl Check {
    /// A bundle set up for this check, under the name `name`.
    pub fn bundle(&self) -> Bundle {
        let mut bundle = Bundle::busybox(self.name);
        (self.configure)(&mut bundle);
        bundle
    }

    /// Fails the test unless the run matches; `code` is the exit code
    /// (128+N for a signal).
    pub fn verify(&self, code: Option<i32>, stdout: &str, stderr: &str) {
        let context = || format!("check {}\nstdout:\n{stdout}\nstderr:\n{stderr}", self.name);
        let (want_code, want_stdout, want_stderr) = match self.expect {
            Expect::Stdout(out) => (0, Some(out), None),
            Expect::StdoutAndStderr(out, err) => (0, Some(out), Some(err)),
            Expect::Code(code) => (code, None, None),
            Expect::Everything(code, out, err) => (code, Some(out), Some(err)),
        };
        assert_eq!(code, Some(want_code), "{}", context());
        if let Some(out) = want_stdout {
            assert_eq!(stdout, out, "{}", context());
        }
        if let Some(err) = want_stderr {
            assert!(
                stderr.contains(err),
                "wanted {err:?} on stderr; {}",
                context()
            );
        }
    }
}

pub const HOSTNAME_AND_PID_1: Check = Check {
    name: "hostname",
    configure: |bundle| {
        bundle
            .set("/hostname", json!("box"))
            .shell("hostname; echo $$");
    },
    expect: Expect::Stdout("box\n1\n"),
};

pub const UID_GID_AND_GROUPS: Check = Check {
    name: "ids",
    configure: |bundle| {
        bundle
            .set(
                "/process/user",
                json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}),
            )
            .shell("id -u; id -g; id -G");
    },
    expect: Expect::Stdout("1000\n1000\n1000 10 29\n"),
};

pub const USER_NAME_LOOKED_UP: Check = Check {
    name: "username",
    configure: |bundle| {
        bundle
            .set(
                "/process/user",
                json!({"uid": 0, "gid": 0, "username": "app"}),
            )
            .shell("id -u; id -G; echo $HOME");
    },
    expect: Expect::Stdout("1000\n1000 10\n/home/app\n"),
};

/// A non-root exec keeps only the ambient set as effective and permitted
/// (capabilities(7), "Transformation of capabilities during execve()").
pub const ALL_FIVE_CAPABILITY_SETS: Check = Check {
    name: "caps",
    configure: |bundle| {
        bundle
            .set("/process/user", json!({"uid": 1000, "gid": 1000}))
            .set(
                "/process/capabilities",
                json!({
                    "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"],
                    "effective": ["CAP_CHOWN", "CAP_KILL"],
                    "permitted": ["CAP_CHOWN", "CAP_KILL"],
                    "inheritable": ["CAP_CHOWN", "CAP_KILL"],
                    "ambient": ["CAP_KILL"]
                }),
            )
            .shell("grep ^Cap /proc/self/status");
    },
    expect: Expect::Stdout(
        "CapInh:\t0000000000000021\n\
         CapPrm:\t0000000000000020\n\
         CapEff:\t0000000000000020\n\
         CapBnd:\t00000000000000e1\n\
         CapAmb:\t0000000000000020\n",
    ),
};

pub const RUNC_DEFAULT_CAPABILITIES: Check = Check {
    name: "default-caps",
    configure: |bundle| {
        bundle.shell("grep -E '^Cap(Eff|Bnd)' /proc/self/status");
    },
    expect: Expect::Stdout("CapEff:\t0000000020000420\nCapBnd:\t0000000020000420\n"),
};

pub const SECCOMP_ERRNO: Check = Check {
    name: "seccomp",
    configure: |bundle| {
        bundle
            .set(
                "/linux/seccomp",
                json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
                }),
            )
            .shell(
                "mkdir /dev/shm/forbidden; echo status=$?; touch /dev/shm/allowed && echo touched",
            );
    },
    expect: Expect::StdoutAndStderr(
        "status=1\ntouched\n",
        "mkdir: can't create directory '/dev/shm/forbidden': Permission denied",
    ),
};

/// A file and a directory of the image that are not empty, added to the
/// default list (whose /proc files a kernel may not have); an unmasked file
/// keeps its content.
pub const MASKED_PATHS: Check = Check {
    name: "masked",
    configure: |bundle| {
        let mut masked = bundle.config["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .clone();
        masked.extend([json!("/etc/group"), json!("/home")]);
        bundle.set("/linux/maskedPaths", json!(masked)).shell(
            "wc -c < /etc/group; ls -A /home | wc -l; ls -A /sys/firmware | wc -l; \
             [ -s /etc/passwd ] && echo passwd-readable",
        );
    },
    expect: Expect::Stdout("0\n0\n0\npasswd-readable\n"),
};

pub const READ_ONLY_PATHS_AND_ROOT: Check = Check {
    name: "readonly",
    configure: |bundle| {
        bundle.shell(
            "echo 1 > /proc/sys/kernel/domainname; echo sysctl=$?; \
             touch /new-file; echo root=$?; \
             touch /dev/shm/file; echo shm=$?",
        );
    },
    expect: Expect::StdoutAndStderr("sysctl=1\nroot=1\nshm=0\n", "Read-only file system"),
};

pub const RLIMITS: Check = Check {
    name: "rlimits",
    configure: |bundle| {
        bundle
            .set(
                "/process/rlimits",
                json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}]),
            )
            .shell("ulimit -n; ulimit -Hn");
    },
    expect: Expect::Stdout("512\n1000\n"),
};

pub const ENV_CWD_UMASK_AND_HOME: Check = Check {
    name: "env",
    configure: |bundle| {
        bundle
            .set(
                "/process/user",
                json!({"uid": 1000, "gid": 1000, "umask": 0o027}),
            )
            .set("/process/cwd", json!("/work/dir"))
            .set("/process/env", json!(["PATH=/bin", "FOO=bar baz"]))
            .shell("echo \"$FOO|$HOME|$(pwd)|$(umask)\"");
    },
    expect: Expect::Stdout("bar baz|/home/app|/work/dir|0027\n"),
};

/// At most 15 forks whatever happens; pids.max stops them at 8 tasks: the
/// shell and 7 sleeps. busybox sh gives up on the first failed fork, with
/// status 2.
pub const PIDS_LIMIT: Check = Check {
    name: "pids",
    configure: |bundle| {
        bundle
            .set("/linux/resources/pids", json!({"limit": 8}))
            .shell("i=0; while [ $i -lt 15 ]; do sleep 5 & i=$((i+1)); echo $i; done");
    },
    expect: Expect::Everything(2, "1\n2\n3\n4\n5\n6\n7\n", "can't fork"),
};

/// 64 MiB of buffer in a 32 MiB cgroup: the OOM killer's SIGKILL.
pub const MEMORY_LIMIT: Check = Check {
    name: "memory",
    configure: |bundle| {
        bundle
            .set("/linux/resources/memory", json!({"limit": 33554432}))
            .shell(
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                 dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo status=$?",
            );
    },
    expect: Expect::Stdout("33554432\nstatus=137\n"),
};

pub const EXIT_STATUS: Check = Check {
    name: "status",
    configure: |bundle| {
        bundle.shell("exit 7");
    },
    expect: Expect::Code(7),
};

pub const MISSING_PROGRAM: Check = Check {
    name: "missing-program",
    configure: |bundle| {
        bundle.set("/process/args", json!(["no-such-program"]));
    },
    expect: Expect::Everything(
        127,
        "",
        "exec: \"no-such-program\": executable file not found in $PATH",
    ),
};

pub const NOT_EXECUTABLE: Check = Check {
    name: "not-executable",
    configure: |bundle| {
        bundle.set("/process/args", json!(["/etc/not-a-program"]));
    },
    expect: Expect::Code(126),
};

pub const ABSENT_USER_NAME: Check = Check {
    name: "absent-user",
    configure: |bundle| {
        bundle.set("/process/user/username", json!("ghost"));
    },
    expect: Expect::Everything(
        1,
        "",
        "process.user.username: \"ghost\": no such user in the container's /etc/passwd",
    ),
};

pub const SECCOMP_NOTIFY_REFUSED: Check = Check {
    name: "seccomp-notify",
    configure: |bundle| {
        bundle.set(
            "/linux/seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
            }),
        );
    },
    expect: Expect::Everything(1, "", "linux.seccomp.syscalls[0].action"),
};
