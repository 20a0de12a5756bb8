//! OCI lifecycle hooks (runtime-spec config.md "POSIX-platform Hooks",
//! runtime.md "Lifecycle").
//!
//! Each hook is executed directly (no shell) with exactly its `args` (`args[0]`
//! is argv[0]; without `args`, argv[0] is `path`), exactly the variables of
//! its `env` (empty when absent; ordered by name, and of a name given twice
//! the last wins, as with Go's os/exec that runc uses), the container's state
//! JSON on stdin, and its stdout and
//! stderr captured — never the container's stdio — so a failure can quote
//! them. A hook with `timeout` is killed (SIGKILL) once it runs that many
//! seconds.
//!
//! Where the caller runs each stage, per config.md:
//!
//! | stage             | when                                                        | namespace  |
//! |-------------------|-------------------------------------------------------------|------------|
//! | `prestart`        | create, after the container's namespaces exist, before pivot_root (deprecated) | runtime    |
//! | `createRuntime`   | create, after `prestart`, before pivot_root                 | runtime    |
//! | `createContainer` | create, after `createRuntime`, before pivot_root             | container  |
//! | `startContainer`  | start, just before the user process is executed             | container  |
//! | `poststart`       | start, after the user process is executed, before `start` returns | runtime |
//! | `poststop`        | delete, after the container is deleted, before `delete` returns  | runtime |
//!
//! "Container namespace" means the hook process must be started from inside
//! the container's mount namespace (the caller does so before calling
//! [`run_hooks`]); `path` of `startContainer` hooks resolves there too.
//!
//! Failures (runtime.md): in `prestart`, `createRuntime`, `createContainer`
//! and `startContainer` the first failing hook stops the rest and the
//! operation fails. A failing `poststart` or `poststop` hook does not stop the
//! remaining hooks; [`run_hooks`] runs them all and returns the failures
//! together in [`HookError::Failures`], which the caller only logs as a
//! warning ([`HookStage::failure_is_fatal`]).
//!
//! A hook that leaves a background process holding its stdout or stderr is
//! waited for only briefly after it exits; the output read so far is kept.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use std::{fmt, thread};

use oci_spec::runtime::{ContainerState, Hook, Hooks, State, StateBuilder};

/// How much of a hook's stdout and stderr (each) an error quotes: the end,
/// where the reason usually is.
const OUTPUT_TAIL_BYTES: usize = 4096;

/// How long to wait for a hook's output to end once the hook has exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// The stages of the container lifecycle that run hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStage {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookStage {
    /// Every stage, in the order of the container's life.
    pub const ALL: [HookStage; 6] = [
        HookStage::Prestart,
        HookStage::CreateRuntime,
        HookStage::CreateContainer,
        HookStage::StartContainer,
        HookStage::Poststart,
        HookStage::Poststop,
    ];

    /// Whether a failing hook fails the operation (runtime.md): yes, except
    /// for `poststart` and `poststop`, whose failures are warnings.
    pub fn failure_is_fatal(self) -> bool {
        !matches!(self, HookStage::Poststart | HookStage::Poststop)
    }

    /// This stage's hooks in a bundle's `hooks` (empty when none).
    pub fn hooks_in(self, hooks: &Hooks) -> &[Hook] {
        #[allow(deprecated)]
        let hooks = match self {
            HookStage::Prestart => hooks.prestart(),
            HookStage::CreateRuntime => hooks.create_runtime(),
            HookStage::CreateContainer => hooks.create_container(),
            HookStage::StartContainer => hooks.start_container(),
            HookStage::Poststart => hooks.poststart(),
            HookStage::Poststop => hooks.poststop(),
        };
        hooks.as_deref().unwrap_or_default()
    }
}

impl fmt::Display for HookStage {
    /// The stage's name in config.json.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            HookStage::Prestart => "prestart",
            HookStage::CreateRuntime => "createRuntime",
            HookStage::CreateContainer => "createContainer",
            HookStage::StartContainer => "startContainer",
            HookStage::Poststart => "poststart",
            HookStage::Poststop => "poststop",
        })
    }
}

