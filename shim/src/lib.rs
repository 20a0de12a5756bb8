//! husk's command line: the runc-compatible OCI runtime CLI.
//!
//! The layout follows the verbs: `cli` holds the argument structs (one per
//! verb, runc's flag names), `commands/<verb>.rs` is a short adapter from
//! those arguments to the state store and a [`backend::Backend`], which does
//! the actual work either inside a KVM virtual machine (`vm`) or directly on
//! this host (`container`).

pub mod backend;
pub mod cli;
pub mod commands;
pub mod config;
pub mod features;
pub mod logging;
pub mod signal;
pub mod spec_template;
pub mod state;
pub mod timestamp;

/// The OCI runtime-spec version husk implements: `husk spec` writes it,
/// `husk --version` and `husk features` report it. Bundles of any 1.x
/// version are accepted (guest-init's `engine::spec` refuses only fields it
/// cannot honour).
pub const OCI_VERSION: &str = "1.3.0";

/// The oldest runtime-spec version whose bundles husk runs.
pub const OCI_VERSION_MIN: &str = "1.0.0";
