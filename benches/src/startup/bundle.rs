//! The OCI bundles every runtime runs: a busybox-static root filesystem
//! and the config.json `runc spec` writes, with the process and annotations
//! set. One config for every runtime, so each does the same work.
//!
//! Why `runc spec` and not `husk spec`: husk's template says
//! `"ociVersion": "1.3.0"`, which crun 1.8.1 (Debian 12) refuses; runc's
//! says 1.0.2-dev, which runc, crun and husk all accept, and the rest of
//! the two templates is the same (husk's mirrors runc's field for field).

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use std::{fs, io};

use serde_json::{json, Value};

use super::command::{self, CommandError};

/// Where Debian's busybox-static puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";
/// The applets the workloads use.
const APPLETS: [&str; 4] = ["sh", "true", "echo", "sleep"];
const SPEC_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "{BUSYBOX} is missing: install Debian's busybox-static (apt-get install busybox-static, \
         or scripts/install-host-deps)"
    )]
    NoBusybox,
    #[error("make the root filesystem {}", path.display())]
    Rootfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write the starter config.json with runc spec")]
    Spec(#[source] CommandError),
    #[error("read {}", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not the config.json runc spec writes", path.display())]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: no \"process\" object to set the arguments in", path.display())]
    NoProcess { path: PathBuf },
    #[error("write {}", path.display())]
    WriteConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A bundle directory: `config.json` and `rootfs/`.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
}

/// What a bundle runs and how husk should size its VM.
pub struct BundleSpec<'a> {
    pub args: &'a [&'a str],
    pub annotations: &'a [(&'a str, &'a str)],
}

impl Bundle {
    /// Makes `dir` (which must not exist) into a bundle running `spec`.
    pub fn create(dir: &Path, runc: &Path, spec: &BundleSpec<'_>) -> Result<Bundle, BundleError> {
        make_rootfs(&dir.join("rootfs"))?;
        let mut starter = Command::new(runc);
        starter.arg("spec").arg("--bundle").arg(dir);
        command::run(starter, SPEC_TIMEOUT).map_err(BundleError::Spec)?;
        let path = dir.join("config.json");
        let text = fs::read_to_string(&path).map_err(|source| BundleError::ReadConfig {
            path: path.clone(),
            source,
        })?;
        let mut config: Value =
            serde_json::from_str(&text).map_err(|source| BundleError::ParseConfig {
                path: path.clone(),
                source,
            })?;
        set_process(&mut config, spec)
            .ok_or_else(|| BundleError::NoProcess { path: path.clone() })?;
        let text = serde_json::to_string_pretty(&config).expect("a JSON value serialises");
        fs::write(&path, text).map_err(|source| BundleError::WriteConfig {
            path: path.clone(),
            source,
        })?;
        Ok(Bundle {
            dir: dir.to_path_buf(),
        })
    }
}

/// Sets the process arguments, turns the terminal off (the benchmark
/// reads the container's stdout through a pipe, as conmon does) and adds
/// the annotations. None when the config has no process object.
fn set_process(config: &mut Value, spec: &BundleSpec<'_>) -> Option<()> {
    let process = config.get_mut("process")?.as_object_mut()?;
    process.insert("terminal".to_string(), Value::Bool(false));
    process.insert("args".to_string(), json!(spec.args));
    let annotations: BTreeMap<&str, &str> = spec.annotations.iter().copied().collect();
    if !annotations.is_empty() {
        config
            .as_object_mut()?
            .insert("annotations".to_string(), json!(annotations));
    }
    Some(())
}

/// A root filesystem with busybox and links for the applets the workloads
/// run, the mount points the runtimes expect, and a root user.
fn make_rootfs(rootfs: &Path) -> Result<(), BundleError> {
    let busybox = Path::new(BUSYBOX);
    if !busybox.is_file() {
        return Err(BundleError::NoBusybox);
    }
    let error = |source| BundleError::Rootfs {
        path: rootfs.to_path_buf(),
        source,
    };
    for directory in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(directory)).map_err(error)?;
    }
    fs::copy(busybox, rootfs.join("bin/busybox")).map_err(error)?;
    for applet in APPLETS {
        symlink("busybox", rootfs.join("bin").join(applet)).map_err(error)?;
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").map_err(error)?;
    fs::write(rootfs.join("etc/group"), "root:x:0:\n").map_err(error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_and_annotations_are_set_and_the_rest_kept() {
        let mut config = json!({
            "ociVersion": "1.0.2-dev",
            "process": {"terminal": true, "args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": true}
        });
        set_process(
            &mut config,
            &BundleSpec {
                args: &["echo", "hi"],
                annotations: &[("run.husk.vm.memory-mib", "128")],
            },
        )
        .unwrap();
        assert_eq!(
            config,
            json!({
                "ociVersion": "1.0.2-dev",
                "process": {"terminal": false, "args": ["echo", "hi"], "cwd": "/"},
                "root": {"path": "rootfs", "readonly": true},
                "annotations": {"run.husk.vm.memory-mib": "128"}
            })
        );
        assert_eq!(
            set_process(
                &mut json!({}),
                &BundleSpec {
                    args: &[],
                    annotations: &[]
                }
            ),
            None
        );
    }
}