/// Errors of the hooks module.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("serialize the container state for the {stage} hooks")]
    SerializeState {
        stage: HookStage,
        #[source]
        source: serde_json::Error,
    },
    #[error("hooks.{stage}[{index}].path: {path:?} is not absolute; give the full path")]
    RelativePath {
        stage: HookStage,
        index: usize,
        path: PathBuf,
    },
    #[error("hooks.{stage}[{index}].timeout: {timeout}; it must be greater than zero")]
    InvalidTimeout {
        stage: HookStage,
        index: usize,
        timeout: i64,
    },
    #[error("hooks.{stage}[{index}].env[{entry_index}]: {entry:?} is not of the form KEY=VALUE")]
    InvalidEnv {
        stage: HookStage,
        index: usize,
        entry_index: usize,
        entry: String,
    },
    #[error("start {stage} hook {index} ({path})")]
    Spawn {
        stage: HookStage,
        index: usize,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("wait for {stage} hook {index} ({path})")]
    Wait {
        stage: HookStage,
        index: usize,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{stage} hook {index} ({path}) {status}{}", quote_output(.stdout, .stderr))]
    Failed {
        stage: HookStage,
        index: usize,
        path: PathBuf,
        status: String,
        stdout: String,
        stderr: String,
    },
    #[error(
        "{stage} hook {index} ({path}) did not finish within {timeout}s and was killed{}",
        quote_output(.stdout, .stderr)
    )]
    TimedOut {
        stage: HookStage,
        index: usize,
        path: PathBuf,
        timeout: i64,
        stdout: String,
        stderr: String,
    },
    #[error("{} {stage} hook(s) failed: {}", .failures.len(), join_errors(.failures))]
    Failures {
        stage: HookStage,
        failures: Vec<HookError>,
    },
}

fn quote_output(stdout: &str, stderr: &str) -> String {
    let mut quoted = String::new();
    for (name, text) in [("stderr", stderr), ("stdout", stdout)] {
        let text = text.trim_end();
        if !text.is_empty() {
            quoted.push_str(&format!("; {name}: {text}"));
        }
    }
    quoted
}

fn join_errors(errors: &[HookError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs a stage's hooks in order with `state` on their stdin. See the module
/// documentation for how failures end the stage.
pub fn run_hooks(hooks: &[Hook], stage: HookStage, state: &State) -> Result<(), HookError> {
    run_stage(hooks, stage, state, None)
}

fn run_stage(
    hooks: &[Hook],
    stage: HookStage,
    state: &State,
    directory: Option<&Path>,
) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let state_json =
        serde_json::to_vec(state).map_err(|source| HookError::SerializeState { stage, source })?;
    if stage.failure_is_fatal() {
        for (index, hook) in hooks.iter().enumerate() {
            run_hook(hook, stage, index, &state_json, directory)?;
        }
        return Ok(());
    }
    let failures: Vec<HookError> = hooks
        .iter()
        .enumerate()
        .filter_map(|(index, hook)| run_hook(hook, stage, index, &state_json, directory).err())
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(HookError::Failures { stage, failures })
    }
}

/// [`run_hooks`] with `directory` (the bundle) as the hooks' working
/// directory (runtime.md "Hooks"), when it still exists: containerd may
/// delete a container after removing its bundle. Only the hook processes
/// change directory, never the caller, whose other threads may rely on
/// their working directory.
pub fn run_hooks_in(
    directory: &Path,
    hooks: &[Hook],
    stage: HookStage,
    state: &State,
) -> Result<(), HookError> {
    let directory = directory.is_dir().then_some(directory);
    run_stage(hooks, stage, state, directory)
}

