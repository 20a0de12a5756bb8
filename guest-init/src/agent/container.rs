//! The one container a VM holds, as the agent sees it: its root filesystem
//! disk, the read-only disks of its bind-mounted host directories, its
//! bundle in the guest, its processes and their stdio.
//!
//! Handlers follow one shape: check what was asked, then `do_<request>`.
//! Every failure goes back as a GuestError naming the step.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use husk_init::engine::syscall::Syscall;
use husk_init::engine::{self, cgroups, sys, EngineError, Stdio};
use husk_protocol::{
    messages, CreateContainerRequest, DirectoryMount, ExecRequest, FileMount, GuestError,
    GuestTimings, ProcessRef, Request, Response, RootfsSource, StdioSetup, StreamKind,
};
use oci_spec::runtime::{Mount, Spec};

use super::reaper::REAP_LOCK;
use super::streams::Streams;
use super::terminal::TerminalRelay;

/// Where each container's bundle is assembled in the guest.
const BUNDLES: &str = "/run/husk/containers";

pub struct Sandbox {
    bundle: PathBuf,
    rootfs: PathBuf,
    /// Where the directory disks are mounted, in the order they were.
    directories: Vec<PathBuf>,
    container: engine::Container,
    /// Every process started, both ways round. Entries stay after the
    /// process ended, so that a late Wait still finds it.
    pids: HashMap<ProcessRef, i32>,
    processes: HashMap<i32, ProcessRef>,
    terminals: HashMap<ProcessRef, TerminalRelay>,
    timings: GuestTimings,
}

fn failed(step: impl Into<String>, error: impl std::fmt::Display) -> GuestError {
    GuestError {
        step: step.into(),
        message: error.to_string(),
        exit_code: None,
    }
}

fn engine_failed(error: EngineError) -> GuestError {
    GuestError {
        step: error.step(),
        message: engine::error_chain(&error),
        exit_code: Some(error.exit_code()),
    }
}

fn uptime_us() -> u64 {
    crate::sys::boot_time()
        .map(|uptime| uptime.as_micros() as u64)
        .unwrap_or_default()
}

/// A process's stdio as the host set it up, in the engine's terms, and the
/// far end of the console socket when it has a terminal.
struct ProcessStdio {
    stdio: Stdio,
    console_socket: Option<OwnedFd>,
    terminal: Option<(OwnedFd, File)>,
}

fn gather_stdio(
    streams: &Streams,
    process: &ProcessRef,
    setup: &StdioSetup,
) -> Result<ProcessStdio, GuestError> {
    let take = |kind| {
        streams
            .take(process, kind)
            .map_err(|reason| failed(format!("open the {kind:?} stream of {process}"), reason))
    };
    match *setup {
        StdioSetup::Terminal => {
            let stream = take(StreamKind::Terminal)?;
            let (ours, theirs) =
                sys::seqpacket_pair().map_err(|e| failed("create the console socket", e))?;
            Ok(ProcessStdio {
                stdio: Stdio::Inherit,
                console_socket: Some(theirs),
                terminal: Some((ours, stream)),
            })
        }
        StdioSetup::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            let open = |wanted: bool, kind| -> Result<Option<OwnedFd>, GuestError> {
                Ok(if wanted {
                    Some(take(kind)?.into())
                } else {
                    None
                })
            };
            Ok(ProcessStdio {
                stdio: Stdio::Fds {
                    stdin: open(stdin, StreamKind::Stdin)?,
                    stdout: open(stdout, StreamKind::Stdout)?,
                    stderr: open(stderr, StreamKind::Stderr)?,
                },
                console_socket: None,
                terminal: None,
            })
        }
    }
}

/// Takes the pty master the engine sent over the console socket and
/// starts relaying it.
fn start_terminal(
    (console, stream): (OwnedFd, File),
    process: &ProcessRef,
) -> Result<TerminalRelay, GuestError> {
    let (_, master) = sys::receive_fd(console.as_fd())
        .map_err(|e| failed(format!("receive the terminal of {process}"), e))?;
    TerminalRelay::start(master, stream)
        .map_err(|e| failed(format!("relay the terminal of {process}"), e))
}

