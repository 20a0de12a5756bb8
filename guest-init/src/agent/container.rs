//! The one container a VM holds, as the agent sees it: its root filesystem
//! disk, its bundle in the guest, its processes and their stdio.
//!
//! Handlers follow one shape: check what was asked, then `do_<request>`.
//! Every failure goes back as a GuestError naming the step.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use husk_init::engine::{self, cgroups, sys, EngineError, Stdio};
use husk_protocol::{
    messages, CreateContainerRequest, ExecRequest, FileMount, GuestError, GuestTimings, ProcessRef,
    Request, Response, RootfsSource, StdioSetup, StreamKind,
};
use oci_spec::runtime::Spec;

use super::reaper::REAP_LOCK;
use super::streams::Streams;
use super::terminal::TerminalRelay;

/// Where each container's bundle is assembled in the guest.
const BUNDLES: &str = "/run/husk/containers";

pub struct Sandbox {
    bundle: PathBuf,
    rootfs: PathBuf,
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
        let result = mount_rootfs(&request.rootfs, &rootfs)
            .and_then(|()| Self::create_on_rootfs(request, streams, &bundle, timings));
        if result.is_err() {
            streams.forget(&ProcessRef::Init);
            let _ = crate::sys::unmount(&rootfs.to_string_lossy());
            let _ = fs::remove_dir_all(&bundle);
        }
        result
    }

    fn create_on_rootfs(
        request: CreateContainerRequest,
        streams: &Streams,
        bundle: &Path,
        mut timings: GuestTimings,
    ) -> Result<(Sandbox, i32), GuestError> {
        let mut spec = request.spec;
        place_files(&mut spec, &request.files, bundle)?;
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
    /// unmounts its disk so that its data is on the device.
    pub fn destroy(self) {
        if let Err(error) = self.container.destroy() {
            eprintln!("husk-init: {}", engine::error_chain(&error));
        }
        // The container's processes are gone; their mounts went with their
        // mount namespace, so the disk is busy no more.
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
