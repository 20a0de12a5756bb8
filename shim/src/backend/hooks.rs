//! The hooks the runtime runs on the host after create, for both backends:
//! poststart (at start) and poststop (at delete). The container backend's
//! engine runs the earlier stages itself during create, the VM backend's
//! create runs prestart and createRuntime on the host; startContainer runs
//! inside the container.
//!
//! runtime.md "Lifecycle" steps 9 and 12: a failing poststart or poststop
//! hook is logged as a warning and the operation goes on, so nothing here
//! returns an error.

use std::path::Path;

use husk_init::engine::hooks::{container_state, run_hooks_in, HookStage};
use husk_init::engine::{error_chain, Bundle};
use oci_spec::runtime::{ContainerState, Hook, State};

use crate::logging;
use crate::state::ContainerRecord;

/// The runtime-spec state a hook reads on stdin (runtime.md "State").
/// `pid` is given while the process exists (created and running).
pub fn hook_state(container: &ContainerRecord, status: ContainerState, pid: Option<i32>) -> State {
    container_state(
        &container.oci_version,
        &container.id,
        status,
        pid,
        &container.bundle,
        (!container.annotations.is_empty()).then(|| container.annotations.clone()),
    )
}

/// Runs `stage`'s hooks of `bundle` with `state` on their stdin and the
/// bundle directory as working directory (config.md "POSIX-platform
/// Hooks"); failures become warnings.
pub fn run_stage_with_warnings(bundle: &Bundle, stage: HookStage, state: &State) {
    let Some(hooks) = bundle.spec.hooks().as_ref() else {
        return;
    };
    run_with_warnings(&bundle.path, stage.hooks_in(hooks), stage, state);
}

/// Runs `hooks`, `stage`'s, in `bundle_dir` with `state` on their stdin;
/// failures become warnings.
pub fn run_with_warnings(bundle_dir: &Path, hooks: &[Hook], stage: HookStage, state: &State) {
    if let Err(error) = run_hooks_in(bundle_dir, hooks, stage, state) {
        logging::warning(format!(
            "container {}: hooks.{stage}: {}",
            state.id(),
            error_chain(&error)
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;

    use husk_init::engine::load_bundle;

    use super::*;
    use crate::backend::test_record;
    use crate::state::Status;

    fn record(annotations: HashMap<String, String>) -> ContainerRecord {
        ContainerRecord {
            oci_version: "1.2.0".to_string(),
            status: Status::Running,
            pid: 42,
            annotations,
            ..test_record(Path::new("/bundles/b1"), Path::new(""))
        }
    }

    #[test]
    fn hooks_get_the_runtime_spec_state() {
        let annotated = record(HashMap::from([("a".to_string(), "b".to_string())]));
        let state = serde_json::to_value(hook_state(&annotated, ContainerState::Running, Some(42)))
            .unwrap();
        assert_eq!(
            state,
            serde_json::json!({
                "ociVersion": "1.2.0",
                "id": "c1",
                "status": "running",
                "pid": 42,
                "bundle": "/bundles/b1",
                "annotations": {"a": "b"}
            })
        );
        let stopped = serde_json::to_value(hook_state(
            &record(HashMap::new()),
            ContainerState::Stopped,
            None,
        ))
        .unwrap();
        assert_eq!(stopped["status"], "stopped");
        assert!(stopped.get("pid").is_none() && stopped.get("annotations").is_none());
    }

    #[test]
    fn a_hook_runs_in_the_bundle_with_the_state_on_stdin() {
        let directory = tempfile::tempdir().unwrap();
        let bundle_dir = directory.path().join("bundle");
        fs::create_dir_all(bundle_dir.join("rootfs")).unwrap();
        let output = directory.path().join("hook-output");
        let script = format!("pwd > {0}; cat >> {0}", output.display());
        let config = serde_json::json!({
            "ociVersion": "1.3.0",
            "root": {"path": "rootfs"},
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
            "linux": {"namespaces": [{"type": "mount"}]},
            "hooks": {
                "poststop": [
                    {"path": "/bin/false"},
                    {"path": "/bin/sh", "args": ["sh", "-c", script]}
                ]
            }
        });
        fs::write(bundle_dir.join("config.json"), config.to_string()).unwrap();
        let bundle = load_bundle(&bundle_dir).unwrap();
        let before = std::env::current_dir().unwrap();
        let state = hook_state(&record(HashMap::new()), ContainerState::Stopped, None);

        // The first hook fails: only a warning, and the second still runs.
        run_stage_with_warnings(&bundle, HookStage::Poststop, &state);

        let text = fs::read_to_string(&output).unwrap();
        let (directory_line, state_json) = text.split_once('\n').unwrap();
        assert_eq!(Path::new(directory_line), bundle.path);
        let state: serde_json::Value = serde_json::from_str(state_json).unwrap();
        assert_eq!(state["id"], "c1");
        assert_eq!(state["status"], "stopped");
        assert_eq!(std::env::current_dir().unwrap(), before);
    }
}
