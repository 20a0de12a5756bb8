//! The messages husk's host side (husk-vmm, on behalf of the husk CLI) and
//! husk-init in the guest exchange over virtio-vsock. Plain data; the wire
//! encoding lives in [`crate::codec`].
//!
//! # Connections
//!
//! - **Control**: once booted, husk-init connects to the host on
//!   [`crate::ports::CONTROL_PORT`]. Its first frame is
//!   [`Event::Ready`]. After that the host sends [`HostMessage`] frames and
//!   the guest sends [`GuestMessage`] frames on the same connection.
//! - **Stdio**: husk-init listens on [`crate::ports::STDIO_PORT`]; the host
//!   opens one connection per stream it announced in a [`StdioSetup`]. The
//!   first frame on such a connection is a [`StreamHello`] from the host;
//!   after it the connection carries the stream's raw bytes, no frames.
//!
//! # Ordering on the control connection
//!
//! Every [`Request`] travels with an id the host picked
//! ([`HostMessage::id`]) and is answered by exactly one
//! [`GuestMessage::Reply`] carrying the same id. The guest handles requests
//! one at a time in the order they arrive, so replies come in request order,
//! with one exception: a [`Request::Wait`] is answered only once its process
//! has exited, and requests sent after it are answered in the meantime.
//! [`GuestMessage::Event`]s are not answers; the guest may send one between
//! any two replies, and the host must accept them at any point.
//!
//! When a process exits, the guest sends [`Event::Exited`] for it before
//! the reply to any [`Request::Wait`] for that process, so a host that only
//! follows events never misses an exit that a waiter saw.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxResources, Process, Spec};
use serde::{Deserialize, Serialize};

/// The version of this protocol, sent in [`Event::Ready`]. husk-init ships
/// inside the initramfs built from the same tree as husk-vmm; a different
/// number means a stale initramfs, and the host should refuse to go on.
/// Bump it whenever a message changes shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// Which process inside the guest a request or stream is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessRef {
    /// The container's own process (`process` in config.json).
    Init,
    /// A process started by [`Request::Exec`], named by the exec id the host
    /// gave it.
    Exec(String),
}

impl fmt::Display for ProcessRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Init => f.write_str("the container process"),
            Self::Exec(exec_id) => write!(f, "exec process {exec_id:?}"),
        }
    }
}

/// Which of a process's stdio streams a stdio connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Host to guest: bytes for the process's stdin pipe.
    Stdin,
    /// Guest to host: what the process writes to its stdout pipe.
    Stdout,
    /// Guest to host: what the process writes to its stderr pipe.
    Stderr,
    /// Both ways: the master side of the process's pseudo-terminal, which is
    /// its stdin, stdout and stderr at once (OCI runtime-spec config.md,
    /// `process.terminal`).
    Terminal,
}

/// The first frame on a stdio connection, sent by the host, saying which
/// stream of which process the connection carries. The guest closes a
/// connection whose hello names a process or stream it did not announce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHello {
    pub process: ProcessRef,
    pub stream: StreamKind,
}

/// How a process's stdio is wired, and so which stdio connections the host
/// will open for it after the reply to the request that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdioSetup {
    /// The process gets a new pseudo-terminal as stdin, stdout and stderr;
    /// the host opens one [`StreamKind::Terminal`] stream. Used when
    /// `process.terminal` is true.
    Terminal,
    /// The process gets a pipe for each stream marked true, which the host
    /// opens a stream for; the others are connected to /dev/null.
    Pipes {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
}

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootfsSource {
    /// A virtio-blk disk holding a filesystem image of the bundle's rootfs
    /// directory. Writes stay in the image, which the host drops at delete.
    Block {
        /// The disk's device node in the guest, e.g. `/dev/vda` (disks are
        /// named in the order husk-vmm attaches them).
        device: String,
        /// The filesystem type given to mount(2), e.g. `ext4`.
        fs_type: String,
        /// Mount it read-only (`root.readonly` in config.json).
        read_only: bool,
    },
}

