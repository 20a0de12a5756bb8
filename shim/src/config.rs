//! husk's configuration file: `/etc/husk/config.json`, or the file named by
//! the environment variable `HUSK_CONFIG`. It is optional and small:
//!
//! ```json
//! {"backend": "container"}
//! ```
//!
//! `backend` ("vm" or "container") is the backend `create` and `run` use
//! when neither `--backend` nor the bundle's `run.husk.backend` annotation
//! names one. `kernel`, `initramfs` and `vmm` are the paths of the guest
//! kernel (vmlinux), the guest initramfs and husk-vmm that the `vm` backend
//! boots with (see `backend::vm::artifacts` for where it looks otherwise).
//! `jail` (default true) jails husk-vmm, and `jail_user` says as whom it
//! runs there: `"per-container"` (default), `"root"`, or
//! `{"uid": N, "gid": N}` (see `backend::vm::jail_user`).
//! Unknown keys are refused, so that a typo does not silently change
//! nothing.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backend::BackendKind;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/husk/config.json";
pub const CONFIG_PATH_VARIABLE: &str = "HUSK_CONFIG";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuskConfig {
    /// The default backend for new containers.
    #[serde(default)]
    pub backend: Option<BackendKind>,
    /// The guest kernel (vmlinux) of the `vm` backend.
    #[serde(default)]
    pub kernel: Option<PathBuf>,
    /// The guest initramfs (holding husk-init) of the `vm` backend.
    #[serde(default)]
    pub initramfs: Option<PathBuf>,
    /// The husk-vmm binary of the `vm` backend.
    #[serde(default)]
    pub vmm: Option<PathBuf>,
    /// Whether husk-vmm jails itself (`--jail`: own namespaces, an empty
    /// root holding only its files, no capabilities) before it builds the
    /// VM; true unless set to false, which is for debugging only.
    #[serde(default)]
    pub jail: Option<bool>,
    /// Which user the jailed husk-vmm runs as (see [`JailUserSetting`]);
    /// a user of its own per container unless set.
    #[serde(default)]
    pub jail_user: Option<JailUserSetting>,
}

/// The configuration's `jail_user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum JailUserSetting {
    /// `"per-container"` or `"root"`.
    Named(JailUserName),
    /// `{"uid": N, "gid": N}`: every container's husk-vmm as this user.
    Fixed { uid: u32, gid: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JailUserName {
    /// A uid and gid of its own for each container, from a range no host
    /// account uses (the default).
    PerContainer,
    /// uid 0 without capabilities: for hosts where another uid cannot
    /// reach the container's files.
    Root,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read husk's configuration file {} (set {CONFIG_PATH_VARIABLE} to another file, or unset it)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a valid husk configuration (expected {{\"backend\": \"vm\" or \"container\", \"kernel\": PATH, \"initramfs\": PATH, \"vmm\": PATH, \"jail\": true or false, \"jail_user\": \"per-container\" or \"root\" or {{\"uid\": N, \"gid\": N}}}}, each optional)", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Where the configuration file is: `$HUSK_CONFIG` if set, else the default
/// path. The flag says whether the file must exist (a file the user named
/// must; the default one may be absent).
pub fn config_path() -> (PathBuf, bool) {
    match std::env::var_os(CONFIG_PATH_VARIABLE) {
        Some(path) if !path.is_empty() => (PathBuf::from(path), true),
        _ => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    }
}

/// Reads the configuration file (see [`config_path`]).
pub fn load() -> Result<(HuskConfig, PathBuf), ConfigError> {
    let (path, required) = config_path();
    let config = load_from(&path, required)?;
    Ok((config, path))
}

/// Reads the configuration at `path`; a missing file that is not
/// `required` gives the defaults.
pub fn load_from(path: &Path, required: bool) -> Result<HuskConfig, ConfigError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == ErrorKind::NotFound && !required => {
            return Ok(HuskConfig::default())
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    // An empty file configures nothing, like a missing one.
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(HuskConfig::default());
    }
    serde_json::from_slice(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_file_gives_the_defaults() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("config.json");
        assert_eq!(load_from(&path, false).unwrap(), HuskConfig::default());
        let error = load_from(&path, true).unwrap_err();
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn the_backend_is_read_and_typos_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("config.json");
        std::fs::write(&path, r#"{"backend": "container"}"#).unwrap();
        assert_eq!(
            load_from(&path, true).unwrap().backend,
            Some(BackendKind::Container)
        );
        std::fs::write(&path, r#"{"backnd": "vm"}"#).unwrap();
        let error = load_from(&path, true).unwrap_err();
        let message = husk_init::engine::error_chain(&error);
        assert!(message.contains("unknown field `backnd`"), "{message}");
        std::fs::write(&path, r#"{"backend": "jail"}"#).unwrap();
        assert!(load_from(&path, true).is_err());
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(load_from(&path, true).unwrap(), HuskConfig::default());
    }

    #[test]
    fn the_vm_backend_s_files_are_read() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"kernel": "/opt/husk/vmlinux", "initramfs": "/opt/husk/initramfs.cpio",
                "vmm": "/opt/husk/husk-vmm"}"#,
        )
        .unwrap();
        let config = load_from(&path, true).unwrap();
        assert_eq!(config.backend, None);
        assert_eq!(config.kernel, Some(PathBuf::from("/opt/husk/vmlinux")));
        assert_eq!(
            config.initramfs,
            Some(PathBuf::from("/opt/husk/initramfs.cpio"))
        );
        assert_eq!(config.vmm, Some(PathBuf::from("/opt/husk/husk-vmm")));
    }
}
