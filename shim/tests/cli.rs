//! The built `husk` binary, called as runc's callers call it. These need no
//! root and no KVM: they cover what the CLI does before and around a
//! backend.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

/// A scratch directory with a state root, a bundle and an empty husk
/// configuration file.
struct Scratch {
    directory: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let scratch = Scratch {
            directory: tempfile::tempdir().unwrap(),
        };
        fs::write(scratch.config_file(), "{}").unwrap();
        scratch
    }

    fn path(&self) -> &Path {
        self.directory.path()
    }

    fn root(&self) -> PathBuf {
        self.path().join("root")
    }

    fn config_file(&self) -> PathBuf {
        self.path().join("husk-config.json")
    }

    /// `husk --root <root> ARGS...`.
    fn husk(&self, arguments: &[&str]) -> Output {
        let root = self.root();
        let mut all = vec!["--root", root.to_str().unwrap()];
        all.extend_from_slice(arguments);
        husk_with(&all, &self.config_file())
    }

    /// A bundle made with `husk spec`, with an empty rootfs.
    fn bundle(&self, name: &str) -> PathBuf {
        let bundle = self.path().join(name);
        fs::create_dir_all(bundle.join("rootfs")).unwrap();
        let output = self.husk(&["spec", "--bundle", bundle.to_str().unwrap()]);
        assert_success(&output);
        bundle
    }

    /// A container's state as a backend leaves it after create.
    fn fake_container(&self, id: &str, pid: i32, pid_start_time: u64, status: &str) {
        let dir = self.root().join(id);
        fs::create_dir_all(&dir).unwrap();
        let state = json!({
            "ociVersion": "1.3.0",
            "id": id,
            "status": status,
            "pid": pid,
            "bundle": "/bundles/b1",
            "husk": {
                "backend": "container",
                "created": "2024-05-01T12:00:00.000000000Z",
                "rootfs": "/bundles/b1/rootfs",
                "pidStartTime": pid_start_time,
                "timingsMicros": {"cli_created": 1500},
            },
        });
        fs::write(dir.join("state.json"), state.to_string()).unwrap();
    }
}

fn husk_with(arguments: &[&str], config_file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_husk"))
        .args(arguments)
        .env("HUSK_CONFIG", config_file)
        .output()
        .expect("run husk")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Exit status 1 and exactly one stderr line, `husk: ...`; returns it.
fn assert_failure(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    let error = stderr(output);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.starts_with("husk: "), "{error}");
    error.trim_end().to_string()
}

/// What the last create in a `--debug` log says about its backend:
/// "the <kind> backend (from <source>)".
fn chosen_backend(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .rev()
        .find(|line| line.contains(" backend (from "))
        .unwrap_or_else(|| panic!("no backend choice in the log:\n{text}"));
    let message = &line[line.find(": the ").unwrap() + 2..];
    message.trim_end_matches('"').to_string()
}

/// The start time of this test process (/proc/self/stat field 22).
fn own_start_time() -> u64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn spec_writes_config_json_once() {
    let scratch = Scratch::new();
    let bundle = scratch.path().join("bundle");
    fs::create_dir(&bundle).unwrap();
    assert_success(&scratch.husk(&["spec", "-b", bundle.to_str().unwrap()]));
    let config: Value = serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap())
        .expect("husk spec writes JSON");
    assert_eq!(config["hostname"], "husk");
    assert_eq!(config["process"]["args"], json!(["sh"]));
    assert_eq!(config["root"]["path"], "rootfs");

    let again = scratch.husk(&["spec", "-b", bundle.to_str().unwrap()]);
    let error = assert_failure(&again);
    assert_eq!(
        error,
        format!(
            "husk: File {}/config.json exists. Remove it first",
            bundle.display()
        )
    );
}

