//! Filesystem images of host directories: the bundle's rootfs, and each
//! bind-mounted host directory, copied into a new ext4 filesystem by
//! `mkfs.ext4 -d` (e2fsprogs 1.43 or later). The VM attaches the rootfs
//! image as /dev/vda and the directory copies read-only after it (DESIGN.md
//! "Root filesystem into the guest").
//!
//! An image is a sparse file: only what mkfs writes takes space on the
//! host. Its size is what the directory holds plus room to write:
//!
//! ```text
//! content  = every regular file and directory rounded up to 4 KiB blocks
//!            (hard links once), plus a block per symlink too long to live
//!            in its inode (60 bytes or more)
//! inodes   = the directory's entries + 25% + 4096, at least one per 16 KiB
//!            of image (ext4's default ratio)
//! size     = content + 25% + 64 MiB + 256 bytes per inode, in whole MiB
//! ```
//!
//! The 25% and 64 MiB cover ext4's own metadata (journal, bitmaps, group
//! descriptors) and leave the container room for its writes. Writes stay in
//! the image and are dropped with it at `delete`; the bundle's rootfs
//! directory is never changed. A directory copy is sized the same way; it
//! is attached read-only, so the room it does not use costs only length,
//! not blocks, on the host.
//!
//! A directory copy ([`ImagePurpose::DirectoryCopy`]) shows what the
//! directory holds and nothing else, as a bind mount would: mke2fs's own
//! `lost+found` goes unless the directory has one, and the image's root
//! takes the directory's owner and permissions, which `mkfs.ext4 -d` leaves
//! at root's 0755 (both through `debugfs -w`, also from e2fsprogs).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BLOCK: u64 = 4096;
const MIB: u64 = 1 << 20;
/// Room on top of the content, for metadata and the container's writes.
const HEADROOM_BYTES: u64 = 64 * MIB;
/// Bytes of inode table per inode (mke2fs's default inode size).
const INODE_SIZE: u64 = 256;
/// ext4's default bytes-per-inode ratio (mke2fs.conf `inode_ratio`).
const BYTES_PER_INODE: u64 = 16 * 1024;
/// Inodes to spare beyond what the directory uses.
const SPARE_INODES: u64 = 4096;
/// Symlink targets shorter than this live in the inode itself ("fast
/// symlinks", ext4 i_block is 60 bytes).
const FAST_SYMLINK_MAX: u64 = 60;
/// The directory mke2fs makes in every new filesystem's root.
const LOST_AND_FOUND: &str = "lost+found";
/// strerror(ENOSPC) in the C locale, which the e2fsprogs tools run in.
const NO_SPACE: &str = "No space left on device";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("read {} to size its image", path.display())]
    Walk {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create the image {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "run {program} to build a filesystem image (install e2fsprogs 1.43 or later, which \
         provides mkfs.ext4 -d and debugfs)"
    )]
    Spawn {
        program: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "no space left on the filesystem holding {} while mkfs.ext4 copied {} into it (the \
         files take {content_mib} MiB, the image up to {image_mib} MiB); free space there, or \
         give husk a --root on a filesystem with more room",
        image.display(),
        directory.display()
    )]
    NoSpace {
        directory: PathBuf,
        image: PathBuf,
        content_mib: u64,
        image_mib: u64,
    },
    #[error(
        "mkfs.ext4 -d {} {} failed ({status}): {stderr}",
        directory.display(),
        image.display()
    )]
    Mkfs {
        directory: PathBuf,
        image: PathBuf,
        status: String,
        stderr: String,
    },
    #[error(
        "debugfs -w {} (giving the image's root the owner and mode of {}) failed ({status}): \
         {stderr}",
        image.display(),
        directory.display()
    )]
    Debugfs {
        directory: PathBuf,
        image: PathBuf,
        status: String,
        stderr: String,
    },
}

/// What an image is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePurpose {
    /// The container's root filesystem, which the guest mounts writable.
    RootFilesystem,
    /// A read-only copy of a bind-mounted host directory, which should look
    /// like the directory itself (see the module documentation).
    DirectoryCopy,
}

/// What a directory holds, as far as its image's size goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryUsage {
    /// Bytes of blocks its files, directories and long symlinks take.
    pub content_bytes: u64,
    /// Files, directories, links and special files.
    pub inodes: u64,
}

/// The image to make for a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePlan {
    pub size_bytes: u64,
    pub inodes: u64,
}

/// Walks `directory` without following symlinks, counting each inode once.
pub fn measure(directory: &Path) -> Result<DirectoryUsage, ImageError> {
    measure_up_to(directory, u64::MAX)
}

