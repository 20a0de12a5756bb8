//! A [`Syscall`] that only writes the calls down, for tests. It can serve
//! files to `read_file` (a container's /etc/passwd) and be told to fail a
//! call with an errno.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use seccompiler::BpfProgram;

use super::{CapabilitySets, NamespaceFile, Syscall};

/// One recorded call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: u64,
        data: Option<String>,
    },
    Umount2 {
        target: PathBuf,
        flags: i32,
    },
    PivotRoot(PathBuf),
    Chroot(PathBuf),
    Chdir(PathBuf),
    Setns {
        kind: LinuxNamespaceType,
        path: PathBuf,
    },
    Unshare(i32),
    Sethostname(String),
    Setdomainname(String),
    Mknod {
        path: PathBuf,
        mode: u32,
        device: u64,
    },
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    DropBoundingCapability(u32),
    Capset(CapabilitySets),
    ClearAmbientCapabilities,
    RaiseAmbientCapability(u32),
    SetKeepCapabilities(bool),
    SetNoNewPrivileges,
    Setgroups(Vec<u32>),
    Setresgid(u32),
    Setresuid(u32),
    Setrlimit {
        resource: u32,
        soft: u64,
        hard: u64,
    },
    Umask(u32),
    InstallSeccomp {
        instructions: usize,
        flags: u32,
    },
    ReopenDevNull,
    GiveStdioTo(u32),
    WriteFile {
        path: PathBuf,
        contents: String,
    },
    CreateDirAll(PathBuf),
}

type FailRule = Box<dyn Fn(&Call) -> bool>;

/// Records calls in order; see the module docs.
pub struct RecordingSyscall {
    calls: RefCell<Vec<Call>>,
    files: HashMap<PathBuf, Vec<u8>>,
    failures: Vec<(FailRule, i32)>,
    last_capability: u32,
    mount_flags: HashMap<PathBuf, u64>,
}

impl Default for RecordingSyscall {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingSyscall {
    pub fn new() -> Self {
        Self {
            calls: RefCell::new(Vec::new()),
            files: HashMap::new(),
            failures: Vec::new(),
            // CAP_CHECKPOINT_RESTORE, the last one Linux 5.9 to 6.12 know.
            last_capability: 40,
            mount_flags: HashMap::new(),
        }
    }

    /// `read_file(path)` returns `contents`; other paths are NotFound.
    pub fn with_file(mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.into(), contents.into());
        self
    }

    /// Every call for which `matches` is true fails with `errno` (it is
    /// still recorded).
    pub fn failing(mut self, matches: impl Fn(&Call) -> bool + 'static, errno: i32) -> Self {
        self.failures.push((Box::new(matches), errno));
        self
    }

    /// What `mount_flags(path)` answers (0 for paths not given).
    pub fn with_mount_flags(mut self, path: impl Into<PathBuf>, flags: u64) -> Self {
        self.mount_flags.insert(path.into(), flags);
        self
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: Call) -> io::Result<()> {
        let failure = self
            .failures
            .iter()
            .find(|(matches, _)| matches(&call))
            .map(|(_, errno)| *errno);
        self.calls.borrow_mut().push(call);
        match failure {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        })
    }

    fn umount2(&self, target: &Path, flags: i32) -> io::Result<()> {
        self.record(Call::Umount2 {
            target: target.to_path_buf(),
            flags,
        })
    }

    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        self.record(Call::PivotRoot(new_root.to_path_buf()))
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chroot(path.to_path_buf()))
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chdir(path.to_path_buf()))
    }

    fn setns(&self, namespace: &NamespaceFile) -> io::Result<()> {
        self.record(Call::Setns {
            kind: namespace.kind,
            path: namespace.path.clone(),
        })
    }

    fn unshare(&self, flags: i32) -> io::Result<()> {
        self.record(Call::Unshare(flags))
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.record(Call::Sethostname(name.to_owned()))
    }

    fn setdomainname(&self, name: &str) -> io::Result<()> {
        self.record(Call::Setdomainname(name.to_owned()))
    }

    fn mknod(&self, path: &Path, mode: u32, device: u64) -> io::Result<()> {
        self.record(Call::Mknod {
            path: path.to_path_buf(),
            mode,
            device,
        })
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.record(Call::Chown {
            path: path.to_path_buf(),
            uid,
            gid,
        })
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.record(Call::Symlink {
            target: target.to_path_buf(),
            link: link.to_path_buf(),
        })
    }

    fn last_capability(&self) -> io::Result<u32> {
        Ok(self.last_capability)
    }

    fn drop_bounding_capability(&self, capability: u32) -> io::Result<()> {
        self.record(Call::DropBoundingCapability(capability))
    }

    fn capset(&self, sets: CapabilitySets) -> io::Result<()> {
        self.record(Call::Capset(sets))
    }

    fn clear_ambient_capabilities(&self) -> io::Result<()> {
        self.record(Call::ClearAmbientCapabilities)
    }

    fn raise_ambient_capability(&self, capability: u32) -> io::Result<()> {
        self.record(Call::RaiseAmbientCapability(capability))
    }

    fn set_keep_capabilities(&self, keep: bool) -> io::Result<()> {
        self.record(Call::SetKeepCapabilities(keep))
    }

    fn set_no_new_privileges(&self) -> io::Result<()> {
        self.record(Call::SetNoNewPrivileges)
    }

    fn setgroups(&self, groups: &[u32]) -> io::Result<()> {
        self.record(Call::Setgroups(groups.to_vec()))
    }

    fn setresgid(&self, gid: u32) -> io::Result<()> {
        self.record(Call::Setresgid(gid))
    }

    fn setresuid(&self, uid: u32) -> io::Result<()> {
        self.record(Call::Setresuid(uid))
    }

    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> io::Result<()> {
        self.record(Call::Setrlimit {
            resource,
            soft,
            hard,
        })
    }

    fn umask(&self, mask: u32) -> u32 {
        let _ = self.record(Call::Umask(mask));
        0o022
    }

    fn mount_flags(&self, path: &Path) -> io::Result<u64> {
        Ok(self.mount_flags.get(path).copied().unwrap_or(0))
    }

    fn install_seccomp(&self, program: &BpfProgram, flags: u32) -> io::Result<()> {
        self.record(Call::InstallSeccomp {
            instructions: program.len(),
            flags,
        })
    }

    fn reopen_dev_null(&self) -> io::Result<()> {
        self.record(Call::ReopenDevNull)
    }

    fn give_stdio_to(&self, uid: u32) -> io::Result<()> {
        self.record(Call::GiveStdioTo(uid))
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.record(Call::WriteFile {
            path: path.to_path_buf(),
            contents: String::from_utf8_lossy(contents).into_owned(),
        })
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files.get(path).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not among the recording's files", path.display()),
            )
        })
    }

    fn create_dir_all(&self, path: &Path, _mode: u32) -> io::Result<()> {
        self.record(Call::CreateDirAll(path.to_path_buf()))
    }
}
