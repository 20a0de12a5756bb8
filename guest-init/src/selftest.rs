//! Checks for the VM end-to-end tests (`husk.selftest=`): each exercises one
//! device from inside the guest and reports one line. The host side of each
//! check lives in tests/tests/.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use husk_protocol::selftest::{
    BLK_MOUNT, BLK_READ_FILE, BLK_WRITE_FILE, BLK_WRITTEN_TEXT, VSOCK_CLIENT_BYTES,
    VSOCK_CLIENT_STREAMS, VSOCK_ECHO_PORT, VSOCK_FLOOD_PORT, VSOCK_FLOOD_STREAMS, VSOCK_HOST_PORT,
    VSOCK_NO_ACK_PORT, VSOCK_STREAM_BYTES,
};
use husk_protocol::{pattern_byte, SELFTEST_LINE_PREFIX};

use crate::sys;

/// Runs the selftest `name`; returns its report line.
pub fn run(name: &str) -> String {
    let result = match name {
        "hwrng" => hwrng(),
        "blk" => blk(),
        "blk-ro" => blk_read_only(),
        "blk-bench" => blk_bench(),
        "vsock-echo" => vsock_echo_server(),
        "vsock-client" => vsock_client(),
        "vsock-clients" => vsock_clients(),
        "vsock-flood" => vsock_flood(),
        "vsock-no-ack" => vsock_no_ack_server(),
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
    let current = fs::read_to_string("/sys/class/misc/hw_random/rng_current").unwrap_or_default();
    Ok(format!(
        "bytes={} source={}",
        first.len() + second.len(),
        current.trim()
    ))
}

/// Mounts the ext4 filesystem on /dev/vda, reads the file the host put
/// there, writes one for the host to read after shutdown, unmounts.
fn blk() -> Result<String, String> {
    fs::create_dir_all(BLK_MOUNT).map_err(|e| format!("create {BLK_MOUNT}: {e}"))?;
    sys::mount("/dev/vda", BLK_MOUNT, "ext4", 0, None)
        .map_err(|e| format!("mount /dev/vda: {e}"))?;
    let read = fs::read_to_string(format!("{BLK_MOUNT}/{BLK_READ_FILE}"))
        .map_err(|e| format!("read {BLK_READ_FILE}: {e}"))?;
    let mut file = File::create(format!("{BLK_MOUNT}/{BLK_WRITE_FILE}"))
        .map_err(|e| format!("create: {e}"))?;
    file.write_all(BLK_WRITTEN_TEXT.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    file.sync_all().map_err(|e| format!("fsync: {e}"))?;
    drop(file);
    sys::unmount(BLK_MOUNT).map_err(|e| format!("unmount: {e}"))?;
    Ok(format!("read={:?}", read.trim_end()))
}

/// /dev/vdb is attached read-only: it mounts read-only and its contents
/// read, and writing to the device is refused.
fn blk_read_only() -> Result<String, String> {
    let readonly = fs::read_to_string("/sys/block/vdb/ro")
        .map_err(|e| format!("read /sys/block/vdb/ro: {e}"))?;
    if readonly.trim() != "1" {
        return Err(format!(
            "the kernel sees vdb as writable (ro={})",
            readonly.trim()
        ));
    }
    fs::create_dir_all("/mnt/vdb").map_err(|e| format!("create /mnt/vdb: {e}"))?;
    sys::mount("/dev/vdb", "/mnt/vdb", "ext4", libc::MS_RDONLY, None)
        .map_err(|e| format!("mount: {e}"))?;
    let read = fs::read_to_string(format!("/mnt/vdb/{BLK_READ_FILE}"))
        .map_err(|e| format!("read: {e}"))?;
    let create = File::create(format!("/mnt/vdb/{BLK_WRITE_FILE}"));
    sys::unmount("/mnt/vdb").map_err(|e| format!("unmount: {e}"))?;
    if create.is_ok() {
        return Err("created a file on a read-only mount".into());
    }
    let raw_write = OpenOptions::new()
        .write(true)
        .open("/dev/vdb")
        .and_then(|mut device| {
            device
                .write_all(&[0u8; 512])
                .and_then(|_| device.sync_all())
        });
    match raw_write {
        Ok(()) => Err("wrote to the read-only device".into()),
        Err(error) => Ok(format!(
            "read={:?} write_refused={:?}",
            read.trim_end(),
            error.kind()
        )),
    }
}

/// Measures /dev/vda from inside the guest, bypassing the guest page cache
/// (O_DIRECT): sequential 1 MiB reads and writes over the whole disk, and
/// random 4 KiB reads. Destroys the disk's contents.
fn blk_bench() -> Result<String, String> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    use std::time::Instant;

    const CHUNK: usize = 1 << 20;
    const PAGE: usize = 4096;
    const RANDOM_READS: u64 = 4096;
    let mut device = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open("/dev/vda")
        .map_err(|e| format!("open /dev/vda: {e}"))?;
    let size = std::io::Seek::seek(&mut device, std::io::SeekFrom::End(0))
        .map_err(|e| format!("size: {e}"))?;
    let chunks = size / CHUNK as u64;
    if chunks == 0 {
        return Err(format!("/dev/vda is {size} bytes, need at least 1 MiB"));
    }
    // O_DIRECT wants buffers aligned to the logical block size.
    let mut backing = vec![0u8; CHUNK + PAGE];
    let offset = backing.as_ptr().align_offset(PAGE);
    let buffer = &mut backing[offset..offset + CHUNK];

    let mib = (chunks * CHUNK as u64) as f64 / f64::from(1 << 20);
    let start = Instant::now();
    for chunk in 0..chunks {
        device
            .read_exact_at(buffer, chunk * CHUNK as u64)
            .map_err(|e| format!("read: {e}"))?;
    }
    let read_mib_s = mib / start.elapsed().as_secs_f64();

    let mut state = 0x2545_f491_4f6c_dd1du64;
    let start = Instant::now();
    for _ in 0..RANDOM_READS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let page = state % (size / PAGE as u64);
        device
            .read_exact_at(&mut buffer[..PAGE], page * PAGE as u64)
            .map_err(|e| format!("read 4k: {e}"))?;
    }
    let iops = RANDOM_READS as f64 / start.elapsed().as_secs_f64();

    buffer.fill(0x5a);
    let start = Instant::now();
    for chunk in 0..chunks {
        device
            .write_all_at(buffer, chunk * CHUNK as u64)
            .map_err(|e| format!("write: {e}"))?;
    }
    device.sync_data().map_err(|e| format!("flush: {e}"))?;
    let write_mib_s = mib / start.elapsed().as_secs_f64();

    Ok(format!(
        "mib={mib:.0} seq_read_mib_s={read_mib_s:.1} seq_write_mib_s={write_mib_s:.1} rand_read_4k_iops={iops:.0}"
    ))
}

