//! Multiboot 1 and 2 boot information: memory map, command line, modules, loader name.
//!
//! The loader's information structure is read through a [`PhysMem`] reader (the direct map
//! on bare metal, a byte vector in tests) and copied into fixed-capacity storage, because this
//! happens before the hypervisor has a heap. The input comes from the boot loader, which is
//! trusted, but the parser is still defensive: every read is bounded, counts are capped, and
//! garbage yields an error or a truncated list, never a panic.

use crate::types::Paddr;
use arrayvec::{ArrayString, ArrayVec};

/// `eax` at entry when a multiboot 1 loader started us.
pub const MB1_BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// `eax` at entry when a multiboot 2 loader started us.
pub const MB2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

/// Longest command line kept (Xen's limit for the hypervisor and for dom0's is 1024).
pub const CMDLINE_MAX: usize = 1024;
/// Most memory-map entries kept.
pub const MAX_REGIONS: usize = 128;
/// Most modules kept.
pub const MAX_MODULES: usize = 16;
/// Room for all module strings together.
pub const MODULE_STRINGS_MAX: usize = 4096;
/// Largest multiboot 2 information structure accepted.
const MB2_MAX_TOTAL: u32 = 1 << 20;

/// Reads physical memory for the parser.
pub trait PhysMem {
    /// Fills `buf` from physical address `paddr`; fails if any byte is not readable.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable>;
}

/// A physical range the reader cannot access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable;

/// Which boot protocol handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Multiboot (version 1): QEMU's `-kernel`, GRUB's `multiboot`.
    Multiboot1,
    /// Multiboot 2: GRUB's `multiboot2`.
    Multiboot2,
}

/// The type of a memory-map region, with the E820 numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegionKind {
    /// RAM free for the operating system (E820 type 1).
    Usable,
    /// ACPI tables; RAM once they are read (type 3).
    AcpiReclaimable,
    /// ACPI non-volatile storage (type 4).
    AcpiNvs,
    /// Defective RAM (type 5).
    BadMemory,
    /// Reserved (type 2), or any type this parser does not know.
    Reserved,
}

impl RegionKind {
    /// The kind for an E820 / multiboot type number.
    pub fn from_e820(t: u32) -> RegionKind {
        match t {
            1 => RegionKind::Usable,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::BadMemory,
            _ => RegionKind::Reserved,
        }
    }

    /// The E820 type number.
    pub fn e820_type(self) -> u32 {
        match self {
            RegionKind::Usable => 1,
            RegionKind::Reserved => 2,
            RegionKind::AcpiReclaimable => 3,
            RegionKind::AcpiNvs => 4,
            RegionKind::BadMemory => 5,
        }
    }
}

/// One entry of the firmware's memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    /// Start address.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the memory is.
    pub kind: RegionKind,
}

impl MemRegion {
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }
}

/// A boot module: a file the loader put in memory, and its string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Physical address of the first byte.
    pub start: Paddr,
    /// Physical address one past the last byte.
    pub end: Paddr,
    /// Where the module's string lies in [`BootInfo::module_strings`].
    string: core::ops::Range<usize>,
}

impl Module {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.end.0.saturating_sub(self.start.0)
    }
    /// Whether the module is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything the hypervisor takes from its boot loader.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// The protocol used.
    pub protocol: Protocol,
    /// Where the loader's information structure lives (reserved until parsed).
    pub info_start: Paddr,
    /// Its size in bytes.
    pub info_len: u64,
    /// The raw command line, including an image name if the loader put one there.
    pub cmdline: ArrayString<CMDLINE_MAX>,
    /// The loader's name, if given.
    pub loader_name: ArrayString<64>,
    /// The firmware memory map, as given (unsorted, possibly overlapping).
    pub memory: ArrayVec<MemRegion, MAX_REGIONS>,
    /// Memory-map entries that did not fit.
    pub dropped_regions: usize,
    /// Modules in order: module 0 is dom0's kernel, module 1 its ramdisk.
    pub modules: ArrayVec<Module, MAX_MODULES>,
    /// All module strings, back to back (read them with [`BootInfo::module_string`]).
    module_strings: ArrayString<MODULE_STRINGS_MAX>,
    /// Modules that did not fit.
    pub dropped_modules: usize,
}

