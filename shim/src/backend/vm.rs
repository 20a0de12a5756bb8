//! The `vm` backend: every container in its own KVM virtual machine
//! (husk-vmm), where husk-init applies the bundle's namespaces, cgroups,
//! mounts, capabilities and seccomp inside the guest (DESIGN.md "Life of a
//! container").
//!
//! `create` builds the rootfs image, starts husk-vmm in sandbox mode (whose
//! pid is the container's pid: it exits with the container's status, and
//! the caller reaps it as runc's callers reap the container init), waits
//! for the guest to be ready and has it create the container. Every later
//! verb talks to the guest through husk-vmm's agent socket. Exec'd
//! processes get their stdio straight from the guest through the vsock
//! socket; a host process relays it and exits with their status.
//!
//! What differs from runc, on purpose or for now:
//! - bind-mounted host directories are not shared with the VM yet: each
//!   arrives as a read-only copy taken at create, with a warning (see
//!   `directories`); bind-mounted files are copied in;
//! - the container has loopback networking only;
//! - `ps` lists pids inside the VM;
//! - writes to the root filesystem stay in the image and go at `delete`;
//! - `--preserve-fds` cannot pass descriptors into a VM and is refused.
//!
//! Startup timings recorded (µs after the husk command started):
//! `image_built` (the rootfs and the directory copies), `vmm_spawned`,
//! `guest_ready` (the agent socket answered), `container_created`; and the
//! guest's own phases, `guest_kernel_entry`, `guest_init_start` and
//! `guest_container_created`, placed on the CLI's clock by taking
//! `guest_ready` as the moment husk-init was ready (an estimate, late by at
//! most the time husk-vmm needs to open its socket).

mod agent;
pub mod artifacts;
mod directories;
mod exec;
mod guest_spec;
mod host_hooks;
mod image;
mod jail_user;
mod layout;
pub mod sizing;
mod vmm;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use std::{io, thread};

use husk_init::engine::cgroups::{Cgroup, CgroupError};
use husk_init::engine::hooks::{self, HookError, HookStage};
use husk_init::engine::sys::{self, Fork};
use husk_protocol::{
    CreateContainerRequest, ExecRequest, ExitStatus, GuestProcess, GuestTimings, ProcessRef,
    Request, Response, RootfsSource, StdioSetup, StreamKind,
};
use oci_spec::runtime::{ContainerState, LinuxResources};