impl Sandbox {
    /// Mounts the root filesystem disk, lays out the bundle, and creates
    /// the container (its process waits for Start). Returns its pid.
    pub fn create(
        request: CreateContainerRequest,
        streams: &Streams,
        timings: GuestTimings,
    ) -> Result<(Sandbox, i32), GuestError> {
        if request.id.is_empty() || request.id.contains('/') || request.id.starts_with('.') {
            return Err(failed(
                "create",
                format!("container id {:?} cannot name a directory", request.id),
            ));
        }
        let bundle = Path::new(BUNDLES).join(&request.id);
        let rootfs = bundle.join("rootfs");
        for directory in [&rootfs, &bundle.join("state")] {
            fs::create_dir_all(directory)
                .map_err(|e| failed(format!("create {}", directory.display()), e))?;
        }
        let syscall = engine::syscall::LinuxSyscall;
        let mut directories = Vec::new();
        let result = mount_rootfs(&request.rootfs, &rootfs)
            .and_then(|()| {
                mount_directories(&syscall, &request.directories, &bundle, &mut directories)
            })
            .and_then(|()| {
                Self::create_on_rootfs(request, streams, &bundle, &directories, timings)
            });
        match result {
            Ok((mut sandbox, pid)) => {
                sandbox.directories = directories;
                Ok((sandbox, pid))
            }
            Err(error) => {
                streams.forget(&ProcessRef::Init);
                unmount_directories(&syscall, &directories);
                let _ = crate::sys::unmount(&rootfs.to_string_lossy());
                let _ = fs::remove_dir_all(&bundle);
                Err(error)
            }
        }
    }

    fn create_on_rootfs(
        request: CreateContainerRequest,
        streams: &Streams,
        bundle: &Path,
        directory_mounts: &[PathBuf],
        mut timings: GuestTimings,
    ) -> Result<(Sandbox, i32), GuestError> {
        let mut spec = request.spec;
        place_files(&mut spec, &request.files, bundle)?;
        place_directories(&mut spec, &request.directories, directory_mounts, bundle)?;
        // The engine reads the bundle as runc does: config.json beside the
        // root filesystem, whose path is relative to it.
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(PathBuf::from("rootfs"));
        spec.set_root(Some(root));
        let config = serde_json::to_vec(&spec).map_err(|e| failed("encode config.json", e))?;
        fs::write(bundle.join("config.json"), config)
            .map_err(|e| failed("write config.json", e))?;
        let loaded = engine::load_bundle(bundle).map_err(|e| failed("load the bundle", e))?;

        let process = ProcessRef::Init;
        let stdio = gather_stdio(streams, &process, &request.stdio)?;
        let options = engine::CreateOptions {
            id: &request.id,
            bundle: &loaded,
            state_dir: &bundle.join("state"),
            console_socket: stdio.console_socket,
            stdio: stdio.stdio,
            syscall: &engine::syscall::LinuxSyscall,
        };
        let container = {
            let _reaping = REAP_LOCK.lock();
            engine::create(&options).map_err(engine_failed)?
        };
        // Our copies of the process's stdio close here: the host sees end
        // of file when the process's own ones close.
        drop(options);
        timings.container_created_us = Some(uptime_us());
        let pid = container.pid;
        let mut sandbox = Sandbox {
            bundle: bundle.to_owned(),
            rootfs: bundle.join("rootfs"),
            directories: Vec::new(),
            container,
            pids: HashMap::new(),
            processes: HashMap::new(),
            terminals: HashMap::new(),
            timings,
        };
        if let Some(terminal) = stdio.terminal {
            let relay = start_terminal(terminal, &process)?;
            sandbox.terminals.insert(process.clone(), relay);
        }
        sandbox.pids.insert(process.clone(), pid);
        sandbox.processes.insert(pid, process);
        Ok((sandbox, pid))
    }

    pub fn pid_of(&self, process: &ProcessRef) -> Option<i32> {
        self.pids.get(process).copied()
    }

    /// Which process `pid` was, if it was one of ours.
    pub fn process_ended(&mut self, pid: i32) -> Option<ProcessRef> {
        let process = self.processes.remove(&pid)?;
        self.terminals.remove(&process);
        Some(process)
    }