/// A regular file whose contents travel in the message: the source of a
/// bind mount that lives on the host (podman's /etc/hosts, /etc/resolv.conf,
/// /etc/hostname, /run/.containerenv), which the guest cannot see.
///
/// The spec keeps its bind mount at `destination`, so the mount's position
/// among the mounts and its options (`ro`, `nosuid`, ...) still apply; the
/// guest writes the contents to a file of its own and uses that file as the
/// mount's source.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMount {
    /// The `destination` of the mount in config.json that this file is the
    /// source of.
    pub destination: String,
    /// The file's bytes (base64 on the wire, a third larger than the file;
    /// the whole request must fit in [`crate::codec::MAX_FRAME_BYTES`]).
    #[serde(with = "crate::base64")]
    pub contents: Vec<u8>,
    /// Permission bits of the file (as in chmod(2), e.g. 0o644).
    pub mode: u32,
}

impl fmt::Debug for FileMount {
    /// The contents may be large and binary; their size is enough in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileMount")
            .field("destination", &self.destination)
            .field("contents_len", &self.contents.len())
            .field("mode", &format_args!("{:#o}", self.mode))
            .finish()
    }
}

/// A bind-mounted host directory, which reaches the guest as a read-only
/// copy on a disk of its own: the host makes a filesystem image of the
/// directory at create and attaches it read-only after the root filesystem
/// disk. Writes are not shared with the host (and fail: the copy is
/// read-only), and later changes on the host do not reach the container.
///
/// As with [`FileMount`], the spec keeps the bind mount at `destination`, so
/// its place among the mounts and its options still apply; the guest mounts
/// the disk read-only (MS_RDONLY, mount(2)) and uses that mount as the bind
/// mount's source, adding `ro` to its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryMount {
    /// The `destination` of the mount in config.json that this directory is
    /// the source of.
    pub destination: String,
    /// The disk's device node in the guest, e.g. `/dev/vdb` (disks are
    /// named in the order husk-vmm attaches them; the root filesystem is
    /// `/dev/vda`).
    pub device: String,
    /// The filesystem type given to mount(2), e.g. `ext4`.
    pub fs_type: String,
}

/// Everything the guest needs to create the container (`husk create`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateContainerRequest {
    /// The container ID given to `husk create`.
    pub id: String,
    /// The bundle's config.json, already validated by the host.
    pub spec: Spec,
    /// The bundle path on the host, as the OCI state reports it (the guest
    /// never opens it; hooks see it in their state).
    pub bundle: String,
    /// Where the root filesystem comes from; `root.path` in `spec` is not
    /// used to find it.
    pub rootfs: RootfsSource,
    /// How the container process's stdio is wired.
    pub stdio: StdioSetup,
    /// Bind mount sources delivered by content (see [`FileMount`]).
    pub files: Vec<FileMount>,
    /// Bind mount sources delivered as read-only disks (see
    /// [`DirectoryMount`]). Absent from the requests of hosts older than
    /// this field, which decode with none.
    #[serde(default)]
    pub directories: Vec<DirectoryMount>,
}

/// A further process to run in the running container (`husk exec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The name the host gives the process; unique among the container's
    /// exec processes for the life of the VM.
    pub exec_id: String,
    /// What to run, as in `process` of config.json (OCI runtime-spec
    /// runtime.md, "exec" reuses the container's namespaces and cgroup).
    pub process: Process,
    /// How its stdio is wired.
    pub stdio: StdioSetup,
}

