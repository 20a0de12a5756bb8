//! Real clients driving `husk` with the `container` backend exactly as
//! they drive runc: podman with conmon, containerd's runc v2 shim through
//! `ctr`, and dockerd. The scenarios (`husk_tests::clients::scenarios`)
//! are the ones `clients_vm.rs` runs against the `vm` backend: each loads
//! a locally built busybox image, runs containers in the foreground
//! (output, exit codes, stdin, terminals, an interactive shell) and
//! detached (exec, pause, signals, stop, restart, update, forced
//! removal), and checks what a user of that client would see, and that
//! neither husk's state nor a cgroup outlives a container.
//!
//! Needs root, the Debian packages podman, containerd and docker.io
//! (`scripts/install-host-deps`), and a built husk:
//!
//! ```sh
//! cargo build --release -p husk-shim
//! HUSK_BIN=$PWD/target/release/husk cargo test --release -p husk-tests --test clients -- --test-threads=1
//! ```

use husk_tests::clients::{scenarios, Backend};

#[test]
fn podman_runs_execs_pauses_signals_stops_restarts_and_removes_containers_through_husk() {
    scenarios::podman(Backend::Container);
}

#[test]
fn containerd_runs_execs_pauses_kills_and_deletes_tasks_through_husk() {
    scenarios::ctr(Backend::Container);
}

#[test]
fn docker_runs_execs_updates_stops_and_removes_containers_through_husk() {
    scenarios::docker(Backend::Container);
}
