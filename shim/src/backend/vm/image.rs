//! The container's root filesystem as a disk image: the bundle's rootfs
//! directory copied into a new ext4 filesystem by `mkfs.ext4 -d`
//! (e2fsprogs 1.43 or later), which the VM attaches as /dev/vda
//! (DESIGN.md "Root filesystem into the guest").
//!
//! The image is a sparse file: only what mkfs writes takes space on the
//! host. Its size is what the rootfs holds plus room to write:
//!
//! ```text
//! content  = every regular file and directory rounded up to 4 KiB blocks
//!            (hard links once), plus a block per symlink too long to live
//!            in its inode (60 bytes or more)
//! inodes   = the rootfs's entries + 25% + 4096, at least one per 16 KiB
//!            of image (ext4's default ratio)
//! size     = content + 25% + 64 MiB + 256 bytes per inode, in whole MiB
//! ```
//!
//! The 25% and 64 MiB cover ext4's own metadata (journal, bitmaps, group
//! descriptors) and leave the container room for its writes. Writes stay in
//! the image and are dropped with it at `delete`; the bundle's rootfs
//! directory is never changed.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
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
/// Inodes to spare beyond what the rootfs uses.
const SPARE_INODES: u64 = 4096;
/// Symlink targets shorter than this live in the inode itself ("fast
/// symlinks", ext4 i_block is 60 bytes).
const FAST_SYMLINK_MAX: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("read {} to size the root filesystem image", path.display())]
    Walk {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create the root filesystem image {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "run mkfs.ext4 to build the root filesystem image (install e2fsprogs 1.43 or later, \
         which provides mkfs.ext4 -d)"
    )]
    Spawn(#[source] io::Error),
    #[error(
        "mkfs.ext4 -d {} {} failed ({status}): {stderr}",
        rootfs.display(),
        image.display()
    )]
    Mkfs {
        rootfs: PathBuf,
        image: PathBuf,
        status: String,
        stderr: String,
    },
}

/// What a rootfs directory holds, as far as the image's size goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootfsUsage {
    /// Bytes of blocks its files, directories and long symlinks take.
    pub content_bytes: u64,
    /// Files, directories, links and special files.
    pub inodes: u64,
}

/// The image to make for a rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePlan {
    pub size_bytes: u64,
    pub inodes: u64,
}

/// Walks `rootfs` without following symlinks, counting each inode once.
pub fn measure(rootfs: &Path) -> Result<RootfsUsage, ImageError> {
    let walk_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Walk { path, source }
    };
    let mut usage = RootfsUsage::default();
    let mut seen = HashSet::new();
    let mut pending = vec![rootfs.to_path_buf()];
    while let Some(path) = pending.pop() {
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

/// The image size and inode count for a rootfs (see the module
/// documentation).
pub fn plan(usage: RootfsUsage) -> ImagePlan {
    let with_headroom = usage.content_bytes + usage.content_bytes / 4 + HEADROOM_BYTES;
    let mut inodes = usage.inodes + usage.inodes / 4 + SPARE_INODES;
    inodes = inodes.max(with_headroom / BYTES_PER_INODE);
    let size_bytes = (with_headroom + inodes * INODE_SIZE).next_multiple_of(MIB);
    ImagePlan { size_bytes, inodes }
}

/// Builds the image of `rootfs` at `image` (which must not exist).
pub fn build(rootfs: &Path, image: &Path) -> Result<ImagePlan, ImageError> {
    let plan = plan(measure(rootfs)?);
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
    let output = mkfs_command(rootfs, image, plan)
        .stdin(Stdio::null())
        .output()
        .map_err(ImageError::Spawn)?;
    if !output.status.success() {
        return Err(ImageError::Mkfs {
            rootfs: rootfs.to_path_buf(),
            image: image.to_path_buf(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(plan)
}

/// `mkfs.ext4 -q -F -N INODES -d ROOTFS IMAGE SIZE`: quiet, on a regular
/// file without asking, with the rootfs's files copied in (owners, modes,
/// links, device nodes and extended attributes kept).
fn mkfs_command(rootfs: &Path, image: &Path, plan: ImagePlan) -> Command {
    let mut command = Command::new("mkfs.ext4");
    command
        .args(["-q", "-F", "-N"])
        .arg(plan.inodes.to_string())
        .arg("-d")
        .arg(rootfs)
        .arg(image)
        .arg(format!("{}k", plan.size_bytes / 1024));
    command
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
        let small = plan(RootfsUsage {
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

        let big = plan(RootfsUsage {
            content_bytes: 2 << 30,
            inodes: 60_000,
        });
        assert!(big.size_bytes >= (2u64 << 30) + (512 << 20) + 64 * MIB);
        assert!(big.size_bytes < (2u64 << 30) + (700 << 20), "{big:?}");

        // Many tiny files: the inode count follows the files, not the size.
        let many = plan(RootfsUsage {
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
