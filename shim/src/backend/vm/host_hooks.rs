//! The hooks the husk CLI runs on the host for a container in a VM:
//! prestart, createRuntime, poststart and poststop, whose paths resolve in
//! the runtime's namespaces (runtime-spec config.md "POSIX-platform Hooks"),
//! where the guest cannot reach (docs/engine.md "Hooks and the VM
//! backend"). `create` runs the first two once the guest has created the
//! container and keeps the other two in the state directory, for `start`
//! and `delete`, which may come when the bundle is gone.

use std::collections::HashMap;
use std::path::Path;
use std::{fs, io};

use husk_init::engine::hooks::{self, HookError, HookStage};
use oci_spec::runtime::{ContainerState, Hook, State, StateBuilder};
use serde::{Deserialize, Serialize};

use crate::state::ContainerRecord;

/// The hooks the CLI runs on the host, by stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostHooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

/// Keeps `hooks` in `path` for the verbs that run them later.
pub fn save(path: &Path, hooks: &HostHooks) -> io::Result<()> {
    let text = serde_json::to_vec(hooks).map_err(io::Error::other)?;
    fs::write(path, text)
}

/// The hooks `create` saved; none when there is no file (a container made
/// before hooks were saved, or a half-created one).
pub fn load(path: &Path) -> HostHooks {
    fs::read(path)
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default()
}

/// The runtime-spec state a hook reads on its stdin (runtime.md "State").
pub fn state(
    oci_version: &str,
    id: &str,
    status: ContainerState,
    pid: Option<i32>,
    bundle: &Path,
    annotations: Option<HashMap<String, String>>,
) -> State {
    let mut builder = StateBuilder::default()
        .version(oci_version.to_string())
        .id(id.to_string())
        .status(status)
        .bundle(bundle.to_path_buf());
    if let Some(pid) = pid {
        builder = builder.pid(pid);
    }
    if let Some(annotations) = annotations {
        builder = builder.annotations(annotations);
    }
    builder
        .build()
        .expect("every State field has a value or a default")
}

/// [`state`] of a container husk recorded.
pub fn record_state(
    container: &ContainerRecord,
    status: ContainerState,
    pid: Option<i32>,
) -> State {
    state(
        &container.oci_version,
        &container.id,
        status,
        pid,
        &container.bundle,
        (!container.annotations.is_empty()).then(|| container.annotations.clone()),
    )
}

/// Runs host hooks with the bundle as working directory (runtime.md
/// "Hooks"), when the bundle still exists.
pub fn run(
    stage_hooks: &[Hook],
    stage: HookStage,
    state: &State,
    bundle: &Path,
) -> Result<(), HookError> {
    if stage_hooks.is_empty() {
        return Ok(());
    }
    let previous = std::env::current_dir().ok();
    let moved = std::env::set_current_dir(bundle).is_ok();
    let result = hooks::run_hooks(stage_hooks, stage, state);
    if let (true, Some(previous)) = (moved, previous) {
        let _ = std::env::set_current_dir(previous);
    }
    result
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::HookBuilder;

    use super::*;

    #[test]
    fn saved_hooks_come_back_and_a_missing_file_means_none() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("hooks.json");
        assert_eq!(load(&path), HostHooks::default());
        let hooks = HostHooks {
            poststop: vec![HookBuilder::default()
                .path("/usr/bin/cleanup")
                .args(vec!["cleanup".to_string(), "--all".to_string()])
                .timeout(5)
                .build()
                .unwrap()],
            ..HostHooks::default()
        };
        save(&path, &hooks).unwrap();
        assert_eq!(load(&path), hooks);
    }

    #[test]
    fn hooks_run_in_the_bundle_with_the_state_on_stdin() {
        let directory = tempfile::tempdir().unwrap();
        let output = directory.path().join("output");
        let hook = HookBuilder::default()
            .path("/bin/sh")
            .args(vec![
                "sh".to_string(),
                "-c".to_string(),
                format!("pwd > '{0}'; cat >> '{0}'", output.display()),
            ])
            .build()
            .unwrap();
        let bundle = directory.path().canonicalize().unwrap();
        let before = std::env::current_dir().unwrap();
        let hook_state = state(
            "1.2.0",
            "c1",
            ContainerState::Creating,
            Some(4242),
            &bundle,
            None,
        );
        run(&[hook], HookStage::CreateRuntime, &hook_state, &bundle).unwrap();
        assert_eq!(std::env::current_dir().unwrap(), before);
        let text = fs::read_to_string(&output).unwrap();
        let (cwd, json) = text.split_once('\n').unwrap();
        assert_eq!(Path::new(cwd), bundle);
        let json: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(json["status"], "creating");
        assert_eq!(json["pid"], 4242);
    }
}
