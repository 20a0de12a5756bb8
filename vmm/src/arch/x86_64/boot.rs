//! Puts the kernel, the initrd, the command line and the boot information
//! into guest memory, for either entry protocol (see `regs.rs`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info, XEN_HVM_START_MAGIC_VALUE,
};
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{
    CMDLINE_MAX_SIZE, CMDLINE_START, HIMEM_START, PVH_INFO_START, ZERO_PAGE_START,
};
use super::memory_map::{e820_map, low_ram_end, E820Entry};
use super::regs::{BootProtocol, EntryPoint};
use crate::vstate::memory::{map_file_into_guest, MemoryError};

const PAGE_SIZE: u64 = 4096;

/// The two kernel image formats husk-vmm boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// An uncompressed ELF `vmlinux`.
    Elf,
    /// A compressed `bzImage` with a Linux boot protocol setup header.
    BzImage,
}

impl fmt::Display for KernelFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            KernelFormat::Elf => "ELF",
            KernelFormat::BzImage => "bzImage",
        })
    }
}

/// What a kernel or initrd file's own headers show to be wrong with it,
/// found before anything is loaded. husk's CLI makes the same checks
/// before it builds a VM, so that it can say how to rebuild the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BootFileProblem {
    #[error("is neither an ELF vmlinux nor a bzImage")]
    UnknownKernelFormat,
    #[error(
        "is truncated or damaged: its {format} headers describe {needed} bytes, the file has \
         {size}"
    )]
    TruncatedKernel {
        format: KernelFormat,
        needed: u64,
        size: u64,
    },
    #[error(
        "is not an initramfs: at byte {offset} there is neither a cpio archive (newc, \"070701\") \
         nor a compressed one (gzip, bzip2, lzma, xz, lzo, lz4, zstd)"
    )]
    NotAnInitramfs { offset: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("open kernel {}", path.display())]
    OpenKernel {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read kernel {}", path.display())]
    ReadKernel {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel {} {problem}", path.display())]
    BadKernel {
        path: PathBuf,
        problem: BootFileProblem,
    },
    #[error("load kernel {} into {memory_mib} MiB of guest memory (is it an x86_64 kernel that fits?)", path.display())]
    LoadKernel {
        path: PathBuf,
        memory_mib: u64,
        #[source]
        source: linux_loader::loader::Error,
    },
    #[error("open initrd {}", path.display())]
    OpenInitrd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read initrd {}", path.display())]
    ReadInitrd {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("initrd {} {problem}", path.display())]
    BadInitrd {
        path: PathBuf,
        problem: BootFileProblem,
    },
    #[error(
        "initrd {} ({size} bytes) does not fit in guest memory above the kernel \
         (room for {room} bytes); give the VM more memory with --memory-mib",
        path.display()
    )]
    InitrdTooLarge { path: PathBuf, size: u64, room: u64 },
    #[error("map initrd {} into guest memory", path.display())]
    MapInitrd {
        path: PathBuf,
        #[source]
        source: MemoryError,
    },
    #[error(
        "kernel command line is {length} bytes; the x86 kernel accepts at most {} (it keeps 2048 with the terminating NUL)",
        CMDLINE_MAX_SIZE - 1
    )]
    CmdlineTooLong { length: usize },
    #[error("kernel command line contains a NUL byte")]
    CmdlineHasNul,
    #[error("write {what} to guest memory")]
    WriteBootInfo {
        what: &'static str,
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

impl BootError {
    /// What is wrong with the file itself, when that is the error (rather
    /// than, say, a read that failed).
    pub fn file_problem(&self) -> Option<BootFileProblem> {
        match self {
            BootError::BadKernel { problem, .. } | BootError::BadInitrd { problem, .. } => {
                Some(*problem)
            }
            _ => None,
        }
    }
}

/// The loaded kernel: where to enter it, and where its image ends.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    pub entry: EntryPoint,
    pub kernel_end: u64,
    /// The bzImage setup header, which seeds the zero page.
    pub setup_header: Option<setup_header>,
}

