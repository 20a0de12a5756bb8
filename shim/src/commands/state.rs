//! `husk state ID` (runtime.md "query state"): the container's state as
//! JSON, with its status checked against the running system.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ContainerSummary, Context};
use crate::backend::BackendKind;
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

pub fn run(context: &Context, args: &StateArgs) -> anyhow::Result<u8> {
    let container = context.open(&args.container_id, LockMode::Shared)?;
    let status = container.status()?;
    let output = StateOutput {
        summary: ContainerSummary::new(&container.record, status),
        husk: HuskOutput {
            backend: container.record.husk.backend,
            timings_micros: container.record.husk.timings_micros.clone(),
        },
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(0)
}