    /// Requests about the container once it exists.
    pub fn handle(&mut self, request: Request, streams: &Streams) -> Result<Response, GuestError> {
        match request {
            Request::Start => self.do_start(),
            Request::Signal {
                process,
                signal,
                all,
            } => self.do_signal(&process, signal, all),
            Request::Exec(exec) => self.do_exec(*exec, streams),
            Request::ResizeTerminal {
                process,
                rows,
                cols,
            } => {
                let terminal = self
                    .terminals
                    .get(&process)
                    .ok_or_else(|| failed("resize", format!("{process} has no terminal")))?;
                terminal
                    .resize(rows, cols)
                    .map_err(|e| failed("resize the terminal", e))?;
                Ok(Response::Ok)
            }
            // The host ends a process's input by closing its side of the
            // Stdin stream; the guest holds no copy of it.
            Request::CloseStdin { .. } => Ok(Response::Ok),
            Request::Stats => self.do_stats(),
            Request::ListProcesses => {
                let pids = self
                    .container
                    .cgroup
                    .processes()
                    .map_err(|e| failed("list the container's processes", e))?;
                Ok(Response::Processes { pids })
            }
            Request::ProcessTable => {
                let pids = self
                    .container
                    .cgroup
                    .processes()
                    .map_err(|e| failed("list the container's processes", e))?;
                Ok(Response::ProcessTable {
                    processes: super::process_table::read(&pids),
                })
            }
            Request::Pause => {
                self.container
                    .cgroup
                    .freeze()
                    .map_err(|e| failed("pause (freeze the cgroup)", e))?;
                Ok(Response::Ok)
            }
            Request::Resume => {
                self.container
                    .cgroup
                    .thaw()
                    .map_err(|e| failed("resume (thaw the cgroup)", e))?;
                Ok(Response::Ok)
            }
            Request::UpdateResources(resources) => {
                self.container
                    .cgroup
                    .apply(&resources)
                    .map_err(|e| failed("update linux.resources", e))?;
                Ok(Response::Ok)
            }
            Request::Timings => Ok(Response::Timings(self.timings.clone())),
            Request::CreateContainer(_) | Request::Wait { .. } | Request::Shutdown => {
                Err(failed("request", "handled by the agent, not the container"))
            }
        }
    }

    fn do_start(&mut self) -> Result<Response, GuestError> {
        self.container.start().map_err(engine_failed)?;
        self.timings.process_exec_us = Some(uptime_us());
        Ok(Response::Started)
    }

    fn do_signal(
        &self,
        process: &ProcessRef,
        signal: i32,
        all: bool,
    ) -> Result<Response, GuestError> {
        match process {
            ProcessRef::Init => self.container.kill(signal, all).map_err(engine_failed)?,
            ProcessRef::Exec(_) => {
                let pid = self
                    .pids
                    .get(process)
                    .filter(|pid| self.processes.contains_key(pid))
                    .ok_or_else(|| failed("signal", format!("{process} is not running")))?;
                engine::kill(*pid, signal).map_err(engine_failed)?;
            }
        }
        Ok(Response::Ok)
    }

    fn do_exec(&mut self, request: ExecRequest, streams: &Streams) -> Result<Response, GuestError> {
        let process = ProcessRef::Exec(request.exec_id.clone());
        if self.pids.contains_key(&process) {
            return Err(failed("exec", format!("{process} already exists")));
        }
        let result = self.exec_process(&process, &request, streams);
        if result.is_err() {
            streams.forget(&process);
        }
        let pid = result?;
        Ok(Response::ExecStarted {
            exec_id: request.exec_id,
            pid,
        })
    }

    fn exec_process(
        &mut self,
        process: &ProcessRef,
        request: &ExecRequest,
        streams: &Streams,
    ) -> Result<i32, GuestError> {
        let loaded = engine::load_bundle(&self.bundle).map_err(|e| failed("load the bundle", e))?;
        let stdio = gather_stdio(streams, process, &request.stdio)?;
        let options = engine::ExecOptions {
            container_id: &self.container.id,
            init_pid: self.container.pid,
            bundle: &loaded,
            cgroup: Some(&self.container.cgroup),
            process: &request.process,
            console_socket: stdio.console_socket,
            stdio: stdio.stdio,
            syscall: &engine::syscall::LinuxSyscall,
        };
        let pid = {
            let _reaping = REAP_LOCK.lock();
            engine::exec(&options).map_err(engine_failed)?
        };
        drop(options);
        if let Some(terminal) = stdio.terminal {
            let relay = start_terminal(terminal, process)?;
            self.terminals.insert(process.clone(), relay);
        }
        self.pids.insert(process.clone(), pid);
        self.processes.insert(pid, process.clone());
        Ok(pid)
    }

