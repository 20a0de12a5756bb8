//! The `container` backend: guest-init's container engine run directly on
//! this host, as runc runs containers (namespaces, cgroups v1 or v2 through
//! cgroupfs, capabilities, seccomp).

use oci_spec::runtime::LinuxResources;

use super::{
    Backend, BackendError, BackendKind, CreateContext, CreatedContainer, ExecContext, Stats,
};
use crate::signal::Signal;
use crate::state::ContainerRecord;

#[derive(Debug, Default)]
pub struct ContainerBackend;

impl ContainerBackend {
    pub fn new() -> ContainerBackend {
        ContainerBackend
    }

    fn not_implemented(operation: &'static str) -> BackendError {
        BackendError::NotImplemented {
            backend: BackendKind::Container,
            operation,
        }
    }
}

impl Backend for ContainerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Container
    }

    fn create(&self, _context: &CreateContext<'_>) -> Result<CreatedContainer, BackendError> {
        Err(Self::not_implemented("create"))
    }

    fn start(&self, _container: &ContainerRecord) -> Result<(), BackendError> {
        Err(Self::not_implemented("start"))
    }

    fn kill(
        &self,
        _container: &ContainerRecord,
        _signal: Signal,
        _all: bool,
    ) -> Result<(), BackendError> {
        Err(Self::not_implemented("kill"))
    }

    fn delete(&self, _container: &ContainerRecord, _force: bool) -> Result<(), BackendError> {
        Err(Self::not_implemented("delete"))
    }

    fn wait(&self, _container: &ContainerRecord) -> Result<u8, BackendError> {
        Err(Self::not_implemented("wait"))
    }

    fn exec(&self, _context: &ExecContext<'_>) -> Result<i32, BackendError> {
        Err(Self::not_implemented("exec"))
    }

    fn wait_exec(&self, _container: &ContainerRecord, _pid: i32) -> Result<u8, BackendError> {
        Err(Self::not_implemented("wait for an exec process"))
    }

    fn processes(&self, _container: &ContainerRecord) -> Result<Vec<i32>, BackendError> {
        Err(Self::not_implemented("ps"))
    }

    fn pause(&self, _container: &ContainerRecord) -> Result<(), BackendError> {
        Err(Self::not_implemented("pause"))
    }

    fn resume(&self, _container: &ContainerRecord) -> Result<(), BackendError> {
        Err(Self::not_implemented("resume"))
    }

    fn update(
        &self,
        _container: &ContainerRecord,
        _resources: &LinuxResources,
    ) -> Result<(), BackendError> {
        Err(Self::not_implemented("update"))
    }

    fn stats(&self, _container: &ContainerRecord) -> Result<Stats, BackendError> {
        Err(Self::not_implemented("stats"))
    }

    fn feature_annotations(&self) -> Vec<(String, String)> {
        vec![
            (
                "run.husk.container.isolation".to_string(),
                "namespaces, cgroups, capabilities and seccomp on the host kernel, as runc"
                    .to_string(),
            ),
            (
                "run.husk.container.cgroup".to_string(),
                "the host's hierarchy: v1, hybrid or v2, through cgroupfs (no systemd driver)"
                    .to_string(),
            ),
        ]
    }
}
