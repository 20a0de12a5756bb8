//! Bind-mounted host directories in the VM: until there is a shared
//! filesystem (DESIGN.md "Root filesystem into the guest", virtio-fs
//! later), each one arrives as a **read-only copy** taken at create.
//!
//! `create` measures every directory first ([`plan`]), refusing more than
//! [`MAX_DIRECTORY_BYTES`] in all before anything is built; then makes an
//! ext4 image of each in the state directory with the same code as the
//! rootfs image ([`build`]; see the `image` module), which husk-vmm
//! attaches read-only after the rootfs disk: the first directory is
//! `/dev/vdb`, the next `/dev/vdc`, and so on. The guest mounts each disk
//! read-only and binds it where config.json says, with the mount's own
//! options plus `ro`. Writes in the container fail (EROFS) rather than
//! vanish; changes on the host after create do not reach the container.
//! The images go with the other files at `delete`, or when create fails.

use std::path::{Path, PathBuf};

use husk_protocol::DirectoryMount;

use super::guest_spec::HostDirectory;
use super::image::{self, DirectoryUsage, ImageError, ImagePurpose};
use super::layout::VmFiles;

/// The most bind-mounted host directories one container may have: each
/// takes a virtio device, and a VM has at most 19 of them
/// (`husk_vmm::config::MAX_VIRTIO_DEVICES`), of which the rootfs disk,
/// vsock and rng take three; twelve leaves room for the devices to come.
pub const MAX_DIRECTORIES: usize = 12;

/// The most bytes (in 4 KiB blocks, as the `image` module counts them) the
/// bind-mounted host directories of one container may hold together: each
/// is copied at create, which takes time and host disk.
pub const MAX_DIRECTORY_BYTES: u64 = 1 << 30;

/// The filesystem of the copies, for the guest's mount(2).
const FS_TYPE: &str = "ext4";

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(
        "{}: mounts[{index}] (destination {destination}): read the host directory {} to copy \
         it into the VM",
        config.display(),
        source_path.display()
    )]
    Measure {
        config: PathBuf,
        index: usize,
        destination: String,
        source_path: PathBuf,
        #[source]
        source: Box<ImageError>,
    },
    #[error(
        "{}: bind-mounted host directories hold more than {total} bytes (mounts[{index}], \
         destination {destination}, passes the limit); the vm backend copies them into the VM \
         at create and takes at most {MAX_DIRECTORY_BYTES} bytes of them (bind less, or use the \
         container backend)",
        config.display()
    )]
    TooLarge {
        config: PathBuf,
        index: usize,
        destination: String,
        total: u64,
    },
    #[error(
        "copy the host directory {} (mounts[{index}], destination {destination}) into the \
         image {}",
        source_path.display(),
        image.display()
    )]
    Build {
        index: usize,
        destination: String,
        source_path: PathBuf,
        image: PathBuf,
        #[source]
        source: Box<ImageError>,
    },
}

/// A host directory, measured, to copy into a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDirectory {
    pub directory: HostDirectory,
    pub usage: DirectoryUsage,
}

/// A directory copied into an image, and how the guest finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryDisk {
    /// The image on the host, for husk-vmm's `--disk PATH,ro`.
    pub image: PathBuf,
    /// What the create request tells the guest.
    pub mount: DirectoryMount,
}

/// The guest's device node of the disk husk-vmm attaches in `position`
/// (0 is the rootfs, `/dev/vda`): virtio-blk disks are named in the order
/// the guest kernel probes them, which is the order of husk-vmm's
/// `--disk` arguments.
pub fn guest_device(position: usize) -> String {
    // MAX_DIRECTORIES keeps the position well inside one letter.
    let letter = char::from(b'a' + position as u8);
    format!("/dev/vd{letter}")
}

/// Measures every directory, refusing them once they hold more than
/// [`MAX_DIRECTORY_BYTES`] together. `config` names config.json in errors.
pub fn plan(
    directories: &[HostDirectory],
    config: &Path,
) -> Result<Vec<PlannedDirectory>, DirectoryError> {
    plan_within(directories, config, MAX_DIRECTORY_BYTES)
}