    fn do_stats(&self) -> Result<Response, GuestError> {
        let stats = self
            .container
            .cgroup
            .stats()
            .map_err(|e| failed("read the container's cgroup statistics", e))?;
        Ok(Response::Stats(container_stats(stats)))
    }

    /// Kills what still runs in the container, removes its cgroup, and
    /// unmounts its disks, the rootfs last, so that its data is on the
    /// device.
    pub fn destroy(self) {
        if let Err(error) = self.container.destroy() {
            eprintln!("husk-init: {}", engine::error_chain(&error));
        }
        // The container's processes are gone; their mounts went with their
        // mount namespace, so the disks are busy no more.
        unmount_directories(&engine::syscall::LinuxSyscall, &self.directories);
        let rootfs = self.rootfs.to_string_lossy();
        if let Err(error) = crate::sys::unmount(&rootfs) {
            eprintln!("husk-init: unmount {rootfs}: {error}");
        }
    }
}

/// Mounts the container's disk where the bundle expects its root.
fn mount_rootfs(source: &RootfsSource, target: &Path) -> Result<(), GuestError> {
    let RootfsSource::Block {
        device,
        fs_type,
        read_only,
    } = source;
    let mut flags = 0;
    if *read_only {
        flags |= libc::MS_RDONLY;
    }
    crate::sys::mount(device, &target.to_string_lossy(), fs_type, flags, None).map_err(|e| {
        failed(
            format!(
                "mount the root filesystem {device} ({fs_type}) on {}",
                target.display()
            ),
            e,
        )
    })
}

