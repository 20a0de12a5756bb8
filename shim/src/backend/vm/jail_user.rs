//! The user a jailed husk-vmm runs as, and handing it the files it writes.
//!
//! By default each container's husk-vmm gets a uid and gid of its own,
//! drawn from [`PER_CONTAINER_FIRST`] .. + [`PER_CONTAINER_COUNT`] by a hash
//! of the container's state directory (`<root>/<id>`): ids no host account or
//! subordinate range (/etc/subuid, usually from 100000) uses, so that a
//! husk-vmm that escaped its jail owns nothing on the host but its own
//! container's image and sockets, and cannot signal or ptrace another
//! container's husk-vmm (kill(2) and ptrace(2) need the same uid without
//! capabilities). Two containers sharing a uid by the hash (1 in 65536 per
//! pair) are still apart by their namespaces and seccomp.
//!
//! The jailed user must be able to write the rootfs image and create its
//! sockets; husk-vmm connects to the console socket before it enters the
//! jail, and the jail makes missing log files and the KVM node for the
//! user itself (husk-vmm's jail module).

use std::fs::{self, OpenOptions};
use std::hash::Hasher;
use std::io;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::{Path, PathBuf};

use super::layout::VmFiles;
use crate::config::{JailUserName, JailUserSetting};

/// The first uid (and gid) of the per-container range: above the 32-bit
/// ranges tools hand out for subordinate ids, below 2^31 so that no tool
/// reads it as negative.
pub const PER_CONTAINER_FIRST: u32 = 2_100_000_000;
/// How many ids the per-container range holds.
pub const PER_CONTAINER_COUNT: u32 = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JailUser {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("give {} to husk-vmm's user {uid}:{gid} (the configuration's jail_user; \"root\" keeps uid 0)", path.display())]
pub struct HandOverError {
    path: PathBuf,
    uid: u32,
    gid: u32,
    #[source]
    source: io::Error,
}

/// The user for the container whose state directory is `state_dir`:
/// `None` means uid 0 (the setting `"root"`).
pub fn for_container(setting: Option<JailUserSetting>, state_dir: &Path) -> Option<JailUser> {
    match setting.unwrap_or(JailUserSetting::Named(JailUserName::PerContainer)) {
        JailUserSetting::Named(JailUserName::Root) => None,
        JailUserSetting::Fixed { uid, gid } => Some(JailUser { uid, gid }),
        JailUserSetting::Named(JailUserName::PerContainer) => {
            let id = PER_CONTAINER_FIRST + per_container_offset(state_dir);
            Some(JailUser { uid: id, gid: id })
        }
    }
}

/// FNV-1a over the path: stable across husk versions and hosts, unlike
/// std's hasher, so a container keeps its user.
fn per_container_offset(state_dir: &Path) -> u32 {
    let mut hasher = Fnv1a::default();
    hasher.write(state_dir.as_os_str().as_encoded_bytes());
    (hasher.finish() % u64::from(PER_CONTAINER_COUNT)) as u32
}

struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A file husk-vmm only reads must be readable by others: the jail binds
/// it at the same path, so the directories above it do not matter, but
/// its own mode does. Checked before anything starts, so that the error
/// names the file instead of a failed open inside the jail.
pub fn check_readable(user: JailUser, files: &[&Path]) -> Result<(), HandOverError> {
    for path in files {
        let metadata = fs::metadata(path).map_err(|source| HandOverError {
            path: path.to_path_buf(),
            uid: user.uid,
            gid: user.gid,
            source,
        })?;
        let readable = metadata.mode() & 0o004 != 0
            || (metadata.uid() == user.uid && metadata.mode() & 0o400 != 0)
            || (metadata.gid() == user.gid && metadata.mode() & 0o040 != 0);
        if !readable {
            return Err(HandOverError {
                path: path.to_path_buf(),
                uid: user.uid,
                gid: user.gid,
                source: io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "mode {:o} does not let it read the file: chmod o+r it",
                        metadata.mode() & 0o7777
                    ),
                ),
            });
        }
    }
    Ok(())
}