/// Where the initrd landed in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitrdPlacement {
    pub addr: u64,
    pub size: u64,
}

/// Tells the formats apart by their magic: `\x7fELF` at 0, or the boot
/// sector signature 0xaa55 at 0x1fe and "HdrS" at 0x202 (boot protocol).
pub fn kernel_format(image: &mut File, path: &Path) -> Result<KernelFormat, BootError> {
    let mut head = [0u8; 0x206];
    let read_error = |source| BootError::ReadKernel {
        path: path.to_owned(),
        source,
    };
    image.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let mut filled = 0;
    while filled < head.len() {
        match image.read(&mut head[filled..]).map_err(read_error)? {
            0 => break,
            n => filled += n,
        }
    }
    if filled >= 4 && head[..4] == *b"\x7fELF" {
        Ok(KernelFormat::Elf)
    } else if filled == head.len()
        && head[0x1fe..0x200] == [0x55, 0xaa]
        && head[0x202..0x206] == *b"HdrS"
    {
        Ok(KernelFormat::BzImage)
    } else {
        Err(BootError::BadKernel {
            path: path.to_owned(),
            problem: BootFileProblem::UnknownKernelFormat,
        })
    }
}

/// [`kernel_format`], and whether the file holds everything its headers
/// describe: a kernel cut short (an interrupted copy) would otherwise load
/// and fail inside the guest, or in the loader with a message that names
/// no cause.
pub fn check_kernel(image: &mut File, path: &Path) -> Result<KernelFormat, BootError> {
    let format = kernel_format(image, path)?;
    let read_error = |source| BootError::ReadKernel {
        path: path.to_owned(),
        source,
    };
    let size = image.metadata().map_err(read_error)?.len();
    let needed = match format {
        KernelFormat::Elf => elf_extent(image),
        KernelFormat::BzImage => bzimage_extent(image),
    }
    .map_err(read_error)?;
    if needed > size {
        return Err(BootError::BadKernel {
            path: path.to_owned(),
            problem: BootFileProblem::TruncatedKernel {
                format,
                needed,
                size,
            },
        });
    }
    Ok(format)
}

/// Reads up to `buffer.len()` bytes at `offset`; fewer only at the end of
/// the file.
fn read_up_to(file: &File, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The bytes an ELF64 little-endian file must hold (elf(5)): its header,
/// its program header table and every PT_LOAD segment's file contents.
/// Other ELF classes yield only the identification, and the loader rejects
/// them with its own error.
fn elf_extent(file: &File) -> io::Result<u64> {
    /// EI_NIDENT: the identification bytes every ELF file starts with.
    const IDENTIFICATION_SIZE: u64 = 16;
    const HEADER_SIZE: u64 = 64;
    const PROGRAM_HEADER_SIZE: usize = 56;
    const PT_LOAD: u32 = 1;
    let mut header = [0u8; HEADER_SIZE as usize];
    let filled = read_up_to(file, 0, &mut header)?;
    // e_ident[EI_CLASS] 2: ELFCLASS64; e_ident[EI_DATA] 1: ELFDATA2LSB.
    if header[4] != 2 || header[5] != 1 {
        return Ok(IDENTIFICATION_SIZE);
    }
    if filled < header.len() {
        return Ok(HEADER_SIZE);
    }
    let u16_at = |at: usize| u64::from(u16::from_le_bytes([header[at], header[at + 1]]));
    let program_headers = u64::from_le_bytes(header[0x20..0x28].try_into().unwrap_or_default());
    let entry_size = u16_at(0x36);
    let entries = u16_at(0x38);
    let table_end = program_headers.saturating_add(entry_size * entries);
    let mut needed = HEADER_SIZE.max(table_end);
    if entry_size < PROGRAM_HEADER_SIZE as u64 || table_end > file.metadata()?.len() {
        // A table of the wrong entry size is the loader's to refuse; one
        // past the end of the file is the truncation to report.
        return Ok(needed);
    }
    let mut entry = [0u8; PROGRAM_HEADER_SIZE];
    for index in 0..entries {
        read_up_to(file, program_headers + index * entry_size, &mut entry)?;
        let field =
            |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().unwrap_or_default());
        if u32::from_le_bytes(entry[0..4].try_into().unwrap_or_default()) == PT_LOAD {
            // p_offset at 8, p_filesz at 32.
            needed = needed.max(field(8).saturating_add(field(32)));
        }
    }
    Ok(needed)
}