/// Writes each file the host delivered by content and points the bind
/// mount for its destination at it, so the mount keeps its place and
/// options.
fn place_files(spec: &mut Spec, files: &[FileMount], bundle: &Path) -> Result<(), GuestError> {
    if files.is_empty() {
        return Ok(());
    }
    let directory = bundle.join("files");
    fs::create_dir_all(&directory).map_err(|e| failed("create the files directory", e))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (index, file) in files.iter().enumerate() {
        let path = directory.join(index.to_string());
        fs::write(&path, &file.contents)
            .map_err(|e| failed(format!("write the file for {}", file.destination), e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(file.mode & 0o7777)).map_err(
            |e| {
                failed(
                    format!("set the mode of the file for {}", file.destination),
                    e,
                )
            },
        )?;
        let mount = mounts
            .iter_mut()
            .find(|mount| mount.destination() == Path::new(&file.destination))
            .ok_or_else(|| {
                failed(
                    "place files",
                    format!("no mount has the destination {}", file.destination),
                )
            })?;
        mount.set_source(Some(path));
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Mounts each directory disk read-only at `<bundle>/dirs/N`, in order,
/// adding each mount point to `mounted` as soon as it is mounted, so that a
/// failure part way leaves the caller what to unmount. MS_RDONLY on the
/// first mount of the filesystem makes the superblock read-only (mount(2)),
/// so no later bind of it can write, whatever its options.
fn mount_directories(
    syscall: &dyn Syscall,
    directories: &[DirectoryMount],
    bundle: &Path,
    mounted: &mut Vec<PathBuf>,
) -> Result<(), GuestError> {
    for (number, directory) in directories.iter().enumerate() {
        let target = bundle.join("dirs").join(number.to_string());
        fs::create_dir_all(&target)
            .map_err(|e| failed(format!("create {}", target.display()), e))?;
        syscall
            .mount(
                Some(Path::new(&directory.device)),
                &target,
                Some(&directory.fs_type),
                libc::MS_RDONLY,
                None,
            )
            .map_err(|e| {
                failed(
                    format!(
                        "mount {} ({}), the copy of the host directory for {}, on {}",
                        directory.device,
                        directory.fs_type,
                        directory.destination,
                        target.display()
                    ),
                    e,
                )
            })?;
        mounted.push(target);
    }
    Ok(())
}

/// Unmounts the directory disks, last first. MNT_DETACH (umount2(2)): after
/// a failed create a container process may still be on its way out with
/// the mounts in its namespace; the disk is let go once it has.
fn unmount_directories(syscall: &dyn Syscall, mounted: &[PathBuf]) {
    for target in mounted.iter().rev() {
        if let Err(error) = syscall.umount2(target, libc::MNT_DETACH) {
            eprintln!("husk-init: unmount {}: {error}", target.display());
        }
    }
}

/// Points the bind mount for each directory's destination at the mount of
/// its disk (`mount_points`, in the same order), so the mount keeps its
/// place and options; `ro` is added (and `rw` taken out), so the
/// container's view says read-only as well. A mount whose source is already
/// under the bundle (a file `place_files` wrote for the same destination,
/// or an earlier directory's disk) is passed over.
fn place_directories(
    spec: &mut Spec,
    directories: &[DirectoryMount],
    mount_points: &[PathBuf],
    bundle: &Path,
) -> Result<(), GuestError> {
    if directories.is_empty() {
        return Ok(());
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (directory, mount_point) in directories.iter().zip(mount_points) {
        let mount = mounts
            .iter_mut()
            .find(|mount| {
                mount.destination() == Path::new(&directory.destination)
                    && !has_guest_source(mount, bundle)
            })
            .ok_or_else(|| {
                failed(
                    "place directories",
                    format!("no mount has the destination {}", directory.destination),
                )
            })?;
        mount.set_source(Some(mount_point.clone()));
        let mut options: Vec<String> = mount
            .options()
            .iter()
            .flatten()
            .filter(|option| *option != "rw" && *option != "ro")
            .cloned()
            .collect();
        options.push("ro".to_string());
        mount.set_options(Some(options));
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

fn has_guest_source(mount: &Mount, bundle: &Path) -> bool {
    mount
        .source()
        .as_ref()
        .is_some_and(|source| source.starts_with(bundle))
}

fn container_stats(stats: cgroups::CgroupStats) -> messages::ContainerStats {
    let cpu = stats.cpu.unwrap_or_default();
    let memory = stats.memory.unwrap_or_default();
    let pids = stats.pids.unwrap_or_default();
    messages::ContainerStats {
        cpu: messages::CpuStats {
            usage_usec: cpu.usage_usec,
            user_usec: cpu.user_usec,
            system_usec: cpu.system_usec,
            ..Default::default()
        },
        memory: messages::MemoryStats {
            usage_bytes: memory.usage_bytes,
            limit_bytes: memory.limit_bytes,
            peak_bytes: memory.peak_bytes,
            swap_usage_bytes: memory.swap_usage_bytes.unwrap_or_default(),
            swap_limit_bytes: memory.swap_limit_bytes,
            ..Default::default()
        },
        pids: messages::PidsStats {
            current: pids.current,
            limit: pids.limit,
        },
        io: stats
            .io
            .unwrap_or_default()
            .devices
            .into_iter()
            .map(|device| messages::IoDeviceStats {
                major: device.major as u32,
                minor: device.minor as u32,
                read_bytes: device.read_bytes,
                write_bytes: device.write_bytes,
                read_ops: device.read_ios,
                write_ops: device.write_ios,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use husk_init::engine::syscall::{Call, RecordingSyscall};
    use oci_spec::runtime::MountBuilder;

    use super::*;

    /// A directory of this test alone under the system temp dir, removed
    /// on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path =
                std::env::temp_dir().join(format!("husk-init-agent-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn directory(destination: &str, device: &str) -> DirectoryMount {
        DirectoryMount {
            destination: destination.to_string(),
            device: device.to_string(),
            fs_type: "ext4".to_string(),
        }
    }

    fn bind(destination: &str, source: &str, options: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(destination)
            .typ("bind")
            .source(source)
            .options(options.iter().map(ToString::to_string).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    #[test]
    fn each_directory_disk_is_mounted_read_only_under_the_bundle_in_order() {
        let scratch = Scratch::new("mount-directories");
        let syscall = RecordingSyscall::new();
        let mut mounted = Vec::new();
        mount_directories(
            &syscall,
            &[
                directory("/data", "/dev/vdb"),
                directory("/etc/app", "/dev/vdc"),
            ],
            &scratch.0,
            &mut mounted,
        )
        .unwrap();
        let targets = [scratch.0.join("dirs/0"), scratch.0.join("dirs/1")];
        assert_eq!(mounted, targets);
        assert!(targets.iter().all(|target| target.is_dir()));
        assert_eq!(
            syscall.calls(),
            [
                Call::Mount {
                    source: Some(PathBuf::from("/dev/vdb")),
                    target: targets[0].clone(),
                    fstype: Some("ext4".to_string()),
                    flags: libc::MS_RDONLY,
                    data: None,
                },
                Call::Mount {
                    source: Some(PathBuf::from("/dev/vdc")),
                    target: targets[1].clone(),
                    fstype: Some("ext4".to_string()),
                    flags: libc::MS_RDONLY,
                    data: None,
                },
            ]
        );
    }

    #[test]
    fn a_failed_directory_mount_names_it_and_what_was_mounted_is_unmounted_last_first() {
        let scratch = Scratch::new("mount-fails");
        let third_disk = |call: &Call| {
            matches!(call, Call::Mount { source: Some(source), .. }
                     if source == Path::new("/dev/vdd"))
        };
        let syscall = RecordingSyscall::new().failing(third_disk, libc::ENXIO);
        let mut mounted = Vec::new();
        let error = mount_directories(
            &syscall,
            &[
                directory("/a", "/dev/vdb"),
                directory("/b", "/dev/vdc"),
                directory("/c", "/dev/vdd"),
            ],
            &scratch.0,
            &mut mounted,
        )
        .unwrap_err();
        assert_eq!(
            error.step,
            format!(
                "mount /dev/vdd (ext4), the copy of the host directory for /c, on {}",
                scratch.0.join("dirs/2").display()
            )
        );
        assert_eq!(mounted.len(), 2, "the two disks mounted before the failure");

        let syscall = RecordingSyscall::new();
        unmount_directories(&syscall, &mounted);
        assert_eq!(
            syscall.calls(),
            [
                Call::Umount2 {
                    target: scratch.0.join("dirs/1"),
                    flags: libc::MNT_DETACH,
                },
                Call::Umount2 {
                    target: scratch.0.join("dirs/0"),
                    flags: libc::MNT_DETACH,
                },
            ]
        );
    }

    #[test]
    fn a_directory_s_bind_mount_keeps_its_place_and_options_and_becomes_read_only() {
        let bundle = Path::new("/run/husk/containers/web");
        let mut spec = Spec::default();
        spec.set_mounts(Some(vec![
            MountBuilder::default()
                .destination("/proc")
                .typ("proc")
                .source("proc")
                .build()
                .unwrap(),
            // A file placed at the same destination comes first and stays.
            bind("/data", "/run/husk/containers/web/files/0", &["rbind"]),
            bind("/data", "/srv/data", &["rbind", "rw", "nosuid"]),
            bind("/etc/app", "/srv/app-config", &["bind", "ro"]),
        ]));
        let mount_points = [bundle.join("dirs/0"), bundle.join("dirs/1")];
        place_directories(
            &mut spec,
            &[
                directory("/data", "/dev/vdb"),
                directory("/etc/app", "/dev/vdc"),
            ],
            &mount_points,
            bundle,
        )
        .unwrap();
        let mounts = spec.mounts().clone().unwrap();
        let summary: Vec<(String, String, Vec<String>)> = mounts
            .iter()
            .map(|mount| {
                (
                    mount.destination().display().to_string(),
                    mount
                        .source()
                        .as_ref()
                        .map(|source| source.display().to_string())
                        .unwrap_or_default(),
                    mount.options().clone().unwrap_or_default(),
                )
            })
            .collect();
        let strings = |items: &[&str]| items.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            summary,
            [
                ("/proc".to_string(), "proc".to_string(), Vec::new()),
                (
                    "/data".to_string(),
                    "/run/husk/containers/web/files/0".to_string(),
                    strings(&["rbind"])
                ),
                (
                    "/data".to_string(),
                    "/run/husk/containers/web/dirs/0".to_string(),
                    strings(&["rbind", "nosuid", "ro"])
                ),
                (
                    "/etc/app".to_string(),
                    "/run/husk/containers/web/dirs/1".to_string(),
                    strings(&["bind", "ro"])
                ),
            ]
        );
    }

    #[test]
    fn a_directory_without_its_mount_is_refused() {
        let mut spec = Spec::default();
        spec.set_mounts(Some(vec![bind("/data", "/srv/data", &["rbind"])]));
        let error = place_directories(
            &mut spec,
            &[directory("/elsewhere", "/dev/vdb")],
            &[PathBuf::from("/run/husk/containers/web/dirs/0")],
            Path::new("/run/husk/containers/web"),
        )
        .unwrap_err();
        assert_eq!(error.message, "no mount has the destination /elsewhere");
    }
}
