//! Resolving a container path inside the root filesystem, following
//! symlinks as if the root were "/" (the semantics of runc's
//! filepath-securejoin): an absolute link target restarts at the root, and
//! ".." never climbs above it. A mount destination like /data where the
//! image made `data -> /../../etc` ends up at `<rootfs>/etc`, not on the
//! host's /etc.
//!
//! Components that do not exist yet are taken as they are; the caller
//! creates them. The result can still be raced by a process that changes
//! the rootfs at the same moment, which is why it is resolved right before
//! each mount (runc does the same, plus a /proc/self/fd check).

use std::io;
use std::path::{Component, Path, PathBuf};

/// Linux's own limit on symlinks followed in one lookup (path_resolution(7)
/// says 40; MAXSYMLINKS).
const MAX_SYMLINKS: u32 = 40;

/// `container_path` (absolute or not, taken relative to the root) resolved
/// inside `root`. Fails with ELOOP past [`MAX_SYMLINKS`] links and with the
/// error of any lstat other than "does not exist".
pub fn secure_join(root: &Path, container_path: &Path) -> io::Result<PathBuf> {
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    // Components still to walk, last one first.
    let mut pending: Vec<std::ffi::OsString> = components(container_path);
    pending.reverse();
    let mut links_followed = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(resolved.iter().collect::<PathBuf>()).join(&part);
        let metadata = match std::fs::symlink_metadata(&candidate) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                resolved.push(part);
                continue;
            }
            Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => {
                resolved.push(part);
                continue;
            }
            Err(error) => return Err(error),
        };
        if !metadata.file_type().is_symlink() {
            resolved.push(part);
            continue;
        }
        links_followed += 1;
        if links_followed > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let target = std::fs::read_link(&candidate)?;
        if target.is_absolute() {
            resolved.clear();
        }
        let mut target_parts = components(&target);
        target_parts.reverse();
        pending.extend(target_parts);
    }
    Ok(root.join(resolved.iter().collect::<PathBuf>()))
}

/// The normal and ".." components of a path ("." and "/" dropped).
fn components(path: &Path) -> Vec<std::ffi::OsString> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::engine::test_bundle::TestDir;

    #[test]
    fn plain_paths_are_joined() {
        let root = TestDir::new("join-plain");
        assert_eq!(
            secure_join(root.path(), Path::new("/a/b/c")).unwrap(),
            root.join("a/b/c")
        );
    }

    #[test]
    fn dot_dot_stops_at_the_root() {
        let root = TestDir::new("join-dotdot");
        assert_eq!(
            secure_join(root.path(), Path::new("/../../etc/passwd")).unwrap(),
            root.join("etc/passwd")
        );
    }

    #[test]
    fn absolute_symlinks_restart_at_the_root() {
        let root = TestDir::new("join-abs");
        fs::create_dir_all(root.join("real")).unwrap();
        symlink("/../../real", root.join("data")).unwrap();
        assert_eq!(
            secure_join(root.path(), Path::new("/data/file")).unwrap(),
            root.join("real/file")
        );
    }

    #[test]
    fn relative_symlinks_resolve_from_their_directory() {
        let root = TestDir::new("join-rel");
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::create_dir_all(root.join("lib")).unwrap();
        symlink("../../../../lib", root.join("usr/lib/escape")).unwrap();
        assert_eq!(
            secure_join(root.path(), Path::new("/usr/lib/escape/x")).unwrap(),
            root.join("lib/x")
        );
    }

    #[test]
    fn symlink_loops_fail_with_eloop() {
        let root = TestDir::new("join-loop");
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        let error = secure_join(root.path(), Path::new("/a")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
    }
}