use self::agent::{AgentClient, AgentError, AgentTimeouts, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use self::artifacts::{ArtifactError, Surroundings};
use self::directories::{DirectoryError, PlannedDirectory};
use self::exec::{new_exec_id, open_exec_stdio, ExecRun};
use self::guest_spec::GuestSpecError;
use self::image::ImageError;
use self::layout::{LayoutError, VmFiles, SHORT_SOCKET_ROOT};
use self::sizing::{HostCapacity, SizingError};
use self::vmm::{ContainerStdio, Reaped, VmmError};
use super::hooks::{hook_state, run_with_warnings};
use super::relay::{self, ConsoleRelay, RelayError, OUTPUT_GRACE};
use super::{
    Backend, BackendError, BackendKind, CpuStats, CpuThrottling, CpuUsage, CreateContext,
    CreatedContainer, ExecContext, MemoryEntry, MemoryStats, PidsStats, Stats,
};
use crate::config::{self, ConfigError, JailUserSetting};
use crate::logging;
use crate::signal::Signal;
use crate::state::{ContainerRecord, Status};

/// How long `delete` waits for husk-vmm to end by itself or after
/// Shutdown, before it kills it; and then after SIGKILL. husk-vmm gives the
/// container's output up to 5 s to drain before it shuts the VM down.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `delete` gives each of its requests to a VM that may be stuck.
const DELETE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The VM's memory, remembered in the container's record.
const EXTRA_MEMORY_MIB: &str = "vmMemoryMib";

/// Errors of the vm backend; each says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("load husk's configuration")]
    Config(#[source] ConfigError),
    #[error("find what the VM boots")]
    Artifacts(#[source] ArtifactError),
    #[error("prepare config.json for the guest")]
    GuestSpec(#[source] GuestSpecError),
    #[error("size the VM")]
    Sizing(#[source] SizingError),
    #[error("lay out the VM's files")]
    Layout(#[source] LayoutError),
    #[error("hand the VM's files to husk-vmm's user")]
    JailUser(#[source] jail_user::HandOverError),
    #[error("build the root filesystem image")]
    Image(#[source] ImageError),
    #[error("copy the bind-mounted host directories into the VM")]
    Directories(#[source] DirectoryError),
    #[error("save the host hooks to {}", path.display())]
    SaveHooks {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "process.terminal is true but no --console-socket was given to receive the terminal; \
         give one, or run in the foreground (husk run, or husk exec without --detach)"
    )]
    TerminalWithoutConsoleSocket,
    #[error(
        "--preserve-fds {count}: descriptors cannot be passed into a VM; run without it or use \
         the container backend"
    )]
    PreserveFds { count: u32 },
    #[error("listen on {} for the container's terminal", path.display())]
    ConsoleListen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create the host cgroup that holds husk-vmm")]
    Cgroup(#[source] CgroupError),
    #[error("start husk-vmm")]
    Spawn(#[source] VmmError),
    #[error("boot the VM")]
    Boot(#[source] AgentError),
    #[error("create the container in the guest")]
    Create(#[source] AgentError),
    #[error("run the {stage} hooks")]
    Hooks {
        stage: HookStage,
        #[source]
        source: HookError,
    },
    #[error("container not running (its VM has stopped)")]
    NotRunning,
    #[error("talk to the guest")]
    Agent(#[source] AgentError),
    #[error("open the {kind:?} stream of the exec process")]
    OpenStream {
        kind: StreamKind,
        #[source]
        source: husk_vmm::guest_agent::AgentError,
    },
    #[error("start the exec process in the guest")]
    Exec(#[source] AgentError),
    #[error("relay the process's stdio")]
    Relay(#[source] RelayError),
    #[error("fork the process that relays the exec process")]
    ForkRelay(#[source] io::Error),
    #[error("no exec process of this husk command to wait for")]
    NoExec,
    #[error("receive the container's terminal on {}: {reason}", path.display())]
    Console { path: PathBuf, reason: String },
    #[error("husk-vmm (pid {pid}) did not exit after SIGKILL")]
    Unkillable { pid: i32 },
}

impl VmError {
    /// husk's exit status for this error: the guest's 127 or 126 for a
    /// program that cannot run, 1 otherwise.
    fn exit_code(&self) -> u8 {
        match self {
            VmError::Create(error) | VmError::Agent(error) | VmError::Exec(error) => {
                error.exit_code()
            }
            _ => 1,
        }
    }

    fn into_backend(self) -> BackendError {
        BackendError::Failed {
            what: "vm backend".to_string(),
            exit_code: self.exit_code(),
            source: Box::new(self),
        }
    }
}

/// What one husk command keeps between the backend calls it makes (`run`
/// calls create, start and wait; a foreground `exec` calls exec and
/// wait_exec).
#[derive(Default)]
struct Session {
    /// The agent connection `create` made, reused by `start`.
    agent: Option<AgentClient>,
    /// The container's pty master, once husk-vmm sends it, for `run` in
    /// the foreground with a terminal and no --console-socket.
    console: Option<(PathBuf, Receiver<Result<OwnedFd, String>>)>,
    /// The exec process started without --detach.
    exec: Option<ExecRun>,
}

pub struct VmBackend {
    session: Mutex<Session>,
    /// How long its commands wait on the guest.
    timeouts: AgentTimeouts,
}

impl Default for VmBackend {
    fn default() -> Self {
        VmBackend::new()
    }
}

impl std::fmt::Debug for VmBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("VmBackend").finish_non_exhaustive()
    }
}

impl VmBackend {
    pub fn new() -> VmBackend {
        VmBackend {
            session: Mutex::new(Session::default()),
            timeouts: AgentTimeouts::default(),
        }
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The agent connection this command already has, or a new one.
    fn agent(&self, container: &ContainerRecord) -> Result<AgentClient, VmError> {
        if let Some(agent) = self.session().agent.take() {
            return Ok(agent);
        }
        connect(container)
    }

    fn keep_agent(&self, agent: AgentClient) {
        self.session().agent = Some(agent);
    }

    /// Sends one request to a running container's guest.
    fn call(
        &self,
        container: &ContainerRecord,
        request: Request,
        accept: impl Fn(&Response) -> bool,
    ) -> Result<Response, VmError> {
        let mut agent = self.agent(container)?;
        let response = agent
            .expect(request, Some(self.timeouts.request), accept)
            .map_err(|error| not_running_or(error, VmError::Agent))?;
        self.keep_agent(agent);
        Ok(response)
    }

    /// `create`, top-down: check and plan, build the image, start husk-vmm
    /// in the container's host cgroup, wait for the guest, create the
    /// container there, run the host's create hooks. On failure, [`Undo`]
    /// takes everything back.
    fn create_vm(&self, context: &CreateContext<'_>) -> Result<CreatedContainer, VmError> {
        let plan = VmPlan::new(context)?;
        let id = context.id.as_str();
        let files = VmFiles::create(context.state_dir, Path::new(SHORT_SOCKET_ROOT))
            .map_err(VmError::Layout)?;
        let mut undo = Undo::new(files.clone());
        let mut timings = BTreeMap::new();

        image::build(&context.bundle.rootfs, &files.image).map_err(VmError::Image)?;
        let directory_disks =
            directories::build(&plan.directories, &files).map_err(VmError::Directories)?;
        for (planned, disk) in plan.directories.iter().zip(&directory_disks) {
            logging::warning(format!(
                "container {id}: {}",
                directories::copy_warning(&planned.directory, &disk.mount.device)
            ));
        }
        let directory_images: Vec<PathBuf> = directory_disks
            .iter()
            .map(|disk| disk.image.clone())
            .collect();
        timings.insert("image_built".to_string(), context.micros_since_cli_start());
        host_hooks::save(&files.hooks, &plan.guest.host_hooks).map_err(|source| {
            VmError::SaveHooks {
                path: files.hooks.clone(),
                source,
            }
        })?;
        if !context.detach {
            // `run` in the foreground forwards signals from its wait; they
            // must be blocked before any thread starts.
            relay::block_forwarded_signals().map_err(VmError::Relay)?;
        }
        let stdio = self.container_stdio(context, plan.terminal, &files)?;

        let cgroup =
            Cgroup::create(plan.cgroups_path.as_deref(), id, None).map_err(VmError::Cgroup)?;
        for warning in cgroup.warnings() {
            logging::debug(format!("container {id}: host cgroup: {warning}"));
        }
        let cgroup_path = cgroup.relative_path().to_path_buf();
        let cgroup = &*undo.cgroup.insert(cgroup);
        let jail = match plan.jail {
            Jail::Off => None,
            Jail::On(user) => {
                files.create_jail_dir().map_err(VmError::Layout)?;
                let user = jail_user::for_container(user, context.state_dir);
                if let Some(user) = user {
                    let artifacts = &plan.artifacts;
                    let read_only = [artifacts.kernel.as_path(), &artifacts.initramfs];
                    jail_user::check_readable(user, &read_only).map_err(VmError::JailUser)?;
                    jail_user::hand_over(&files, &directory_images, user)
                        .map_err(VmError::JailUser)?;
                }
                Some(user)
            }
        };
        let command = vmm::command(
            &plan.artifacts,
            &files,
            &directory_images,
            plan.size,
            &stdio,
            jail,
        );
        logging::debug(format!("container {id}: {command:?}"));
        let pid = vmm::spawn(command, Some(cgroup), &files.vmm_log).map_err(VmError::Spawn)?;
        undo.vmm = Some(pid);
        timings.insert("vmm_spawned".to_string(), context.micros_since_cli_start());

        let mut agent = wait_for_guest(pid, &files, plan.boot_timeout, &mut undo)?;
        let guest_ready = context.micros_since_cli_start();
        timings.insert("guest_ready".to_string(), guest_ready);

        let create = create_request(
            context,
            plan.guest.spec,
            GuestSources {
                files: plan.guest.files,
                directories: directory_disks.into_iter().map(|disk| disk.mount).collect(),
            },
            plan.terminal,
        );
        agent
            .expect(
                create,
                Some(plan.boot_timeout.max(REQUEST_TIMEOUT)),
                |response| matches!(response, Response::Created { .. }),
            )
            .map_err(|error| VmError::Create(with_logs(error, &files)))?;
        timings.insert(
            "container_created".to_string(),
            context.micros_since_cli_start(),
        );
        if let Ok(Response::Timings(guest_timings)) =
            agent.request(Request::Timings, Some(REQUEST_TIMEOUT))
        {
            timings.extend(aligned_guest_timings(&guest_timings, guest_ready));
        }

        // prestart (deprecated) and createRuntime run in the runtime's
        // namespaces once the container exists (runtime.md "Lifecycle").
        let bundle = context.bundle;
        let state = hooks::container_state(
            bundle.spec.version(),
            id,
            ContainerState::Creating,
            Some(pid),
            &bundle.path,
            bundle.spec.annotations().clone(),
        );
        for (stage, stage_hooks) in [
            (HookStage::Prestart, &plan.guest.host_hooks.prestart),
            (
                HookStage::CreateRuntime,
                &plan.guest.host_hooks.create_runtime,
            ),
        ] {
            hooks::run_hooks_in(&bundle.path, stage_hooks, stage, &state)
                .map_err(|source| VmError::Hooks { stage, source })?;
        }

        undo.disarm();
        self.keep_agent(agent);
        let mut paths = files.record(Some(cgroup_path));
        paths.extra.insert(
            EXTRA_MEMORY_MIB.to_string(),
            plan.size.memory_mib.to_string(),
        );
        Ok(CreatedContainer {
            pid,
            paths,
            timings_micros: timings,
        })
    }

    /// Where the container's stdio goes: husk-vmm's own (the caller's), or
    /// a pty whose master goes to the caller's console socket, or, for
    /// `run` in the foreground, to a socket of husk's own from which
    /// [`Backend::wait`] relays it.
    fn container_stdio(
        &self,
        context: &CreateContext<'_>,
        terminal: bool,
        files: &VmFiles,
    ) -> Result<ContainerStdio, VmError> {
        Ok(match (terminal, context.console_socket) {
            (false, _) => ContainerStdio::Pipes,
            (true, Some(path)) => ContainerStdio::Terminal {
                console_socket: path.to_path_buf(),
            },
            (true, None) => {
                let receiver = receive_console(&files.console_socket)?;
                self.session().console = Some((files.console_socket.clone(), receiver));
                ContainerStdio::Terminal {
                    console_socket: files.console_socket.clone(),
                }
            }
        })
    }

    fn start_container(&self, container: &ContainerRecord) -> Result<(), VmError> {
        let mut agent = self.agent(container)?;
        agent
            .expect(Request::Start, Some(REQUEST_TIMEOUT), |response| {
                *response == Response::Started
            })
            .map_err(|error| not_running_or(error, VmError::Agent))?;
        self.keep_agent(agent);
        let files = VmFiles::of(container);
        let saved_hooks = host_hooks::load(&files.hooks);
        run_with_warnings(
            &container.bundle,
            &saved_hooks.poststart,
            HookStage::Poststart,
            &hook_state(container, ContainerState::Running, Some(container.pid)),
        );
        Ok(())
    }

    fn delete_vm(&self, container: &ContainerRecord, force: bool) -> Result<(), VmError> {
        let files = VmFiles::of(container);
        if container.process_is_alive() {
            stop_vmm(container, &files, force)?;
        }
        let saved_hooks = host_hooks::load(&files.hooks);
        for (path, error) in files.remove_all() {
            logging::warning(format!(
                "container {}: remove {}: {error}",
                container.id,
                path.display()
            ));
        }
        if let Some(cgroup_path) = &container.husk.paths.cgroup {
            // Only husk-vmm lived there, and it is gone; anything it left
            // behind goes with the cgroup.
            let destroyed = Cgroup::load(Some(&cgroup_path.to_string_lossy()), &container.id)
                .and_then(|cgroup| {
                    let _ = cgroup.kill_all(libc::SIGKILL);
                    cgroup.destroy()
                });
            match destroyed {
                Ok(()) | Err(CgroupError::NotFound { .. }) => {}
                Err(error) => logging::warning(format!(
                    "container {}: remove its host cgroup: {}",
                    container.id,
                    husk_init::engine::error_chain(&error)
                )),
            }
        }
        run_with_warnings(
            &container.bundle,
            &saved_hooks.poststop,
            HookStage::Poststop,
            &hook_state(container, ContainerState::Stopped, None),
        );
        Ok(())
    }

    /// `run` in the foreground: relays the container's terminal if husk
    /// holds it, forwards signals, and returns husk-vmm's status, which is
    /// the container's.
    fn wait_vm(&self, container: &ContainerRecord) -> Result<u8, VmError> {
        let pid = container.pid;
        let files = VmFiles::of(container);
        let console = match self.session().console.take() {
            Some((path, receiver)) => Some(start_console_relay(&path, &receiver)?),
            None => None,
        };

        // husk-vmm is this command's child when `run` made it; otherwise
        // the guest says how the container ended.
        let mut guest_waiter = None;
        let first = vmm::try_reap(pid);
        if first == Reaped::NotOurs {
            let (sender, receiver) = mpsc::channel();
            let agent_socket = files.agent_socket.clone();
            thread::spawn(move || {
                let _ = sender.send(wait_in_guest(&agent_socket, ProcessRef::Init));
            });
            guest_waiter = Some(receiver);
        }
        let mut control = None;
        let status = match first {
            Reaped::Ended(status) => Some(vmm::exit_code(status)),
            _ => relay::supervise(
                || match &guest_waiter {
                    Some(receiver) => receiver.try_recv().ok().map(Result::ok),
                    None => match vmm::try_reap(pid) {
                        Reaped::Ended(status) => Some(Some(vmm::exit_code(status))),
                        Reaped::Running => None,
                        Reaped::NotOurs => Some(None),
                    },
                },
                |signal| match (&console, signal) {
                    (Some(console), libc::SIGWINCH) => console.follow_size(),
                    // Without a terminal there is no size to pass on.
                    (None, libc::SIGWINCH) => {}
                    _ => forward_signal(container, &ProcessRef::Init, signal, &mut control),
                },
            ),
        };
        if let Some(console) = console {
            console.finish(OUTPUT_GRACE);
        }
        // 255: the status could not be learnt.
        let status = status.unwrap_or(u8::MAX);
        if [vmm::EXIT_VMM_FAILED, vmm::EXIT_GUEST_CRASHED].contains(&i32::from(status)) {
            // `run` removes these files next: what they say goes with the
            // warning.
            logging::warning(format!(
                "container {}: husk-vmm exited with {status}: the VM failed, not the container; \
                 see {} and {}{}",
                container.id,
                files.vmm_log.display(),
                files.console_log.display(),
                why_the_vm_ended(&files)
            ));
        }
        Ok(status)
    }

    fn exec_process(&self, context: &ExecContext<'_>) -> Result<i32, VmError> {
        let container = context.container;
        if context.preserve_fds > 0 {
            return Err(VmError::PreserveFds {
                count: context.preserve_fds,
            });
        }
        if !container.process_is_alive() {
            return Err(VmError::NotRunning);
        }
        let terminal = context.process.terminal().unwrap_or(false);
        if terminal && context.detach && context.console_socket.is_none() {
            return Err(VmError::TerminalWithoutConsoleSocket);
        }
        if !terminal && context.console_socket.is_some() {
            logging::warning(format!(
                "container {}: --console-socket ignored: the process has no terminal",
                container.id
            ));
        }
        if !context.detach {
            relay::block_forwarded_signals().map_err(VmError::Relay)?;
        }
        let files = VmFiles::of(container);
        let exec_id = new_exec_id();
        let process = ProcessRef::Exec(exec_id.clone());
        let (stdio, setup) = open_exec_stdio(
            &files.vsock_socket,
            &process,
            terminal,
            context.console_socket,
            self.timeouts.stream_open,
        )
        // The VM gone since the check above: say so, not how the stream's
        // connection failed.
        .map_err(|error| {
            if vm_has_stopped(container) {
                VmError::NotRunning
            } else {
                error
            }
        })?;
        let mut agent = connect(container)?;
        agent
            .expect(
                Request::Exec(Box::new(ExecRequest {
                    exec_id: exec_id.clone(),
                    process: context.process.clone(),
                    stdio: setup,
                })),
                Some(self.timeouts.request),
                |response| matches!(response, Response::ExecStarted { .. }),
            )
            .map_err(|error| not_running_or(error, VmError::Exec))?;
        drop(agent);
        let run = ExecRun {
            container: container.clone(),
            process,
            stdio,
        };
        if !context.detach {
            self.session().exec = Some(run);
            return Ok(sys::own_pid());
        }
        // The caller (conmon, containerd's shim) reaps the pid it gets and
        // takes its status as the exec's: a child that relays and ends
        // with that status.
        match sys::fork().map_err(VmError::ForkRelay)? {
            Fork::Parent { child } => Ok(child),
            Fork::Child => run.run_detached(),
        }
    }
}

/// What `create` decided before it makes anything.
struct VmPlan {
    terminal: bool,
    artifacts: artifacts::Artifacts,
    guest: guest_spec::GuestSpec,
    /// The bind-mounted host directories, measured and within the limits.
    directories: Vec<PlannedDirectory>,
    size: sizing::GuestSize,
    boot_timeout: Duration,
    cgroups_path: Option<String>,
    /// Whether husk-vmm jails itself, and as whom (the configuration's
    /// `jail` and `jail_user`).
    jail: Jail,
}

#[derive(Debug, Clone, Copy)]
enum Jail {
    Off,
    On(Option<JailUserSetting>),
}

impl VmPlan {
    /// Checks the options, finds the artifacts, splits the spec between
    /// guest and host (warning about what the guest cannot have) and sizes
    /// the VM.
    fn new(context: &CreateContext<'_>) -> Result<VmPlan, VmError> {
        let bundle = context.bundle;
        let id = context.id.as_str();
        if context.preserve_fds > 0 {
            return Err(VmError::PreserveFds {
                count: context.preserve_fds,
            });
        }
        let terminal = bundle.process().terminal().unwrap_or(false);
        if terminal && context.console_socket.is_none() && context.detach {
            return Err(VmError::TerminalWithoutConsoleSocket);
        }
        if !terminal && context.console_socket.is_some() {
            logging::warning(format!(
                "container {id}: --console-socket ignored: process.terminal is false"
            ));
        }
        let guest = guest_spec::prepare(bundle).map_err(VmError::GuestSpec)?;
        for dropped in &guest.dropped {
            logging::warning(format!("container {id}: {dropped}"));
        }
        let directories = directories::plan(&guest.directories, &bundle.config_path)
            .map_err(VmError::Directories)?;
        let annotations = bundle.spec.annotations().as_ref();
        let linux = bundle.spec.linux().as_ref();
        let size = sizing::guest_size(
            linux.and_then(|linux| linux.resources().as_ref()),
            annotations,
            HostCapacity::of_this_host(),
            &bundle.config_path,
        )
        .map_err(VmError::Sizing)?;
        logging::debug(format!(
            "container {id}: a VM of {} MiB and {} vCPU(s)",
            size.memory_mib, size.vcpus
        ));
        let boot_timeout =
            sizing::boot_timeout(annotations, &bundle.config_path).map_err(VmError::Sizing)?;
        // After everything config.json says has been checked, so that a bad
        // bundle is reported as such even where the kernel is missing.
        let (configuration, config_path) = config::load().map_err(VmError::Config)?;
        let artifacts = artifacts::find(
            &configuration,
            &config_path,
            &Surroundings::of_this_process(),
        )
        .map_err(VmError::Artifacts)?;
        artifacts::check_boot_files(&artifacts, &config_path).map_err(VmError::Artifacts)?;
        Ok(VmPlan {
            terminal,
            artifacts,
            guest,
            directories,
            size,
            boot_timeout,
            cgroups_path: linux
                .and_then(|linux| linux.cgroups_path().as_ref())
                .map(|path| path.to_string_lossy().into_owned()),
            jail: if configuration.jail.unwrap_or(true) {
                Jail::On(configuration.jail_user)
            } else {
                Jail::Off
            },
        })
    }
}

/// Waits until husk-vmm opens its agent socket (the guest is ready) and
/// connects, giving up when husk-vmm exits or `boot_timeout` passes.
fn wait_for_guest(
    pid: i32,
    files: &VmFiles,
    boot_timeout: Duration,
    undo: &mut Undo,
) -> Result<AgentClient, VmError> {
    let deadline = Instant::now() + boot_timeout;
    AgentClient::connect_when_ready(&files.agent_socket, deadline, || match vmm::try_reap(pid) {
        Reaped::Running => Ok(()),
        Reaped::Ended(status) => {
            // Reaped: its pid is no longer ours to kill.
            undo.vmm = None;
            Err(AgentError::VmEnded(format!(
                "{} before the guest was ready",
                vmm::describe_exit(status)
            )))
        }
        Reaped::NotOurs => Err(AgentError::VmEnded(
            "husk-vmm is no longer this command's child".to_string(),
        )),
    })
    .map_err(|error| VmError::Boot(with_logs(error, files)))
}

/// The bind mount sources the guest gets from the host: files by content,
/// directories as read-only disks.
struct GuestSources {
    files: Vec<husk_protocol::FileMount>,
    directories: Vec<husk_protocol::DirectoryMount>,
}

/// The CreateContainer request: the guest's spec, the bind mount sources
/// it gets from the host, the rootfs image as /dev/vda (the first disk
/// husk-vmm attaches), and stdio as husk-vmm relays it.
fn create_request(
    context: &CreateContext<'_>,
    spec: oci_spec::runtime::Spec,
    sources: GuestSources,
    terminal: bool,
) -> Request {
    Request::CreateContainer(Box::new(CreateContainerRequest {
        id: context.id.to_string(),
        spec,
        bundle: context.bundle.path.to_string_lossy().into_owned(),
        rootfs: RootfsSource::Block {
            device: "/dev/vda".to_string(),
            fs_type: "ext4".to_string(),
            // The engine may still make mount points and the working
            // directory in the image; root.readonly then makes the
            // container's own view read-only, as runc does.
            read_only: false,
        },
        stdio: if terminal {
            StdioSetup::Terminal
        } else {
            StdioSetup::Pipes {
                stdin: true,
                stdout: true,
                stderr: true,
            }
        },
        files: sources.files,
        directories: sources.directories,
    }))
}

/// Ends a container's husk-vmm for `delete`. With `force`, every process
/// in the container is killed first and, once the guest says the
/// container's process has ended, husk-vmm shuts the VM down by itself
/// (after the last output is out), exiting with that process's status, as
/// the caller expects from runc's SIGKILL. A VM whose agent does not answer
/// (still booting, crashed) is asked to shut down, and killed when it does
/// not.
fn stop_vmm(container: &ContainerRecord, files: &VmFiles, force: bool) -> Result<(), VmError> {
    let pid = container.pid;
    let alive = || container.process_is_alive();
    let mut agent = AgentClient::connect(&files.agent_socket, Duration::ZERO).ok();
    let mut init_ended = false;
    if let (Some(agent), true) = (agent.as_mut(), force) {
        let kill_all = Request::Signal {
            process: ProcessRef::Init,
            signal: libc::SIGKILL,
            all: true,
        };
        let wait = Request::Wait {
            process: ProcessRef::Init,
        };
        init_ended = agent
            .request(kill_all, Some(DELETE_REQUEST_TIMEOUT))
            .and_then(|_| agent.request(wait, Some(DELETE_REQUEST_TIMEOUT)))
            .is_ok();
    }
    if init_ended && vmm::wait_until_gone(pid, SHUTDOWN_TIMEOUT, alive) {
        return Ok(());
    }
    if let Some(agent) = agent.as_mut() {
        let _ = agent.request(Request::Shutdown, Some(DELETE_REQUEST_TIMEOUT));
        if vmm::wait_until_gone(pid, SHUTDOWN_TIMEOUT, alive) {
            return Ok(());
        }
    }
    logging::warning(format!(
        "container {}: husk-vmm (pid {pid}) did not shut the VM down; killing it",
        container.id
    ));
    if alive() {
        let _ = sys::kill(pid, libc::SIGKILL);
    }
    if vmm::wait_until_gone(pid, KILL_TIMEOUT, alive) {
        Ok(())
    } else {
        Err(VmError::Unkillable { pid })
    }
}

/// Connects to a running container's agent socket.
fn connect(container: &ContainerRecord) -> Result<AgentClient, VmError> {
    if !container.process_is_alive() {
        return Err(VmError::NotRunning);
    }
    AgentClient::connect(&VmFiles::of(container).agent_socket, CONNECT_TIMEOUT)
        .map_err(|error| not_running_or(error, VmError::Agent))
}

/// Whether a container's VM has stopped or is stopping: husk-vmm is gone,
/// or its agent socket takes no connection any more.
fn vm_has_stopped(container: &ContainerRecord) -> bool {
    !container.process_is_alive()
        || AgentClient::connect(&VmFiles::of(container).agent_socket, Duration::ZERO)
            .is_err_and(|error| error.vm_is_gone())
}

/// A VM that went away means a stopped container, whatever was asked.
fn not_running_or(error: AgentError, wrap: fn(AgentError) -> VmError) -> VmError {
    if error.vm_is_gone() {
        VmError::NotRunning
    } else {
        wrap(error)
    }
}

/// Adds the end of husk-vmm's log and of the console to an error about a
/// VM that did not come up or went away.
fn with_logs(error: AgentError, files: &VmFiles) -> AgentError {
    let logs = format!(
        "{}{}",
        why_the_vm_ended(files),
        vmm::tail(&files.console_log, "the console")
    );
    match error {
        AgentError::NotReady { path, waited, .. } => AgentError::NotReady {
            path,
            waited,
            detail: logs,
        },
        AgentError::VmEnded(text) => AgentError::VmEnded(text + &logs),
        error @ (AgentError::Closed { .. } | AgentError::TimedOut { .. }) => {
            AgentError::VmEnded(format!("{}{logs}", husk_init::engine::error_chain(&error)))
        }
        other => other,
    }
}

/// What a VM's files say about why it ended: the guest kernel's panic
/// message if it panicked, and the end of husk-vmm's log.
fn why_the_vm_ended(files: &VmFiles) -> String {
    let panic = vmm::guest_panic(&files.console_log)
        .map(|line| format!("\n  the guest kernel panicked: {line}"))
        .unwrap_or_default();
    panic + &vmm::tail(&files.vmm_log, "husk-vmm's log")
}

/// Listens on `path` for husk-vmm's pty master and receives it on a
/// thread.
fn receive_console(path: &Path) -> Result<Receiver<Result<OwnedFd, String>>, VmError> {
    let listener = UnixListener::bind(path).map_err(|source| VmError::ConsoleListen {
        path: path.to_path_buf(),
        source,
    })?;
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let received = listener
            .accept()
            .map_err(|error| format!("accept: {error}"))
            .and_then(|(connection, _)| {
                sys::receive_fd(std::os::fd::AsFd::as_fd(&connection))
                    .map(|(_, master)| master)
                    .map_err(|error| format!("receive the pty master: {error}"))
            });
        let _ = sender.send(received);
    });
    Ok(receiver)
}

/// Takes husk-vmm's pty master from `receiver` and relays the container's
/// terminal to husk's own.
fn start_console_relay(
    path: &Path,
    receiver: &Receiver<Result<OwnedFd, String>>,
) -> Result<ConsoleRelay, VmError> {
    // husk-vmm sends the master before it opens the agent socket, so it has
    // arrived by now or never will.
    let master = receiver
        .recv_timeout(CONNECT_TIMEOUT)
        .map_err(|_| "husk-vmm never sent it".to_string())
        .and_then(|received| received)
        .map_err(|reason| VmError::Console {
            path: path.to_path_buf(),
            reason,
        })?;
    ConsoleRelay::start(master).map_err(VmError::Relay)
}

/// Removes what a failed `create` made: husk-vmm (killed), the files, the
/// cgroup.
struct Undo {
    files: Option<VmFiles>,
    vmm: Option<i32>,
    cgroup: Option<Cgroup>,
}

impl Undo {
    fn new(files: VmFiles) -> Undo {
        Undo {
            files: Some(files),
            vmm: None,
            cgroup: None,
        }
    }

    fn disarm(&mut self) {
        self.files = None;
        self.vmm = None;
        self.cgroup = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(pid) = self.vmm.take() {
            let _ = sys::kill(pid, libc::SIGKILL);
            // Our child: reaping it also makes sure it is gone before its
            // cgroup is removed.
            let _ = sys::wait(pid, false);
        }
        if let Some(files) = self.files.take() {
            for (path, error) in files.remove_all() {
                logging::warning(format!(
                    "remove {} after a failed create: {error}",
                    path.display()
                ));
            }
        }
        if let Some(cgroup) = self.cgroup.take() {
            let _ = cgroup.kill_all(libc::SIGKILL);
            if let Err(error) = cgroup.destroy() {
                logging::warning(format!(
                    "remove the host cgroup after a failed create: {}",
                    husk_init::engine::error_chain(&error)
                ));
            }
        }
    }
}

/// The guest's phases on the CLI's clock: husk-init was ready (guest clock
/// `init_ready_us`) when the agent socket answered (`guest_ready`).
fn aligned_guest_timings(timings: &GuestTimings, guest_ready: u64) -> BTreeMap<String, u64> {
    let kernel_entry = guest_ready.saturating_sub(timings.init_ready_us);
    let mut aligned = BTreeMap::from([
        ("guest_kernel_entry".to_string(), kernel_entry),
        (
            "guest_init_start".to_string(),
            kernel_entry + timings.init_start_us,
        ),
    ]);
    if let Some(created) = timings.container_created_us {
        aligned.insert(
            "guest_container_created".to_string(),
            kernel_entry + created,
        );
    }
    aligned
}

/// Waits in the guest for `process` to end; the VM going away first means
/// it was killed with it (SIGKILL, 137).
fn wait_in_guest(agent_socket: &Path, process: ProcessRef) -> Result<u8, ()> {
    let exited = AgentClient::connect(agent_socket, CONNECT_TIMEOUT)
        .and_then(|mut agent| agent.request(Request::Wait { process }, None));
    match exited {
        Ok(Response::Exited { status, .. }) => Ok(exit_status_code(status)),
        Err(error) if error.vm_is_gone() => Ok(128 + libc::SIGKILL as u8),
        _ => Err(()),
    }
}

fn exit_status_code(status: ExitStatus) -> u8 {
    status.exit_code().clamp(0, 255) as u8
}

/// Passes `signal` on to `process` in the guest, on `control` (connected
/// on first use, dropped after an error). Best effort: a process that is
/// gone needs no signal.
fn forward_signal(
    container: &ContainerRecord,
    process: &ProcessRef,
    signal: i32,
    control: &mut Option<AgentClient>,
) {
    send_on(
        container,
        control,
        Request::Signal {
            process: process.clone(),
            signal,
            all: false,
        },
    );
}

fn send_on(container: &ContainerRecord, control: &mut Option<AgentClient>, request: Request) {
    if control.is_none() {
        *control = connect(container).ok();
    }
    if let Some(agent) = control.as_mut() {
        if agent.request(request, Some(REQUEST_TIMEOUT)).is_err() {
            *control = None;
        }
    }
}

impl Backend for VmBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Vm
    }

    fn create(&self, context: &CreateContext<'_>) -> Result<CreatedContainer, BackendError> {
        self.create_vm(context).map_err(VmError::into_backend)
    }

    fn start(&self, container: &ContainerRecord) -> Result<(), BackendError> {
        self.start_container(container)
            .map_err(VmError::into_backend)
    }

    fn kill(
        &self,
        container: &ContainerRecord,
        signal: Signal,
        all: bool,
    ) -> Result<(), BackendError> {
        self.call(
            container,
            Request::Signal {
                process: ProcessRef::Init,
                signal: signal.number(),
                all,
            },
            |response| *response == Response::Ok,
        )
        .map(drop)
        .map_err(VmError::into_backend)
    }

    fn delete(&self, container: &ContainerRecord, force: bool) -> Result<(), BackendError> {
        self.delete_vm(container, force)
            .map_err(VmError::into_backend)
    }

    fn wait(&self, container: &ContainerRecord) -> Result<u8, BackendError> {
        self.wait_vm(container).map_err(VmError::into_backend)
    }

    fn exec(&self, context: &ExecContext<'_>) -> Result<i32, BackendError> {
        self.exec_process(context).map_err(VmError::into_backend)
    }

    fn wait_exec(&self, container: &ContainerRecord, _pid: i32) -> Result<u8, BackendError> {
        let run = self.session().exec.take();
        let status = run
            .ok_or(VmError::NoExec)
            .and_then(ExecRun::run)
            .map_err(VmError::into_backend)?;
        // 137: the process's status when the VM went away under it (255:
        // when its status was lost with it); the caller learns why here,
        // not from the bare number.
        let vm_gone_statuses = [128 + libc::SIGKILL as u8, u8::MAX];
        if vm_gone_statuses.contains(&status) && vm_has_stopped(container) {
            let files = VmFiles::of(container);
            logging::warning(format!(
                "container {}: the VM stopped while the exec process ran, which ended with it \
                 (status {status}); see {} and {}{}",
                container.id,
                files.vmm_log.display(),
                files.console_log.display(),
                why_the_vm_ended(&files)
            ));
        }
        Ok(status)
    }

    fn processes(&self, container: &ContainerRecord) -> Result<Vec<i32>, BackendError> {
        match self.call(container, Request::ListProcesses, |response| {
            matches!(response, Response::Processes { .. })
        }) {
            Ok(Response::Processes { pids }) => Ok(pids),
            Ok(_) => unreachable!("accepted only Processes"),
            Err(error) => Err(error.into_backend()),
        }
    }

    fn process_table(
        &self,
        container: &ContainerRecord,
    ) -> Result<Option<Vec<GuestProcess>>, BackendError> {
        match self.call(container, Request::ProcessTable, |response| {
            matches!(response, Response::ProcessTable { .. })
        }) {
            Ok(Response::ProcessTable { processes }) => Ok(Some(processes)),
            Ok(_) => unreachable!("accepted only ProcessTable"),
            Err(error) => Err(error.into_backend()),
        }
    }

    fn pause(&self, container: &ContainerRecord) -> Result<(), BackendError> {
        self.call(container, Request::Pause, |response| {
            *response == Response::Ok
        })
        .map(drop)
        .map_err(VmError::into_backend)
    }

    fn resume(&self, container: &ContainerRecord) -> Result<(), BackendError> {
        self.call(container, Request::Resume, |response| {
            *response == Response::Ok
        })
        .map(drop)
        .map_err(VmError::into_backend)
    }

    fn update(
        &self,
        container: &ContainerRecord,
        resources: &LinuxResources,
    ) -> Result<(), BackendError> {
        let limit = resources
            .memory()
            .as_ref()
            .and_then(|memory| memory.limit())
            .filter(|limit| *limit > 0);
        let vm_memory_mib = container
            .husk
            .paths
            .extra
            .get(EXTRA_MEMORY_MIB)
            .and_then(|value| value.parse::<i64>().ok());
        if let (Some(limit), Some(vm_memory_mib)) = (limit, vm_memory_mib) {
            if limit > vm_memory_mib << 20 {
                logging::warning(format!(
                    "container {}: the memory limit of {limit} bytes is more than its VM has \
                     ({vm_memory_mib} MiB, fixed at create): the container cannot use more than \
                     the VM",
                    container.id
                ));
            }
        }
        self.call(
            container,
            Request::UpdateResources(Box::new(resources.clone())),
            |response| *response == Response::Ok,
        )
        .map(drop)
        .map_err(VmError::into_backend)
    }

    fn stats(&self, container: &ContainerRecord) -> Result<Stats, BackendError> {
        match self.call(container, Request::Stats, |response| {
            matches!(response, Response::Stats(_))
        }) {
            Ok(Response::Stats(stats)) => Ok(convert_stats(stats)),
            Ok(_) => unreachable!("accepted only Stats"),
            Err(error) => Err(error.into_backend()),
        }
    }

    fn reconcile_status(
        &self,
        container: &ContainerRecord,
        recorded: Status,
    ) -> Result<Status, BackendError> {
        Ok(if container.process_is_alive() {
            recorded
        } else {
            Status::Stopped
        })
    }

    fn feature_annotations(&self) -> Vec<(String, String)> {
        vec![
            (
                "run.husk.vm.isolation".to_string(),
                "a KVM virtual machine per container, with its own guest kernel".to_string(),
            ),
            (
                "run.husk.vm.rootfs".to_string(),
                "an ext4 image made from the bundle's rootfs at create; writes stay in the \
                 image and are dropped at delete"
                    .to_string(),
            ),
            (
                "run.husk.vm.shared-directories".to_string(),
                format!(
                    "not shared yet: each bind-mounted host directory arrives as a read-only \
                     copy taken at create (a disk of the VM, with a warning in the log; writes \
                     fail and are not shared), at most {} directories holding {} MiB in all; \
                     bind-mounted regular files are copied into the VM at create",
                    directories::MAX_DIRECTORIES,
                    directories::MAX_DIRECTORY_BYTES >> 20
                ),
            ),
            (
                "run.husk.vm.network".to_string(),
                "loopback only; a network namespace given by path gets a new one".to_string(),
            ),
            (
                "run.husk.vm.ps".to_string(),
                "ps lists the container's processes by their pids inside the VM".to_string(),
            ),
            (
                "run.husk.vm.size".to_string(),
                format!(
                    "memory: linux.resources.memory.limit + {} MiB (at least {} MiB, {} MiB \
                     without a limit); vCPUs: the CPU quota rounded up (1 without); annotations \
                     {} and {} override",
                    sizing::MEMORY_OVERHEAD_MIB,
                    sizing::MIN_MEMORY_MIB,
                    sizing::DEFAULT_MEMORY_MIB,
                    sizing::MEMORY_ANNOTATION,
                    sizing::VCPUS_ANNOTATION
                ),
            ),
            (
                "run.husk.vm.cgroup".to_string(),
                "v2 inside the guest, whatever the host uses; husk-vmm is in the container's \
                 host cgroup"
                    .to_string(),
            ),
        ]
    }
}

/// The guest's cgroup v2 statistics in runc's names.
fn convert_stats(stats: husk_protocol::ContainerStats) -> Stats {
    let nanos = |micros: u64| micros.saturating_mul(1000);
    Stats {
        cpu: CpuStats {
            usage: CpuUsage {
                total: nanos(stats.cpu.usage_usec),
                kernel: nanos(stats.cpu.system_usec),
                user: nanos(stats.cpu.user_usec),
            },
            throttling: CpuThrottling {
                periods: stats.cpu.periods,
                throttled_periods: stats.cpu.throttled_periods,
                throttled_time: nanos(stats.cpu.throttled_usec),
            },
        },
        memory: MemoryStats {
            cache: stats.memory.stat.get("file").copied().unwrap_or_default(),
            usage: MemoryEntry {
                // runc reports "max" as the largest number.
                limit: stats.memory.limit_bytes.unwrap_or(u64::MAX),
                usage: stats.memory.usage_bytes,
                max: stats.memory.peak_bytes.unwrap_or_default(),
                failcnt: stats.memory.oom_kills,
            },
            swap: MemoryEntry {
                limit: stats.memory.swap_limit_bytes.unwrap_or(u64::MAX),
                usage: stats.memory.swap_usage_bytes,
                ..MemoryEntry::default()
            },
            raw: stats.memory.stat,
        },
        pids: PidsStats {
            current: stats.pids.current,
            // runc's 0: no limit.
            limit: stats.pids.limit.unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    use husk_protocol::{read_frame, write_frame, GuestMessage, HostMessage};
    use oci_spec::runtime::{Hook, HookBuilder};

    use super::host_hooks::HostHooks;
    use super::*;
    use crate::state::HuskRecord;

    /// A hook that writes its working directory and its stdin (the state)
    /// to `output`.
    fn recording_hook(output: &Path) -> Hook {
        HookBuilder::default()
            .path("/bin/sh")
            .args(vec![
                "sh".to_string(),
                "-c".to_string(),
                format!("pwd > '{0}'; cat >> '{0}'", output.display()),
            ])
            .build()
            .unwrap()
    }

    fn record(pid: i32, files: &VmFiles, bundle: &Path) -> ContainerRecord {
        ContainerRecord {
            oci_version: "1.2.0".to_string(),
            id: "c1".to_string(),
            status: Status::Created,
            pid,
            bundle: bundle.to_path_buf(),
            annotations: HashMap::from([("team".to_string(), "blue".to_string())]),
            husk: HuskRecord {
                backend: BackendKind::Vm,
                created: String::new(),
                rootfs: bundle.join("rootfs"),
                pid_start_time: None,
                paths: files.record(None),
                timings_micros: BTreeMap::new(),
            },
            state_dir: files.state_dir.clone(),
        }
    }

    /// A pid that no process has any more.
    fn dead_pid() -> i32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_crashed_vm_is_still_deleted_and_the_poststop_hooks_see_it_stopped() {
        let directory = tempfile::tempdir().unwrap();
        let state_dir = directory.path().join("state");
        let bundle = directory.path().join("bundle");
        fs::create_dir_all(&state_dir).unwrap();
        fs::create_dir_all(&bundle).unwrap();
        let files = VmFiles::create(&state_dir, directory.path()).unwrap();
        // What a VM that died halfway leaves: an image and logs, no sockets.
        for path in [&files.image, &files.vmm_log, &files.console_log] {
            fs::write(path, "left over").unwrap();
        }
        let hook_output = directory.path().join("poststop");
        host_hooks::save(
            &files.hooks,
            &HostHooks {
                poststop: vec![recording_hook(&hook_output)],
                ..HostHooks::default()
            },
        )
        .unwrap();

        VmBackend::new()
            .delete(&record(dead_pid(), &files, &bundle), true)
            .unwrap();

        assert_eq!(
            fs::read_dir(&state_dir).unwrap().count(),
            0,
            "the VM's files are gone"
        );
        let output = fs::read_to_string(&hook_output).expect("the poststop hook ran");
        let (cwd, state) = output.split_once('\n').unwrap();
        assert_eq!(Path::new(cwd), bundle.canonicalize().unwrap());
        let state: serde_json::Value = serde_json::from_str(state).unwrap();
        assert_eq!(state["status"], "stopped");
        assert_eq!(state["id"], "c1");
        assert_eq!(state["annotations"]["team"], "blue");
    }

    #[test]
    fn start_asks_the_guest_then_runs_the_poststart_hooks_with_the_vmm_pid() {
        let directory = tempfile::tempdir().unwrap();
        let state_dir = directory.path().join("state");
        let bundle = directory.path().join("bundle");
        fs::create_dir_all(&state_dir).unwrap();
        fs::create_dir_all(&bundle).unwrap();
        let files = VmFiles::create(&state_dir, directory.path()).unwrap();
        let hook_output = directory.path().join("poststart");
        host_hooks::save(
            &files.hooks,
            &HostHooks {
                poststart: vec![recording_hook(&hook_output)],
                ..HostHooks::default()
            },
        )
        .unwrap();
        // husk-vmm's agent socket, answering Start.
        let listener = UnixListener::bind(&files.agent_socket).unwrap();
        let guest = thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            let message: HostMessage = read_frame(&mut connection).unwrap().unwrap();
            let started = message.request == Request::Start;
            write_frame(
                &mut connection,
                &GuestMessage::Reply {
                    id: message.id,
                    response: Response::Started,
                },
            )
            .unwrap();
            started
        });
        // This test process stands for husk-vmm: a pid that is alive.
        let pid = std::process::id() as i32;
        VmBackend::new()
            .start(&record(pid, &files, &bundle))
            .unwrap();
        assert!(guest.join().unwrap(), "the guest was not asked to Start");
        let output = fs::read_to_string(&hook_output).expect("the poststart hook ran");
        let state: serde_json::Value =
            serde_json::from_str(output.split_once('\n').unwrap().1).unwrap();
        assert_eq!(state["status"], "running");
        assert_eq!(state["pid"], pid);
    }

    #[test]
    fn a_stopped_vm_is_not_running_for_the_verbs_that_need_it() {
        let directory = tempfile::tempdir().unwrap();
        let files = VmFiles::create(directory.path(), directory.path()).unwrap();
        let container = record(dead_pid(), &files, directory.path());
        let backend = VmBackend::new();
        let error = backend.kill(&container, Signal::TERM, false).unwrap_err();
        let message = husk_init::engine::error_chain(&error);
        assert!(message.contains("container not running"), "{message}");
        assert_eq!(
            backend
                .reconcile_status(&container, Status::Running)
                .unwrap(),
            Status::Stopped
        );
    }

    #[test]
    fn guest_phases_are_placed_on_the_cli_clock() {
        let timings = GuestTimings {
            init_start_us: 300_000,
            init_ready_us: 350_000,
            container_created_us: Some(420_000),
            process_exec_us: None,
        };
        let aligned = aligned_guest_timings(&timings, 500_000);
        assert_eq!(aligned["guest_kernel_entry"], 150_000);
        assert_eq!(aligned["guest_init_start"], 450_000);
        assert_eq!(aligned["guest_container_created"], 570_000);
        // A guest clock ahead of ours cannot put kernel entry before the
        // CLI started.
        let aligned = aligned_guest_timings(&timings, 100_000);
        assert_eq!(aligned["guest_kernel_entry"], 0);
    }

    #[test]
    fn guest_statistics_in_runc_s_names_and_units() {
        let mut stats = husk_protocol::ContainerStats::default();
        stats.cpu.usage_usec = 1_500;
        stats.cpu.system_usec = 500;
        stats.cpu.user_usec = 1_000;
        stats.memory.usage_bytes = 4096;
        stats.memory.stat.insert("file".to_string(), 1024);
        stats.pids.current = 3;
        let converted = convert_stats(stats);
        assert_eq!(converted.cpu.usage.total, 1_500_000);
        assert_eq!(converted.cpu.usage.kernel, 500_000);
        assert_eq!(converted.memory.usage.limit, u64::MAX);
        assert_eq!(converted.memory.cache, 1024);
        assert_eq!(converted.pids.current, 3);
        assert_eq!(converted.pids.limit, 0);
    }

    #[test]
    fn a_guest_refusal_keeps_its_exit_code_through_the_backend_error() {
        let refusal = AgentError::Refused {
            request: "CreateContainer",
            source: husk_protocol::GuestError {
                step: "exec process.args[0] \"nope\"".to_string(),
                message: "executable file not found in $PATH".to_string(),
                exit_code: Some(127),
            },
        };
        let error = VmError::Create(refusal).into_backend();
        assert_eq!(error.exit_code(), 127);
        let message = husk_init::engine::error_chain(&error);
        assert!(
            message.starts_with("vm backend: create the container in the guest: CreateContainer: "),
            "{message}"
        );
        assert!(
            message.ends_with("executable file not found in $PATH"),
            "{message}"
        );
        assert_eq!(VmError::NotRunning.into_backend().exit_code(), 1);
        assert!(VmError::NotRunning
            .to_string()
            .contains("container not running"));
    }

    /// Stands in for a running husk-vmm at `files` whose guest stops
    /// answering: the vsock socket answers the stdio streams' CONNECT (only
    /// when `take_streams`) and keeps them; the agent socket takes every
    /// request, and answers `reply` bytes (perhaps none) to the first.
    fn silent_guest(files: &VmFiles, take_streams: bool, reply: &'static [u8]) {
        let vsock = UnixListener::bind(&files.vsock_socket).unwrap();
        thread::spawn(move || {
            let mut held = Vec::new();
            for mut stream in vsock.incoming().flatten() {
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while line.last() != Some(&b'\n') && stream.read_exact(&mut byte).is_ok() {
                    line.push(byte[0]);
                }
                if take_streams {
                    let _ = stream.write_all(b"OK 1073741824\n");
                }
                held.push(stream);
            }
        });
        let agent = UnixListener::bind(&files.agent_socket).unwrap();
        thread::spawn(move || {
            let mut held = Vec::new();
            for mut connection in agent.incoming().flatten() {
                if read_frame::<_, HostMessage>(&mut connection).is_ok() {
                    let _ = connection.write_all(reply);
                }
                held.push(connection);
            }
        });
    }

    /// A backend that gives the guest 300 ms for each step.
    fn impatient_backend() -> VmBackend {
        VmBackend {
            timeouts: AgentTimeouts {
                request: Duration::from_millis(300),
                stream_open: Duration::from_millis(300),
            },
            ..VmBackend::new()
        }
    }

    #[test]
    fn exec_in_a_guest_that_stops_answering_fails_in_time_naming_the_step() {
        let backend = impatient_backend();
        let process = oci_spec::runtime::ProcessBuilder::default()
            .args(vec!["true".to_string()])
            .cwd("/")
            .build()
            .unwrap();
        for (take_streams, step) in [
            (
                false,
                "vm backend: open the Stdin stream of the exec process: the guest did not take \
                 the Stdin stream of exec process",
            ),
            (
                true,
                "vm backend: start the exec process in the guest: the guest did not answer Exec \
                 within 0.3 s",
            ),
        ] {
            let directory = tempfile::tempdir().unwrap();
            let files = VmFiles::create(directory.path(), directory.path()).unwrap();
            silent_guest(&files, take_streams, b"");
            // This test process stands for husk-vmm: a pid that is alive.
            let container = record(std::process::id() as i32, &files, directory.path());
            let started = Instant::now();
            let error = backend
                .exec(&ExecContext {
                    container: &container,
                    process: &process,
                    detach: true,
                    console_socket: None,
                    pid_file: None,
                    preserve_fds: 0,
                    cli_started: started,
                })
                .unwrap_err();
            let took = started.elapsed();
            assert!(took < Duration::from_secs(5), "exec gave up after {took:?}");
            let message = husk_init::engine::error_chain(&error);
            assert!(message.starts_with(step), "{message}");
            assert_eq!(error.exit_code(), 1);
        }
    }

    #[test]
    fn a_signal_answered_with_half_a_frame_fails_in_time() {
        let directory = tempfile::tempdir().unwrap();
        let files = VmFiles::create(directory.path(), directory.path()).unwrap();
        // The length of a 64-byte frame and three bytes of it.
        silent_guest(&files, true, b"\0\0\0\x40{\"i");
        let container = record(std::process::id() as i32, &files, directory.path());
        let started = Instant::now();
        let error = impatient_backend()
            .kill(&container, Signal::TERM, false)
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            husk_init::engine::error_chain(&error),
            "vm backend: talk to the guest: the guest did not answer Signal within 0.3 s"
        );
    }
}