/// Gives `user` what husk-vmm opens of the container's own: the rootfs
/// image, the copies of bind-mounted directories (made 0600 like the
/// rootfs, since they hold the host's files; husk-vmm opens them read-only
/// through a read-only bind), the socket directory and its two logs (made
/// here if missing, so that a message husk writes into the log before
/// husk-vmm runs keeps the file husk-vmm can append to).
pub fn hand_over(
    files: &VmFiles,
    directory_images: &[PathBuf],
    user: JailUser,
) -> Result<(), HandOverError> {
    let give = |path: &Path| {
        chown(path, Some(user.uid), Some(user.gid)).map_err(|source| HandOverError {
            path: path.to_path_buf(),
            uid: user.uid,
            gid: user.gid,
            source,
        })
    };
    for log in [&files.vmm_log, &files.console_log] {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| HandOverError {
                path: log.clone(),
                uid: user.uid,
                gid: user.gid,
                source,
            })?;
        give(log)?;
    }
    give(&files.image)?;
    for image in directory_images {
        give(image)?;
    }
    if let Some(socket_dir) = &files.socket_dir {
        give(socket_dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn each_container_gets_a_stable_user_of_its_own_in_the_range() {
        let a = for_container(None, Path::new("/run/husk/a")).unwrap();
        assert_eq!(a.uid, a.gid);
        assert!((PER_CONTAINER_FIRST..PER_CONTAINER_FIRST + PER_CONTAINER_COUNT).contains(&a.uid));
        let again = for_container(None, Path::new("/run/husk/a"));
        assert_eq!(again, Some(a), "stable");
        assert_ne!(for_container(None, Path::new("/run/husk/b")), Some(a));
        assert_ne!(for_container(None, Path::new("/other/a")), Some(a));
        // 1000 IDs spread over the range: few share a uid.
        let mut uids: Vec<u32> = (0..1000)
            .map(|n| {
                let state_dir = PathBuf::from(format!("/run/husk/c{n}"));
                for_container(None, &state_dir).unwrap().uid
            })
            .collect();
        uids.sort_unstable();
        uids.dedup();
        assert!(uids.len() > 980, "{} distinct of 1000", uids.len());
    }

    #[test]
    fn the_setting_picks_root_or_a_fixed_user() {
        let state_dir = Path::new("/run/husk/a");
        let root = JailUserSetting::Named(JailUserName::Root);
        assert_eq!(for_container(Some(root), state_dir), None);
        let fixed = JailUserSetting::Fixed { uid: 7, gid: 8 };
        assert_eq!(
            for_container(Some(fixed), state_dir),
            Some(JailUser { uid: 7, gid: 8 })
        );
    }

    #[test]
    fn files_husk_vmm_reads_must_be_readable_by_its_user() {
        let directory = tempfile::tempdir().unwrap();
        let kernel = directory.path().join("vmlinux");
        std::fs::write(&kernel, "kernel").unwrap();
        let user = JailUser {
            uid: 4321,
            gid: 4321,
        };
        std::fs::set_permissions(&kernel, fs::Permissions::from_mode(0o644)).unwrap();
        check_readable(user, &[&kernel]).unwrap();
        std::fs::set_permissions(&kernel, fs::Permissions::from_mode(0o600)).unwrap();
        let error = husk_init::engine::error_chain(&check_readable(user, &[&kernel]).unwrap_err());
        assert!(error.contains(&kernel.display().to_string()), "{error}");
        assert!(error.contains("mode 600"), "{error}");
        assert!(error.contains("chmod o+r"), "{error}");
        assert!(error.contains("\"root\""), "{error}");
    }

    #[test]
    fn the_writable_files_go_to_the_user() {
        // /proc/self belongs to the process's effective user.
        let euid = std::fs::metadata("/proc/self").unwrap().uid();
        assert_eq!(euid, 0, "this test chowns files: run it as root");
        let directory = tempfile::tempdir().unwrap();
        let state = directory.path().join("c1");
        std::fs::create_dir(&state).unwrap();
        let files = VmFiles::create(&state, directory.path()).unwrap();
        std::fs::write(&files.image, "image").unwrap();
        let copy = files.directory_image(0);
        std::fs::write(&copy, "copy").unwrap();
        let user = JailUser {
            uid: 4321,
            gid: 8765,
        };
        hand_over(&files, std::slice::from_ref(&copy), user).unwrap();
        for path in [
            &files.image,
            &copy,
            &files.vmm_log,
            &files.console_log,
            files.socket_dir.as_ref().unwrap(),
        ] {
            let metadata = std::fs::metadata(path).unwrap();
            assert_eq!((metadata.uid(), metadata.gid()), (4321, 8765), "{path:?}");
        }
        let state_owner = std::fs::metadata(&state).unwrap().uid();
        assert_eq!(state_owner, 0, "the state directory stays root's");
    }
}