#[test]
fn spec_in_the_current_directory_and_rootless() {
    let scratch = Scratch::new();
    let output = Command::new(env!("CARGO_BIN_EXE_husk"))
        .args(["spec", "--rootless"])
        .current_dir(scratch.path())
        .env("HUSK_CONFIG", scratch.config_file())
        .output()
        .unwrap();
    assert_success(&output);
    let config: Value =
        serde_json::from_slice(&fs::read(scratch.path().join("config.json")).unwrap()).unwrap();
    let namespaces = config["linux"]["namespaces"].as_array().unwrap();
    assert!(namespaces.contains(&json!({"type": "user"})));
    assert!(!namespaces.contains(&json!({"type": "network"})));
    assert_eq!(config["linux"]["uidMappings"][0]["size"], 1);
}

#[test]
fn state_of_an_unknown_container_names_it() {
    let scratch = Scratch::new();
    let error = assert_failure(&scratch.husk(&["state", "nope"]));
    assert!(
        error.contains("container \"nope\" does not exist"),
        "{error}"
    );
}

#[test]
fn delete_force_of_an_unknown_container_succeeds() {
    let scratch = Scratch::new();
    let output = scratch.husk(&["delete", "--force", "nope"]);
    assert_success(&output);
    assert_eq!(stderr(&output), "");
    // Without --force it is an error containerd recognises ("does not exist").
    let error = assert_failure(&scratch.husk(&["delete", "nope"]));
    assert!(error.contains("does not exist"), "{error}");
}

#[test]
fn errors_go_to_the_log_file_as_json_lines() {
    let scratch = Scratch::new();
    let log = scratch.path().join("log.json");
    let output = scratch.husk(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    let error = assert_failure(&output);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each log line is JSON"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["level"], "error");
    assert_eq!(lines[0]["msg"], error.strip_prefix("husk: ").unwrap());
    let time = lines[0]["time"].as_str().unwrap();
    assert!(
        time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
}

#[test]
fn errors_go_to_the_log_file_as_logrus_text() {
    let scratch = Scratch::new();
    let log = scratch.path().join("log.txt");
    assert_failure(&scratch.husk(&["--log", log.to_str().unwrap(), "state", "nope"]));
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("time=\""), "{text}");
    assert!(
        text.contains(" level=error msg=\"container \\\"nope\\\" does not exist"),
        "{text}"
    );
}

#[test]
fn debug_adds_debug_lines() {
    let scratch = Scratch::new();
    let log = scratch.path().join("log.json");
    let log = log.to_str().unwrap();
    assert_success(&scratch.husk(&["--log", log, "--log-format", "json", "list"]));
    assert_eq!(fs::read_to_string(log).unwrap(), "");
    assert_success(&scratch.husk(&["--debug", "--log", log, "--log-format", "json", "list"]));
    let text = fs::read_to_string(log).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["level"], "debug");
    assert!(first["msg"].as_str().unwrap().contains("list"), "{text}");
}

#[test]
fn features_is_json() {
    let scratch = Scratch::new();
    let output = scratch.husk(&["features"]);
    assert_success(&output);
    let features: Value = serde_json::from_str(&stdout(&output)).expect("features prints JSON");
    assert_eq!(features["ociVersionMin"], "1.0.0");
    assert!(features["ociVersionMax"]
        .as_str()
        .unwrap()
        .starts_with("1."));
    assert_eq!(features["linux"]["cgroup"]["systemd"], false);
    assert!(features["linux"]["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .contains(&json!("SCMP_ACT_ERRNO")));
    assert_eq!(features["annotations"]["run.husk.backends"], "vm,container");
}

#[test]
fn version() {
    for flag in ["--version", "-v"] {
        let output = husk_with(&[flag], Path::new("/nonexistent"));
        assert_success(&output);
        let text = stdout(&output);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("husk version "), "{text}");
        assert!(lines[1].starts_with("spec: 1."), "{text}");
        assert!(
            lines[2].contains("vm") && lines[2].contains("container"),
            "{text}"
        );
        // docker takes the version from the one line that says "version".
        assert_eq!(text.matches("version").count(), 1, "{text}");
    }
}

#[test]
fn list_of_an_empty_root_is_the_header_only() {
    let scratch = Scratch::new();
    let header = "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n";
    // The root does not exist yet.
    let output = scratch.husk(&["list"]);
    assert_success(&output);
    assert_eq!(stdout(&output), header);
    fs::create_dir(scratch.root()).unwrap();
    let output = scratch.husk(&["list"]);
    assert_success(&output);
    assert_eq!(stdout(&output), header);
    let output = scratch.husk(&["list", "--format", "json"]);
    assert_eq!(stdout(&output), "[]\n");
    assert_eq!(stdout(&scratch.husk(&["list", "-q"])), "");
}

#[test]
fn systemd_cgroup_fails_clearly_on_a_host_without_systemd() {
    let scratch = Scratch::new();
    let bundle = scratch.bundle("bundle");
    let output = scratch.husk(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "c1",
    ]);
    let error = assert_failure(&output);
    assert!(error.contains("--systemd-cgroup"), "{error}");
    assert!(error.contains("drop the flag"), "{error}");
    if Path::new("/run/systemd/system").exists() {
        assert!(error.contains("cgroupfs only"), "{error}");
    } else {
        assert!(error.contains("systemd is not running"), "{error}");
    }
    assert!(!scratch.root().join("c1").exists());
}