/// The bytes a bzImage must hold (boot protocol 2.04 and later, boot.rst
/// "The real-mode kernel header"): the boot sector and `setup_sects`
/// sectors of setup code (0 means 4), then `syssize` 16-byte paragraphs of
/// protected-mode code.
fn bzimage_extent(file: &File) -> io::Result<u64> {
    const SETUP_SECTS: usize = 0x1f1;
    const SYSSIZE: usize = 0x1f4;
    const VERSION: usize = 0x206;
    let mut header = [0u8; VERSION + 2];
    if read_up_to(file, 0, &mut header)? < header.len() {
        return Ok(header.len() as u64);
    }
    let version = u16::from_le_bytes([header[VERSION], header[VERSION + 1]]);
    if version < 0x0204 {
        // syssize is only 16 bits before 2.04: too old to tell.
        return Ok(header.len() as u64);
    }
    let setup_sectors = match header[SETUP_SECTS] {
        0 => 4,
        sectors => u64::from(sectors),
    };
    let syssize = u32::from_le_bytes(header[SYSSIZE..SYSSIZE + 4].try_into().unwrap_or_default());
    Ok((setup_sectors + 1) * 512 + u64::from(syssize) * 16)
}

/// How much of the start of an initrd [`check_initrd`] reads: the zero
/// padding it skips must end within it.
const INITRD_PROBE_BYTES: usize = 64 * 1024;

/// The two-byte magics of the compressed formats the kernel can unpack an
/// initramfs from (lib/decompress.c, `compressed_formats`).
const COMPRESSED_INITRAMFS_MAGICS: [[u8; 2]; 8] = [
    [0x1f, 0x8b], // gzip
    [0x1f, 0x9e], // gzip, old
    [0x42, 0x5a], // bzip2
    [0x5d, 0x00], // lzma
    [0xfd, 0x37], // xz
    [0x89, 0x4c], // lzo
    [0x02, 0x21], // lz4
    [0x28, 0xb5], // zstd
];

/// Whether the kernel would start unpacking `start`, the beginning of an
/// initrd, as an initramfs (init/initramfs.c, `unpack_to_rootfs`): past any
/// zero padding, a newc cpio header ("070701", or "070702" with checksums)
/// at a 4-byte boundary, or a compressed stream. Returns where it found
/// neither. All zeros (or nothing) is an empty initramfs, which is fine.
fn initramfs_start(start: &[u8]) -> Result<(), u64> {
    let Some(offset) = start.iter().position(|byte| *byte != 0) else {
        return Ok(());
    };
    let rest = &start[offset..];
    let cpio = offset % 4 == 0 && (rest.starts_with(b"070701") || rest.starts_with(b"070702"));
    let compressed = COMPRESSED_INITRAMFS_MAGICS
        .iter()
        .any(|magic| rest.starts_with(magic));
    if cpio || compressed {
        Ok(())
    } else {
        Err(offset as u64)
    }
}

/// Whether `initrd` is something the kernel can unpack as an initramfs
/// (see [`initramfs_start`]). A file of anything else would reach the
/// guest, whose kernel would find no init and panic.
pub fn check_initrd(initrd: &File, path: &Path) -> Result<(), BootError> {
    let mut start = vec![0u8; INITRD_PROBE_BYTES];
    let filled = read_up_to(initrd, 0, &mut start).map_err(|source| BootError::ReadInitrd {
        path: path.to_owned(),
        source,
    })?;
    initramfs_start(&start[..filled]).map_err(|offset| BootError::BadInitrd {
        path: path.to_owned(),
        problem: BootFileProblem::NotAnInitramfs { offset },
    })
}

