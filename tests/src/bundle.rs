//! OCI bundles for the container tests: a busybox root filesystem (Debian's
//! `busybox-static`, with a link per applet) and a config.json that starts
//! as `runc spec` writes it and that each test tweaks.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// Where Debian's busybox-static puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The config `runc spec` writes (runc 1.1), with `terminal` off so the
/// process uses the caller's stdio: the base every test edits.
pub fn default_spec() -> Value {
    let capabilities = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": capabilities,
                "effective": capabilities,
                "permitted": capabilities,
                "ambient": capabilities
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// The users and groups of the test images.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
                      app:x:1000:1000:App:/home/app:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\n\
                     wheel:x:10:app\n\
                     audio:x:29:\n\
                     app:x:1000:\n\
                     nogroup:x:65534:\n";

/// A bundle directory, removed on drop.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// A busybox bundle under the system temp dir with the default spec.
    /// Fails the test when busybox-static is not installed.
    pub fn busybox(name: &str) -> Bundle {
        let busybox = Path::new(BUSYBOX);
        assert!(
            busybox.is_file(),
            "{BUSYBOX} is missing: install Debian's busybox-static (scripts/install-host-deps does)"
        );
        let dir = std::env::temp_dir().join(format!("husk-bundle-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        for directory in [
            "bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app",
        ] {
            fs::create_dir_all(rootfs.join(directory)).expect("create the rootfs directories");
        }
        fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))
            .expect("chmod /tmp");
        fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox into the rootfs");
        let applets = Command::new(busybox)
            .arg("--list")
            .output()
            .expect("run busybox --list");
        for applet in String::from_utf8_lossy(&applets.stdout).lines() {
            if applet != "busybox" {
                symlink("busybox", rootfs.join("bin").join(applet)).expect("link a busybox applet");
            }
        }
        fs::write(rootfs.join("etc/passwd"), PASSWD).expect("write /etc/passwd");
        fs::write(rootfs.join("etc/group"), GROUP).expect("write /etc/group");
        fs::write(rootfs.join("etc/not-a-program"), "data\n").expect("write a plain file");
        let bundle = Bundle {
            dir,
            config: default_spec(),
        };
        bundle.write();
        bundle
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Sets the value at a JSON pointer ("/process/args"), creating
    /// missing objects on the way, and rewrites config.json.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        let mut target = &mut self.config;
        let keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        let (last, parents) = keys.split_last().expect("a non-empty JSON pointer");
        for key in parents {
            target = match target {
                Value::Array(items) => &mut items[key.parse::<usize>().expect("an array index")],
                other => {
                    if !other.is_object() {
                        *other = json!({});
                    }
                    other
                        .as_object_mut()
                        .unwrap()
                        .entry(*key)
                        .or_insert(json!({}))
                }
            };
        }
        match target {
            Value::Array(items) => {
                let index = last.parse::<usize>().expect("an array index");
                if index == items.len() {
                    items.push(value);
                } else {
                    items[index] = value;
                }
            }
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other
                    .as_object_mut()
                    .unwrap()
                    .insert(last.to_string(), value);
            }
        }
        self.write();
        self
    }

    /// Removes the value at a JSON pointer and rewrites config.json.
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        if let Some(Value::Object(object)) = self.config.pointer_mut(parent) {
            object.remove(key);
        }
        self.write();
        self
    }

    /// The process runs `sh -c script`.
    pub fn shell(&mut self, script: &str) -> &mut Self {
        self.set("/process/args", json!(["sh", "-c", script]))
    }

    /// A process for `runc exec --process` (a config.json "process"
    /// object): this bundle's process, running `sh -c script`.
    pub fn exec_process(&self, script: &str) -> Value {
        let mut process = self.config["process"].clone();
        process["args"] = json!(["sh", "-c", script]);
        process
    }

    pub fn write(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .expect("write config.json");
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