/// Echoes every vsock connection on VSOCK_ECHO_PORT back to its sender,
/// each on its own thread, until the VM ends. Returns once listening.
fn vsock_echo_server() -> Result<String, String> {
    let listener = sys::vsock_listen(VSOCK_ECHO_PORT).map_err(|e| format!("listen: {e}"))?;
    thread::spawn(move || {
        while let Ok(stream) = sys::accept(&listener) {
            thread::spawn(move || echo(stream));
        }
    });
    Ok(format!("listening port={VSOCK_ECHO_PORT}"))
}

fn echo(mut stream: File) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = sys::shutdown_write(&stream);
}

/// Connects to the host's port VSOCK_HOST_PORT, sends a known pattern,
/// and checks the host echoes it back unchanged.
fn vsock_client() -> Result<String, String> {
    echo_through_host(0, VSOCK_CLIENT_BYTES)?;
    Ok(format!("bytes={VSOCK_CLIENT_BYTES}"))
}

/// VSOCK_CLIENT_STREAMS echo streams to the host at once, each on its own
/// thread with its own slice of the pattern.
fn vsock_clients() -> Result<String, String> {
    let streams: Vec<_> = (0..VSOCK_CLIENT_STREAMS)
        .map(|index| thread::spawn(move || echo_through_host(index, VSOCK_STREAM_BYTES)))
        .collect();
    for (index, stream) in streams.into_iter().enumerate() {
        stream
            .join()
            .map_err(|_| format!("stream {index}: panicked"))?
            .map_err(|reason| format!("stream {index}: {reason}"))?;
    }
    Ok(format!(
        "streams={VSOCK_CLIENT_STREAMS} bytes={VSOCK_STREAM_BYTES}"
    ))
}