/// Why the boot information could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// `eax` held neither multiboot magic value.
    BadMagic(u32),
    /// A structure the loader pointed at could not be read.
    Unreadable(u64),
    /// The structure is inconsistent (the text says where).
    Malformed(&'static str),
    /// The loader gave no memory map and no memory sizes.
    NoMemoryInfo,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::BadMagic(m) => {
                write!(f, "not started by a multiboot loader (eax={m:#x})")
            }
            BootInfoError::Unreadable(a) => write!(f, "boot information at {a:#x} is not readable"),
            BootInfoError::Malformed(w) => write!(f, "malformed boot information: {w}"),
            BootInfoError::NoMemoryInfo => write!(f, "the boot loader gave no memory map"),
        }
    }
}

fn read_u32(mem: &dyn PhysMem, at: u64) -> Result<u32, BootInfoError> {
    let mut b = [0u8; 4];
    mem.read(at, &mut b)
        .map_err(|_| BootInfoError::Unreadable(at))?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(mem: &dyn PhysMem, at: u64) -> Result<u64, BootInfoError> {
    let mut b = [0u8; 8];
    mem.read(at, &mut b)
        .map_err(|_| BootInfoError::Unreadable(at))?;
    Ok(u64::from_le_bytes(b))
}

/// Reads a NUL-terminated string of at most `limit` bytes (the tail beyond `N` or beyond
/// readable memory is dropped; non-ASCII bytes become `?`).
fn read_string<const N: usize>(
    mem: &dyn PhysMem,
    at: u64,
    limit: u64,
) -> Result<ArrayString<N>, BootInfoError> {
    let mut out = ArrayString::new();
    let mut chunk = [0u8; 64];
    let mut off = 0u64;
    while off < limit {
        let n = usize::try_from(limit - off).map_or(chunk.len(), |r| r.min(chunk.len()));
        let addr = at
            .checked_add(off)
            .ok_or(BootInfoError::Malformed("string address"))?;
        // The last chunk may run past readable memory: fall back to byte reads there.
        let got = match mem.read(addr, &mut chunk[..n]) {
            Ok(()) => n,
            Err(_) => {
                let mut one = [0u8; 1];
                match mem.read(addr, &mut one) {
                    Ok(()) => {
                        chunk[0] = one[0];
                        1
                    }
                    // A string that starts in readable memory is cut where that ends.
                    Err(_) if off > 0 => return Ok(out),
                    Err(_) => return Err(BootInfoError::Unreadable(addr)),
                }
            }
        };
        for &b in &chunk[..got] {
            if b == 0 {
                return Ok(out);
            }
            let c = if b.is_ascii() { b as char } else { '?' };
            if out.try_push(c).is_err() {
                return Ok(out);
            }
        }
        off += got as u64;
    }
    Ok(out)
}

impl BootInfo {
    fn empty(protocol: Protocol, info: u64) -> BootInfo {
        BootInfo {
            protocol,
            info_start: Paddr(info),
            info_len: 0,
            cmdline: ArrayString::new(),
            loader_name: ArrayString::new(),
            memory: ArrayVec::new(),
            dropped_regions: 0,
            modules: ArrayVec::new(),
            module_strings: ArrayString::new(),
            dropped_modules: 0,
        }
    }

    fn push_region(&mut self, base: u64, len: u64, t: u32) {
        if len == 0 {
            return;
        }
        let r = MemRegion {
            base,
            len,
            kind: RegionKind::from_e820(t),
        };
        if self.memory.try_push(r).is_err() {
            self.dropped_regions += 1;
        }
    }

    /// Records a module whose string is at `string` (0: none), reading the string into the
    /// shared string space (cut short when that is full).
    fn push_module(
        &mut self,
        mem: &dyn PhysMem,
        start: u64,
        end: u64,
        string: u64,
        limit: u64,
    ) -> Result<(), BootInfoError> {
        if end < start {
            return Err(BootInfoError::Malformed("module ends before it starts"));
        }
        if self.modules.is_full() {
            self.dropped_modules += 1;
            return Ok(());
        }
        let s: ArrayString<CMDLINE_MAX> = if string != 0 {
            read_string(mem, string, limit)?
        } else {
            ArrayString::new()
        };
        let from = self.module_strings.len();
        for c in s.chars() {
            if self.module_strings.try_push(c).is_err() {
                break;
            }
        }
        let range = from..self.module_strings.len();
        self.modules.push(Module {
            start: Paddr(start),
            end: Paddr(end),
            string: range,
        });
        Ok(())
    }

    /// A module's string as the loader gave it (for QEMU: `"<file> <args>"`).
    pub fn module_string(&self, m: &Module) -> &str {
        self.module_strings.get(m.string.clone()).unwrap_or("")
    }

    /// Parses the information structure at physical `info`, given the loader's `magic`.
    pub fn parse(magic: u32, info: u64, mem: &dyn PhysMem) -> Result<BootInfo, BootInfoError> {
        match magic {
            MB1_BOOTLOADER_MAGIC => Self::parse_mb1(info, mem),
            MB2_BOOTLOADER_MAGIC => Self::parse_mb2(info, mem),
            other => Err(BootInfoError::BadMagic(other)),
        }
    }

    /// Whether the loader is GRUB 2, which (unlike QEMU and GRUB legacy) does not put the
    /// image's file name at the start of command lines.
    pub fn loader_is_grub2(&self) -> bool {
        self.protocol == Protocol::Multiboot2 || self.loader_name.starts_with("GRUB 2")
    }

    /// The hypervisor's own options: the command line without the image name.
    pub fn hypervisor_cmdline(&self) -> &str {
        if self.loader_is_grub2() {
            self.cmdline.trim()
        } else {
            super::cmdline::skip_first_word(&self.cmdline)
        }
    }

    /// A module's arguments: its string without the file name (same rule as the command line).
    pub fn module_args(&self, m: &Module) -> &str {
        let s = self.module_string(m);
        if self.loader_is_grub2() {
            s.trim()
        } else {
            super::cmdline::skip_first_word(s)
        }
    }

    fn parse_mb1(info: u64, mem: &dyn PhysMem) -> Result<BootInfo, BootInfoError> {
        const F_MEM: u32 = 1 << 0;
        const F_CMDLINE: u32 = 1 << 2;
        const F_MODS: u32 = 1 << 3;
        const F_MMAP: u32 = 1 << 6;
        const F_LOADER: u32 = 1 << 9;

        let mut bi = BootInfo::empty(Protocol::Multiboot1, info);
        bi.info_len = 120;
        let flags = read_u32(mem, info)?;
        if flags & F_CMDLINE != 0 {
            let p = read_u32(mem, info + 16)?;
            bi.cmdline = read_string(mem, u64::from(p), CMDLINE_MAX as u64 * 4)?;
        }
        if flags & F_LOADER != 0 {
            let p = read_u32(mem, info + 64)?;
            bi.loader_name = read_string(mem, u64::from(p), 256)?;
        }
        if flags & F_MODS != 0 {
            let count = read_u32(mem, info + 20)?;
            let addr = u64::from(read_u32(mem, info + 24)?);
            for i in 0..u64::from(count).min(1024) {
                let e = addr + i * 16;
                let start = u64::from(read_u32(mem, e)?);
                let end = u64::from(read_u32(mem, e + 4)?);
                let s = u64::from(read_u32(mem, e + 8)?);
                bi.push_module(mem, start, end, s, CMDLINE_MAX as u64 * 4)?;
            }
        }
        if flags & F_MMAP != 0 {
            let len = u64::from(read_u32(mem, info + 44)?);
            let addr = u64::from(read_u32(mem, info + 48)?);
            let mut off = 0u64;
            // Each entry: u32 size (of the rest), u64 base, u64 length, u32 type.
            while off + 24 <= len {
                let e = addr + off;
                let size = u64::from(read_u32(mem, e)?);
                if size < 20 {
                    return Err(BootInfoError::Malformed("memory-map entry too small"));
                }
                let base = read_u64(mem, e + 4)?;
                let length = read_u64(mem, e + 12)?;
                let t = read_u32(mem, e + 20)?;
                bi.push_region(base, length, t);
                off += size + 4;
            }
        } else if flags & F_MEM != 0 {
            let lower = u64::from(read_u32(mem, info + 4)?);
            let upper = u64::from(read_u32(mem, info + 8)?);
            bi.push_region(0, lower << 10, 1);
            bi.push_region(1 << 20, upper << 10, 1);
        } else {
            return Err(BootInfoError::NoMemoryInfo);
        }
        Ok(bi)
    }

    fn parse_mb2(info: u64, mem: &dyn PhysMem) -> Result<BootInfo, BootInfoError> {
        const TAG_END: u32 = 0;
        const TAG_CMDLINE: u32 = 1;
        const TAG_LOADER: u32 = 2;
        const TAG_MODULE: u32 = 3;
        const TAG_MEMINFO: u32 = 4;
        const TAG_MMAP: u32 = 6;

        let mut bi = BootInfo::empty(Protocol::Multiboot2, info);
        let total = read_u32(mem, info)?;
        if !(16..=MB2_MAX_TOTAL).contains(&total) {
            return Err(BootInfoError::Malformed("total size"));
        }
        bi.info_len = u64::from(total);
        let end = info + u64::from(total);
        let mut tag = info + 8;
        let mut meminfo = None;
        let mut have_mmap = false;
        while tag + 8 <= end {
            let t = read_u32(mem, tag)?;
            let size = u64::from(read_u32(mem, tag + 4)?);
            if size < 8 || tag + size > end {
                return Err(BootInfoError::Malformed("tag size"));
            }
            let body = tag + 8;
            let body_len = size - 8;
            match t {
                TAG_END => break,
                TAG_CMDLINE => bi.cmdline = read_string(mem, body, body_len)?,
                TAG_LOADER => bi.loader_name = read_string(mem, body, body_len)?,
                TAG_MODULE if body_len >= 8 => {
                    let start = u64::from(read_u32(mem, body)?);
                    let mend = u64::from(read_u32(mem, body + 4)?);
                    bi.push_module(mem, start, mend, body + 8, body_len - 8)?;
                }
                TAG_MEMINFO if body_len >= 8 => {
                    meminfo = Some((read_u32(mem, body)?, read_u32(mem, body + 4)?));
                }
                TAG_MMAP if body_len >= 8 => {
                    let entry_size = u64::from(read_u32(mem, body)?);
                    if entry_size < 20 {
                        return Err(BootInfoError::Malformed("memory-map entry too small"));
                    }
                    have_mmap = true;
                    let mut e = body + 8;
                    while e + entry_size <= tag + size {
                        let base = read_u64(mem, e)?;
                        let len = read_u64(mem, e + 8)?;
                        let ty = read_u32(mem, e + 16)?;
                        bi.push_region(base, len, ty);
                        e += entry_size;
                    }
                }
                _ => {}
            }
            // Tags are 8-byte aligned.
            tag += (size + 7) & !7;
        }
        if !have_mmap {
            let (lower, upper) = meminfo.ok_or(BootInfoError::NoMemoryInfo)?;
            bi.push_region(0, u64::from(lower) << 10, 1);
            bi.push_region(1 << 20, u64::from(upper) << 10, 1);
        }
        Ok(bi)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fake physical memory: a byte vector starting at address 0.
    pub(crate) struct FakeMem(pub Vec<u8>);

    impl PhysMem for FakeMem {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
            let start = usize::try_from(paddr).map_err(|_| Unreadable)?;
            let end = start.checked_add(buf.len()).ok_or(Unreadable)?;
            let src = self.0.get(start..end).ok_or(Unreadable)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    impl FakeMem {
        fn put(&mut self, at: usize, bytes: &[u8]) {
            self.0[at..at + bytes.len()].copy_from_slice(bytes);
        }
        fn put32(&mut self, at: usize, v: u32) {
            self.put(at, &v.to_le_bytes());
        }
        fn put64(&mut self, at: usize, v: u64) {
            self.put(at, &v.to_le_bytes());
        }
    }

    /// A multiboot 1 structure like QEMU's: command line, two modules, a memory map.
    fn qemu_like_mb1() -> FakeMem {
        let mut m = FakeMem(vec![0; 0x4000]);
        let info = 0x1000;
        m.put32(info, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9));
        m.put32(info + 4, 639);
        m.put32(info + 8, 261_000);
        m.put32(info + 16, 0x2000);
        m.put(0x2000, b"/path/xen-core console=com1 loglvl=all\0");
        m.put32(info + 64, 0x2100);
        m.put(0x2100, b"qemu\0");
        m.put32(info + 20, 2);
        m.put32(info + 24, 0x2200);
        m.put32(0x2200, 0x10_0000);
        m.put32(0x2204, 0x10_5000);
        m.put32(0x2208, 0x2300);
        m.put32(0x2210, 0x10_5000);
        m.put32(0x2214, 0x10_6000);
        m.put32(0x2218, 0);
        m.put(0x2300, b"dom0.elf console=hvc0\0");
        let mmap = 0x2400;
        let entries: [(u64, u64, u32); 3] = [
            (0, 0x9fc00, 1),
            (0x9fc00, 0x400, 2),
            (0x10_0000, 0xfee_0000, 1),
        ];
        for (i, (b, l, t)) in entries.iter().enumerate() {
            let e = mmap + i * 24;
            m.put32(e, 20);
            m.put64(e + 4, *b);
            m.put64(e + 12, *l);
            m.put32(e + 20, *t);
        }
        m.put32(info + 44, 72);
        m.put32(info + 48, mmap as u32);
        m
    }

    #[test]
    fn multiboot1_everything() {
        let mem = qemu_like_mb1();
        let bi = BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot1);
        assert_eq!(bi.loader_name.as_str(), "qemu");
        assert!(!bi.loader_is_grub2());
        assert_eq!(bi.hypervisor_cmdline(), "console=com1 loglvl=all");
        assert_eq!(bi.modules.len(), 2);
        assert_eq!(bi.modules[0].start, Paddr(0x10_0000));
        assert_eq!(bi.modules[0].len(), 0x5000);
        assert_eq!(bi.module_args(&bi.modules[0]), "console=hvc0");
        assert_eq!(bi.module_string(&bi.modules[1]), "");
        assert_eq!(bi.module_string(&bi.modules[0]), "dom0.elf console=hvc0");
        assert_eq!(bi.memory.len(), 3);
        assert_eq!(bi.memory[2].kind, RegionKind::Usable);
        assert_eq!(bi.memory[1].kind, RegionKind::Reserved);
    }

    #[test]
    fn multiboot1_without_mmap_uses_mem_sizes() {
        let mut mem = qemu_like_mb1();
        mem.put32(0x1000, 1);
        let bi = BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap();
        assert_eq!(bi.memory.len(), 2);
        assert_eq!(bi.memory[1].base, 1 << 20);
        assert_eq!(bi.memory[1].len, 261_000 << 10);
        assert!(bi.modules.is_empty());
        assert_eq!(bi.cmdline.as_str(), "");

        mem.put32(0x1000, 0);
        assert_eq!(
            BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap_err(),
            BootInfoError::NoMemoryInfo
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mem = qemu_like_mb1();
        assert_eq!(
            BootInfo::parse(0x1234, 0x1000, &mem).unwrap_err(),
            BootInfoError::BadMagic(0x1234)
        );
        assert!(matches!(
            BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x10_0000, &mem),
            Err(BootInfoError::Unreadable(_))
        ));
        // A module list pointing outside memory.
        let mut mem = qemu_like_mb1();
        mem.put32(0x1000 + 24, 0xffff_0000);
        assert!(BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem).is_err());
        // A module that ends before it starts.
        let mut mem = qemu_like_mb1();
        mem.put32(0x2204, 0x1000);
        assert!(matches!(
            BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem),
            Err(BootInfoError::Malformed(_))
        ));
        // A zero-sized memory-map entry would loop forever if trusted.
        let mut mem = qemu_like_mb1();
        mem.put32(0x2400, 0);
        assert!(BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem).is_err());
    }

    #[test]
    fn long_and_unterminated_strings_are_bounded() {
        // A command line with no terminator within the limit is cut at CMDLINE_MAX.
        let mut mem = qemu_like_mb1();
        mem.0.resize(0x10000, 0);
        mem.put32(0x1000 + 16, 0x8000);
        mem.0[0x8000..0x9000].fill(b'a');
        let bi = BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap();
        assert_eq!(bi.cmdline.len(), CMDLINE_MAX);
        // A string that runs off the end of readable memory is cut there.
        let mut m = FakeMem(vec![b'x'; 0x40]);
        m.0[0x3f] = b'y';
        let s: ArrayString<128> = read_string(&m, 0x20, 0x1000).unwrap();
        assert_eq!(s.len(), 0x20);
        assert!(s.ends_with('y'));
        // One that starts outside it is an error.
        assert!(read_string::<16>(&m, 0x40, 10).is_err());
        // Non-ASCII bytes are replaced.
        let m = FakeMem(vec![b'a', 0xff, b'b', 0]);
        assert_eq!(read_string::<16>(&m, 0, 16).unwrap().as_str(), "a?b");
    }

    fn mb2_image(tags: &[(u32, Vec<u8>)]) -> FakeMem {
        let mut m = FakeMem(vec![0; 0x4000]);
        let info = 0x1000usize;
        let mut at = info + 8;
        for (t, body) in tags {
            m.put32(at, *t);
            m.put32(at + 4, 8 + body.len() as u32);
            m.put(at + 8, body);
            at += (8 + body.len() + 7) & !7;
        }
        m.put32(at, 0);
        m.put32(at + 4, 8);
        at += 8;
        m.put32(info, (at - info) as u32);
        m
    }

    #[test]
    fn multiboot2_tags() {
        let mut module = Vec::new();
        module.extend_from_slice(&0x20_0000u32.to_le_bytes());
        module.extend_from_slice(&0x20_3000u32.to_le_bytes());
        module.extend_from_slice(b"dom0 args\0");
        let mut mmap = Vec::new();
        mmap.extend_from_slice(&24u32.to_le_bytes());
        mmap.extend_from_slice(&0u32.to_le_bytes());
        for (b, l, t) in [
            (0u64, 0x9f000u64, 1u32),
            (0x10_0000, 0x100_0000, 1),
            (0xfee0_0000, 0x1000, 2),
        ] {
            mmap.extend_from_slice(&b.to_le_bytes());
            mmap.extend_from_slice(&l.to_le_bytes());
            mmap.extend_from_slice(&t.to_le_bytes());
            mmap.extend_from_slice(&0u32.to_le_bytes());
        }
        let mem = mb2_image(&[
            (1, b"console=com1\0".to_vec()),
            (2, b"GRUB 2.06\0".to_vec()),
            (3, module),
            (6, mmap),
        ]);
        let bi = BootInfo::parse(MB2_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot2);
        assert!(bi.loader_is_grub2());
        assert_eq!(bi.hypervisor_cmdline(), "console=com1");
        assert_eq!(bi.modules.len(), 1);
        assert_eq!(bi.module_args(&bi.modules[0]), "dom0 args");
        assert_eq!(bi.memory.len(), 3);
        assert_eq!(bi.memory[2].kind, RegionKind::Reserved);
    }

    #[test]
    fn multiboot2_rejects_bad_sizes() {
        let mut mem = mb2_image(&[(1, b"x\0".to_vec())]);
        mem.put32(0x1000 + 12, 0x10_0000);
        assert!(BootInfo::parse(MB2_BOOTLOADER_MAGIC, 0x1000, &mem).is_err());
        let mut mem = mb2_image(&[]);
        mem.put32(0x1000, 4);
        assert!(BootInfo::parse(MB2_BOOTLOADER_MAGIC, 0x1000, &mem).is_err());
        // No memory map and no meminfo.
        let mem = mb2_image(&[(1, b"x\0".to_vec())]);
        assert_eq!(
            BootInfo::parse(MB2_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap_err(),
            BootInfoError::NoMemoryInfo
        );
        let mut meminfo = Vec::new();
        meminfo.extend_from_slice(&640u32.to_le_bytes());
        meminfo.extend_from_slice(&1024u32.to_le_bytes());
        let mem = mb2_image(&[(4, meminfo)]);
        let bi = BootInfo::parse(MB2_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap();
        assert_eq!(bi.memory[1].len, 1 << 20);
    }

    #[test]
    fn module_strings_share_a_bounded_space() {
        let mut mem = qemu_like_mb1();
        mem.0.resize(0x10000, 0);
        mem.put32(0x1000 + 20, 8);
        mem.put32(0x1000 + 24, 0x3000);
        mem.0[0x8000..0x8000 + 1000].fill(b's');
        for i in 0..8 {
            mem.put32(0x3000 + i * 16, 0x10_0000);
            mem.put32(0x3000 + i * 16 + 4, 0x10_1000);
            mem.put32(0x3000 + i * 16 + 8, 0x8000);
        }
        let bi = BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap();
        assert_eq!(bi.modules.len(), 8);
        let lens: Vec<usize> = bi
            .modules
            .iter()
            .map(|m| bi.module_string(m).len())
            .collect();
        assert_eq!(&lens[..4], &[1000, 1000, 1000, 1000]);
        assert_eq!(lens[4], MODULE_STRINGS_MAX - 4000);
        assert_eq!(&lens[5..], &[0, 0, 0]);
    }

    #[test]
    fn too_many_modules_are_counted() {
        let mut mem = qemu_like_mb1();
        mem.put32(0x1000 + 20, 40);
        mem.put32(0x1000 + 24, 0x3000);
        for i in 0..40 {
            mem.put32(0x3000 + i * 16, 0x10_0000);
            mem.put32(0x3000 + i * 16 + 4, 0x10_1000);
        }
        let bi = BootInfo::parse(MB1_BOOTLOADER_MAGIC, 0x1000, &mem).unwrap();
        assert_eq!(bi.modules.len(), MAX_MODULES);
        assert_eq!(bi.dropped_modules, 40 - MAX_MODULES);
    }
}
