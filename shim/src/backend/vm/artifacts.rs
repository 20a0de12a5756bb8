//! Where the `vm` backend finds what it boots: the guest kernel (vmlinux),
//! the guest initramfs (holding husk-init) and husk-vmm.
//!
//! Each is looked up in this order, and the first place that names one
//! decides (a named file that does not exist is an error, never skipped):
//!
//! 1. husk's configuration file (`kernel`, `initramfs`, `vmm`; see
//!    `crate::config`), the administrator's choice for every caller;
//! 2. the environment (`HUSK_KERNEL`, `HUSK_INITRAMFS`, `HUSK_VMM`);
//! 3. the installed defaults: `/usr/local/lib/husk/vmlinux`,
//!    `/usr/local/lib/husk/husk-initramfs.cpio`, and husk-vmm next to the
//!    husk binary, then on `PATH`.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use husk_vmm::arch::x86_64::boot;

use crate::config::HuskConfig;

pub const DEFAULT_KERNEL: &str = "/usr/local/lib/husk/vmlinux";
pub const DEFAULT_INITRAMFS: &str = "/usr/local/lib/husk/husk-initramfs.cpio";
pub const VMM_BINARY: &str = "husk-vmm";

pub const KERNEL_VARIABLE: &str = "HUSK_KERNEL";
pub const INITRAMFS_VARIABLE: &str = "HUSK_INITRAMFS";
pub const VMM_VARIABLE: &str = "HUSK_VMM";

/// The files a VM is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub vmm: PathBuf,
}

/// One of the three files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Kernel,
    Initramfs,
    Vmm,
}

impl Piece {
    fn description(self) -> &'static str {
        match self {
            Piece::Kernel => "guest kernel (vmlinux)",
            Piece::Initramfs => "guest initramfs (husk-init)",
            Piece::Vmm => "husk-vmm",
        }
    }

    fn config_key(self) -> &'static str {
        match self {
            Piece::Kernel => "kernel",
            Piece::Initramfs => "initramfs",
            Piece::Vmm => "vmm",
        }
    }

    fn variable(self) -> &'static str {
        match self {
            Piece::Kernel => KERNEL_VARIABLE,
            Piece::Initramfs => INITRAMFS_VARIABLE,
            Piece::Vmm => VMM_VARIABLE,
        }
    }

    /// How to make it, for the error that says it is missing.
    fn how_to_build(self) -> &'static str {
        match self {
            Piece::Kernel => "build it with kernel-config/build (it prints the vmlinux path last)",
            Piece::Initramfs => {
                "build it with guest-init/build (it prints the initramfs path last)"
            }
            Piece::Vmm => "build it with cargo build --release (target/release/husk-vmm)",
        }
    }
}

/// Where a path came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    ConfigFile(PathBuf),
    Environment(&'static str),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::ConfigFile(path) => {
                write!(formatter, "the configuration file {}", path.display())
            }
            Origin::Environment(variable) => write!(formatter, "{variable}"),
            Origin::Default => formatter.write_str("the default path"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(
        "{} {} (from {origin}) {problem}; {}, or point {} at it",
        piece.description(),
        path.display(),
        piece.how_to_build(),
        where_to_point(*piece, config_path)
    )]
    Unusable {
        piece: Piece,
        path: PathBuf,
        origin: Origin,
        problem: &'static str,
        config_path: PathBuf,
    },
    #[error(
        "found no {} ({looked}); {} and install it as {}, or point {} at it",
        piece.description(),
        piece.how_to_build(),
        install_hint(*piece),
        where_to_point(*piece, config_path)
    )]
    Missing {
        piece: Piece,
        looked: String,
        config_path: PathBuf,
    },
    #[error(
        "{} {} {problem}; {}, or point {} at a good one",
        piece.description(),
        path.display(),
        piece.how_to_build(),
        where_to_point(*piece, config_path)
    )]
    Corrupt {
        piece: Piece,
        path: PathBuf,
        problem: String,
        config_path: PathBuf,
    },
}

fn where_to_point(piece: Piece, config_path: &Path) -> String {
    format!(
        "{} or \"{}\" in {}",
        piece.variable(),
        piece.config_key(),
        config_path.display()
    )
}

