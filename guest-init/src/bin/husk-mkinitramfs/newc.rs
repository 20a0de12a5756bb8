//! A writer for the "newc" cpio format, the one the kernel unpacks as an
//! initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Each entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hex
//! fields), the NUL-terminated name padded to 4 bytes, then the data padded
//! to 4 bytes. An entry named `TRAILER!!!` ends the archive. Every entry is
//! owned by root and dated 0, so the same inputs give the same bytes.

use std::collections::HashSet;
use std::io::{self, Write};

pub const MAGIC: &[u8; 6] = b"070701";
pub const HEADER_LEN: usize = 110;
pub const TRAILER_NAME: &str = "TRAILER!!!";

// File type bits of the mode field, as in the Linux stat(2) ABI.
pub const TYPE_DIRECTORY: u32 = 0o040_000;
pub const TYPE_REGULAR: u32 = 0o100_000;
pub const TYPE_CHAR_DEVICE: u32 = 0o020_000;
const PERMISSION_BITS: u32 = 0o7777;

#[derive(Debug, thiserror::Error)]
pub enum NewcError {
    #[error("{path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("{path:?}: its directory {parent:?} must be added first")]
    MissingParent { path: String, parent: String },
    #[error("{path:?} is already in the archive")]
    Duplicate { path: String },
    #[error("{path:?}: mode {mode:#o} has bits beyond the permission bits 07777")]
    InvalidMode { path: String, mode: u32 },
    #[error("{path:?}: {size} bytes do not fit a newc entry (4 GiB at most)")]
    TooLarge { path: String, size: usize },
    #[error("write the archive")]
    Write(#[from] io::Error),
}

/// Writes entries in the order given; the kernel creates them in that order,
/// so a directory must come before what it holds (checked here).
pub struct NewcWriter<W: Write> {
    out: W,
    written: usize,
    next_inode: u32,
    paths: HashSet<String>,
    directories: HashSet<String>,
}

/// What goes into one header besides the name.
struct Header {
    mode: u32,
    nlink: u32,
    file_size: u32,
    rdev_major: u32,
    rdev_minor: u32,
}

impl<W: Write> NewcWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_inode: 1,
            paths: HashSet::new(),
            directories: HashSet::new(),
        }
    }

    /// Adds the directory `path` (absolute, e.g. `/dev`).
    pub fn directory(&mut self, path: &str, mode: u32) -> Result<(), NewcError> {
        let name = self.claim(path, mode)?;
        let header = Header {
            mode: TYPE_DIRECTORY | mode,
            nlink: 2,
            file_size: 0,
            rdev_major: 0,
            rdev_minor: 0,
        };
        self.write_entry(&name, &header, &[])?;
        self.directories.insert(name);
        Ok(())
    }

    /// Adds the regular file `path` holding `contents`.
    pub fn file(&mut self, path: &str, mode: u32, contents: &[u8]) -> Result<(), NewcError> {
        let name = self.claim(path, mode)?;
        let file_size = u32::try_from(contents.len()).map_err(|_| NewcError::TooLarge {
            path: path.to_owned(),
            size: contents.len(),
        })?;
        let header = Header {
            mode: TYPE_REGULAR | mode,
            nlink: 1,
            file_size,
            rdev_major: 0,
            rdev_minor: 0,
        };
        self.write_entry(&name, &header, contents)
    }

    /// Adds a character device node; the kernel creates it with mknod while
    /// unpacking, so building the archive needs no privileges.
    pub fn char_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), NewcError> {
        let name = self.claim(path, mode)?;
        let header = Header {
            mode: TYPE_CHAR_DEVICE | mode,
            nlink: 1,
            file_size: 0,
            rdev_major: major,
            rdev_minor: minor,
        };
        self.write_entry(&name, &header, &[])
    }

    /// Writes the trailer and hands back the output.
    pub fn finish(mut self) -> Result<W, NewcError> {
        let trailer = Header {
            mode: 0,
            nlink: 1,
            file_size: 0,
            rdev_major: 0,
            rdev_minor: 0,
        };
        // The trailer takes no inode number.
        self.next_inode = 0;
        self.write_entry(TRAILER_NAME, &trailer, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Checks `path` and records it; returns its name inside the archive,
    /// which is relative (`dev/console`) as cpio tools expect.
    fn claim(&mut self, path: &str, mode: u32) -> Result<String, NewcError> {
        let invalid = |reason| NewcError::InvalidPath {
            path: path.to_owned(),
            reason,
        };
        let name = path
            .strip_prefix('/')
            .ok_or_else(|| invalid("must be absolute"))?;
        if name.is_empty() {
            return Err(invalid("the root directory is implied"));
        }
        if name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(invalid("must not hold empty, `.` or `..` parts"));
        }
        if name.contains('\0') {
            return Err(invalid("must not hold NUL"));
        }
        if mode & !PERMISSION_BITS != 0 {
            return Err(NewcError::InvalidMode {
                path: path.to_owned(),
                mode,
            });
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            if !self.directories.contains(parent) {
                return Err(NewcError::MissingParent {
                    path: path.to_owned(),
                    parent: format!("/{parent}"),
                });
            }
        }
        if !self.paths.insert(name.to_owned()) {
            return Err(NewcError::Duplicate {
                path: path.to_owned(),
            });
        }
        Ok(name.to_owned())
    }

    fn write_entry(&mut self, name: &str, header: &Header, data: &[u8]) -> Result<(), NewcError> {
        let inode = self.next_inode;
        self.next_inode += 1;
        // The name size counts the terminating NUL.
        let name_size = name.len() + 1;
        let fields = [
            inode,
            header.mode,
            0, // uid
            0, // gid
            header.nlink,
            0, // mtime
            header.file_size,
            0, // major of the device holding the file
            0, // minor of the device holding the file
            header.rdev_major,
            header.rdev_minor,
            u32::try_from(name_size).map_err(|_| NewcError::InvalidPath {
                path: name.to_owned(),
                reason: "is too long",
            })?,
            0, // checksum, used only by the "070702" variant
        ];
        let mut bytes = Vec::with_capacity(HEADER_LEN + name_size + 3);
        bytes.extend_from_slice(MAGIC);
        for field in fields {
            bytes.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        self.write_padded(&bytes)?;
        self.write_padded(data)?;
        Ok(())
    }

    /// Writes `bytes`, then zeros up to the next multiple of 4 of the whole
    /// archive (headers and data both start 4-byte aligned).
    fn write_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len();
        let padding = self.written.next_multiple_of(4) - self.written;
        self.out.write_all(&[0; 3][..padding])?;
        self.written += padding;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry as read back from an archive.
    #[derive(Debug, PartialEq, Eq)]
    struct Entry {
        name: String,
        inode: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    /// Reads a newc archive independently of the writer, checking the layout
    /// the kernel relies on; returns the entries before the trailer.
    fn read_archive(archive: &[u8]) -> Vec<Entry> {
        assert_eq!(archive.len() % 4, 0, "archive length is 4-byte aligned");
        let mut entries = Vec::new();
        let mut offset = 0;
        loop {
            assert_eq!(offset % 4, 0, "header at {offset} is 4-byte aligned");
            let header = &archive[offset..offset + HEADER_LEN];
            assert_eq!(&header[..6], MAGIC, "magic at {offset}");
            let field = |index: usize| {
                let start = 6 + index * 8;
                let hex = std::str::from_utf8(&header[start..start + 8]).unwrap();
                u32::from_str_radix(hex, 16).unwrap()
            };
            let (file_size, name_size) = (field(6) as usize, field(11) as usize);
            assert_eq!((field(2), field(3), field(5)), (0, 0, 0), "uid, gid, mtime");
            let name_start = offset + HEADER_LEN;
            let name_bytes = &archive[name_start..name_start + name_size];
            assert_eq!(name_bytes.last(), Some(&0), "name ends with NUL");
            let name = std::str::from_utf8(&name_bytes[..name_size - 1]).unwrap();
            let data_start = (name_start + name_size).next_multiple_of(4);
            assert!(
                archive[name_start + name_size..data_start]
                    .iter()
                    .all(|&byte| byte == 0),
                "name padding is zeros"
            );
            let data_end = data_start + file_size;
            offset = data_end.next_multiple_of(4);
            if name == TRAILER_NAME {
                assert_eq!(offset, archive.len(), "nothing follows the trailer");
                return entries;
            }
            entries.push(Entry {
                name: name.to_owned(),
                inode: field(0),
                mode: field(1),
                nlink: field(4),
                rdev: (field(9), field(10)),
                data: archive[data_start..data_end].to_vec(),
            });
        }
    }

    #[test]
    fn round_trips_an_initramfs_layout() {
        let init = b"\x7fELF pretend this is husk-init".to_vec();
        let mut writer = NewcWriter::new(Vec::new());
        writer.directory("/dev", 0o755).unwrap();
        writer.char_device("/dev/console", 0o600, 5, 1).unwrap();
        writer.file("/init", 0o755, &init).unwrap();
        writer.file("/empty", 0o644, &[]).unwrap();
        let archive = writer.finish().unwrap();

        let entry = |name: &str, inode, mode, nlink, rdev, data: &[u8]| Entry {
            name: name.to_owned(),
            inode,
            mode,
            nlink,
            rdev,
            data: data.to_vec(),
        };
        assert_eq!(
            read_archive(&archive),
            [
                entry("dev", 1, 0o040_755, 2, (0, 0), b""),
                entry("dev/console", 2, 0o020_600, 1, (5, 1), b""),
                entry("init", 3, 0o100_755, 1, (0, 0), &init),
                entry("empty", 4, 0o100_644, 1, (0, 0), b""),
            ]
        );
    }

    #[test]
    fn writes_the_exact_header_bytes() {
        let mut writer = NewcWriter::new(Vec::new());
        writer.file("/a", 0o644, b"hi").unwrap();
        let archive = writer.finish().unwrap();
        let expected_first = concat!(
            "070701", "00000001", "000081A4", "00000000", "00000000", "00000001", "00000000",
            "00000002", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
            "a\0", // 110 + 2 bytes: already aligned
            "hi\0\0",
        );
        assert_eq!(&archive[..expected_first.len()], expected_first.as_bytes());
        let trailer = &archive[expected_first.len()..];
        assert!(trailer.starts_with(b"070701"));
        assert_eq!(&trailer[HEADER_LEN..HEADER_LEN + 11], b"TRAILER!!!\0");
        assert_eq!(trailer.len(), 124, "110 + 11 bytes, padded to 124");
    }

    #[test]
    fn an_empty_archive_is_just_the_trailer() {
        let archive = NewcWriter::new(Vec::new()).finish().unwrap();
        assert!(read_archive(&archive).is_empty());
    }

    #[test]
    fn rejects_bad_paths_and_modes() {
        let mut writer = NewcWriter::new(Vec::new());
        writer.directory("/dev", 0o755).unwrap();
        for path in ["dev2", "/", "/dev/", "//x", "/dev/../x", "/./x", "/a\0b"] {
            assert!(
                matches!(
                    writer.directory(path, 0o755),
                    Err(NewcError::InvalidPath { .. })
                ),
                "{path:?}"
            );
        }
        assert!(matches!(
            writer.char_device("/tmp/null", 0o666, 1, 3),
            Err(NewcError::MissingParent { parent, .. }) if parent == "/tmp"
        ));
        assert!(matches!(
            writer.directory("/dev", 0o755),
            Err(NewcError::Duplicate { .. })
        ));
        assert!(matches!(
            writer.file("/init", 0o100_755, b""),
            Err(NewcError::InvalidMode { .. })
        ));
        // A file is no directory to put things in.
        writer.file("/init", 0o755, b"").unwrap();
        assert!(matches!(
            writer.file("/init/x", 0o644, b""),
            Err(NewcError::MissingParent { .. })
        ));
    }
}
