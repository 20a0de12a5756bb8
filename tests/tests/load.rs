//! The load test with the container backend on this host: many short
//! container lives, several at once, through the real `husk` binary, and
//! nothing of them left afterwards (see `load_common`).
//!
//! `HUSK_LOAD_CYCLES` cycles (1000 unless set: about 15 s on two cores)
//! on `HUSK_LOAD_PARALLEL` threads (8 unless set). Needs root,
//! busybox-static and a built husk (HUSK_BIN, else target/debug/husk).

mod load_common;

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{Husk, CONTAINER_TIMEOUT};
use load_common::{
    assert_nothing_left, run_cycles, test_dirs, CreatedThings, CyclePlan, HostBefore, LoadSettings,
    TestMarks,
};
use serde_json::json;

#[test]
fn container_backend_cycles_leave_nothing_behind() {
    let settings = LoadSettings::from_env("HUSK_LOAD_CYCLES", 1000, "HUSK_LOAD_PARALLEL", 8);
    let before = HostBefore::take();
    let husk = Husk::new("load");
    // A process that runs until it is killed; as a pid namespace's init it
    // ignores every signal it has no handler for (pid_namespaces(7)), so
    // only SIGKILL ends it.
    let bundles: Vec<Bundle> = (0..settings.parallel)
        .map(|worker| {
            let mut bundle = Bundle::busybox(&format!("load-w{worker}"));
            bundle.set("/process/args", json!(["sleep", "100000"]));
            bundle
        })
        .collect();
    let id_prefix = format!("load-{}-", std::process::id());
    let marks = TestMarks {
        id_prefix: id_prefix.clone(),
        dirs: test_dirs(&husk, &bundles),
        root: husk.root(),
    };
    let plan = CyclePlan {
        husk: &husk,
        create_flags: &[],
        exit_timeout: CONTAINER_TIMEOUT,
        created_things: &|_, _, _| Ok(CreatedThings::default()),
    };

    let report = run_cycles(&plan, &settings, &bundles, &id_prefix);

    report.print_summary("load (container backend)");
    assert_nothing_left(&before, &marks, &report);
    report.assert_no_memory_growth();
}