fn install_hint(piece: Piece) -> &'static str {
    match piece {
        Piece::Kernel => DEFAULT_KERNEL,
        Piece::Initramfs => DEFAULT_INITRAMFS,
        Piece::Vmm => "husk-vmm next to the husk binary",
    }
}

/// Reads an environment variable (None when unset or empty).
pub type VariableLookup = Box<dyn Fn(&str) -> Option<OsString>>;

/// What the lookup consults besides the configuration file; the real one
/// is [`Surroundings::of_this_process`], tests make their own.
pub struct Surroundings {
    pub variable: VariableLookup,
    pub default_kernel: PathBuf,
    pub default_initramfs: PathBuf,
    /// The directory of the running husk binary.
    pub husk_directory: Option<PathBuf>,
    /// `PATH`.
    pub search_path: Option<OsString>,
}

impl Surroundings {
    pub fn of_this_process() -> Surroundings {
        Surroundings {
            variable: Box::new(|name| std::env::var_os(name).filter(|value| !value.is_empty())),
            default_kernel: PathBuf::from(DEFAULT_KERNEL),
            default_initramfs: PathBuf::from(DEFAULT_INITRAMFS),
            husk_directory: std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf)),
            search_path: std::env::var_os("PATH"),
        }
    }
}

/// Finds all three, or says which is missing and how to make it.
pub fn find(
    config: &HuskConfig,
    config_path: &Path,
    surroundings: &Surroundings,
) -> Result<Artifacts, ArtifactError> {
    Ok(Artifacts {
        kernel: find_piece(
            Piece::Kernel,
            config.kernel.as_deref(),
            config_path,
            surroundings,
        )?,
        initramfs: find_piece(
            Piece::Initramfs,
            config.initramfs.as_deref(),
            config_path,
            surroundings,
        )?,
        vmm: find_piece(Piece::Vmm, config.vmm.as_deref(), config_path, surroundings)?,
    })
}

/// Reads the headers of the kernel and the initramfs [`find`] chose, as
/// husk-vmm does before it loads them (`husk_vmm::arch::x86_64::boot`): a
/// file cut short, or one that is no kernel or initramfs at all, is refused
/// before an image is built or a VM started, saying how to build a good
/// one, instead of failing in husk-vmm's loader or as a guest panic.
pub fn check_boot_files(artifacts: &Artifacts, config_path: &Path) -> Result<(), ArtifactError> {
    for (piece, path) in [
        (Piece::Kernel, &artifacts.kernel),
        (Piece::Initramfs, &artifacts.initramfs),
    ] {
        boot_file_problem(piece, path).map_err(|problem| ArtifactError::Corrupt {
            piece,
            path: path.clone(),
            problem,
            config_path: config_path.to_path_buf(),
        })?;
    }
    Ok(())
}

/// What husk-vmm would find wrong with `path` as `piece`, if anything.
fn boot_file_problem(piece: Piece, path: &Path) -> Result<(), String> {
    let cannot_read = |error: &dyn std::error::Error| {
        format!(
            "cannot be read ({})",
            error
                .source()
                .map_or_else(|| error.to_string(), ToString::to_string)
        )
    };
    let mut file = File::open(path).map_err(|error| format!("cannot be read ({error})"))?;
    let checked = match piece {
        Piece::Kernel => boot::check_kernel(&mut file, path).map(drop),
        Piece::Initramfs => boot::check_initrd(&file, path),
        Piece::Vmm => Ok(()),
    };
    checked.map_err(|error| match error.file_problem() {
        Some(problem) => problem.to_string(),
        None => cannot_read(&error),
    })
}

