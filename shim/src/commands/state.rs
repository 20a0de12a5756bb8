//! `husk state ID` (runtime.md "query state"): the container's state as
//! JSON, with its status checked against the running system.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ContainerSummary, Context};
use crate::backend::{BackendKind, BACKEND_ANNOTATION};
use crate::cli::StateArgs;
use crate::state::LockMode;

/// runc's state output plus husk's own part.
#[derive(Debug, Serialize)]
struct StateOutput {
    #[serde(flatten)]
    summary: ContainerSummary,
    husk: HuskOutput,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HuskOutput {
    backend: BackendKind,
    /// Startup phases: name → microseconds after `husk create` started.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    timings_micros: BTreeMap<String, u64>,
}

/// The prefix of the startup phase annotations: `run.husk.phase-us.NAME`
/// holds the phase's microseconds after `husk create` started.
const PHASE_ANNOTATION_PREFIX: &str = "run.husk.phase-us.";

/// What `state` adds to the bundle's annotations: the backend the container
/// runs on (whatever picked it) and the startup phases, for tools that read
/// only the runtime spec's fields.
fn husk_annotations(
    backend: BackendKind,
    timings_micros: &BTreeMap<String, u64>,
) -> Vec<(String, String)> {
    let backend = (BACKEND_ANNOTATION.to_string(), backend.to_string());
    let phases = timings_micros.iter().map(|(phase, micros)| {
        (
            format!("{PHASE_ANNOTATION_PREFIX}{phase}"),
            micros.to_string(),
        )
    });
    std::iter::once(backend).chain(phases).collect()
}

pub fn run(context: &Context, args: &StateArgs) -> anyhow::Result<u8> {
    let container = context.open(&args.container_id, LockMode::Shared)?;
    let status = container.status()?;
    let mut summary = ContainerSummary::new(&container.record, status);
    summary.annotations.extend(husk_annotations(
        container.record.husk.backend,
        &container.record.husk.timings_micros,
    ));
    let output = StateOutput {
        summary,
        husk: HuskOutput {
            backend: container.record.husk.backend,
            timings_micros: container.record.husk.timings_micros.clone(),
        },
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_and_each_phase_become_annotations() {
        let timings = BTreeMap::from([
            ("kernel_entry".to_string(), 9000),
            ("container_created".to_string(), 21000),
        ]);
        let annotations = husk_annotations(BackendKind::Vm, &timings);
        assert_eq!(
            annotations,
            vec![
                ("run.husk.backend".to_string(), "vm".to_string()),
                (
                    "run.husk.phase-us.container_created".to_string(),
                    "21000".to_string()
                ),
                (
                    "run.husk.phase-us.kernel_entry".to_string(),
                    "9000".to_string()
                ),
            ]
        );
    }
}
