//! The container engine: applies an OCI runtime bundle's Linux configuration
//! (namespaces, root filesystem, mounts, devices, cgroups, process, seccomp,
//! hooks) the way runc does. Used inside the guest by husk-init and on the
//! host by the `container` backend.

pub mod cgroups;
pub mod hooks;
pub mod seccomp;
