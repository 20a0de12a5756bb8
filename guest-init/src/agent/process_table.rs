//! The container's processes as the guest's /proc shows them (proc(5):
//! /proc/PID/stat, status and cmdline), for `husk ps`'s table. A process
//! that exits while it is read is left out.

use std::fs;

use husk_protocol::GuestProcess;

/// The rows for `pids`, in that order, without the ones already gone.
pub fn read(pids: &[i32]) -> Vec<GuestProcess> {
    pids.iter().filter_map(|&pid| read_one(pid)).collect()
}

fn read_one(pid: i32) -> Option<GuestProcess> {
    let directory = format!("/proc/{pid}");
    let stat = fs::read_to_string(format!("{directory}/stat")).ok()?;
    let status = fs::read_to_string(format!("{directory}/status")).ok()?;
    let cmdline = fs::read(format!("{directory}/cmdline")).ok()?;
    let (name, state, ppid) = parse_stat(&stat)?;
    Some(GuestProcess {
        pid,
        ppid,
        uid: parse_real_uid(&status)?,
        state,
        command: command_line(&cmdline).unwrap_or_else(|| format!("[{name}]")),
    })
}

/// From "PID (COMM) STATE PPID ...": the name, the state and the parent.
/// The name may hold spaces and parentheses itself, so it ends at the
/// last ')'.
fn parse_stat(stat: &str) -> Option<(String, String, i32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.to_string();
    let ppid = rest.next()?.parse().ok()?;
    Some((name, state, ppid))
}

/// The first number of the "Uid:" line: real, effective, saved, fs.
fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// The NUL-separated arguments joined with spaces; None when there are
/// none.
fn command_line(cmdline: &[u8]) -> Option<String> {
    let arguments: Vec<String> = cmdline
        .split(|&byte| byte == 0)
        .filter(|argument| !argument.is_empty())
        .map(|argument| String::from_utf8_lossy(argument).into_owned())
        .collect();
    (!arguments.is_empty()).then(|| arguments.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_parentheses_and_spaces_is_read_to_the_last_parenthesis() {
        assert_eq!(
            parse_stat("42 (my (odd) name) S 7 42 42 0 -1 4194560 0"),
            Some(("my (odd) name".to_string(), "S".to_string(), 7))
        );
        assert_eq!(parse_stat("42 no-parentheses S 7"), None);
    }

    #[test]
    fn the_real_uid_comes_from_the_uid_line() {
        let status = "Name:\tsleep\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_real_uid(status), Some(1000));
        assert_eq!(parse_real_uid("Name:\tx\n"), None);
    }

    #[test]
    fn arguments_are_joined_and_an_empty_command_line_is_none() {
        assert_eq!(
            command_line(b"sh\0-c\0sleep 100\0"),
            Some("sh -c sleep 100".to_string())
        );
        assert_eq!(command_line(b""), None);
    }

    #[test]
    fn this_process_reads_with_its_parent_and_state() {
        let own = std::process::id() as i32;
        let rows = read(&[own, i32::MAX]);
        assert_eq!(rows.len(), 1, "the second pid does not exist: {rows:?}");
        assert_eq!(rows[0].pid, own);
        // Its main thread waits for the test threads: sleeping or running.
        assert!(["R", "S"].contains(&rows[0].state.as_str()), "{rows:?}");
        // SAFETY: getppid(2) cannot fail.
        assert_eq!(rows[0].ppid, unsafe { libc::getppid() });
        assert!(!rows[0].command.is_empty());
    }
}
