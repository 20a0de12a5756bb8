//! Bundles on disk for the unit tests: a temporary directory with an empty
//! rootfs and a config.json, loaded through `load_bundle`.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::engine::spec::{load_bundle, Bundle};

/// runc 1.1's `runc spec` (with "terminal": false), the config most tests
/// start from.
pub const RUNC_SPEC: &str = include_str!("../../tests/fixtures/runc-spec.json");

pub struct TestBundle {
    dir: PathBuf,
    pub bundle: Bundle,
}

impl TestBundle {
    /// `edit` changes the runc default config before it is written.
    pub fn new(name: &str, edit: impl FnOnce(&mut Value)) -> Self {
        let dir = std::env::temp_dir().join(format!("husk-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let mut config: Value = serde_json::from_str(RUNC_SPEC).unwrap();
        edit(&mut config);
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        let bundle =
            load_bundle(&dir).unwrap_or_else(|error| panic!("test config refused: {error}"));
        Self { dir, bundle }
    }

    /// The rootfs, resolved.
    pub fn rootfs(&self) -> PathBuf {
        self.bundle.rootfs.clone()
    }
}

impl Drop for TestBundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
