//! The `vm` backend: every container in its own KVM virtual machine
//! (husk-vmm), where husk-init applies the bundle's namespaces, cgroups,
//! mounts, capabilities and seccomp inside the guest (DESIGN.md "Life of a
//! container").

use oci_spec::runtime::LinuxResources;

use super::{
    Backend, BackendError, BackendKind, CreateContext, CreatedContainer, ExecContext, Stats,
};
use crate::signal::Signal;
use crate::state::ContainerRecord;

#[derive(Debug, Default)]
pub struct VmBackend;

impl VmBackend {
    pub fn new() -> VmBackend {
        VmBackend
    }

    fn not_implemented(operation: &'static str) -> BackendError {
        BackendError::NotImplemented {
            backend: BackendKind::Vm,
            operation,
        }
    }
}

impl Backend for VmBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Vm
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
                "read-only: bind-mounted host directories arrive read-only in the VM".to_string(),
            ),
            (
                "run.husk.vm.cgroup".to_string(),
                "v2 inside the guest, whatever the host uses".to_string(),
            ),
        ]
    }
}
