//! `husk`: the runc-compatible OCI runtime command line.
//!
//! Errors end husk with one line on stderr, `husk: <message>`, and exit
//! status 1 (or 127/126 where the container's program was not found or not
//! executable, as podman and docker expect from runc); with `--log` the
//! message is also written to the log file, where containerd looks for it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use husk_init::engine::error_chain;
use husk_shim::backend::BackendError;
use husk_shim::cli::Cli;
use husk_shim::commands;
use husk_shim::logging::{self, LogFormat, Logger};

fn main() -> ExitCode {
    let started = Instant::now();
    let arguments: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&arguments) {
        Ok(cli) => cli,
        Err(error) => return usage_error(error, &arguments),
    };
    let logger = match Logger::open(
        cli.global.log.as_deref(),
        cli.global.log_format,
        cli.global.debug,
    ) {
        Ok(logger) => logger,
        Err(error) => {
            eprintln!("husk: {}", error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    logging::install(logger);
    logging::debug(format!("husk {}", quoted(&arguments[1..])));

    match commands::dispatch(cli, started) {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            let message = error_chain(error.as_ref());
            logging::error(&message);
            eprintln!("husk: {message}");
            let status = error
                .chain()
                .find_map(|cause| cause.downcast_ref::<BackendError>())
                .map_or(1, BackendError::exit_code);
            ExitCode::from(status)
        }
    }
}

/// Reports a command line clap refused: help and version go to stdout with
/// status 0; a mistake becomes one `husk: ...` line (also in the log file,
/// when the arguments name one) and status 1, as runc exits.
fn usage_error(error: clap::Error, arguments: &[OsString]) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    // clap's message spreads over lines (the problem, the missing
    // arguments, a tip) and ends with the usage; keep all but the usage.
    let rendered = error.to_string();
    let mut problem = String::new();
    for line in rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        if let Some(first) = line.strip_prefix("error: ") {
            problem.push_str(first);
        } else if line.starts_with("tip:") {
            problem.push_str(&format!(" ({line})"));
        } else {
            problem.push_str(&format!(" {line}"));
        }
    }
    let help = match verb(arguments) {
        Some(verb) => format!("husk {verb} --help"),
        None => "husk --help".to_string(),
    };
    let message = format!("{problem}; see {help}");
    if let Some((path, format)) = log_options(arguments) {
        if let Ok(logger) = Logger::open(Some(&path), format, false) {
            logger.log(logging::Level::Error, &message);
        }
    }
    eprintln!("husk: {message}");
    ExitCode::FAILURE
}

/// The verb among the arguments, if one is there.
fn verb(arguments: &[OsString]) -> Option<String> {
    let command = Cli::command();
    arguments.iter().skip(1).find_map(|argument| {
        let argument = argument.to_str()?;
        command
            .get_subcommands()
            .any(|verb| verb.get_name() == argument)
            .then(|| argument.to_string())
    })
}

/// `--log FILE` and `--log-format F` among arguments clap refused, so that
/// containerd still finds the error in its log file.
fn log_options(arguments: &[OsString]) -> Option<(PathBuf, LogFormat)> {
    let mut path = None;
    let mut format = LogFormat::Text;
    let mut words = arguments.iter().skip(1).filter_map(|word| word.to_str());
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (word, None),
        };
        let mut value = || inline.clone().or_else(|| words.next().map(str::to_string));
        match flag {
            "--log" => path = value().map(PathBuf::from),
            "--log-format" => {
                if let Some(parsed) =
                    value().and_then(|text| LogFormat::from_str(&text, false).ok())
                {
                    format = parsed;
                }
            }
            _ => {}
        }
    }
    path.map(|path| (path, format))
}

/// The arguments as one line, each quoted where it needs to be, for the
/// debug log.
fn quoted(arguments: &[OsString]) -> String {
    arguments
        .iter()
        .map(|argument| {
            let text = argument.to_string_lossy();
            if text.is_empty() || text.contains(char::is_whitespace) {
                format!("{text:?}")
            } else {
                text.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
