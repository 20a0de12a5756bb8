//! Running the programs under test with a time limit, and saying exactly
//! which command failed and what it printed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use std::{fs, io, thread};

use super::sys::{self, ProcessWatch};

/// How long output may keep flowing after a command ended: only a process
/// it left behind holding its stdout would take longer.
const OUTPUT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("wait for `{command}`")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "`{command}` did not finish within {timeout:?} (killed it){}",
        quoted("stderr", stderr)
    )]
    TimedOut {
        command: String,
        timeout: Duration,
        stderr: String,
    },
    #[error("`{command}` failed: {status}{}", quoted("stderr", stderr))]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error(
        "`{command}` ended but its output stayed open for {OUTPUT_GRACE:?}: \
         something it started still holds its stdout"
    )]
    OutputOpen { command: String },
}

/// An error with its causes, one after another.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `text` under a heading, for an error message; empty when blank.
pub fn quoted(what: &str, text: &str) -> String {
    let text = text.trim_end();
    if text.trim().is_empty() {
        return String::new();
    }
    let mut quoted = format!("\n  {what}:");
    for line in text.lines() {
        quoted.push_str("\n    ");
        quoted.push_str(line);
    }
    quoted
}

/// The command line as a user would type it (environment changes first).
pub fn describe(command: &Command) -> String {
    let word = |text: &str| {
        if !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-=:+,@".contains(c))
        {
            text.to_string()
        } else {
            format!("'{}'", text.replace('\'', r"'\''"))
        }
    };
    let mut words: Vec<String> = command
        .get_envs()
        .filter_map(|(name, value)| {
            let value = value?;
            Some(format!(
                "{}={}",
                name.to_string_lossy(),
                word(&value.to_string_lossy())
            ))
        })
        .collect();
    words.push(word(&command.get_program().to_string_lossy()));
    words.extend(command.get_args().map(|arg| word(&arg.to_string_lossy())));
    words.join(" ")
}

/// Reads a pipe to its end on a thread; the text arrives on the channel.
fn read_in_background<R: Read + Send + 'static>(mut pipe: R) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = sender.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    receiver
}

/// Output read from a pipe while the command runs.
pub struct PendingOutput {
    receiver: mpsc::Receiver<String>,
}

impl PendingOutput {
    pub fn of<R: Read + Send + 'static>(pipe: R) -> Self {
        Self {
            receiver: read_in_background(pipe),
        }
    }

    /// The whole output, once every writer has closed the pipe.
    pub fn collect(self, command: &str) -> Result<String, CommandError> {
        self.receiver
            .recv_timeout(OUTPUT_GRACE)
            .map_err(|_| CommandError::OutputOpen {
                command: command.to_string(),
            })
    }
}

/// Spawns `command`.
pub fn spawn(command: &mut Command) -> Result<Child, CommandError> {
    command.spawn().map_err(|source| CommandError::Spawn {
        command: describe(command),
        source,
    })
}

/// Waits for our child `child` at most `timeout`; kills it when the time is
/// up (and on an interrupt) so nothing is left running.
pub fn wait_child(
    child: &mut Child,
    description: &str,
    timeout: Duration,
) -> Result<ExitStatus, CommandError> {
    let wait_error = |source| CommandError::Wait {
        command: description.to_string(),
        source,
    };
    let watch = ProcessWatch::open(child.id() as i32).map_err(wait_error)?;
    let ended = watch.wait(timeout);
    if !matches!(ended, Ok(true)) {
        let _ = child.kill();
        let _ = child.wait();
    }
    match ended {
        Ok(true) => child.wait().map_err(wait_error),
        Ok(false) => Err(CommandError::TimedOut {
            command: description.to_string(),
            timeout,
            stderr: String::new(),
        }),
        Err(source) => Err(wait_error(source)),
    }
}

/// What a finished command printed, and how long it ran.
#[derive(Debug)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `command` to its end (at most `timeout`) with stdin from /dev/null
/// and both outputs captured; a non-zero status is an error quoting stderr.
pub fn run(mut command: Command, timeout: Duration) -> Result<Captured, CommandError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let description = describe(&command);
    let started = Instant::now();
    let mut child = spawn(&mut command)?;
    let stdout = PendingOutput::of(child.stdout.take().expect("stdout is piped"));
    let stderr = PendingOutput::of(child.stderr.take().expect("stderr is piped"));
    let status = wait_child(&mut child, &description, timeout);
    let elapsed = started.elapsed();
    let status = match status {
        Err(CommandError::TimedOut {
            command, timeout, ..
        }) => {
            return Err(CommandError::TimedOut {
                command,
                timeout,
                stderr: stderr.collect(&description).unwrap_or_default(),
            })
        }
        other => other?,
    };
    let stderr = stderr.collect(&description)?;
    if !status.success() {
        return Err(CommandError::Failed {
            command: description,
            status,
            stderr,
        });
    }
    Ok(Captured {
        stdout: stdout.collect(&description)?,
        stderr,
        elapsed,
    })
}

/// A file that takes a command's stderr (and that of any container that
/// inherits it), read back for error messages.
pub struct ErrorLog {
    path: PathBuf,
}

impl ErrorLog {
    pub fn create(path: &Path) -> Result<(Self, File), CommandError> {
        let file = File::create(path).map_err(|source| CommandError::Spawn {
            command: format!("create {}", path.display()),
            source,
        })?;
        Ok((
            Self {
                path: path.to_path_buf(),
            },
            file,
        ))
    }

    pub fn text(&self) -> String {
        fs::read_to_string(&self.path).unwrap_or_default()
    }
}

/// Checks an exit status, quoting the error log on failure.
pub fn check_status(
    status: ExitStatus,
    description: &str,
    log: &ErrorLog,
) -> Result<(), CommandError> {
    if status.success() {
        return Ok(());
    }
    Err(CommandError::Failed {
        command: description.to_string(),
        status,
        stderr: log.text(),
    })
}

/// Whether the user interrupted the run; checked between measurements.
pub fn check_interrupt() -> Result<(), CommandError> {
    if sys::interrupted() {
        return Err(CommandError::Wait {
            command: "the benchmark".to_string(),
            source: sys::interrupted_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_is_named_with_its_stderr() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo 'it broke' >&2; exit 3"]);
        command.env("HUSK_CONFIG", "/tmp/c.json");
        let error = run(command, Duration::from_secs(10)).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(
                "`HUSK_CONFIG=/tmp/c.json sh -c 'echo out; echo '\\''it broke'\\'' >&2; exit 3'` failed"
            ),
            "{message}"
        );
        assert!(message.ends_with("stderr:\n    it broke"), "{message}");
    }

    #[test]
    fn output_is_captured_and_a_slow_command_is_killed_at_its_limit() {
        let mut command = Command::new("echo");
        command.arg("hi");
        assert_eq!(
            run(command, Duration::from_secs(10)).unwrap().stdout,
            "hi\n"
        );
        let mut slow = Command::new("sleep");
        slow.arg("30");
        let started = Instant::now();
        let error = run(slow, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(error, CommandError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
