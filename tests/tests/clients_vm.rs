//! The client scenarios of `clients.rs` against husk's `vm` backend: the
//! same podman, ctr and docker calls, each container in its own microVM.
//! The clients' husk gets the guest kernel, initramfs and husk-vmm under
//! test through its configuration file (HUSK_KERNEL, HUSK_INITRAMFS,
//! HUSK_VMM; see `husk_tests::Artifacts`).
//!
//! Needs a KVM that boots guests: where /dev/kvm cannot (TESTHOST.md),
//! run the test binary inside the nested test host, where the daemons
//! run too (about 18 VM boots in all, one at a time):
//!
//! ```sh
//! cargo build --release
//! export HUSK_BIN=$PWD/target/release/husk HUSK_KERNEL=... HUSK_INITRAMFS=...
//! tests/testhost/run -- "$(scripts/test-binary clients_vm)" --test-threads=1
//! ```
//!
//! Also needs root and the Debian packages podman, containerd and
//! docker.io (`scripts/install-host-deps`), like `clients.rs`.

use husk_tests::clients::{scenarios, Backend};
use husk_tests::require_bootable_kvm;

#[test]
fn podman_runs_execs_pauses_signals_stops_restarts_and_removes_vm_containers() {
    require_bootable_kvm();
    scenarios::podman(Backend::Vm);
}

#[test]
fn containerd_runs_execs_pauses_kills_and_deletes_vm_tasks() {
    require_bootable_kvm();
    scenarios::ctr(Backend::Vm);
}

#[test]
fn docker_runs_execs_updates_stops_and_removes_vm_containers() {
    require_bootable_kvm();
    scenarios::docker(Backend::Vm);
}
