//! husk-init: PID 1 of a husk guest. It mounts the kernel's filesystems,
//! then either serves the host's control connection and runs a container
//! (`husk.agent`), or reports ready on the console and ends the way
//! `husk.exit=` asks (boot tests and benchmarks).
//!
//! Built static (glibc with crt-static) because the initramfs holds nothing
//! else: no loader, no libraries, and no NSS configuration.

mod agent;
mod cmdline;
mod guest_signal;
mod mounts;
mod ready;
mod selftest;
mod sys;

use std::io::{self, Write};
use std::{fs, process};

use husk_protocol::guest_signal::BootPhase;

use crate::cmdline::ExitAction;
use crate::guest_signal::GuestSignal;
use crate::ready::ReadyReport;

const USAGE: &str = "\
husk-init is PID 1 inside a husk guest VM; it is started by the guest kernel,
not by hand. Kernel command line: husk.agent (serve the host's control
connection and run the container it sends), or husk.exit=<0..=255|panic|hold>
and husk.selftest=NAME[,NAME...] (tests and benchmarks).";

fn main() {
    if process::id() != 1 {
        print_usage();
        return;
    }
    run_as_init();
    // Returning from PID 1 makes the kernel panic ("Attempted to kill init").
}

fn run_as_init() {
    let started = sys::boot_time().unwrap_or_default();
    let guest_signal = open_guest_signal();
    mark(&guest_signal, BootPhase::InitStarted);

    if let Err(error) = mounts::mount_pseudo_filesystems() {
        return fail(&error, &guest_signal);
    }

    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_else(|error| {
        eprintln!("husk-init: cannot read /proc/cmdline ({error})");
        String::new()
    });
    if cmdline::agent_mode(&cmdline) {
        mark(&guest_signal, BootPhase::InitReady);
        let outcome = agent::serve(started);
        return end(ExitAction::Status(outcome.status), &guest_signal);
    }
    let exit_action = read_exit_action(&cmdline);

    mark(&guest_signal, BootPhase::InitReady);
    match ReadyReport::gather() {
        Ok(report) => println!("{report}"),
        Err(error) => return fail(&error, &guest_signal),
    }

    for name in cmdline::selftests(&cmdline) {
        println!("{}", selftest::run(&name));
    }

    end(exit_action, &guest_signal);
}

fn print_usage() {
    println!("husk-init {}", env!("CARGO_PKG_VERSION"));
    if std::env::args().nth(1).as_deref() != Some("--version") {
        println!("{USAGE}");
    }
}

/// Without the ports (no CAP_SYS_RAWIO, or a kernel without
/// CONFIG_X86_IOPL_IOPERM) init still runs; only the markers are lost.
fn open_guest_signal() -> Option<GuestSignal> {
    GuestSignal::open()
        .inspect_err(|error| {
            eprintln!("husk-init: no access to the husk I/O ports ({error}); boot markers and exit status are off")
        })
        .ok()
}

fn mark(guest_signal: &Option<GuestSignal>, phase: BootPhase) {
    if let Some(guest_signal) = guest_signal {
        guest_signal.mark(phase);
    }
}

/// `husk.exit=` from /proc/cmdline; an unreadable or invalid value ends the
/// guest with status 1 rather than doing something nobody asked for.
fn read_exit_action(cmdline: &str) -> ExitAction {
    if cmdline.is_empty() {
        eprintln!("husk-init: no kernel command line; will exit with status 1");
        return ExitAction::FAILURE;
    }
    ExitAction::from_cmdline(cmdline).unwrap_or_else(|error| {
        eprintln!("husk-init: {error}; will exit with status 1");
        ExitAction::FAILURE
    })
}

/// Reports why init cannot go on, with the whole chain of causes, and ends
/// the guest with status 1.
fn fail(error: &dyn std::error::Error, guest_signal: &Option<GuestSignal>) {
    let mut message = format!("husk-init: error: {error}");
    let mut cause = error.source();
    while let Some(source) = cause {
        message += &format!(": {source}");
        cause = source.source();
    }
    eprintln!("{message}");
    end(ExitAction::FAILURE, guest_signal);
}

/// Ends the guest as asked. Returns only where PID 1 must return: for
/// `panic`, or when nothing else managed to end the VM.
fn end(exit_action: ExitAction, guest_signal: &Option<GuestSignal>) {
    // The serial console sends slowly; let everything printed reach the host
    // before the VM goes away.
    let _ = io::stdout().flush();
    sys::drain_terminal(&io::stdout());
    sys::drain_terminal(&io::stderr());

    match exit_action {
        ExitAction::Hold => loop {
            // PID 1 gets no signal it has no handler for, so this sleeps until
            // the VMM stops the guest. park() may wake spuriously; loop.
            std::thread::park();
        },
        ExitAction::Panic => {}
        ExitAction::Status(status) => {
            sys::sync();
            if let Some(guest_signal) = guest_signal {
                // Under husk-vmm the VM ends inside this write.
                guest_signal.exit_with_status(status);
            }
            // Another VMM ignored the port: reset the machine instead (the
            // status is lost). If even that fails, return and let it panic.
            let error = sys::reboot();
            eprintln!("husk-init: reboot failed ({error}); returning from PID 1");
        }
    }
}
