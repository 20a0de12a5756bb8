//! Directories and bundles on disk for the unit tests: a scratch directory
//! removed on drop, and a bundle in one (an empty rootfs and a config.json)
//! loaded through `load_bundle`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::engine::spec::{load_bundle, Bundle};

/// runc 1.1's `runc spec` (with "terminal": false), the config most tests
/// start from.
pub const RUNC_SPEC: &str = include_str!("../../tests/fixtures/runc-spec.json");

/// An empty directory of its own under the system temp dir, removed with
/// everything in it on drop. Tests run in parallel threads of one process,
/// so the name carries the pid and a counter as well as `name`.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "husk-unit-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `relative` inside the directory.
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.0.join(relative)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub struct TestBundle {
    _dir: TestDir,
    pub bundle: Bundle,
}

impl TestBundle {
    /// `edit` changes the runc default config before it is written.
    pub fn new(name: &str, edit: impl FnOnce(&mut Value)) -> Self {
        let dir = TestDir::new(name);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let mut config: Value = serde_json::from_str(RUNC_SPEC).unwrap();
        edit(&mut config);
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        let bundle =
            load_bundle(dir.path()).unwrap_or_else(|error| panic!("test config refused: {error}"));
        Self { _dir: dir, bundle }
    }

    /// The rootfs, resolved.
    pub fn rootfs(&self) -> PathBuf {
        self.bundle.rootfs.clone()
    }
}
