//! The container's configuration, kept in its state directory from create
//! to delete.
//!
//! Every verb after create needs parts of config.json: `exec` the
//! namespaces and seccomp profile, `start` and `delete` the hooks. runc keeps
//! the configuration in its state for the same reason: containerd deletes a
//! container after it has removed the bundle (CLIENTS.md), and a bundle
//! edited after create must not change what the running container is.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use husk_init::engine::spec::parse_config;
use husk_init::engine::{Bundle, SpecError};

use crate::state::ContainerRecord;

/// The copy's name in `<root>/<id>/`.
pub const SAVED_CONFIG: &str = "config.json";

#[derive(Debug, thiserror::Error)]
pub enum SavedConfigError {
    #[error("serialize the container's configuration for {}", path.display())]
    Serialize {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("save the container's configuration to {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "read the configuration saved at create, {}; the state directory was changed by \
         hand: delete the container with husk delete --force",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The spec module's errors name the file and the field.
    #[error(transparent)]
    Parse(#[from] SpecError),
}

/// Writes the bundle's parsed configuration to `<state_dir>/config.json`.
pub fn save(bundle: &Bundle, state_dir: &Path) -> Result<(), SavedConfigError> {
    let path = state_dir.join(SAVED_CONFIG);
    let json = serde_json::to_vec(&bundle.spec).map_err(|source| SavedConfigError::Serialize {
        path: path.clone(),
        source,
    })?;
    let write_error = |source| SavedConfigError::Write {
        path: path.clone(),
        source,
    };
    // 0600: the configuration may hold secrets in process.env.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_error)?;
    file.write_all(&json).map_err(write_error)
}

/// The container's bundle as it was at create: the saved configuration,
/// with the bundle and root filesystem paths the state records. Errors
/// about the configuration name the bundle's config.json, which is where
/// the user wrote it.
pub fn load(container: &ContainerRecord) -> Result<Bundle, SavedConfigError> {
    let path = container.state_dir.join(SAVED_CONFIG);
    let text = fs::read_to_string(&path).map_err(|source| SavedConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let spec = parse_config(&path, &text)?;
    Ok(Bundle {
        path: container.bundle.clone(),
        config_path: container.bundle.join("config.json"),
        rootfs: container.husk.rootfs.clone(),
        spec,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use husk_init::engine::load_bundle;

    use super::*;
    use crate::backend::test_record;

    fn bundle_in(directory: &Path) -> Bundle {
        fs::create_dir_all(directory.join("rootfs")).unwrap();
        fs::write(
            directory.join("config.json"),
            r#"{
                "ociVersion": "1.3.0",
                "root": {"path": "rootfs"},
                "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
                            "env": ["SECRET=1"]},
                "hooks": {"poststop": [{"path": "/bin/true", "args": ["true", "x"]}]},
                "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
                          "cgroupsPath": "/custom/c1"}
            }"#,
        )
        .unwrap();
        load_bundle(directory).unwrap()
    }

    fn record_for(bundle: &Bundle, state_dir: &Path) -> ContainerRecord {
        let mut record = test_record(&bundle.path, state_dir);
        record.husk.rootfs = bundle.rootfs.clone();
        record
    }

    #[test]
    fn the_saved_configuration_outlives_the_bundle() {
        let directory = tempfile::tempdir().unwrap();
        let bundle_dir = directory.path().join("bundle");
        let state_dir = directory.path().join("state");
        fs::create_dir_all(&state_dir).unwrap();
        let bundle = bundle_in(&bundle_dir);
        save(&bundle, &state_dir).unwrap();
        let mode = fs::metadata(state_dir.join(SAVED_CONFIG))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // containerd removes the bundle before its last delete.
        fs::remove_dir_all(&bundle_dir).unwrap();
        let loaded = load(&record_for(&bundle, &state_dir)).unwrap();
        assert_eq!(loaded.spec, bundle.spec);
        assert_eq!(loaded.path, bundle.path);
        assert_eq!(loaded.rootfs, bundle.rootfs);
        assert_eq!(loaded.config_path, bundle_dir.join("config.json"));
    }

    #[test]
    fn a_missing_copy_says_what_to_do() {
        let directory = tempfile::tempdir().unwrap();
        let bundle = bundle_in(&directory.path().join("bundle"));
        let error = load(&record_for(&bundle, directory.path())).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("husk delete --force"), "{message}");
        assert!(
            message.contains(&directory.path().join(SAVED_CONFIG).display().to_string()),
            "{message}"
        );
    }
}