/// [`measure`], stopping early once the content passes `limit_bytes`
/// (then the usage returned is more than the limit, and partial): a bind
/// mount of a huge tree is refused without walking all of it.
pub fn measure_up_to(directory: &Path, limit_bytes: u64) -> Result<DirectoryUsage, ImageError> {
    let walk_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Walk { path, source }
    };
    let mut usage = DirectoryUsage::default();
    let mut seen = HashSet::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(path) = pending.pop() {
        if usage.content_bytes > limit_bytes {
            break;
        }
        let metadata = fs::symlink_metadata(&path).map_err(walk_error(&path))?;
        if metadata.nlink() > 1
            && !metadata.is_dir()
            && !seen.insert((metadata.dev(), metadata.ino()))
        {
            continue;
        }
        usage.inodes += 1;
        let file_type = metadata.file_type();
        if file_type.is_dir() {
            usage.content_bytes += metadata.len().max(BLOCK).next_multiple_of(BLOCK);
            for entry in fs::read_dir(&path).map_err(walk_error(&path))? {
                pending.push(entry.map_err(walk_error(&path))?.path());
            }
        } else if file_type.is_file() {
            usage.content_bytes += metadata.len().next_multiple_of(BLOCK);
        } else if file_type.is_symlink() && metadata.len() >= FAST_SYMLINK_MAX {
            usage.content_bytes += BLOCK;
        }
    }
    Ok(usage)
}

/// The image size and inode count for a directory (see the module
/// documentation).
pub fn plan(usage: DirectoryUsage) -> ImagePlan {
    let with_headroom = usage.content_bytes + usage.content_bytes / 4 + HEADROOM_BYTES;
    let mut inodes = usage.inodes + usage.inodes / 4 + SPARE_INODES;
    inodes = inodes.max(with_headroom / BYTES_PER_INODE);
    let size_bytes = (with_headroom + inodes * INODE_SIZE).next_multiple_of(MIB);
    ImagePlan { size_bytes, inodes }
}

/// Builds the image of `rootfs` at `image` (which must not exist).
pub fn build(rootfs: &Path, image: &Path) -> Result<ImagePlan, ImageError> {
    build_measured(
        rootfs,
        measure(rootfs)?,
        image,
        ImagePurpose::RootFilesystem,
    )
}

/// Builds the image of `directory`, already measured as `usage`, at `image`
/// (which must not exist).
pub fn build_measured(
    directory: &Path,
    usage: DirectoryUsage,
    image: &Path,
    purpose: ImagePurpose,
) -> Result<ImagePlan, ImageError> {
    let plan = plan(usage);
    // A sparse file of the full size: mkfs writes only metadata and the
    // copied files, and discards (punches holes in) the rest.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(image)
        .and_then(|file: File| file.set_len(plan.size_bytes).map(|()| file))
        .map_err(|source| ImageError::Create {
            path: image.to_path_buf(),
            source,
        })?;
    drop(file);
    let output = mkfs_command(directory, image, plan)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn {
            program: "mkfs.ext4",
            source,
        })?;
    if !output.status.success() {
        let stderr = one_line(&output.stderr);
        if stderr.contains(NO_SPACE) {
            return Err(ImageError::NoSpace {
                directory: directory.to_path_buf(),
                image: image.to_path_buf(),
                content_mib: usage.content_bytes.div_ceil(MIB),
                image_mib: plan.size_bytes / MIB,
            });
        }
        return Err(ImageError::Mkfs {
            directory: directory.to_path_buf(),
            image: image.to_path_buf(),
            status: output.status.to_string(),
            stderr,
        });
    }
    if purpose == ImagePurpose::DirectoryCopy {
        make_root_match(directory, image)?;
    }
    Ok(plan)
}

/// A tool's stderr as one line of an error message: its lines, trimmed,
/// joined with "; ".
fn one_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// `mkfs.ext4 -q -F -N INODES -d DIRECTORY IMAGE SIZE`: quiet, on a regular
/// file without asking, with the directory's files copied in (owners,
/// modes, links, device nodes and extended attributes kept). In the C
/// locale, so that its messages read the same whatever the caller's.
fn mkfs_command(directory: &Path, image: &Path, plan: ImagePlan) -> Command {
    let mut command = Command::new("mkfs.ext4");
    command
        .env("LC_ALL", "C")
        .args(["-q", "-F", "-N"])
        .arg(plan.inodes.to_string())
        .arg("-d")
        .arg(directory)
        .arg(image)
        .arg(format!("{}k", plan.size_bytes / 1024));
    command
}

/// The debugfs requests that make the image's root directory look like
/// `directory`: its owner and permissions, and no lost+found it lacks.
fn root_requests(directory: &Path) -> Result<String, ImageError> {
    let metadata = fs::metadata(directory).map_err(|source| ImageError::Walk {
        path: directory.to_path_buf(),
        source,
    })?;
    // set_inode_field writes the 32-bit uid and gid (low and high halves)
    // and the whole i_mode, so the directory type bits go with the mode.
    let mut requests = format!(
        "set_inode_field / mode 0{:o}\nset_inode_field / uid {}\nset_inode_field / gid {}\n",
        metadata.mode(),
        metadata.uid(),
        metadata.gid()
    );
    if fs::symlink_metadata(directory.join(LOST_AND_FOUND)).is_err() {
        requests.push_str(&format!("rmdir /{LOST_AND_FOUND}\n"));
    }
    Ok(requests)
}