/// Loads `path` into guest memory and says how to enter it: an ELF vmlinux
/// through its PVH note when it has one (no decompression, no page tables),
/// otherwise through the 64-bit Linux boot protocol.
pub fn load_kernel(
    mem: &GuestMemoryMmap,
    path: &Path,
    memory_size: u64,
) -> Result<LoadedKernel, BootError> {
    let mut image = File::open(path).map_err(|source| BootError::OpenKernel {
        path: path.to_owned(),
        source,
    })?;
    let format = check_kernel(&mut image, path)?;
    let load_error = |source| BootError::LoadKernel {
        path: path.to_owned(),
        memory_mib: memory_size >> 20,
        source,
    };
    let himem = Some(GuestAddress(HIMEM_START));
    match format {
        KernelFormat::Elf => {
            let result = Elf::load(mem, None, &mut image, himem).map_err(load_error)?;
            let entry = match result.pvh_boot_cap {
                PvhBootCapability::PvhEntryPresent(addr) => EntryPoint {
                    addr,
                    protocol: BootProtocol::Pvh,
                },
                _ => EntryPoint {
                    addr: result.kernel_load,
                    protocol: BootProtocol::Linux64,
                },
            };
            Ok(LoadedKernel {
                entry,
                kernel_end: result.kernel_end,
                setup_header: None,
            })
        }
        KernelFormat::BzImage => {
            let result = BzImage::load(mem, None, &mut image, himem).map_err(load_error)?;
            // The 64-bit entry point sits 0x200 past the protected-mode code
            // (boot protocol, "64-bit BOOT PROTOCOL").
            let entry = EntryPoint {
                addr: GuestAddress(result.kernel_load.0 + 0x200),
                protocol: BootProtocol::Linux64,
            };
            Ok(LoadedKernel {
                entry,
                kernel_end: result.kernel_end,
                setup_header: result.setup_header,
            })
        }
    }
}

/// The highest page-aligned spot below `limit` that holds `size` bytes and
/// stays clear of the kernel, or how much room there was.
pub fn initrd_address(size: u64, kernel_end: u64, limit: u64) -> Result<u64, u64> {
    let floor = kernel_end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let room = limit.saturating_sub(floor);
    if size > room {
        return Err(room);
    }
    Ok((limit - size) & !(PAGE_SIZE - 1))
}