/// The state of a container as a hook reads it on stdin (runtime.md
/// "State"): `pid` while the container's process exists, `annotations`
/// when config.json has any.
pub fn container_state(
    oci_version: &str,
    id: &str,
    status: ContainerState,
    pid: Option<i32>,
    bundle: &Path,
    annotations: Option<HashMap<String, String>>,
) -> State {
    let mut builder = StateBuilder::default()
        .version(oci_version.to_owned())
        .id(id.to_owned())
        .status(status)
        .bundle(bundle.to_path_buf());
    if let Some(pid) = pid {
        builder = builder.pid(pid);
    }
    if let Some(annotations) = annotations {
        builder = builder.annotations(annotations);
    }
    builder
        .build()
        .expect("every State field has a value or a default")
}

/// Checks every hook of every stage the way [`run_hooks`] checks each
/// before it runs it (config.md: `path` absolute, `timeout` greater than
/// zero; `env` entries KEY=VALUE), so that a bundle with a hook that could
/// never run is refused at create, not when the stage comes.
pub fn check_hooks(hooks: &Hooks) -> Result<(), HookError> {
    for stage in HookStage::ALL {
        for (index, hook) in stage.hooks_in(hooks).iter().enumerate() {
            check_hook(hook, stage, index)?;
        }
    }
    Ok(())
}

fn check_hook(hook: &Hook, stage: HookStage, index: usize) -> Result<(), HookError> {
    let path = hook.path();
    if !path.is_absolute() {
        return Err(HookError::RelativePath {
            stage,
            index,
            path: path.clone(),
        });
    }
    if let Some(timeout) = hook.timeout().filter(|seconds| *seconds <= 0) {
        return Err(HookError::InvalidTimeout {
            stage,
            index,
            timeout,
        });
    }
    for (entry_index, entry) in hook.env().iter().flatten().enumerate() {
        if entry.split_once('=').is_none_or(|(key, _)| key.is_empty()) {
            return Err(HookError::InvalidEnv {
                stage,
                index,
                entry_index,
                entry: entry.clone(),
            });
        }
    }
    Ok(())
}

fn run_hook(
    hook: &Hook,
    stage: HookStage,
    index: usize,
    state_json: &[u8],
    directory: Option<&Path>,
) -> Result<(), HookError> {
    check_hook(hook, stage, index)?;
    let path = hook.path();
    let timeout = hook.timeout();
    let mut command = Command::new(path);
    if let Some(directory) = directory {
        command.current_dir(directory);
    }
    if let Some((first, rest)) = hook.args().as_deref().unwrap_or_default().split_first() {
        command.arg0(first).args(rest);
    }
    command.env_clear();
    // check_hook made sure every entry has a '=' after a non-empty key.
    for (key, value) in hook
        .env()
        .iter()
        .flatten()
        .filter_map(|entry| entry.split_once('='))
    {
        command.env(key, value);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| HookError::Spawn {
        stage,
        index,
        path: path.clone(),
        source,
    })?;

    // Fed from a thread: a hook that never reads stdin must not block us
    // once the pipe buffer is full. A hook that exits without reading makes
    // the write fail with EPIPE, which is fine.
    if let Some(mut stdin) = child.stdin.take() {
        let state = state_json.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&state);
        });
    }
    let stdout = drain_tail(child.stdout.take());
    let stderr = drain_tail(child.stderr.take());

    let waited = wait_with_timeout(&mut child, timeout.map(|s| Duration::from_secs(s as u64)))
        .map_err(|source| HookError::Wait {
            stage,
            index,
            path: path.clone(),
            source,
        })?;
    let stdout = collect_tail(stdout);
    let stderr = collect_tail(stderr);
    match waited {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(HookError::Failed {
            stage,
            index,
            path: path.clone(),
            status: describe_status(status),
            stdout,
            stderr,
        }),
        None => Err(HookError::TimedOut {
            stage,
            index,
            path: path.clone(),
            timeout: timeout.unwrap_or_default(),
            stdout,
            stderr,
        }),
    }
}