/// What the host asks of the guest. Each is answered by exactly one
/// [`Response`]; the doc of each variant names the reply on success. Any
/// request can instead be answered by [`Response::Error`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Create the container: mount its rootfs, set up namespaces, cgroup,
    /// mounts and the rest of the spec, and leave its process waiting just
    /// before it executes `process.args` (OCI runtime-spec runtime.md
    /// "create"). Reply: [`Response::Created`].
    CreateContainer(Box<CreateContainerRequest>),
    /// Let the created container process execute `process.args` (runtime.md
    /// "start"). Reply: [`Response::Started`].
    Start,
    /// Send `signal` to a process; with `all` (only for
    /// [`ProcessRef::Init`]), to every process in the container's cgroup, like
    /// `runc kill --all`. Reply: [`Response::Ok`].
    Signal {
        process: ProcessRef,
        signal: i32,
        all: bool,
    },
    /// Run a further process in the container. Reply:
    /// [`Response::ExecStarted`].
    Exec(Box<ExecRequest>),
    /// Set the window size of a process's pseudo-terminal (TIOCSWINSZ, see
    /// ioctl_tty(2)). Reply: [`Response::Ok`].
    ResizeTerminal {
        process: ProcessRef,
        rows: u16,
        cols: u16,
    },
    /// Wait for a process to exit. Answered when it has (at once if it
    /// already had; the guest keeps every exit status until the VM shuts
    /// down). Reply: [`Response::Exited`].
    Wait { process: ProcessRef },
    /// End a process's stdin: the guest writes out what it already read
    /// from the stdin stream and closes the pipe, so the process reads EOF.
    /// For hosts that cannot half-close the stream; an error for a process
    /// on a terminal. Reply: [`Response::Ok`].
    CloseStdin { process: ProcessRef },
    /// Resource usage of the container's cgroup, for `husk events --stats`.
    /// Reply: [`Response::Stats`].
    Stats,
    /// The PIDs (in the guest's PID namespace) of every process in the
    /// container's cgroup, for `husk ps`. Reply: [`Response::Processes`].
    ListProcesses,
    /// Every process in the container's cgroup with its parent, user,
    /// state and command line, for `husk ps`'s table (the host's ps(1)
    /// cannot see the guest's processes). Reply: [`Response::ProcessTable`].
    ProcessTable,
    /// Freeze every process in the container (cgroup v2 `cgroup.freeze`,
    /// like `runc pause`). Reply: [`Response::Ok`].
    Pause,
    /// Thaw the container after [`Request::Pause`]. Reply: [`Response::Ok`].
    Resume,
    /// Change the container's cgroup limits (`husk update`), with the
    /// meaning `linux.resources` has in config.json; fields left out stay
    /// as they are. Reply: [`Response::Ok`].
    UpdateResources(Box<LinuxResources>),
    /// When the guest reached each startup phase. Reply:
    /// [`Response::Timings`].
    Timings,
    /// Kill whatever still runs in the container, sync and unmount its
    /// filesystems and power the VM off (`husk delete`). The guest replies
    /// [`Response::Ok`] first; the VM ends right after.
    Shutdown,
}

/// Identifies a request and its reply on the control connection. The host
/// picks it; ids of requests still waiting for their reply must differ.
pub type RequestId = u64;

/// A frame from the host to the guest on the control connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMessage {
    pub id: RequestId,
    pub request: Request,
}

/// How a process ended (see wait(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// It called exit with this status (WEXITSTATUS).
    Code(i32),
    /// A signal with this number killed it (WTERMSIG).
    Signal(i32),
}

impl ExitStatus {
    /// The status as a shell and runc report it: the exit code, or 128 plus
    /// the signal number for a process a signal killed. husk-vmm exits with
    /// this for the container process.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Code(code) => code,
            // Saturating: the number comes from the guest and may be absurd.
            Self::Signal(signal) => signal.saturating_add(128),
        }
    }
}

/// Why a request failed, as the guest saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestError {
    /// The step that failed, naming what it worked on, e.g.
    /// `mount /proc` or `exec process.args[0] "/bin/sh"`.
    pub step: String,
    /// What went wrong (the error and its causes).
    pub message: String,
    /// The exit status a runc-compatible runtime reports for this failure,
    /// where there is one: 127 when `process.args[0]` is not found, 126
    /// when it cannot be executed.
    pub exit_code: Option<i32>,
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in the guest, {}: {}", self.step, self.message)
    }
}

