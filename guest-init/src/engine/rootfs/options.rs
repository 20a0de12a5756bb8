//! fstab-style mount options (config.md "mounts": `options`) turned into
//! mount(2) flags, propagation changes and filesystem data, with runc's
//! table (libcontainer/specconv, parseMountOptions).

/// What one `mounts[].options` list means to mount(2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// MS_* flags for the mount itself.
    pub flags: u64,
    /// MS_PRIVATE/MS_SHARED/MS_SLAVE/MS_UNBINDABLE (maybe with MS_REC),
    /// each applied with its own mount(2) call after the mount, in order.
    pub propagation: Vec<u64>,
    /// Options the kernel does not know as flags, passed to the filesystem
    /// ("mode=755", "size=65536k", "newinstance", ...), comma-joined.
    pub data: String,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }

    /// Data for mount(2): None when there is none.
    pub fn data(&self) -> Option<&str> {
        (!self.data.is_empty()).then_some(self.data.as_str())
    }
}

/// An option husk cannot honour; `reason` says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option:?} is not supported: {reason}")]
pub struct UnsupportedOption {
    pub option: String,
    pub reason: &'static str,
}

/// (name, clears the flag, flag) — mount(8)'s names for mount(2)'s flags.
const FLAGS: &[(&str, bool, u64)] = &[
    ("acl", false, libc::MS_POSIXACL),
    ("async", true, libc::MS_SYNCHRONOUS),
    ("atime", true, libc::MS_NOATIME),
    ("bind", false, libc::MS_BIND),
    ("defaults", false, 0),
    ("dev", true, libc::MS_NODEV),
    ("diratime", true, libc::MS_NODIRATIME),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("exec", true, libc::MS_NOEXEC),
    ("iversion", false, libc::MS_I_VERSION),
    ("lazytime", false, libc::MS_LAZYTIME),
    ("loud", true, libc::MS_SILENT),
    ("mand", false, libc::MS_MANDLOCK),
    ("noacl", true, libc::MS_POSIXACL),
    ("noatime", false, libc::MS_NOATIME),
    ("nodev", false, libc::MS_NODEV),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("noexec", false, libc::MS_NOEXEC),
    ("noiversion", true, libc::MS_I_VERSION),
    ("nolazytime", true, libc::MS_LAZYTIME),
    ("nomand", true, libc::MS_MANDLOCK),
    ("norelatime", true, libc::MS_RELATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
    ("nosuid", false, libc::MS_NOSUID),
    ("rbind", false, libc::MS_BIND | libc::MS_REC),
    ("relatime", false, libc::MS_RELATIME),
    ("remount", false, libc::MS_REMOUNT),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("silent", false, libc::MS_SILENT),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("suid", true, libc::MS_NOSUID),
    ("sync", false, libc::MS_SYNCHRONOUS),
];

const PROPAGATION: &[(&str, u64)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// Options runc knows that husk does not implement.
fn unsupported(option: &str) -> Option<&'static str> {
    match option {
        "tmpcopyup" => Some("copy the directory's contents into the tmpfs yourself (for example with a createContainer hook)"),
        "idmap" | "ridmap" => Some("id-mapped mounts are not implemented; chown the source instead"),
        "rro" | "rrw" | "rnosuid" | "rsuid" | "rnodev" | "rdev" | "rnoexec" | "rexec"
        | "rnodiratime" | "rdiratime" | "rrelatime" | "rnorelatime" | "rnoatime" | "ratime"
        | "rstrictatime" | "rnostrictatime" | "rnosymfollow" | "rsymfollow" => {
            Some("recursive mount attributes (mount_setattr) are not implemented; use the plain option")
        }
        _ => None,
    }
}

/// Parses a mount's options in order (a later option overrides an earlier
/// one, as in mount(8)).
pub fn parse(options: &[String]) -> Result<MountOptions, UnsupportedOption> {
    let mut parsed = MountOptions::default();
    let mut data = Vec::new();
    for option in options {
        if let Some(reason) = unsupported(option) {
            return Err(UnsupportedOption {
                option: option.clone(),
                reason,
            });
        }
        if let Some(&(_, clear, flag)) = FLAGS.iter().find(|(name, ..)| name == option) {
            if clear {
                parsed.flags &= !flag;
            } else {
                parsed.flags |= flag;
            }
        } else if let Some(&(_, flag)) = PROPAGATION.iter().find(|(name, _)| name == option) {
            parsed.propagation.push(flag);
        } else {
            data.push(option.as_str());
        }
    }
    parsed.data = data.join(",");
    Ok(parsed)
}

/// `linux.rootfsPropagation` as mount(2) flags.
pub fn parse_propagation(value: &str) -> Option<u64> {
    PROPAGATION
        .iter()
        .find(|(name, _)| *name == value)
        .map(|&(_, flag)| flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(options: &[&str]) -> Vec<String> {
        options.iter().map(|option| option.to_string()).collect()
    }

    #[test]
    fn flags_propagation_and_data_are_separated() {
        let parsed = parse(&strings(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "rslave",
            "mode=0620",
        ]))
        .unwrap();
        assert_eq!(parsed.flags, libc::MS_NOSUID | libc::MS_NOEXEC);
        assert_eq!(parsed.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(parsed.data(), Some("newinstance,ptmxmode=0666,mode=0620"));
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let parsed = parse(&strings(&["ro", "rw", "rbind", "exec"])).unwrap();
        assert_eq!(parsed.flags, libc::MS_BIND | libc::MS_REC);
        assert!(parsed.is_bind());
        assert_eq!(parsed.data(), None);
    }

    #[test]
    fn tmpcopyup_is_refused_with_what_to_do() {
        let error = parse(&strings(&["tmpcopyup"])).unwrap_err();
        assert_eq!(error.option, "tmpcopyup");
        assert!(error.to_string().contains("copy the directory's contents"));
    }

    #[test]
    fn rootfs_propagation_values() {
        assert_eq!(
            parse_propagation("rprivate"),
            Some(libc::MS_PRIVATE | libc::MS_REC)
        );
        assert_eq!(parse_propagation("shared"), Some(libc::MS_SHARED));
        assert_eq!(parse_propagation("sideways"), None);
    }
}