fn plan_within(
    directories: &[HostDirectory],
    config: &Path,
    limit_bytes: u64,
) -> Result<Vec<PlannedDirectory>, DirectoryError> {
    let mut total = 0u64;
    let mut planned = Vec::with_capacity(directories.len());
    for directory in directories {
        let usage =
            image::measure_up_to(&directory.source, limit_bytes - total).map_err(|source| {
                DirectoryError::Measure {
                    config: config.to_path_buf(),
                    index: directory.index,
                    destination: directory.destination.clone(),
                    source_path: directory.source.clone(),
                    source: Box::new(source),
                }
            })?;
        total = total.saturating_add(usage.content_bytes);
        if total > limit_bytes {
            return Err(DirectoryError::TooLarge {
                config: config.to_path_buf(),
                index: directory.index,
                destination: directory.destination.clone(),
                total,
            });
        }
        planned.push(PlannedDirectory {
            directory: directory.clone(),
            usage,
        });
    }
    Ok(planned)
}

/// Copies each planned directory into its image in the state directory,
/// in order, the first for `/dev/vdb`. On failure the images already made
/// stay for [`VmFiles::remove_all`] to take.
pub fn build(
    planned: &[PlannedDirectory],
    files: &VmFiles,
) -> Result<Vec<DirectoryDisk>, DirectoryError> {
    planned
        .iter()
        .enumerate()
        .map(|(number, planned)| {
            let directory = &planned.directory;
            let image = files.directory_image(number);
            image::build_measured(
                &directory.source,
                planned.usage,
                &image,
                ImagePurpose::DirectoryCopy,
            )
            .map_err(|source| DirectoryError::Build {
                index: directory.index,
                destination: directory.destination.clone(),
                source_path: directory.source.clone(),
                image: image.clone(),
                source: Box::new(source),
            })?;
            Ok(DirectoryDisk {
                image,
                mount: DirectoryMount {
                    destination: directory.destination.clone(),
                    // The rootfs disk comes first.
                    device: guest_device(number + 1),
                    fs_type: FS_TYPE.to_string(),
                },
            })
        })
        .collect()
}