impl std::error::Error for GuestError {}

/// CPU time of the container's cgroup (cgroup v2 `cpu.stat`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    pub usage_usec: u64,
    pub user_usec: u64,
    pub system_usec: u64,
    /// Enforcement periods of `cpu.max` that have elapsed.
    pub periods: u64,
    /// Periods in which the cgroup used up its quota and was throttled.
    pub throttled_periods: u64,
    pub throttled_usec: u64,
}

/// Memory use of the container's cgroup (cgroup v2 `memory.*` files).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// `memory.current`.
    pub usage_bytes: u64,
    /// `memory.max`; None when it is `max` (no limit).
    pub limit_bytes: Option<u64>,
    /// `memory.peak`; None on kernels without it.
    pub peak_bytes: Option<u64>,
    /// `memory.swap.current`.
    pub swap_usage_bytes: u64,
    /// `memory.swap.max`; None when it is `max`.
    pub swap_limit_bytes: Option<u64>,
    /// `oom_kill` of `memory.events`: processes the OOM killer ended.
    pub oom_kills: u64,
    /// Every line of `memory.stat` (anon, file, kernel_stack, ...), which
    /// runc reports as its `memory.stats` map.
    pub stat: BTreeMap<String, u64>,
}

/// Process count of the container's cgroup (cgroup v2 `pids.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// `pids.current`.
    pub current: u64,
    /// `pids.max`; None when it is `max`.
    pub limit: Option<u64>,
}

/// One block device's line of the container cgroup's `io.stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoDeviceStats {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

/// One process of the container, from the guest's /proc/PID/stat, status
/// and cmdline (proc(5)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestProcess {
    /// In the guest's PID namespace.
    pub pid: i32,
    pub ppid: i32,
    /// The real user ID.
    pub uid: u32,
    /// The state letter: R, S, D, Z, T ...
    pub state: String,
    /// The arguments joined with spaces, or the command name in brackets
    /// for a process without any (a kernel thread, a zombie).
    pub command: String,
}

/// Resource usage of the container, the data of `husk events --stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub io: Vec<IoDeviceStats>,
}

/// When the guest reached each startup phase, in microseconds of the guest's
/// CLOCK_BOOTTIME, which counts from early kernel boot; the host adds them
/// to its own record of kernel entry. A phase not reached yet is None.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTimings {
    /// husk-init's `main` began.
    pub init_start_us: u64,
    /// husk-init had mounted /proc, /sys, /dev and connected to the host.
    pub init_ready_us: u64,
    /// The container was created (the moment [`Response::Created`] was
    /// sent).
    pub container_created_us: Option<u64>,
    /// The container process executed `process.args` (execve returned
    /// control to the new program).
    pub process_exec_us: Option<u64>,
}

/// The guest's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The request succeeded and has nothing to report.
    Ok,
    /// The container is created; its process waits for
    /// [`Request::Start`]. `pid` is its PID in the guest's PID namespace.
    Created { pid: i32 },
    /// The container process has been let go and runs `process.args`.
    Started,
    /// The exec process runs; `pid` is its PID in the guest.
    ExecStarted { exec_id: String, pid: i32 },
    /// The process a [`Request::Wait`] named has exited.
    Exited {
        process: ProcessRef,
        status: ExitStatus,
    },
    /// The container's resource usage.
    Stats(ContainerStats),
    /// The container's processes, by PID in the guest.
    Processes { pids: Vec<i32> },
    /// The container's processes as the guest's /proc shows them.
    ProcessTable { processes: Vec<GuestProcess> },
    /// The guest's startup phases.
    Timings(GuestTimings),
    /// The request failed; nothing it would have started is left running.
    Error(GuestError),
}

