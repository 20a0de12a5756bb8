//! husk-init's library half: the container engine, shared by husk-init inside
//! the guest (VM backend) and by the husk CLI on the host (container backend).

pub mod engine;