/// The warning `create` logs for a directory that arrives as a copy.
pub fn copy_warning(directory: &HostDirectory, device: &str) -> String {
    format!(
        "mounts[{}]: bind mount of the host directory {} on {} arrives as a read-only copy \
         (guest device {device}, taken now); writes are not shared",
        directory.index,
        directory.source.display(),
        directory.destination
    )
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use super::*;

    fn host_directory(index: usize, destination: &str, source: &Path) -> HostDirectory {
        HostDirectory {
            index,
            destination: destination.to_string(),
            source: source.to_path_buf(),
        }
    }

    /// `debugfs -R REQUEST IMAGE`'s output (e2fsprogs).
    fn debugfs(image: &Path, request: &str) -> String {
        let output = Command::new("debugfs")
            .args(["-R", request])
            .arg(image)
            .output()
            .expect("run debugfs (install e2fsprogs)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[test]
    fn disks_after_the_rootfs_are_vdb_onwards() {
        assert_eq!(guest_device(0), "/dev/vda");
        assert_eq!(guest_device(1), "/dev/vdb");
        assert_eq!(guest_device(MAX_DIRECTORIES), "/dev/vdm");
    }

    #[test]
    fn each_directory_becomes_a_read_only_copy_on_its_own_disk() {
        use std::os::unix::fs::{chown, PermissionsExt};

        let scratch = tempfile::tempdir().unwrap();
        let data = scratch.path().join("data");
        fs::create_dir_all(data.join("sub")).unwrap();
        fs::write(data.join("a"), "first file\n").unwrap();
        fs::write(data.join("sub/b"), "second file\n").unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o750)).unwrap();
        chown(&data, Some(1000), Some(1001)).expect("chown (these tests run as root)");
        let config = scratch.path().join("empty");
        fs::create_dir(&config).unwrap();
        let directories = [
            host_directory(3, "/data", &data),
            host_directory(5, "/etc/app", &config),
        ];
        let state = scratch.path().join("state");
        fs::create_dir(&state).unwrap();
        let files = VmFiles::create(&state, scratch.path()).unwrap();

        let planned = plan(&directories, Path::new("/b/config.json")).unwrap();
        let disks = build(&planned, &files).expect("mkfs.ext4 and debugfs (e2fsprogs) build it");

        assert_eq!(
            disks
                .iter()
                .map(|disk| disk.mount.clone())
                .collect::<Vec<_>>(),
            [
                DirectoryMount {
                    destination: "/data".to_string(),
                    device: "/dev/vdb".to_string(),
                    fs_type: "ext4".to_string(),
                },
                DirectoryMount {
                    destination: "/etc/app".to_string(),
                    device: "/dev/vdc".to_string(),
                    fs_type: "ext4".to_string(),
                },
            ]
        );
        assert_eq!(disks[0].image, files.directory_image(0));
        assert_eq!(disks[1].image, files.directory_image(1));
        let image = &disks[0].image;
        assert_eq!(debugfs(image, "cat /a"), "first file\n");
        assert_eq!(debugfs(image, "cat /sub/b"), "second file\n");
        // Exactly what the directory holds: no lost+found of mke2fs's.
        let listing = debugfs(image, "ls -p /");
        assert!(!listing.contains("lost+found"), "{listing}");
        // The root has the directory's owner and permissions, as the
        // bind mount's destination would.
        let root = debugfs(image, "stat /");
        assert!(root.contains("Mode:  0750"), "{root}");
        assert!(root.contains("User:  1000   Group:  1001"), "{root}");
        let empty = debugfs(&disks[1].image, "ls -p /");
        assert_eq!(
            empty.lines().filter(|line| !line.trim().is_empty()).count(),
            2,
            "only . and .. in the copy of an empty directory: {empty}"
        );

        // The images go with the VM's other files.
        assert!(files.remove_all().is_empty());
        assert_eq!(fs::read_dir(&state).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_with_its_own_lost_and_found_keeps_it() {
        let scratch = tempfile::tempdir().unwrap();
        let data = scratch.path().join("data");
        fs::create_dir_all(data.join("lost+found")).unwrap();
        fs::write(data.join("lost+found/kept"), "mine\n").unwrap();
        let files = VmFiles::create(scratch.path(), scratch.path()).unwrap();
        let planned = plan(&[host_directory(0, "/data", &data)], Path::new("c")).unwrap();
        let disks = build(&planned, &files).unwrap();
        assert_eq!(debugfs(&disks[0].image, "cat /lost+found/kept"), "mine\n");
    }

    #[test]
    fn directories_past_the_size_limit_are_refused_naming_the_mount() {
        let scratch = tempfile::tempdir().unwrap();
        let small = scratch.path().join("small");
        let big = scratch.path().join("big");
        fs::create_dir_all(&small).unwrap();
        fs::create_dir_all(&big).unwrap();
        fs::write(small.join("f"), vec![1u8; 10_000]).unwrap();
        for name in ["x", "y", "z"] {
            fs::write(big.join(name), vec![2u8; 40_000]).unwrap();
        }
        let directories = [
            host_directory(1, "/small", &small),
            host_directory(4, "/big", &big),
        ];
        let config = Path::new("/bundles/web/config.json");
        // Each fits alone; together they pass 100 KiB.
        assert!(plan_within(&directories[..1], config, 100 << 10).is_ok());
        assert!(plan_within(&directories[1..], config, 200 << 10).is_ok());
        let error = plan_within(&directories, config, 100 << 10)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "/bundles/web/config.json: bind-mounted host directories hold more than"
            ),
            "{error}"
        );
        assert!(
            error.contains("(mounts[4], destination /big, passes the limit)"),
            "{error}"
        );
        // The real limit is the documented one.
        let error = DirectoryError::TooLarge {
            config: config.to_path_buf(),
            index: 0,
            destination: "/d".to_string(),
            total: MAX_DIRECTORY_BYTES + 1,
        };
        assert!(error.to_string().contains("at most 1073741824 bytes"));
    }

    #[test]
    fn a_directory_that_cannot_be_read_names_the_mount() {
        let directories = [host_directory(
            2,
            "/gone",
            Path::new("/nonexistent/husk-dir"),
        )];
        let error = plan(&directories, Path::new("/b/config.json"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "/b/config.json: mounts[2] (destination /gone): read the host directory \
             /nonexistent/husk-dir to copy it into the VM"
        );
    }

    #[test]
    fn the_warning_names_the_destination_and_the_device() {
        let warning = copy_warning(
            &host_directory(7, "/data", Path::new("/srv/shared")),
            "/dev/vdb",
        );
        assert_eq!(
            warning,
            "mounts[7]: bind mount of the host directory /srv/shared on /data arrives as a \
             read-only copy (guest device /dev/vdb, taken now); writes are not shared"
        );
    }
}