fn find_piece(
    piece: Piece,
    configured: Option<&Path>,
    config_path: &Path,
    surroundings: &Surroundings,
) -> Result<PathBuf, ArtifactError> {
    let named = match configured {
        Some(path) => Some((
            path.to_path_buf(),
            Origin::ConfigFile(config_path.to_path_buf()),
        )),
        None => (surroundings.variable)(piece.variable())
            .map(|value| (PathBuf::from(value), Origin::Environment(piece.variable()))),
    };
    if let Some((path, origin)) = named {
        return match check(piece, &path) {
            Ok(()) => Ok(path),
            Err(problem) => Err(ArtifactError::Unusable {
                piece,
                path,
                origin,
                problem,
                config_path: config_path.to_path_buf(),
            }),
        };
    }

    let candidates: Vec<PathBuf> = match piece {
        Piece::Kernel => vec![surroundings.default_kernel.clone()],
        Piece::Initramfs => vec![surroundings.default_initramfs.clone()],
        Piece::Vmm => surroundings
            .husk_directory
            .iter()
            .cloned()
            .chain(
                surroundings
                    .search_path
                    .iter()
                    .flat_map(std::env::split_paths),
            )
            .map(|directory| directory.join(VMM_BINARY))
            .collect(),
    };
    if let Some(found) = candidates.iter().find(|path| check(piece, path).is_ok()) {
        return Ok(found.clone());
    }
    let looked = match piece {
        Piece::Vmm => format!(
            "no \"{}\" in {}, {} is not set, and no usable {VMM_BINARY} next to husk or on PATH",
            piece.config_key(),
            config_path.display(),
            piece.variable()
        ),
        _ => format!(
            "no \"{}\" in {}, {} is not set, and {} does not exist",
            piece.config_key(),
            config_path.display(),
            piece.variable(),
            candidates
                .first()
                .map(|path| path.display().to_string())
                .unwrap_or_default()
        ),
    };
    Err(ArtifactError::Missing {
        piece,
        looked,
        config_path: config_path.to_path_buf(),
    })
}

