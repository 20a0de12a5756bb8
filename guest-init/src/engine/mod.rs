//! The container engine: applies an OCI runtime bundle's Linux configuration
//! (namespaces, root filesystem, mounts, devices, cgroups, process, seccomp,
//! hooks) the way runc does. Used inside the guest by husk-init and on the
//! host by the `container` backend.

pub mod cgroups;
pub mod hooks;
pub mod seccomp;

pub mod container;
mod exec;
mod init;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod spec;
mod sync;
pub mod sys;
pub mod syscall;
#[cfg(test)]
mod test_bundle;

pub use container::{create, kill, start, Container, CreateOptions, EngineError, Stdio};
pub use exec::{exec, ExecOptions};
pub use spec::{load_bundle, Bundle, SpecError};
pub use sync::{close_in_forked_children, keep_in_forked_children};

/// An error and all its causes on one line, "what: why: why", each io
/// error's text without std's " (os error N)" suffix, as runc prints them.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let strip = |text: String| match text.rfind(" (os error ") {
        Some(end) if text.ends_with(')') => text[..end].to_owned(),
        _ => text,
    };
    let mut message = strip(error.to_string());
    let mut cause = error.source();
    while let Some(source) = cause {
        let text = strip(source.to_string());
        // A transparent wrapper repeats its source's text; print it once.
        if !message.ends_with(&text) {
            message += ": ";
            message += &text;
        }
        cause = source.source();
    }
    message
}