#[test]
fn create_takes_options_after_the_id_and_reaches_the_backend() {
    let scratch = Scratch::new();
    let bundle = scratch.bundle("bundle");
    let pid_file = scratch.path().join("init.pid");
    let log = scratch.path().join("log");
    let output = scratch.husk(&[
        "--debug",
        "--log",
        log.to_str().unwrap(),
        "--backend",
        "container",
        "create",
        "c1",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]);
    // Parsing, the bundle and the state directory were fine: the failure is
    // the backend's (this bundle asks for a terminal without a console
    // socket).
    let error = assert_failure(&output);
    assert!(error.contains("create container \"c1\""), "{error}");
    assert_eq!(
        chosen_backend(&log),
        "the container backend (from --backend)"
    );
    // A failed create leaves nothing behind.
    assert!(!scratch.root().join("c1").exists());
    assert!(!pid_file.exists());
}

#[test]
fn the_backend_comes_from_the_annotation_then_the_config_file() {
    let scratch = Scratch::new();
    let bundle = scratch.bundle("bundle");
    let bundle_arg = bundle.to_str().unwrap();
    let log = scratch.path().join("log");
    let log_arg = log.to_str().unwrap();
    // The bundle asks for a terminal and no create gives a console socket,
    // so every create fails; the debug log says which backend it reached.
    let create = |flags: &[&str]| {
        let mut arguments = vec!["--debug", "--log", log_arg];
        arguments.extend_from_slice(flags);
        arguments.extend_from_slice(&["create", "-b", bundle_arg, "c1"]);
        assert_failure(&scratch.husk(&arguments));
        chosen_backend(&log)
    };

    // Nothing chooses: vm.
    assert_eq!(create(&[]), "the vm backend (from default)");

    // The configuration file.
    fs::write(scratch.config_file(), r#"{"backend": "container"}"#).unwrap();
    assert_eq!(
        create(&[]),
        format!(
            "the container backend (from {})",
            scratch.config_file().display()
        )
    );

    // The annotation beats the configuration file.
    let config_path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    config["annotations"] = json!({"run.husk.backend": "vm"});
    fs::write(&config_path, config.to_string()).unwrap();
    assert_eq!(
        create(&[]),
        "the vm backend (from annotation run.husk.backend)"
    );

    // And the flag beats both.
    assert_eq!(
        create(&["--backend", "container"]),
        "the container backend (from --backend)"
    );

    // A bad annotation names the field.
    config["annotations"] = json!({"run.husk.backend": "jail"});
    fs::write(&config_path, config.to_string()).unwrap();
    let error = assert_failure(&scratch.husk(&["create", "-b", bundle_arg, "c1"]));
    assert!(
        error.contains(&format!(
            "{}: annotations.\"run.husk.backend\": \"jail\"",
            config_path.display()
        )),
        "{error}"
    );
}

#[test]
fn create_refuses_bad_ids_and_bundles() {
    let scratch = Scratch::new();
    let bundle = scratch.bundle("bundle");
    let error = assert_failure(&scratch.husk(&["create", "-b", bundle.to_str().unwrap(), "a/b"]));
    assert!(error.contains("invalid container ID \"a/b\""), "{error}");
    let missing = scratch.path().join("missing");
    let error = assert_failure(&scratch.husk(&["create", "-b", missing.to_str().unwrap(), "c1"]));
    assert!(
        error.contains(&format!("{}/config.json", missing.display())),
        "{error}"
    );
}

#[test]
fn a_container_whose_process_died_is_stopped() {
    let scratch = Scratch::new();
    // A pid whose process has exited and been reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id() as i32;
    child.wait().unwrap();
    scratch.fake_container("dead", dead_pid, 1, "running");

    let output = scratch.husk(&["state", "dead"]);
    assert_success(&output);
    let state: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(state["id"], "dead");
    assert_eq!(state["status"], "stopped");
    assert_eq!(state["pid"], 0);
    assert_eq!(state["bundle"], "/bundles/b1");
    assert_eq!(state["husk"]["backend"], "container");
    assert_eq!(state["husk"]["timingsMicros"]["cli_created"], 1500);

    let error = assert_failure(&scratch.husk(&["kill", "dead", "9"]));
    assert!(error.contains("container not running"), "{error}");
    let error = assert_failure(&scratch.husk(&["start", "dead"]));
    assert!(error.contains("it has stopped"), "{error}");
    let error = assert_failure(&scratch.husk(&["exec", "dead", "true"]));
    assert!(error.contains("it has stopped"), "{error}");
}

#[test]
fn a_reused_pid_is_stopped_and_the_live_process_is_running() {
    let scratch = Scratch::new();
    let own_pid = std::process::id() as i32;
    scratch.fake_container("reused", own_pid, own_start_time() + 1, "running");
    scratch.fake_container("alive", own_pid, own_start_time(), "running");

    let output = scratch.husk(&["list", "--format", "json"]);
    assert_success(&output);
    let list: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let status_of = |id: &str| {
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["id"] == id)
            .unwrap();
        (
            entry["status"].as_str().unwrap().to_string(),
            entry["pid"].as_i64().unwrap(),
        )
    };
    assert_eq!(
        status_of("alive"),
        ("running".to_string(), i64::from(own_pid))
    );
    assert_eq!(status_of("reused"), ("stopped".to_string(), 0));

    let table = stdout(&scratch.husk(&["list"]));
    let alive_line = table
        .lines()
        .find(|line| line.starts_with("alive "))
        .unwrap();
    assert!(
        alive_line.contains("running") && alive_line.contains("/bundles/b1"),
        "{table}"
    );
    assert_eq!(stdout(&scratch.husk(&["list", "-q"])), "alive\nreused\n");

    // A running container is deleted only with --force.
    let error = assert_failure(&scratch.husk(&["delete", "alive"]));
    assert!(error.contains("that is not stopped: running"), "{error}");
}

#[test]
fn usage_errors_are_one_line_and_status_one() {
    let scratch = Scratch::new();
    let error = assert_failure(&scratch.husk(&["create", "--bundel", "/b", "c1"]));
    assert!(
        error.contains("--bundel") && error.contains("husk create --help"),
        "{error}"
    );
    let error = assert_failure(&scratch.husk(&["--frobnicate", "list"]));
    assert!(error.contains("--frobnicate"), "{error}");
    let error = assert_failure(&scratch.husk(&["kill", "c1", "SIGNOPE"]));
    assert!(error.contains("unknown signal \"SIGNOPE\""), "{error}");
}

#[test]
fn usage_errors_reach_containerd_s_log_file() {
    let scratch = Scratch::new();
    let log = scratch.path().join("log.json");
    assert_failure(&scratch.husk(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundel",
        "/b",
        "c1",
    ]));
    let line: Value = serde_json::from_str(fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("--bundel"));
}
