//! runc's logging: `--log FILE` and `--log-format text|json` choose where and
//! how husk records what it does, `--debug` adds debug lines.
//!
//! containerd's runc shim passes `--log <bundle>/log.json --log-format json`
//! and, when a call fails, reads the last `{"level":"error","msg":...}` line
//! of that file to tell the user why (CLIENTS.md). The text format is
//! logrus' (`time="..." level=error msg="..."`), which runc writes by
//! default.
//!
//! Without `--log` the lines go to stderr, except errors: `main` prints those
//! itself as `husk: <message>`, the one line callers such as conmon capture.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use crate::timestamp::rfc3339;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// logrus' text format: `time="..." level=... msg="..."`.
    Text,
    /// One JSON object per line: `{"level":...,"msg":...,"time":...}`.
    Json,
}

/// Severity of a log line, named as logrus names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("open the log file {} given with --log (its directory must exist and be writable)", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

enum Destination {
    File(Mutex<File>),
    Stderr,
}

/// Where and how this invocation logs.
pub struct Logger {
    destination: Destination,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    /// Logs to `path` (appended to, created with mode 0644 as runc does) or,
    /// without one, to stderr.
    pub fn open(path: Option<&Path>, format: LogFormat, debug: bool) -> Result<Self, LoggingError> {
        let destination = match path {
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o644)
                    .open(path)
                    .map_err(|source| LoggingError::Open {
                        path: path.to_path_buf(),
                        source,
                    })?;
                Destination::File(Mutex::new(file))
            }
            None => Destination::Stderr,
        };
        Ok(Logger {
            destination,
            format,
            debug,
        })
    }

    /// Whether debug lines are written (`--debug`).
    pub fn debug_enabled(&self) -> bool {
        self.debug
    }

    /// Writes one line. Debug lines only with `--debug`; error lines only to
    /// a log file (on stderr, `main` already prints the error). A failing
    /// write is ignored: logging must not turn a success into a failure.
    pub fn log(&self, level: Level, message: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let line = format_line(self.format, level, message, SystemTime::now());
        match &self.destination {
            Destination::File(file) => {
                let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let _ = file.write_all(line.as_bytes());
            }
            Destination::Stderr if level != Level::Error => {
                let _ = io::stderr().lock().write_all(line.as_bytes());
            }
            Destination::Stderr => {}
        }
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Makes `logger` the one the functions below write to. Only the first call
/// counts.
pub fn install(logger: Logger) {
    let _ = LOGGER.set(logger);
}

fn log(level: Level, message: impl Display) {
    if let Some(logger) = LOGGER.get() {
        if level != Level::Debug || logger.debug_enabled() {
            logger.log(level, &message.to_string());
        }
    }
}

pub fn debug(message: impl Display) {
    log(Level::Debug, message);
}

pub fn info(message: impl Display) {
    log(Level::Info, message);
}

pub fn warning(message: impl Display) {
    log(Level::Warning, message);
}

/// Records the error a command failed with in the log file, if there is one.
pub fn error(message: impl Display) {
    log(Level::Error, message);
}

/// One log line, newline included.
pub fn format_line(format: LogFormat, level: Level, message: &str, time: SystemTime) -> String {
    let time = rfc3339(time);
    match format {
        LogFormat::Json => {
            // serde_json's map keeps keys sorted: level, msg, time, the order
            // logrus' JSONFormatter writes them in.
            let mut line = serde_json::json!({
                "level": level.as_str(),
                "msg": message,
                "time": time,
            })
            .to_string();
            line.push('\n');
            line
        }
        LogFormat::Text => format!(
            "time={} level={} msg={}\n",
            quote(&time),
            level.as_str(),
            quote(message)
        ),
    }
}

/// A double-quoted string with Go's escapes (strconv.Quote), as logrus'
/// text formatter quotes values.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            control if control.is_control() => {
                quoted.push_str(&format!("\\u{:04x}", u32::from(control)))
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn noon() -> SystemTime {
        // 2024-05-01T12:00:00Z
        UNIX_EPOCH + Duration::from_secs(1_714_564_800)
    }

    #[test]
    fn json_lines_are_what_containerd_parses() {
        let line = format_line(
            LogFormat::Json,
            Level::Error,
            "container \"c1\" does not exist",
            noon(),
        );
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(
            line,
            "{\"level\":\"error\",\"msg\":\"container \\\"c1\\\" does not exist\",\
             \"time\":\"2024-05-01T12:00:00.000000000Z\"}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["msg"], "container \"c1\" does not exist");
    }

    #[test]
    fn text_lines_are_logrus_style() {
        let line = format_line(LogFormat::Text, Level::Warning, "a \"b\"\nc", noon());
        assert_eq!(
            line,
            "time=\"2024-05-01T12:00:00.000000000Z\" level=warning msg=\"a \\\"b\\\"\\nc\"\n"
        );
    }

    #[test]
    fn a_log_file_gets_errors_and_only_asked_for_debug_lines() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("log.json");
        let quiet = Logger::open(Some(&path), LogFormat::Json, false).unwrap();
        quiet.log(Level::Debug, "hidden");
        quiet.log(Level::Error, "first");
        let verbose = Logger::open(Some(&path), LogFormat::Json, true).unwrap();
        verbose.log(Level::Debug, "shown");
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let messages: Vec<(&str, &str)> = lines
            .iter()
            .map(|line| {
                (
                    line["level"].as_str().unwrap(),
                    line["msg"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(messages, [("error", "first"), ("debug", "shown")]);
    }

    #[test]
    fn an_unwritable_log_path_is_named() {
        let error = Logger::open(
            Some(Path::new("/nonexistent-dir/log.json")),
            LogFormat::Json,
            false,
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("/nonexistent-dir/log.json"));
    }
}