/// Copies the initrd to the top of low memory (below the MMIO gap, and below
/// the bzImage's `initrd_addr_max` when it has one).
pub fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel: &LoadedKernel,
    memory_size: u64,
) -> Result<InitrdPlacement, BootError> {
    let file = File::open(path).map_err(|source| BootError::OpenInitrd {
        path: path.to_owned(),
        source,
    })?;
    check_initrd(&file, path)?;
    let size = file
        .metadata()
        .map_err(|source| BootError::OpenInitrd {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut limit = low_ram_end(memory_size);
    if let Some(header) = kernel.setup_header {
        if header.initrd_addr_max != 0 {
            limit = limit.min(u64::from(header.initrd_addr_max) + 1);
        }
    }
    let addr = initrd_address(size, kernel.kernel_end, limit).map_err(|room| {
        BootError::InitrdTooLarge {
            path: path.to_owned(),
            size,
            room,
        }
    })?;
    if size > 0 {
        // Mapped rather than copied: the guest reads it once, and VMs
        // booting the same initrd share its pages.
        map_file_into_guest(mem, GuestAddress(addr), &file, size).map_err(|source| {
            BootError::MapInitrd {
                path: path.to_owned(),
                source,
            }
        })?;
    }
    Ok(InitrdPlacement { addr, size })
}

/// Checks the command line against the kernel's limit before anything runs.
pub fn validate_cmdline(cmdline: &str) -> Result<(), BootError> {
    if cmdline.len() >= CMDLINE_MAX_SIZE {
        return Err(BootError::CmdlineTooLong {
            length: cmdline.len(),
        });
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(BootError::CmdlineHasNul);
    }
    Ok(())
}

/// Writes the NUL-terminated command line at `CMDLINE_START`.
pub fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<(), BootError> {
    validate_cmdline(cmdline)?;
    let mut bytes = Vec::with_capacity(cmdline.len() + 1);
    bytes.extend_from_slice(cmdline.as_bytes());
    bytes.push(0);
    mem.write_slice(&bytes, GuestAddress(CMDLINE_START))
        .map_err(|source| BootError::WriteBootInfo {
            what: "the kernel command line",
            source,
        })
}

// linux-loader's PVH structures are plain `repr(C)` integers without padding
// (their sizes are asserted there: 56, 24 and 32 bytes), but `ByteValued`
// can't be implemented on another crate's type, hence these wrappers.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct StartInfo(hvm_start_info);
// SAFETY: `hvm_start_info` is `repr(C)`, made only of integers, with no
// padding; any byte pattern is a valid value.
unsafe impl ByteValued for StartInfo {}

#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct MemmapEntry(hvm_memmap_table_entry);
// SAFETY: as above: `repr(C)`, two u64 and two u32, no padding.
unsafe impl ByteValued for MemmapEntry {}

#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct ModlistEntry(hvm_modlist_entry);
// SAFETY: as above: `repr(C)`, four u64, no padding.
unsafe impl ByteValued for ModlistEntry {}

/// Writes the PVH `hvm_start_info` (version 1, with its memory map) and, when
/// there is an initrd, the one-entry module list that describes it.
pub fn write_pvh_start_info(
    mem: &GuestMemoryMmap,
    memory_size: u64,
    initrd: Option<InitrdPlacement>,
) -> Result<(), BootError> {
    let map = e820_map(memory_size);
    let start_info_size = std::mem::size_of::<StartInfo>() as u64;
    let memmap_addr = PVH_INFO_START + start_info_size;
    let modlist_addr = memmap_addr + (map.len() * std::mem::size_of::<MemmapEntry>()) as u64;
    let write_error = |what| move |source| BootError::WriteBootInfo { what, source };

    for (index, entry) in map.iter().enumerate() {
        let table_entry = MemmapEntry(hvm_memmap_table_entry {
            addr: entry.addr,
            size: entry.size,
            type_: entry.kind,
            reserved: 0,
        });
        let addr = memmap_addr + (index * std::mem::size_of::<MemmapEntry>()) as u64;
        mem.write_obj(table_entry, GuestAddress(addr))
            .map_err(write_error("the PVH memory map"))?;
    }

    let mut start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        memmap_paddr: memmap_addr,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    if let Some(initrd) = initrd {
        let module = ModlistEntry(hvm_modlist_entry {
            paddr: initrd.addr,
            size: initrd.size,
            ..Default::default()
        });
        mem.write_obj(module, GuestAddress(modlist_addr))
            .map_err(write_error("the PVH module list"))?;
        start_info.nr_modules = 1;
        start_info.modlist_paddr = modlist_addr;
    }
    mem.write_obj(StartInfo(start_info), GuestAddress(PVH_INFO_START))
        .map_err(write_error("the PVH start info"))
}

/// Writes the zero page (`struct boot_params`) for the 64-bit Linux entry.
pub fn write_zero_page(
    mem: &GuestMemoryMmap,
    memory_size: u64,
    kernel: &LoadedKernel,
    cmdline_len: usize,
    initrd: Option<InitrdPlacement>,
) -> Result<(), BootError> {
    let mut params = boot_params::default();
    if let Some(header) = kernel.setup_header {
        params.hdr = header;
    }
    // Boot protocol fields the loader fills in (boot.rst, "The real-mode
    // kernel header"): an undefined loader (0xff), the header magic and
    // signature, where the command line is.
    params.hdr.type_of_loader = 0xff;
    params.hdr.boot_flag = 0xaa55;
    params.hdr.header = 0x5372_6448;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some(initrd) = initrd {
        params.hdr.ramdisk_image = initrd.addr as u32;
        params.hdr.ramdisk_size = initrd.size as u32;
    }
    let map: Vec<E820Entry> = e820_map(memory_size);
    for (slot, entry) in params.e820_table.iter_mut().zip(&map) {
        *slot = boot_e820_entry {
            addr: entry.addr,
            size: entry.size,
            r#type: entry.kind,
        };
    }
    params.e820_entries = map.len() as u8;
    mem.write_obj(params, GuestAddress(ZERO_PAGE_START))
        .map_err(|source| BootError::WriteBootInfo {
            what: "the zero page",
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const MIB: u64 = 1 << 20;

    fn memory(size: u64) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)]).unwrap()
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("husk-vmm-test-{}-{name}", std::process::id()));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        path
    }

    #[test]
    fn formats_are_told_apart_by_magic() {
        let elf = temp_file("elf", b"\x7fELF\x02\x01\x01rest-of-header");
        assert_eq!(
            kernel_format(&mut File::open(&elf).unwrap(), &elf).unwrap(),
            KernelFormat::Elf
        );

        let mut bz = vec![0u8; 0x300];
        bz[0x1fe] = 0x55;
        bz[0x1ff] = 0xaa;
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        let bz = temp_file("bz", &bz);
        assert_eq!(
            kernel_format(&mut File::open(&bz).unwrap(), &bz).unwrap(),
            KernelFormat::BzImage
        );

        for (name, bytes) in [
            ("empty", &b""[..]),
            ("text", &b"#!/bin/sh\necho hi\n"[..]),
            ("zeros", &[0u8; 4096][..]),
        ] {
            let path = temp_file(name, bytes);
            let err = kernel_format(&mut File::open(&path).unwrap(), &path).unwrap_err();
            assert_eq!(
                err.file_problem(),
                Some(BootFileProblem::UnknownKernelFormat),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(&*path.to_string_lossy()));
            std::fs::remove_file(path).unwrap();
        }
        std::fs::remove_file(elf).unwrap();
        std::fs::remove_file(bz).unwrap();
    }

    /// An ELF64 header with one PT_LOAD segment of `segment_size` bytes at
    /// file offset 0x1000, and the segment's bytes up to `file_size`.
    fn elf_with_segment(segment_size: u64, file_size: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; file_size.max(0x78)];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        bytes[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        bytes[0x48..0x50].copy_from_slice(&0x1000u64.to_le_bytes());
        bytes[0x60..0x68].copy_from_slice(&segment_size.to_le_bytes());
        bytes.truncate(file_size);
        bytes
    }

    /// A bzImage header (protocol 2.15) with 3 setup sectors and
    /// `paragraphs` of protected-mode code, cut to `file_size` bytes.
    fn bzimage(paragraphs: u32, file_size: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; file_size.max(0x208)];
        bytes[0x1f1] = 3;
        bytes[0x1f4..0x1f8].copy_from_slice(&paragraphs.to_le_bytes());
        bytes[0x1fe] = 0x55;
        bytes[0x1ff] = 0xaa;
        bytes[0x202..0x206].copy_from_slice(b"HdrS");
        bytes[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        bytes.truncate(file_size);
        bytes
    }

    fn checked(name: &str, bytes: &[u8]) -> Result<KernelFormat, BootError> {
        let path = temp_file(name, bytes);
        let result = check_kernel(&mut File::open(&path).unwrap(), &path);
        std::fs::remove_file(path).unwrap();
        result
    }

    #[test]
    fn a_kernel_shorter_than_its_headers_say_is_truncated() {
        // 4 sectors (boot sector and 3 of setup), then 0x100 paragraphs.
        let whole = 4 * 512 + 0x100 * 16;
        assert_eq!(
            checked("bz-whole", &bzimage(0x100, whole)).unwrap(),
            KernelFormat::BzImage
        );
        let error = checked("bz-cut", &bzimage(0x100, whole - 1)).unwrap_err();
        assert_eq!(
            error.file_problem(),
            Some(BootFileProblem::TruncatedKernel {
                format: KernelFormat::BzImage,
                needed: whole as u64,
                size: whole as u64 - 1
            })
        );
        assert!(
            error.to_string().ends_with(&format!(
                "is truncated or damaged: its bzImage headers describe {whole} bytes, the file \
                 has {}",
                whole - 1
            )),
            "{error}"
        );

        // Trailing bytes past the segments (section headers, symbols) are
        // not needed to boot.
        assert_eq!(
            checked("elf-whole", &elf_with_segment(0x800, 0x2000)).unwrap(),
            KernelFormat::Elf
        );
        let error = checked("elf-cut", &elf_with_segment(0x800, 0x17ff)).unwrap_err();
        assert_eq!(
            error.file_problem(),
            Some(BootFileProblem::TruncatedKernel {
                format: KernelFormat::Elf,
                needed: 0x1800,
                size: 0x17ff
            })
        );
        // Cut inside the header itself.
        let error = checked("elf-header", b"\x7fELF\x02\x01\x01\0").unwrap_err();
        assert!(
            matches!(
                error.file_problem(),
                Some(BootFileProblem::TruncatedKernel { needed: 64, .. })
            ),
            "{error}"
        );
    }

    #[test]
    fn an_initrd_must_start_as_the_kernel_unpacks_an_initramfs() {
        for (what, start) in [
            ("newc cpio", &b"07070100000001"[..]),
            ("newc cpio with checksums", &b"070702"[..]),
            ("zero padding, then cpio", &b"\x00\x00\x00\x00070701"[..]),
            ("gzip", &b"\x1f\x8b\x08\0"[..]),
            ("zstd", &b"\x28\xb5\x2f\xfd"[..]),
            ("xz", &b"\xfd7zXZ\0"[..]),
            ("empty", &b""[..]),
            ("zeros only", &[0u8; 512][..]),
        ] {
            assert_eq!(initramfs_start(start), Ok(()), "{what}");
        }
        for (what, start, offset) in [
            ("text", &b"placeholder\n"[..], 0),
            ("old binary cpio", &b"\xc7\x71"[..], 0),
            ("odc cpio (070707)", &b"070707"[..], 0),
            ("cpio off a 4-byte boundary", &b"\x00\x00070701"[..], 2),
            ("a magic cut short", &b"0707"[..], 0),
        ] {
            assert_eq!(initramfs_start(start), Err(offset), "{what}");
        }

        let garbage = temp_file("initrd-garbage", b"not an initramfs at all");
        let error = check_initrd(&File::open(&garbage).unwrap(), &garbage).unwrap_err();
        assert_eq!(
            error.file_problem(),
            Some(BootFileProblem::NotAnInitramfs { offset: 0 })
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("initrd {} is not an initramfs", garbage.display())),
            "{error}"
        );
        std::fs::remove_file(garbage).unwrap();
    }

    #[test]
    fn initrd_goes_to_the_top_and_never_over_the_kernel() {
        assert_eq!(
            initrd_address(0x1000, 0x200_0000, 0x800_0000),
            Ok(0x7ff_f000)
        );
        // Unaligned sizes round the start down to a page.
        assert_eq!(
            initrd_address(0x1001, 0x200_0000, 0x800_0000),
            Ok(0x7ff_e000)
        );
        // Too large: the error says how much room there was.
        assert_eq!(
            initrd_address(0x700_0000, 0x200_0001, 0x800_0000),
            Err(0x5ff_f000)
        );
        // Fits exactly.
        assert_eq!(
            initrd_address(0x600_0000, 0x200_0000, 0x800_0000),
            Ok(0x200_0000)
        );
    }

    #[test]
    fn command_line_limits() {
        assert!(validate_cmdline(&"a".repeat(2047)).is_ok());
        let err = validate_cmdline(&"a".repeat(2048)).unwrap_err();
        assert!(err.to_string().contains("2048 bytes"), "{err}");
        assert!(validate_cmdline("console=ttyS0\0x").is_err());
        let mem = memory(MIB);
        write_cmdline(&mem, "console=ttyS0").unwrap();
        let mut buf = [0u8; 14];
        mem.read_slice(&mut buf, GuestAddress(CMDLINE_START))
            .unwrap();
        assert_eq!(&buf, b"console=ttyS0\0");
    }

    #[test]
    fn pvh_start_info_describes_memory_cmdline_and_initrd() {
        let mem = memory(2 * MIB);
        let initrd = InitrdPlacement {
            addr: 0x1f_0000,
            size: 0x1234,
        };
        write_pvh_start_info(&mem, 128 * MIB, Some(initrd)).unwrap();
        let info: StartInfo = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        let info = info.0;
        assert_eq!((info.magic, info.version), (XEN_HVM_START_MAGIC_VALUE, 1));
        assert_eq!(info.cmdline_paddr, CMDLINE_START);
        assert_eq!(info.memmap_entries, 2);
        let second: MemmapEntry = mem
            .read_obj(GuestAddress(
                info.memmap_paddr + std::mem::size_of::<MemmapEntry>() as u64,
            ))
            .unwrap();
        assert_eq!(
            (second.0.addr, second.0.size, second.0.type_),
            (MIB, 127 * MIB, 1)
        );
        assert_eq!(info.nr_modules, 1);
        let module: ModlistEntry = mem.read_obj(GuestAddress(info.modlist_paddr)).unwrap();
        assert_eq!((module.0.paddr, module.0.size), (initrd.addr, initrd.size));
        // The tables stay inside the page reserved for them.
        assert!(info.modlist_paddr + 32 <= ZERO_PAGE_START);
    }

    #[test]
    fn pvh_start_info_without_initrd_has_no_modules() {
        let mem = memory(MIB);
        write_pvh_start_info(&mem, 64 * MIB, None).unwrap();
        let info: StartInfo = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!((info.0.nr_modules, info.0.modlist_paddr), (0, 0));
    }

    #[test]
    fn zero_page_carries_e820_cmdline_and_initrd() {
        let mem = memory(MIB);
        let kernel = LoadedKernel {
            entry: EntryPoint {
                addr: GuestAddress(0x100_200),
                protocol: BootProtocol::Linux64,
            },
            kernel_end: 0x200_0000,
            setup_header: Some(setup_header {
                initrd_addr_max: 0x7fff_ffff,
                ..Default::default()
            }),
        };
        let initrd = InitrdPlacement {
            addr: 0x300_0000,
            size: 4096,
        };
        write_zero_page(&mem, 6 << 30, &kernel, 20, Some(initrd)).unwrap();
        let params: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap();
        assert_eq!(params.e820_entries, 3);
        let third = params.e820_table[2];
        let (addr, size) = (third.addr, third.size);
        assert_eq!((addr, size), (4 << 30, (6 << 30) - 0xd000_0000));
        let hdr = params.hdr;
        let (ptr, len, image, ramdisk_size, flag) = (
            hdr.cmd_line_ptr,
            hdr.cmdline_size,
            hdr.ramdisk_image,
            hdr.ramdisk_size,
            hdr.boot_flag,
        );
        assert_eq!((ptr, len), (CMDLINE_START as u32, 20));
        assert_eq!((image, ramdisk_size, flag), (0x300_0000, 4096, 0xaa55));
    }
}