/// Something that happened in the guest, sent without being asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The first frame on the control connection: husk-init is up and
    /// waits for requests.
    Ready {
        /// The guest's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// Microseconds of CLOCK_BOOTTIME when it was sent.
        uptime_us: u64,
    },
    /// A process (the container's or an exec'd one) exited and was reaped;
    /// sent once per process. When the container process exits and the
    /// container has its own PID namespace, the kernel kills the exec
    /// processes too (pid_namespaces(7)); each still gets its own event.
    Exited {
        process: ProcessRef,
        status: ExitStatus,
    },
    /// The OOM killer ended a process in the container's cgroup
    /// (`oom_kill` of `memory.events` went up to `oom_kills`), which runc
    /// reports as an `oom` event.
    OutOfMemory { oom_kills: u64 },
}

/// A frame from the guest to the host on the control connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestMessage {
    /// The answer to the request with this id.
    Reply { id: RequestId, response: Response },
    /// Not an answer to anything (see [`Event`]).
    Event(Event),
}

#[cfg(test)]
pub(crate) mod tests {
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder,
    };
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    /// Encodes and decodes through the wire format (JSON) and checks that
    /// nothing changed.
    fn assert_round_trip<T>(message: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let text = serde_json::to_string(message).expect("a message encodes");
        let decoded: T = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{text} does not decode: {error}"));
        assert_eq!(&decoded, message, "changed on the way through {text}");
    }

    fn sample_spec() -> Spec {
        let mut spec = Spec::default();
        let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
        mounts.push(
            MountBuilder::default()
                .destination("/etc/hosts")
                .typ("bind")
                .source("/var/lib/containers/hosts")
                .options(vec!["rbind".to_string(), "ro".to_string()])
                .build()
                .expect("a bind mount"),
        );
        spec.set_mounts(Some(mounts));
        spec
    }

    fn sample_process() -> Process {
        ProcessBuilder::default()
            .args(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                "echo hi".to_string(),
            ])
            .cwd("/")
            .terminal(true)
            .build()
            .expect("a process")
    }

    /// One host frame for every request variant, with ids far from 0.
    pub(crate) fn every_host_message() -> Vec<HostMessage> {
        every_request()
            .into_iter()
            .zip(u64::MAX / 2..)
            .map(|(request, id)| HostMessage { id, request })
            .collect()
    }

    fn every_request() -> Vec<Request> {
        let exec = ProcessRef::Exec("exec-1".to_string());
        vec![
            Request::CreateContainer(Box::new(CreateContainerRequest {
                id: "web".to_string(),
                spec: sample_spec(),
                bundle: "/run/bundles/web".to_string(),
                rootfs: RootfsSource::Block {
                    device: "/dev/vda".to_string(),
                    fs_type: "ext4".to_string(),
                    read_only: true,
                },
                stdio: StdioSetup::Pipes {
                    stdin: false,
                    stdout: true,
                    stderr: true,
                },
                files: vec![FileMount {
                    destination: "/etc/hosts".to_string(),
                    contents: b"127.0.0.1 localhost\n\0\xff".to_vec(),
                    mode: 0o644,
                }],
                directories: vec![
                    DirectoryMount {
                        destination: "/srv/data".to_string(),
                        device: "/dev/vdb".to_string(),
                        fs_type: "ext4".to_string(),
                    },
                    DirectoryMount {
                        destination: "/var/lib/config".to_string(),
                        device: "/dev/vdc".to_string(),
                        fs_type: "ext4".to_string(),
                    },
                ],
            })),
            Request::Start,
            Request::Signal {
                process: ProcessRef::Init,
                signal: 15,
                all: true,
            },
            Request::Exec(Box::new(ExecRequest {
                exec_id: "exec-1".to_string(),
                process: sample_process(),
                stdio: StdioSetup::Terminal,
            })),
            Request::ResizeTerminal {
                process: exec.clone(),
                rows: 50,
                cols: 132,
            },
            Request::Wait {
                process: exec.clone(),
            },
            Request::CloseStdin { process: exec },
            Request::Stats,
            Request::ListProcesses,
            Request::ProcessTable,
            Request::Pause,
            Request::Resume,
            Request::UpdateResources(Box::new(
                LinuxResourcesBuilder::default()
                    .cpu(
                        LinuxCpuBuilder::default()
                            .quota(50_000i64)
                            .period(100_000u64)
                            .build()
                            .expect("a cpu limit"),
                    )
                    .build()
                    .expect("resources"),
            )),
            Request::Timings,
            Request::Shutdown,
        ]
    }

    /// One guest frame for every response and event variant.
    pub(crate) fn every_guest_message() -> Vec<GuestMessage> {
        let responses = vec![
            Response::Ok,
            Response::Created { pid: 42 },
            Response::Started,
            Response::ExecStarted {
                exec_id: "exec-1".to_string(),
                pid: 57,
            },
            Response::Exited {
                process: ProcessRef::Exec("exec-1".to_string()),
                status: ExitStatus::Signal(9),
            },
            Response::Stats(ContainerStats {
                cpu: CpuStats {
                    usage_usec: 1_500,
                    user_usec: 1_000,
                    system_usec: 500,
                    periods: 3,
                    throttled_periods: 1,
                    throttled_usec: 20,
                },
                memory: MemoryStats {
                    usage_bytes: 4 << 20,
                    limit_bytes: Some(64 << 20),
                    peak_bytes: None,
                    swap_usage_bytes: 0,
                    swap_limit_bytes: None,
                    oom_kills: 1,
                    stat: BTreeMap::from([("anon".to_string(), 1 << 20)]),
                },
                pids: PidsStats {
                    current: 2,
                    limit: Some(100),
                },
                io: vec![IoDeviceStats {
                    major: 254,
                    minor: 0,
                    read_bytes: 4096,
                    write_bytes: 0,
                    read_ops: 1,
                    write_ops: 0,
                }],
            }),
            Response::Processes { pids: vec![1, 7] },
            Response::ProcessTable {
                processes: vec![GuestProcess {
                    pid: 1,
                    ppid: 0,
                    uid: 1000,
                    state: "S".to_string(),
                    command: "sleep 100".to_string(),
                }],
            },
            Response::Timings(GuestTimings {
                init_start_us: 80_000,
                init_ready_us: 95_000,
                container_created_us: Some(120_000),
                process_exec_us: None,
            }),
            Response::Error(GuestError {
                step: "exec process.args[0] \"/bin/nope\"".to_string(),
                message: "No such file or directory (os error 2)".to_string(),
                exit_code: Some(127),
            }),
        ];
        let events = vec![
            Event::Ready {
                protocol_version: PROTOCOL_VERSION,
                uptime_us: 95_000,
            },
            Event::Exited {
                process: ProcessRef::Init,
                status: ExitStatus::Code(3),
            },
            Event::OutOfMemory { oom_kills: 2 },
        ];
        let replies = responses
            .into_iter()
            .zip(1..)
            .map(|(response, id)| GuestMessage::Reply { id, response });
        replies
            .chain(events.into_iter().map(GuestMessage::Event))
            .collect()
    }

    #[test]
    fn every_request_survives_the_wire() {
        for message in every_host_message() {
            assert_round_trip(&message);
        }
    }

    #[test]
    fn every_guest_message_survives_the_wire() {
        for message in every_guest_message() {
            assert_round_trip(&message);
        }
    }

    #[test]
    fn every_stream_hello_survives_the_wire() {
        for stream in [
            StreamKind::Stdin,
            StreamKind::Stdout,
            StreamKind::Stderr,
            StreamKind::Terminal,
        ] {
            for process in [ProcessRef::Init, ProcessRef::Exec("é 1".to_string())] {
                assert_round_trip(&StreamHello { process, stream });
            }
        }
    }

    /// The wire names are what another implementation (or a person reading
    /// a capture) sees; pin a few so a rename cannot slip through.
    #[test]
    fn wire_names_are_snake_case_and_stable() {
        let message = HostMessage {
            id: 7,
            request: Request::Signal {
                process: ProcessRef::Exec("e1".to_string()),
                signal: 9,
                all: false,
            },
        };
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            json!({"id": 7, "request": {"signal": {"process": {"exec": "e1"}, "signal": 9, "all": false}}})
        );
        assert_eq!(
            serde_json::to_value(GuestMessage::Reply {
                id: 1,
                response: Response::Ok
            })
            .unwrap(),
            json!({"reply": {"id": 1, "response": "ok"}})
        );
        assert_eq!(
            serde_json::to_value(StreamHello {
                process: ProcessRef::Init,
                stream: StreamKind::Terminal
            })
            .unwrap(),
            json!({"process": "init", "stream": "terminal"})
        );
    }

    #[test]
    fn file_contents_travel_as_base64() {
        let file = FileMount {
            destination: "/etc/hostname".to_string(),
            contents: b"web\n".to_vec(),
            mode: 0o644,
        };
        assert_eq!(
            serde_json::to_value(&file).unwrap(),
            json!({"destination": "/etc/hostname", "contents": "d2ViCg==", "mode": 0o644})
        );
    }

    #[test]
    fn a_create_request_from_a_host_without_directories_decodes_with_none() {
        let Request::CreateContainer(create) = &every_request()[0] else {
            panic!("the first sample request is CreateContainer");
        };
        let mut older = serde_json::to_value(HostMessage {
            id: 3,
            request: Request::CreateContainer(create.clone()),
        })
        .unwrap();
        older["request"]["create_container"]
            .as_object_mut()
            .unwrap()
            .remove("directories")
            .expect("the request carries its directories");
        let decoded: HostMessage = serde_json::from_value(older).unwrap();
        let Request::CreateContainer(decoded) = decoded.request else {
            panic!("decoded as another request");
        };
        assert!(decoded.directories.is_empty());
        assert_eq!(decoded.files, create.files);
    }

    #[test]
    fn directory_mounts_have_stable_wire_names() {
        let directory = DirectoryMount {
            destination: "/data".to_string(),
            device: "/dev/vdb".to_string(),
            fs_type: "ext4".to_string(),
        };
        assert_eq!(
            serde_json::to_value(&directory).unwrap(),
            json!({"destination": "/data", "device": "/dev/vdb", "fs_type": "ext4"})
        );
    }

    #[test]
    fn file_mount_debug_shows_size_not_contents() {
        let file = FileMount {
            destination: "/etc/resolv.conf".to_string(),
            contents: b"nameserver 10.0.0.1\n".to_vec(),
            mode: 0o644,
        };
        let shown = format!("{file:?}");
        assert!(shown.contains("contents_len: 20"), "{shown}");
        assert!(shown.contains("0o644"), "{shown}");
        assert!(!shown.contains("nameserver"), "{shown}");
    }

    #[test]
    fn an_unknown_request_is_refused_by_name() {
        let error = serde_json::from_value::<HostMessage>(json!({"id": 1, "request": "reboot"}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("reboot"), "{error}");
    }

    #[test]
    fn a_signal_death_reports_128_plus_the_signal() {
        assert_eq!(ExitStatus::Signal(9).exit_code(), 137);
        assert_eq!(ExitStatus::Code(0).exit_code(), 0);
        assert_eq!(ExitStatus::Code(127).exit_code(), 127);
        assert_eq!(ExitStatus::Signal(i32::MAX).exit_code(), i32::MAX);
    }

    #[test]
    fn guest_error_names_the_step() {
        let error = GuestError {
            step: "mount /proc".to_string(),
            message: "Operation not permitted (os error 1)".to_string(),
            exit_code: None,
        };
        assert_eq!(
            error.to_string(),
            "in the guest, mount /proc: Operation not permitted (os error 1)"
        );
    }
}
