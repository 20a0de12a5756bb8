//! husk-mkinitramfs: writes the guest's initramfs, an uncompressed newc cpio
//! archive, from entries named on the command line. Needs no privileges:
//! device nodes exist only as archive entries until the kernel unpacks them.

mod newc;

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::newc::NewcWriter;

const USAGE: &str = "\
usage: husk-mkinitramfs OUTPUT ENTRY...

Entries, added in the order given (a directory before what it holds):
  --dir PATH:MODE                       e.g. --dir /dev:0755
  --file PATH=SOURCE:MODE               e.g. --file /init=target/husk-init:0755
  --char-device PATH=MAJOR,MINOR:MODE   e.g. --char-device /dev/console=5,1:0600
MODE is octal permission bits. Everything is owned by root with mtime 0.";

/// One archive entry as given on the command line.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Directory {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        source: PathBuf,
        mode: u32,
    },
    CharDevice {
        path: String,
        major: u32,
        minor: u32,
        mode: u32,
    },
}

fn main() {
    if let Err(error) = run(std::env::args().skip(1).collect()) {
        eprintln!("husk-mkinitramfs: {error:#}");
        std::process::exit(1);
    }
}

fn run(arguments: Vec<String>) -> anyhow::Result<()> {
    if arguments
        .iter()
        .any(|argument| argument == "--help" || argument == "-h")
    {
        println!("{USAGE}");
        return Ok(());
    }
    let Some((output, entries)) = arguments.split_first() else {
        bail!("no OUTPUT given\n{USAGE}");
    };
    let entries = parse_entries(entries)?;
    write_archive(Path::new(output), &entries)
}

fn parse_entries(arguments: &[String]) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut arguments = arguments.iter();
    while let Some(option) = arguments.next() {
        let Some(value) = arguments.next() else {
            bail!("{option} needs a value\n{USAGE}");
        };
        let entry = match option.as_str() {
            "--dir" => parse_directory(value),
            "--file" => parse_file(value),
            "--char-device" => parse_char_device(value),
            _ => bail!("unknown option {option:?}\n{USAGE}"),
        };
        entries.push(entry.with_context(|| format!("{option} {value:?}"))?);
    }
    Ok(entries)
}

/// `PATH:MODE`
fn parse_directory(value: &str) -> anyhow::Result<Entry> {
    let (path, mode) = split_mode(value)?;
    Ok(Entry::Directory {
        path: path.to_owned(),
        mode,
    })
}

/// `PATH=SOURCE:MODE`; SOURCE may itself hold `:` or `=`.
fn parse_file(value: &str) -> anyhow::Result<Entry> {
    let (target, mode) = split_mode(value)?;
    let Some((path, source)) = target.split_once('=') else {
        bail!("expected PATH=SOURCE:MODE");
    };
    Ok(Entry::File {
        path: path.to_owned(),
        source: PathBuf::from(source),
        mode,
    })
}

/// `PATH=MAJOR,MINOR:MODE`
fn parse_char_device(value: &str) -> anyhow::Result<Entry> {
    let (target, mode) = split_mode(value)?;
    let Some((path, numbers)) = target.split_once('=') else {
        bail!("expected PATH=MAJOR,MINOR:MODE");
    };
    let Some((major, minor)) = numbers.split_once(',') else {
        bail!("expected MAJOR,MINOR, found {numbers:?}");
    };
    Ok(Entry::CharDevice {
        path: path.to_owned(),
        major: major.parse().context("device major number")?,
        minor: minor.parse().context("device minor number")?,
        mode,
    })
}

/// Splits the trailing `:MODE` (octal) off an entry.
fn split_mode(value: &str) -> anyhow::Result<(&str, u32)> {
    let Some((rest, mode)) = value.rsplit_once(':') else {
        bail!("no :MODE at the end");
    };
    let mode = u32::from_str_radix(mode, 8)
        .with_context(|| format!("mode {mode:?} is not an octal number"))?;
    Ok((rest, mode))
}

/// Writes next to `output` and renames, so a failed run leaves no half
/// archive behind for the VMM to boot.
fn write_archive(output: &Path, entries: &[Entry]) -> anyhow::Result<()> {
    let mut partial_name = output.as_os_str().to_owned();
    partial_name.push(".partial");
    let partial = PathBuf::from(partial_name);
    let file =
        fs::File::create(&partial).with_context(|| format!("create {}", partial.display()))?;
    let result = add_entries(NewcWriter::new(BufWriter::new(file)), entries).and_then(|_| {
        fs::rename(&partial, output)
            .with_context(|| format!("rename {} to {}", partial.display(), output.display()))
    });
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

fn add_entries<W: std::io::Write>(
    mut writer: NewcWriter<W>,
    entries: &[Entry],
) -> anyhow::Result<W> {
    for entry in entries {
        match entry {
            Entry::Directory { path, mode } => writer.directory(path, *mode)?,
            Entry::File { path, source, mode } => {
                let contents =
                    fs::read(source).with_context(|| format!("read {}", source.display()))?;
                writer.file(path, *mode, &contents)?;
            }
            Entry::CharDevice {
                path,
                major,
                minor,
                mode,
            } => writer.char_device(path, *mode, *major, *minor)?,
        }
    }
    Ok(writer.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arguments(text: &[&str]) -> Vec<String> {
        text.iter().map(|argument| argument.to_string()).collect()
    }

    #[test]
    fn parses_each_kind_of_entry() {
        let entries = parse_entries(&arguments(&[
            "--dir",
            "/dev:0755",
            "--file",
            "/init=/build/a:b=c/husk-init:755",
            "--char-device",
            "/dev/console=5,1:0600",
        ]))
        .unwrap();
        assert_eq!(
            entries,
            [
                Entry::Directory {
                    path: "/dev".into(),
                    mode: 0o755
                },
                Entry::File {
                    path: "/init".into(),
                    source: "/build/a:b=c/husk-init".into(),
                    mode: 0o755
                },
                Entry::CharDevice {
                    path: "/dev/console".into(),
                    major: 5,
                    minor: 1,
                    mode: 0o600
                },
            ]
        );
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            &["--dir", "/dev"][..],
            &["--dir", "/dev:0789"],
            &["--file", "/init:0755"],
            &["--char-device", "/dev/console=5:0600"],
            &["--char-device", "/dev/console=x,1:0600"],
            &["--fifo", "/x:0600"],
            &["--dir"],
        ] {
            assert!(parse_entries(&arguments(bad)).is_err(), "{bad:?}");
        }
    }
}
