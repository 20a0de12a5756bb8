//! The hooks the husk CLI runs on the host for a container in a VM:
//! prestart, createRuntime, poststart and poststop, whose paths resolve in
//! the runtime's namespaces (runtime-spec config.md "POSIX-platform Hooks"),
//! where the guest cannot reach (docs/engine.md "Hooks and the VM
//! backend"). `create` runs the first two once the guest has created the
//! container and keeps the other two in the state directory, for `start`
//! and `delete`, which may come when the bundle is gone.

use std::path::Path;
use std::{fs, io};

use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use husk_init::engine::hooks;
    use oci_spec::runtime::{ContainerState, HookBuilder};

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
        let hook_state = hooks::container_state(
            "1.2.0",
            "c1",
            ContainerState::Creating,
            Some(4242),
            &bundle,
            None,
        );
        hooks::run_hooks_in(
            &bundle,
            &[hook],
            hooks::HookStage::CreateRuntime,
            &hook_state,
        )
        .unwrap();
        assert_eq!(std::env::current_dir().unwrap(), before);
        let text = fs::read_to_string(&output).unwrap();
        let (cwd, json) = text.split_once('\n').unwrap();
        assert_eq!(Path::new(cwd), bundle);
        let json: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(json["status"], "creating");
        assert_eq!(json["pid"], 4242);
    }
}