/// Waits for the hook; None when it ran past `timeout` and was killed.
fn wait_with_timeout(
    child: &mut Child,
    timeout: Option<Duration>,
) -> io::Result<Option<ExitStatus>> {
    let Some(timeout) = timeout else {
        return child.wait().map(Some);
    };
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            // SIGKILL; the hook cannot delay its end.
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// Reads a pipe to its end on a thread, keeping the last
/// OUTPUT_TAIL_BYTES; the tail arrives on the returned channel.
fn drain_tail(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                match pipe.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => {
                        tail.extend_from_slice(&buffer[..read]);
                        if tail.len() > 2 * OUTPUT_TAIL_BYTES {
                            tail.drain(..tail.len() - OUTPUT_TAIL_BYTES);
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if tail.len() > OUTPUT_TAIL_BYTES {
                tail.drain(..tail.len() - OUTPUT_TAIL_BYTES);
            }
            let _ = sender.send(tail);
        });
    }
    receiver
}

fn collect_tail(receiver: mpsc::Receiver<Vec<u8>>) -> String {
    receiver
        .recv_timeout(OUTPUT_GRACE)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use oci_spec::runtime::HookBuilder;

    use super::*;
    use crate::engine::test_bundle::TestDir;

    fn state() -> State {
        StateBuilder::default()
            .version("1.2.0")
            .id("ctr-1")
            .status(ContainerState::Created)
            .pid(4242)
            .bundle("/run/bundles/ctr-1")
            .build()
            .unwrap()
    }

    /// A hook running `script` with /bin/sh, argv[0] `name`.
    fn shell_hook(name: &str, script: &str) -> Hook {
        HookBuilder::default()
            .path("/bin/sh")
            .args(vec![name.to_string(), "-c".to_string(), script.to_string()])
            .build()
            .unwrap()
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn hooks_run_in_order_with_argv_and_the_state_on_stdin() {
        let temp = TestDir::new("hooks-order");
        let log = temp.join("log");
        // Each hook logs its argv (from /proc, as the kernel received it) and
        // its stdin.
        let script = |tag: &str| {
            format!(
                "{{ echo {tag}; tr '\\0' ' ' < /proc/$$/cmdline; echo; cat; echo; }} >> '{}'",
                log.display()
            )
        };
        let hooks = [
            shell_hook("first-hook", &script("one")),
            shell_hook("second-hook", &script("two")),
        ];
        run_hooks(&hooks, HookStage::CreateRuntime, &state()).unwrap();
        let logged = read(&log);
        let lines: Vec<&str> = logged.lines().collect();
        assert_eq!(lines.len(), 6, "{logged}");
        assert_eq!(lines[0], "one");
        assert!(lines[1].starts_with("first-hook -c "), "{}", lines[1]);
        assert_eq!(lines[3], "two");
        assert!(lines[4].starts_with("second-hook -c "), "{}", lines[4]);
        for stdin in [lines[2], lines[5]] {
            let received: State = serde_json::from_str(stdin).unwrap();
            assert_eq!(received, state());
        }
    }

    #[test]
    fn a_hook_gets_exactly_its_env() {
        let temp = TestDir::new("hooks-env");
        let out = temp.join("environ");
        let dump = format!("tr '\\0' '\\n' < /proc/$$/environ > '{}'", out.display());
        let mut hook = shell_hook("env-hook", &dump);
        hook.set_env(Some(vec!["FOO=bar=baz".to_string(), "EMPTY=".to_string()]));
        run_hooks(&[hook], HookStage::Prestart, &state()).unwrap();
        let mut variables: Vec<String> = read(&out).lines().map(str::to_string).collect();
        variables.sort();
        assert_eq!(variables, ["EMPTY=", "FOO=bar=baz"]);

        let hook = shell_hook("env-hook", &dump);
        run_hooks(&[hook], HookStage::Prestart, &state()).unwrap();
        assert_eq!(read(&out), "");
    }

    fn chain(log: &Path) -> Vec<Hook> {
        vec![
            shell_hook("h0", &format!("echo 0 >> '{}'", log.display())),
            shell_hook(
                "h1",
                "echo progress; echo 'cannot reach the bridge' >&2; exit 3",
            ),
            shell_hook("h2", &format!("echo 2 >> '{}'", log.display())),
        ]
    }

    #[test]
    fn a_failing_hook_stops_the_chain_and_quotes_its_output() {
        let temp = TestDir::new("hooks-fail");
        let log = temp.join("log");
        let error = run_hooks(&chain(&log), HookStage::CreateContainer, &state()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "createContainer hook 1 (/bin/sh) exited with status 3; \
             stderr: cannot reach the bridge; stdout: progress"
        );
        assert_eq!(read(&log), "0\n");
    }

    #[test]
    fn poststop_failures_do_not_stop_the_remaining_hooks() {
        let temp = TestDir::new("hooks-poststop");
        let log = temp.join("log");
        let error = run_hooks(&chain(&log), HookStage::Poststop, &state()).unwrap_err();
        match &error {
            HookError::Failures { stage, failures } => {
                assert_eq!(*stage, HookStage::Poststop);
                assert_eq!(failures.len(), 1);
            }
            other => panic!("expected Failures, got {other:?}"),
        }
        assert!(error
            .to_string()
            .starts_with("1 poststop hook(s) failed: poststop hook 1"));
        assert_eq!(read(&log), "0\n2\n");
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let mut hook = shell_hook("slow", "echo waiting >&2; exec sleep 30");
        hook.set_timeout(Some(1));
        let started = Instant::now();
        let error = run_hooks(&[hook], HookStage::StartContainer, &state()).unwrap_err();
        let took = started.elapsed();
        assert!(
            (Duration::from_secs(1)..Duration::from_secs(10)).contains(&took),
            "{took:?}"
        );
        assert_eq!(
            error.to_string(),
            "startContainer hook 0 (/bin/sh) did not finish within 1s and was killed; \
             stderr: waiting"
        );
    }

    #[test]
    fn a_missing_hook_binary_is_an_error_naming_it() {
        let hook = HookBuilder::default()
            .path("/nonexistent/husk-hook")
            .build()
            .unwrap();
        let error = run_hooks(&[hook], HookStage::Prestart, &state()).unwrap_err();
        assert!(matches!(error, HookError::Spawn { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "start prestart hook 0 (/nonexistent/husk-hook)"
        );
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(source.contains("No such file"), "{source}");
    }

    #[test]
    fn invalid_hook_fields_are_refused_before_running() {
        let relative = HookBuilder::default().path("bin/hook").build().unwrap();
        let message = run_hooks(&[relative], HookStage::Poststart, &state())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("hooks.poststart[0].path: \"bin/hook\" is not absolute"),
            "{message}"
        );

        let mut zero_timeout = shell_hook("t", "true");
        zero_timeout.set_timeout(Some(0));
        let message = run_hooks(&[zero_timeout], HookStage::Prestart, &state())
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "hooks.prestart[0].timeout: 0; it must be greater than zero"
        );

        let mut bad_env = shell_hook("e", "true");
        bad_env.set_env(Some(vec!["A=1".to_string(), "NOVALUE".to_string()]));
        let message = run_hooks(&[bad_env], HookStage::Prestart, &state())
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "hooks.prestart[0].env[1]: \"NOVALUE\" is not of the form KEY=VALUE"
        );
    }

    #[test]
    fn a_hook_killed_by_a_signal_says_which() {
        let hook = shell_hook("self-kill", "kill -TERM $$");
        let error = run_hooks(&[hook], HookStage::Prestart, &state()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "prestart hook 0 (/bin/sh) was killed by signal 15"
        );
    }

    #[test]
    fn stage_names_are_the_spec_names() {
        let names: Vec<String> = HookStage::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop"
            ]
        );
    }

    #[test]
    fn only_poststart_and_poststop_failures_are_warnings() {
        assert!(HookStage::CreateRuntime.failure_is_fatal());
        assert!(HookStage::StartContainer.failure_is_fatal());
        assert!(!HookStage::Poststart.failure_is_fatal());
        assert!(!HookStage::Poststop.failure_is_fatal());
    }
}
