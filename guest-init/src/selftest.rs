//! Checks for the VM end-to-end tests (`husk.selftest=`): each exercises one
//! device from inside the guest and reports one line.

use std::fs::File;
use std::io::Read;

use husk_protocol::SELFTEST_LINE_PREFIX;

/// Runs the selftest `name`; returns its report line.
pub fn run(name: &str) -> String {
    let result = match name {
        "hwrng" => hwrng(),
        other => Err(format!("unknown selftest {other:?}")),
    };
    match result {
        Ok(detail) => format!("{SELFTEST_LINE_PREFIX} {name} ok {detail}"),
        Err(reason) => format!("{SELFTEST_LINE_PREFIX} {name} failed: {reason}"),
    }
}

/// Reads two blocks from /dev/hwrng (the virtio-rng device); they must be
/// full and differ.
fn hwrng() -> Result<String, String> {
    let mut device = File::open("/dev/hwrng").map_err(|e| format!("open /dev/hwrng: {e}"))?;
    let mut first = [0u8; 64];
    let mut second = [0u8; 64];
    device
        .read_exact(&mut first)
        .map_err(|e| format!("read /dev/hwrng: {e}"))?;
    device
        .read_exact(&mut second)
        .map_err(|e| format!("read /dev/hwrng: {e}"))?;
    if first == second {
        return Err("two reads returned the same bytes".into());
    }
    let current =
        std::fs::read_to_string("/sys/class/misc/hw_random/rng_current").unwrap_or_default();
    Ok(format!(
        "bytes={} source={}",
        first.len() + second.len(),
        current.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_selftests_fail_with_their_name() {
        assert_eq!(
            run("nope"),
            "husk-init selftest nope failed: unknown selftest \"nope\""
        );
    }
}