/// Runs [`root_requests`] on `image` with `debugfs -w -f -`. debugfs
/// reports a failed request on stderr and still exits 0, so any line of
/// its stderr past the version banner is a failure.
fn make_root_match(directory: &Path, image: &Path) -> Result<(), ImageError> {
    let requests = root_requests(directory)?;
    let spawn_error = |source| ImageError::Spawn {
        program: "debugfs",
        source,
    };
    let mut child = Command::new("debugfs")
        .env("LC_ALL", "C")
        .args(["-w", "-f", "-"])
        .arg(image)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(requests.as_bytes()).map_err(spawn_error)?;
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("debugfs "))
        .collect();
    if !output.status.success() || !complaints.is_empty() {
        return Err(ImageError::Debugfs {
            directory: directory.to_path_buf(),
            image: image.to_path_buf(),
            status: output.status.to_string(),
            stderr: complaints.join("; "),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn the_walk_counts_blocks_and_inodes_once_per_hard_link() {
        let directory = tempfile::tempdir().unwrap();
        let rootfs = directory.path().join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::write(rootfs.join("bin/tool"), vec![7u8; 5000]).unwrap();
        fs::hard_link(rootfs.join("bin/tool"), rootfs.join("bin/tool-again")).unwrap();
        fs::write(rootfs.join("empty"), b"").unwrap();
        symlink("tool", rootfs.join("bin/short-link")).unwrap();
        symlink("x".repeat(80), rootfs.join("long-link")).unwrap();
        let usage = measure(&rootfs).unwrap();
        // rootfs, bin, tool (linked twice, counted once), empty, two links.
        assert_eq!(usage.inodes, 6);
        let directory_bytes = |path: &Path| {
            fs::metadata(path)
                .unwrap()
                .len()
                .max(BLOCK)
                .next_multiple_of(BLOCK)
        };
        // The two directories, 8 KiB for tool's 5000 bytes, nothing for
        // the empty file and the short link, a block for the long link.
        assert_eq!(
            usage.content_bytes,
            directory_bytes(&rootfs) + directory_bytes(&rootfs.join("bin")) + 2 * BLOCK + BLOCK
        );
    }

    #[test]
    fn the_plan_adds_a_quarter_and_64_mib() {
        let small = plan(DirectoryUsage {
            content_bytes: 8 * MIB,
            inodes: 500,
        });
        assert_eq!(
            small.inodes,
            (8 * MIB + 2 * MIB + 64 * MIB) / BYTES_PER_INODE
        );
        assert!(small.size_bytes >= 8 * MIB + 2 * MIB + 64 * MIB);
        assert_eq!(small.size_bytes % MIB, 0);
        assert!(small.size_bytes < 80 * MIB, "{small:?}");

        let big = plan(DirectoryUsage {
            content_bytes: 2 << 30,
            inodes: 60_000,
        });
        assert!(big.size_bytes >= (2u64 << 30) + (512 << 20) + 64 * MIB);
        assert!(big.size_bytes < (2u64 << 30) + (700 << 20), "{big:?}");

        // Many tiny files: the inode count follows the files, not the size.
        let many = plan(DirectoryUsage {
            content_bytes: 40_000 * BLOCK,
            inodes: 40_000,
        });
        assert_eq!(many.inodes, 40_000 + 10_000 + SPARE_INODES);
        assert!(many.size_bytes >= 40_000 * BLOCK + many.inodes * INODE_SIZE);
    }

    #[test]
    fn an_image_holds_the_rootfs_and_is_sparse() {
        let directory = tempfile::tempdir().unwrap();
        let rootfs = directory.path().join("rootfs");
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::write(rootfs.join("etc/hello"), "hello from the rootfs\n").unwrap();
        let image = directory.path().join("rootfs.ext4");
        let planned = build(&rootfs, &image).expect("mkfs.ext4 (e2fsprogs) builds the image");
        let metadata = fs::metadata(&image).unwrap();
        assert_eq!(metadata.len(), planned.size_bytes);
        assert!(
            metadata.blocks() * 512 < planned.size_bytes / 4,
            "the image is not sparse: {} of {} bytes allocated",
            metadata.blocks() * 512,
            planned.size_bytes
        );
        // debugfs (e2fsprogs) reads the file back out of the image.
        let output = Command::new("debugfs")
            .args(["-R", "cat /etc/hello"])
            .arg(&image)
            .output()
            .expect("run debugfs (e2fsprogs)");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "hello from the rootfs\n"
        );
    }

    #[test]
    fn an_existing_image_is_not_overwritten() {
        let directory = tempfile::tempdir().unwrap();
        let rootfs = directory.path().join("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        let image = directory.path().join("rootfs.ext4");
        fs::write(&image, "precious").unwrap();
        let error = build(&rootfs, &image).unwrap_err();
        assert!(matches!(error, ImageError::Create { .. }), "{error:?}");
        assert_eq!(fs::read_to_string(&image).unwrap(), "precious");
    }
}