/// Why `path` cannot serve as `piece`, if it cannot.
fn check(piece: Piece, path: &Path) -> Result<(), &'static str> {
    let metadata = match path.metadata() {
        Ok(metadata) => metadata,
        Err(_) => return Err("does not exist"),
    };
    if !metadata.is_file() {
        return Err("is not a regular file");
    }
    if piece == Piece::Vmm && metadata.permissions().mode() & 0o111 == 0 {
        return Err("is not executable");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;

    use super::*;

    struct Setup {
        directory: tempfile::TempDir,
    }

    impl Setup {
        fn new() -> Setup {
            Setup {
                directory: tempfile::tempdir().unwrap(),
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.directory.path().join(name)
        }

        fn file(&self, name: &str, mode: u32) -> PathBuf {
            let path = self.path(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "x").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            path
        }

        fn surroundings(&self, variables: &[(&str, PathBuf)]) -> Surroundings {
            let variables: HashMap<String, OsString> = variables
                .iter()
                .map(|(name, path)| (name.to_string(), path.clone().into_os_string()))
                .collect();
            Surroundings {
                variable: Box::new(move |name| variables.get(name).cloned()),
                default_kernel: self.path("lib/vmlinux"),
                default_initramfs: self.path("lib/husk-initramfs.cpio"),
                husk_directory: Some(self.path("bin")),
                search_path: Some(self.path("path").into_os_string()),
            }
        }
    }

    #[test]
    fn installed_defaults_are_found() {
        let setup = Setup::new();
        let kernel = setup.file("lib/vmlinux", 0o644);
        let initramfs = setup.file("lib/husk-initramfs.cpio", 0o644);
        let vmm = setup.file("bin/husk-vmm", 0o755);
        let found = find(
            &HuskConfig::default(),
            Path::new("/etc/husk/config.json"),
            &setup.surroundings(&[]),
        )
        .unwrap();
        assert_eq!(
            found,
            Artifacts {
                kernel,
                initramfs,
                vmm
            }
        );
    }

    #[test]
    fn husk_vmm_is_taken_from_path_when_not_next_to_husk() {
        let setup = Setup::new();
        setup.file("lib/vmlinux", 0o644);
        setup.file("lib/husk-initramfs.cpio", 0o644);
        // Not executable next to husk: skipped.
        setup.file("bin/husk-vmm", 0o644);
        let on_path = setup.file("path/husk-vmm", 0o755);
        let found = find(
            &HuskConfig::default(),
            Path::new("/etc/husk/config.json"),
            &setup.surroundings(&[]),
        )
        .unwrap();
        assert_eq!(found.vmm, on_path);
    }

    #[test]
    fn the_configuration_file_comes_before_the_environment() {
        let setup = Setup::new();
        let configured = setup.file("configured/vmlinux", 0o644);
        let from_environment = setup.file("environment/vmlinux", 0o644);
        let initramfs = setup.file("environment/initramfs", 0o644);
        let vmm = setup.file("environment/husk-vmm", 0o755);
        let config = HuskConfig {
            kernel: Some(configured.clone()),
            ..HuskConfig::default()
        };
        let found = find(
            &config,
            Path::new("/etc/husk/config.json"),
            &setup.surroundings(&[
                (KERNEL_VARIABLE, from_environment),
                (INITRAMFS_VARIABLE, initramfs.clone()),
                (VMM_VARIABLE, vmm.clone()),
            ]),
        )
        .unwrap();
        assert_eq!(found.kernel, configured);
        assert_eq!(found.initramfs, initramfs);
        assert_eq!(found.vmm, vmm);
    }

    #[test]
    fn a_missing_kernel_says_how_to_build_it_and_where_to_put_it() {
        let setup = Setup::new();
        setup.file("bin/husk-vmm", 0o755);
        setup.file("lib/husk-initramfs.cpio", 0o644);
        let error = find(
            &HuskConfig::default(),
            Path::new("/etc/husk/config.json"),
            &setup.surroundings(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("found no guest kernel (vmlinux)"),
            "{error}"
        );
        assert!(error.contains("kernel-config/build"), "{error}");
        assert!(error.contains(DEFAULT_KERNEL), "{error}");
        assert!(error.contains("HUSK_KERNEL"), "{error}");
        assert!(
            error.contains("\"kernel\" in /etc/husk/config.json"),
            "{error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
    }

    #[test]
    fn a_kernel_or_initramfs_that_cannot_boot_says_what_is_wrong_and_how_to_build_it() {
        let setup = Setup::new();
        let artifacts = |kernel: &[u8], initramfs: &[u8]| {
            let kernel_path = setup.path("vmlinux");
            let initramfs_path = setup.path("husk-initramfs.cpio");
            fs::write(&kernel_path, kernel).unwrap();
            fs::write(&initramfs_path, initramfs).unwrap();
            Artifacts {
                kernel: kernel_path,
                initramfs: initramfs_path,
                vmm: setup.path("bin/husk-vmm"),
            }
        };
        let config_path = Path::new("/etc/husk/config.json");
        // An ELF64 header with no program headers is whole; a cpio archive
        // starts with its magic.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        check_boot_files(&artifacts(&elf, b"070701..."), config_path).unwrap();

        let error = check_boot_files(&artifacts(b"placeholder\n", b"070701"), config_path)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "guest kernel (vmlinux) {} is neither an ELF vmlinux nor a bzImage; build it with \
                 kernel-config/build (it prints the vmlinux path last), or point HUSK_KERNEL or \
                 \"kernel\" in /etc/husk/config.json at a good one",
                setup.path("vmlinux").display()
            )
        );

        let error = check_boot_files(&artifacts(&elf[..40], b"070701"), config_path)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "vmlinux is truncated or damaged: its ELF headers describe 64 bytes, the file \
                 has 40;"
            ),
            "{error}"
        );

        let error = check_boot_files(&artifacts(&elf, b"placeholder\n"), config_path)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!(
                "guest initramfs (husk-init) {} is not an initramfs",
                setup.path("husk-initramfs.cpio").display()
            )),
            "{error}"
        );
        assert!(error.contains("guest-init/build"), "{error}");
        assert!(error.contains("HUSK_INITRAMFS or \"initramfs\""), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error_not_skipped() {
        let setup = Setup::new();
        setup.file("lib/vmlinux", 0o644);
        setup.file("bin/husk-vmm", 0o755);
        let error = find(
            &HuskConfig::default(),
            Path::new("/etc/husk/config.json"),
            &setup.surroundings(&[(INITRAMFS_VARIABLE, PathBuf::from("/nowhere/initramfs"))]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("/nowhere/initramfs (from HUSK_INITRAMFS) does not exist"),
            "{error}"
        );
        assert!(error.contains("guest-init/build"), "{error}");

        setup.file("lib/husk-initramfs.cpio", 0o644);
        let vmm = setup.file("elsewhere/husk-vmm", 0o644);
        let config = HuskConfig {
            vmm: Some(vmm),
            ..HuskConfig::default()
        };
        let error = find(
            &config,
            Path::new("/etc/husk/config.json"),
            &setup.surroundings(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("(from the configuration file /etc/husk/config.json) is not executable"),
            "{error}"
        );
        assert!(error.contains("cargo build --release"), "{error}");
    }
}