/// One stream to the host's echo: sends `len` pattern bytes from `offset`
/// on, half-closes, and checks that exactly they come back.
fn echo_through_host(offset: u64, len: u64) -> Result<(), String> {
    let mut stream = sys::vsock_connect(libc::VMADDR_CID_HOST, VSOCK_HOST_PORT)
        .map_err(|e| format!("connect: {e}"))?;
    let mut writer = stream.try_clone().map_err(|e| format!("dup: {e}"))?;
    let sender = thread::spawn(move || -> std::io::Result<()> {
        let chunk: Vec<u8> = (offset..offset + len).map(pattern_byte).collect();
        writer.write_all(&chunk)?;
        sys::shutdown_write(&writer)
    });
    let mut echoed = Vec::with_capacity(len as usize);
    stream
        .read_to_end(&mut echoed)
        .map_err(|e| format!("read: {e}"))?;
    sender
        .join()
        .map_err(|_| "sender panicked".to_string())?
        .map_err(|e| format!("send: {e}"))?;
    if echoed.len() as u64 != len {
        return Err(format!("got {} bytes back, sent {len}", echoed.len()));
    }
    if let Some(at) = (0..len).find(|&i| echoed[i as usize] != pattern_byte(offset + i)) {
        return Err(format!("echo differs at byte {at}"));
    }
    Ok(())
}

/// How long `vsock-flood` waits for the host to end it: the host closes
/// the streams after a few seconds; this only keeps a broken host from
/// holding the guest for ever.
const FLOOD_LIMIT: Duration = Duration::from_secs(180);

/// A hostile guest: opens VSOCK_FLOOD_STREAMS streams to the host's
/// VSOCK_FLOOD_PORT and writes to each as fast as the kernel lets it,
/// while the host reads nothing. Each writer stops when its stream fails,
/// which happens once the host closes it; reports what the guest got to
/// write in all.
fn vsock_flood() -> Result<String, String> {
    let (finished, writers) = mpsc::channel();
    for index in 0..VSOCK_FLOOD_STREAMS {
        let stream = sys::vsock_connect(libc::VMADDR_CID_HOST, VSOCK_FLOOD_PORT)
            .map_err(|e| format!("connect stream {index}: {e}"))?;
        let finished = finished.clone();
        thread::spawn(move || {
            let _ = finished.send(flood(stream));
        });
    }
    let mut total = 0;
    for _ in 0..VSOCK_FLOOD_STREAMS {
        total += writers
            .recv_timeout(FLOOD_LIMIT)
            .map_err(|_| format!("the host did not end the flood within {FLOOD_LIMIT:?}"))?;
    }
    Ok(format!("streams={VSOCK_FLOOD_STREAMS} bytes={total}"))
}

/// Writes to `stream` until it fails; returns the bytes the kernel took.
fn flood(mut stream: File) -> u64 {
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0;
    loop {
        match stream.write(&chunk) {
            Ok(0) => return written,
            Ok(count) => written += count as u64,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => return written,
        }
    }
}

/// A hostile guest: accepts every stream on VSOCK_NO_ACK_PORT and never
/// reads from it, so the host's data is never acknowledged; the streams
/// stay open until the VM ends. Returns once listening.
fn vsock_no_ack_server() -> Result<String, String> {
    let listener = sys::vsock_listen(VSOCK_NO_ACK_PORT).map_err(|e| format!("listen: {e}"))?;
    thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok(stream) = sys::accept(&listener) {
            held.push(stream);
        }
    });
    Ok(format!("listening port={VSOCK_NO_ACK_PORT}"))
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

    #[test]
    fn a_flood_writer_stops_when_the_host_closes_and_counts_its_bytes() {
        use std::os::fd::OwnedFd;
        use std::os::unix::net::UnixStream;

        let (guest, mut host) = UnixStream::pair().unwrap();
        let writer = thread::spawn(move || flood(File::from(OwnedFd::from(guest))));
        let mut taken = vec![0u8; 1 << 20];
        host.read_exact(&mut taken).unwrap();
        drop(host);
        let written = writer.join().unwrap();
        assert!(written >= 1 << 20, "{written}");
        assert!(taken.iter().all(|&byte| byte == 0xa5));
    }
}
