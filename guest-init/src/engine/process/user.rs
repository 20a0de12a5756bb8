//! `process.user`: the uid, gid and groups the process runs with, and its
//! HOME. husk-init is static with no NSS, and the host's user database is
//! the wrong one anyway: names are looked up in the container's own
//! /etc/passwd and /etc/group, parsed here (passwd(5), group(5)), after the
//! pivot, the way runc does (libcontainer/user).

use std::path::Path;

use oci_spec::runtime::User;

use super::ProcessError;
use crate::engine::syscall::{describe, Syscall};

/// One line of /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The colon-separated fields of each line of a passwd(5) or group(5) file
/// that has at least `required` of them; blank lines, comments and short
/// lines are skipped, as the C library does.
fn records(text: &str, required: usize) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':').collect::<Vec<&str>>())
        .filter(move |fields| fields.len() >= required)
}

/// Lines that do not parse are skipped, as the C library does.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    records(text, 4)
        .filter_map(|fields| {
            Some(PasswdEntry {
                name: fields[0].to_owned(),
                uid: fields[2].trim().parse().ok()?,
                gid: fields[3].trim().parse().ok()?,
                home: fields.get(5).copied().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    records(text, 3)
        .filter_map(|fields| {
            Some(GroupEntry {
                name: fields[0].to_owned(),
                gid: fields[2].trim().parse().ok()?,
                members: fields
                    .get(3)
                    .map(|list| {
                        list.split(',')
                            .map(str::trim)
                            .filter(|member| !member.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The identity the process gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, for setgroups(2).
    pub groups: Vec<u32>,
    /// HOME, used when `process.env` has none (runc).
    pub home: String,
}

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// Reads a container file; a missing file is None (a minimal image may
/// have neither).
fn read_optional(
    syscall: &dyn Syscall,
    path: &'static str,
) -> Result<Option<String>, ProcessError> {
    match syscall.read_file(Path::new(path)) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ProcessError::UserDatabase {
            path,
            reason: describe(&error),
        }),
    }
}

/// Resolves `process.user` inside the container (after the pivot).
///
/// With `username`, uid, gid and HOME come from its /etc/passwd line and
/// the supplementary groups are the /etc/group entries listing the user,
/// plus `additionalGids`. Without it, `uid` and `gid` are taken as they
/// are, the groups are `additionalGids` alone (runc passes "uid:gid", which
/// skips /etc/group), and HOME comes from the passwd line of that uid when
/// there is one, "/" otherwise.
pub fn resolve(syscall: &dyn Syscall, user: &User) -> Result<ResolvedUser, ProcessError> {
    let passwd = read_optional(syscall, PASSWD)?;
    let entries = passwd.as_deref().map(parse_passwd).unwrap_or_default();
    let additional = user.additional_gids().clone().unwrap_or_default();
    let username = user.username().as_deref().filter(|name| !name.is_empty());
    let Some(name) = username else {
        let home = entries
            .iter()
            .find(|entry| entry.uid == user.uid())
            .map(|entry| entry.home.clone())
            .filter(|home| !home.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        return Ok(ResolvedUser {
            uid: user.uid(),
            gid: user.gid(),
            groups: additional,
            home,
        });
    };
    if passwd.is_none() {
        return Err(ProcessError::UnknownUser {
            name: name.to_owned(),
            why: "the container has no /etc/passwd",
        });
    }
    let entry = entries
        .iter()
        .find(|entry| entry.name == name)
        .ok_or_else(|| ProcessError::UnknownUser {
            name: name.to_owned(),
            why: "no such user in the container's /etc/passwd",
        })?;
    let group_text = read_optional(syscall, GROUP)?;
    let mut groups: Vec<u32> = group_text
        .as_deref()
        .map(parse_group)
        .unwrap_or_default()
        .into_iter()
        .filter(|group| group.members.iter().any(|member| member == name))
        .map(|group| group.gid)
        .collect();
    for gid in additional {
        if !groups.contains(&gid) {
            groups.push(gid);
        }
    }
    Ok(ResolvedUser {
        uid: entry.uid,
        gid: entry.gid,
        groups,
        home: if entry.home.is_empty() {
            "/".to_owned()
        } else {
            entry.home.clone()
        },
    })
}

/// Whether "deny" in /proc/self/setgroups makes setgroups(2) fail in this
/// user namespace (user_namespaces(7)); runc then leaves the groups alone.
pub fn setgroups_denied(syscall: &dyn Syscall) -> bool {
    syscall
        .read_file(Path::new("/proc/self/setgroups"))
        .is_ok_and(|text| String::from_utf8_lossy(&text).trim() == "deny")
}

/// Switches to the user: supplementary groups (unless the user namespace
/// forbids setgroups), then gid, then uid — uid last because it gives up
/// the right to change the others.
pub fn switch_to(syscall: &dyn Syscall, user: &ResolvedUser) -> Result<(), ProcessError> {
    let failed =
        |call: &'static str, id: String| move |source| ProcessError::SetUser { call, id, source };
    if !setgroups_denied(syscall) {
        syscall
            .setgroups(&user.groups)
            .map_err(failed("setgroups", format!("{:?}", user.groups)))?;
    }
    syscall
        .setresgid(user.gid)
        .map_err(failed("setresgid", user.gid.to_string()))?;
    syscall
        .setresuid(user.uid)
        .map_err(failed("setresuid", user.uid.to_string()))
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::UserBuilder;

    use super::*;
    use crate::engine::syscall::{Call, RecordingSyscall};

    const PASSWD_TEXT: &str = "root:x:0:0:root:/root:/bin/sh\n\
                               # a comment\n\
                               daemon:x:1:1::/usr/sbin:/bin/false\n\
                               broken line\n\
                               alice:x:1000:1000:Alice:/home/alice:/bin/sh\n";
    const GROUP_TEXT: &str =
        "root:x:0:\nwheel:x:10:alice,bob\naudio:x:29:carol\nstaff:x:50: alice \n";

    fn recording() -> RecordingSyscall {
        RecordingSyscall::new()
            .with_file("/etc/passwd", PASSWD_TEXT)
            .with_file("/etc/group", GROUP_TEXT)
    }

    #[test]
    fn passwd_lines_parse_and_bad_ones_are_skipped() {
        let entries = parse_passwd(PASSWD_TEXT);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[2],
            PasswdEntry {
                name: "alice".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/alice".into()
            }
        );
    }

    #[test]
    fn a_username_gives_uid_gid_home_and_member_groups() {
        let user = UserBuilder::default()
            .username("alice")
            .additional_gids(vec![29u32, 10])
            .build()
            .unwrap();
        let resolved = resolve(&recording(), &user).unwrap();
        assert_eq!(
            resolved,
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                groups: vec![10, 50, 29],
                home: "/home/alice".into()
            }
        );
    }

    #[test]
    fn numeric_ids_skip_the_group_file_but_find_home() {
        let user = UserBuilder::default()
            .uid(1000u32)
            .gid(5u32)
            .build()
            .unwrap();
        let resolved = resolve(&recording(), &user).unwrap();
        assert_eq!((resolved.uid, resolved.gid), (1000, 5));
        assert!(resolved.groups.is_empty());
        assert_eq!(resolved.home, "/home/alice");
        let user = UserBuilder::default()
            .uid(4242u32)
            .gid(4242u32)
            .build()
            .unwrap();
        assert_eq!(resolve(&recording(), &user).unwrap().home, "/");
    }

    #[test]
    fn an_absent_username_is_named() {
        let user = UserBuilder::default().username("mallory").build().unwrap();
        let error = resolve(&recording(), &user).unwrap_err();
        assert_eq!(
            error.to_string(),
            "process.user.username: \"mallory\": no such user in the container's /etc/passwd"
        );
        let error = resolve(&RecordingSyscall::new(), &user).unwrap_err();
        assert!(error
            .to_string()
            .ends_with("the container has no /etc/passwd"));
    }

    #[test]
    fn switching_sets_groups_then_gid_then_uid() {
        let syscall = RecordingSyscall::new();
        let user = ResolvedUser {
            uid: 1000,
            gid: 100,
            groups: vec![10, 20],
            home: "/".into(),
        };
        switch_to(&syscall, &user).unwrap();
        assert_eq!(
            syscall.calls(),
            vec![
                Call::Setgroups(vec![10, 20]),
                Call::Setresgid(100),
                Call::Setresuid(1000)
            ]
        );
        let denied = RecordingSyscall::new().with_file("/proc/self/setgroups", "deny\n");
        switch_to(&denied, &user).unwrap();
        assert_eq!(
            denied.calls(),
            vec![Call::Setresgid(100), Call::Setresuid(1000)]
        );
    }
}
