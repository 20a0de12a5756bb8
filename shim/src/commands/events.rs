//! `husk events [--stats] [--interval D] ID`: the container's resource
//! usage as JSON lines (`{"type":"stats","id":...,"data":...}`, runc's
//! event format), once with --stats, else every interval until the
//! container stops. The data also carries husk's startup timings.

use std::collections::BTreeMap;
use std::io::Write;
use std::thread;

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::Context;
use crate::backend::Stats;
use crate::cli::EventsArgs;
use crate::state::{LockMode, Status};

#[derive(Debug, Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    data: EventData<'a>,
}

#[derive(Debug, Serialize)]
struct EventData<'a> {
    #[serde(flatten)]
    stats: Stats,
    husk: StartupTimings<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StartupTimings<'a> {
    /// Name → microseconds after `husk create` started.
    timings_micros: &'a BTreeMap<String, u64>,
}

pub fn run(context: &Context, args: &EventsArgs) -> anyhow::Result<u8> {
    if args.interval.is_zero() {
        bail!("--interval must be greater than 0");
    }
    context.refuse_systemd_cgroup()?;
    loop {
        let container = context.open(&args.container_id, LockMode::Shared)?;
        let id = container.id().to_string();
        if container.status()? == Status::Stopped {
            if args.stats {
                bail!("container {id:?} is not running");
            }
            return Ok(0);
        }
        let stats = container
            .backend
            .stats(&container.record)
            .with_context(|| format!("read the statistics of container {id:?}"))?;
        let event = Event {
            kind: "stats",
            id: &id,
            data: EventData {
                stats,
                husk: StartupTimings {
                    timings_micros: &container.record.husk.timings_micros,
                },
            },
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", serde_json::to_string(&event)?)?;
        stdout.flush()?;
        if args.stats {
            return Ok(0);
        }
        // Not holding the lock while sleeping.
        drop(container);
        thread::sleep(args.interval);
    }
}
