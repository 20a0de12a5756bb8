//! `husk ps [--format table|json] ID [PS_OPTIONS...]`: the container's
//! processes; containerd's `ctr task ps` and `docker top` use the JSON
//! list of pids.

use std::process::Command;

use anyhow::{bail, Context as _};
use husk_protocol::GuestProcess;

use super::Context;
use crate::cli::{OutputFormat, PsArgs};
use crate::state::LockMode;

pub fn run(context: &Context, args: &PsArgs) -> anyhow::Result<u8> {
    let container = context.open(&args.container_id, LockMode::Shared)?;
    let id = container.id().to_string();
    context.refuse_systemd_cgroup()?;
    if args.format == OutputFormat::Table {
        let table = container
            .backend
            .process_table(&container.record)
            .with_context(|| format!("list the processes of container {id:?}"))?;
        if let Some(processes) = table {
            if !args.ps_options.is_empty() {
                bail!(
                    "container {id:?} runs in a VM, where husk shows its own columns; drop the \
                     ps options ({}) or use --format json",
                    args.ps_options.join(" ")
                );
            }
            print!("{}", guest_table(&processes));
            return Ok(0);
        }
    }
    let pids = container
        .backend
        .processes(&container.record)
        .with_context(|| format!("list the processes of container {id:?}"))?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&pids)?),
        OutputFormat::Table => {
            let options = if args.ps_options.is_empty() {
                vec!["-ef".to_string()]
            } else {
                args.ps_options.clone()
            };
            let output = Command::new("ps")
                .args(&options)
                .output()
                .context("run ps(1) for the table format (install procps, or use --format json)")?;
            if !output.status.success() {
                bail!(
                    "ps {}: {}",
                    options.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            print!(
                "{}",
                filter_ps_output(&String::from_utf8_lossy(&output.stdout), &pids)?
            );
        }
    }
    Ok(0)
}

/// The processes of a container in a VM as a table in ps(1)'s style; the
/// PIDs are the guest's.
fn guest_table(processes: &[GuestProcess]) -> String {
    let mut table = format!(
        "{:>8} {:>7} {:>7} {:<4} CMD\n",
        "UID", "PID", "PPID", "STAT"
    );
    for process in processes {
        table.push_str(&format!(
            "{:>8} {:>7} {:>7} {:<4} {}\n",
            process.uid, process.pid, process.ppid, process.state, process.command
        ));
    }
    table
}

/// The header and the lines of ps(1) output whose PID column holds one of
/// `pids`, as runc filters them.
fn filter_ps_output(output: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let Some(pid_column) = header.split_whitespace().position(|title| title == "PID") else {
        bail!("ps printed no PID column; include pid in the ps options (-o pid,...)");
    };
    let mut filtered = format!("{header}\n");
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let field = line.split_whitespace().nth(pid_column).unwrap_or_default();
        let pid: i32 = field
            .parse()
            .with_context(|| format!("ps printed {field:?} where a pid belongs"))?;
        if pids.contains(&pid) {
            filtered.push_str(line);
            filtered.push('\n');
        }
    }
    Ok(filtered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_container_s_processes_are_shown() {
        let output = "UID   PID  PPID  C STIME TTY  TIME     CMD\n\
                      root    1     0  0 10:00 ?    00:00:01 init\n\
                      root   42     1  0 10:01 ?    00:00:00 sleep 100\n\
                      root   43    42  0 10:01 ?    00:00:00 sh -c x\n";
        assert_eq!(
            filter_ps_output(output, &[42, 43]).unwrap(),
            "UID   PID  PPID  C STIME TTY  TIME     CMD\n\
             root   42     1  0 10:01 ?    00:00:00 sleep 100\n\
             root   43    42  0 10:01 ?    00:00:00 sh -c x\n"
        );
    }

    #[test]
    fn guest_processes_are_shown_in_columns() {
        let processes = [
            GuestProcess {
                pid: 1,
                ppid: 0,
                uid: 0,
                state: "S".to_string(),
                command: "sh".to_string(),
            },
            GuestProcess {
                pid: 12,
                ppid: 1,
                uid: 1000,
                state: "R".to_string(),
                command: "sleep 100".to_string(),
            },
        ];
        assert_eq!(
            guest_table(&processes),
            "     UID     PID    PPID STAT CMD\n\
             \x20      0       1       0 S    sh\n\
             \x20   1000      12       1 R    sleep 100\n"
        );
    }

    #[test]
    fn output_without_a_pid_column_is_an_error() {
        let error = filter_ps_output("USER COMMAND\nroot init\n", &[1]).unwrap_err();
        assert!(error.to_string().contains("PID column"));
    }
}
