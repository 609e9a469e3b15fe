//! `mkelf32`: turns the hypervisor's 64-bit ELF into the 32-bit ELF that multiboot loaders
//! accept.
//!
//! QEMU's `-kernel` loads a multiboot1 image only if it is a 32-bit ELF. The hypervisor links
//! as a 64-bit ELF whose entry is 32-bit code at a low physical address and whose every
//! `PT_LOAD` has a physical address (`p_paddr`) below 4 GiB, even the segments linked high
//! (`p_vaddr` in L4 slot 261). [`convert`] writes an ELF32 (`ELFCLASS32`, `EM_386`,
//! `ET_EXEC`) with one program header per `PT_LOAD` of the input, in the input's order, each
//! with `p_vaddr = p_paddr = ` the input's `p_paddr` and the input's sizes, flags, alignment
//! and bytes, and the input's entry point. It has no section headers. This is the Rust
//! counterpart of Xen's `xen/arch/x86/boot/mkelf32.c`.
//!
//! Layout of the output: the ELF header and the program headers, then each segment's bytes at
//! the first offset past the previous data with `offset ≡ p_paddr (mod min(p_align, 4096))`.
//! The first segment therefore starts at file offset 4096 at most (when its `p_paddr` is
//! page aligned), which keeps the multiboot headers at the start of the image within the
//! first 8 KiB of the file, where QEMU and GRUB look for them.

use std::fmt;

use goblin::elf::Elf;
use goblin::elf::header::{EM_X86_64, ET_EXEC};
use goblin::elf::program_header::PT_LOAD;

/// The alignment a segment's file offset follows at most (segments with a larger `p_align`
/// are congruent modulo this only: 2 MiB padding would push the multiboot header out of
/// the first 8 KiB).
const MAX_FILE_ALIGN: u64 = 4096;

/// Multiboot1 loaders scan this many bytes of the file for the header.
pub const MULTIBOOT1_SEARCH: usize = 8192;
/// Multiboot2 loaders scan this many bytes of the file for the header.
pub const MULTIBOOT2_SEARCH: usize = 32768;

const MULTIBOOT1_MAGIC: u32 = 0x1bad_b002;
const MULTIBOOT2_MAGIC: u32 = 0xe852_50d6;

const EHDR32_SIZE: u16 = 52;
const PHDR32_SIZE: u16 = 32;
const EV_CURRENT: u8 = 1;
const ELFCLASS32: u8 = 1;
const ELFDATA2LSB: u8 = 1;
const EM_386: u16 = 3;

/// Why an image cannot be converted.
#[derive(Debug)]
pub enum ConvertError {
    /// goblin could not parse the input.
    Parse(goblin::error::Error),
    /// The input is an ELF, but not a little-endian 64-bit x86-64 one.
    NotElf64X86,
    /// The input has no `PT_LOAD` segment.
    NoLoadSegments,
    /// The entry point is above 4 GiB.
    EntryAbove4G(u64),
    /// A segment reaches above 4 GiB physically, or has a size that does not fit 32 bits.
    SegmentAbove4G {
        /// The segment's index among the input's program headers.
        index: usize,
        /// Its physical address.
        paddr: u64,
        /// Its size in memory.
        memsz: u64,
    },
    /// A segment's file bytes are outside the input, or its file size exceeds its memory size.
    BadSegment {
        /// The segment's index among the input's program headers.
        index: usize,
    },
    /// The output would be larger than 4 GiB.
    TooLarge,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::Parse(err) => write!(f, "cannot parse the ELF image: {err}"),
            ConvertError::NotElf64X86 => {
                write!(f, "not a little-endian 64-bit x86-64 ELF image")
            }
            ConvertError::NoLoadSegments => write!(f, "the image has no PT_LOAD segment"),
            ConvertError::EntryAbove4G(entry) => write!(
                f,
                "entry point {entry:#x} does not fit in 32 bits: a multiboot loader enters the \
                 image in 32-bit mode at a physical address"
            ),
            ConvertError::SegmentAbove4G {
                index,
                paddr,
                memsz,
            } => write!(
                f,
                "program header {index} (p_paddr {paddr:#x}, p_memsz {memsz:#x}) does not fit \
                 below 4 GiB"
            ),
            ConvertError::BadSegment { index } => write!(
                f,
                "program header {index}: file bytes outside the image, or p_filesz > p_memsz"
            ),
            ConvertError::TooLarge => write!(f, "the 32-bit image would exceed 4 GiB"),
        }
    }
}

impl std::error::Error for ConvertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConvertError::Parse(err) => Some(err),
            _ => None,
        }
    }
}

/// One segment of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical (and, in the output, virtual) address.
    pub paddr: u32,
    /// Offset of its bytes in the output.
    pub offset: u32,
    /// Bytes in the file.
    pub filesz: u32,
    /// Bytes in memory.
    pub memsz: u32,
    /// `PF_*` flags.
    pub flags: u32,
    /// Alignment, as in the input.
    pub align: u32,
}

/// The converted image.
#[derive(Clone, Debug)]
pub struct Elf32Image {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The entry point.
    pub entry: u32,
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

impl Elf32Image {
    /// The file offset of a valid multiboot1 header within the first 8 KiB.
    pub fn multiboot1_offset(&self) -> Option<usize> {
        find_multiboot1(&self.bytes)
    }

    /// The file offset of a valid multiboot2 header within the first 32 KiB.
    pub fn multiboot2_offset(&self) -> Option<usize> {
        find_multiboot2(&self.bytes)
    }

    /// Bytes occupied in memory from the lowest to the highest segment end.
    pub fn memory_span(&self) -> u64 {
        let start = self.segments.iter().map(|s| u64::from(s.paddr)).min();
        let end = self
            .segments
            .iter()
            .map(|s| u64::from(s.paddr) + u64::from(s.memsz))
            .max();
        match (start, end) {
            (Some(start), Some(end)) => end - start,
            _ => 0,
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

/// A multiboot1 header: magic, flags, checksum with `magic + flags + checksum == 0`, 4-byte
/// aligned within the first 8 KiB.
pub fn find_multiboot1(bytes: &[u8]) -> Option<usize> {
    let limit = bytes.len().min(MULTIBOOT1_SEARCH);
    (0..limit).step_by(4).find(|&at| {
        match (
            read_u32(bytes, at),
            read_u32(bytes, at + 4),
            read_u32(bytes, at + 8),
        ) {
            (Some(MULTIBOOT1_MAGIC), Some(flags), Some(checksum)) => {
                MULTIBOOT1_MAGIC.wrapping_add(flags).wrapping_add(checksum) == 0
            }
            _ => false,
        }
    })
}

/// A multiboot2 header: magic, architecture, length, checksum summing to 0, 8-byte aligned
/// within the first 32 KiB.
pub fn find_multiboot2(bytes: &[u8]) -> Option<usize> {
    let limit = bytes.len().min(MULTIBOOT2_SEARCH);
    (0..limit).step_by(8).find(|&at| {
        match (
            read_u32(bytes, at),
            read_u32(bytes, at + 4),
            read_u32(bytes, at + 8),
            read_u32(bytes, at + 12),
        ) {
            (Some(MULTIBOOT2_MAGIC), Some(arch), Some(len), Some(checksum)) => {
                MULTIBOOT2_MAGIC
                    .wrapping_add(arch)
                    .wrapping_add(len)
                    .wrapping_add(checksum)
                    == 0
            }
            _ => false,
        }
    })
}

/// The first offset at or after `cursor` that is congruent to `paddr` modulo `align`.
fn place(cursor: u64, paddr: u64, align: u64) -> u64 {
    if align <= 1 {
        return cursor;
    }
    let want = paddr % align;
    let have = cursor % align;
    cursor + (want + align - have) % align
}

/// Converts a 64-bit x86-64 ELF into the 32-bit multiboot ELF described in the module docs.
///
/// # Errors
/// The input is not a 64-bit x86-64 ELF, has no `PT_LOAD` segment, or has an entry point or
/// a segment that does not fit below 4 GiB ([`ConvertError`]).
pub fn convert(input: &[u8]) -> Result<Elf32Image, ConvertError> {
    let elf = Elf::parse(input).map_err(ConvertError::Parse)?;
    if !elf.is_64 || !elf.little_endian || elf.header.e_machine != EM_X86_64 {
        return Err(ConvertError::NotElf64X86);
    }
    let entry = u32::try_from(elf.entry).map_err(|_| ConvertError::EntryAbove4G(elf.entry))?;

    let loads: Vec<(usize, &goblin::elf::ProgramHeader)> = elf
        .program_headers
        .iter()
        .enumerate()
        .filter(|(_, ph)| ph.p_type == PT_LOAD)
        .collect();
    if loads.is_empty() {
        return Err(ConvertError::NoLoadSegments);
    }

    let phnum = u16::try_from(loads.len()).map_err(|_| ConvertError::TooLarge)?;
    let headers_end = usize::from(EHDR32_SIZE) + usize::from(PHDR32_SIZE) * loads.len();
    let mut cursor = u64::try_from(headers_end).map_err(|_| ConvertError::TooLarge)?;
    let mut segments = Vec::with_capacity(loads.len());
    let mut data: Vec<(u64, &[u8])> = Vec::with_capacity(loads.len());
    for &(index, ph) in &loads {
        let above = ConvertError::SegmentAbove4G {
            index,
            paddr: ph.p_paddr,
            memsz: ph.p_memsz,
        };
        let end = ph.p_paddr.checked_add(ph.p_memsz);
        if end.is_none_or(|end| end > 1 << 32) || ph.p_align > u64::from(u32::MAX) {
            return Err(above);
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(ConvertError::BadSegment { index });
        }
        let bytes = usize::try_from(ph.p_offset)
            .ok()
            .zip(usize::try_from(ph.p_filesz).ok())
            .and_then(|(start, len)| input.get(start..start.checked_add(len)?))
            .ok_or(ConvertError::BadSegment { index })?;

        let offset = place(cursor, ph.p_paddr, ph.p_align.min(MAX_FILE_ALIGN));
        cursor = offset + ph.p_filesz;
        let to_u32 = |v: u64| u32::try_from(v).map_err(|_| ConvertError::TooLarge);
        segments.push(Segment {
            paddr: to_u32(ph.p_paddr)?,
            offset: to_u32(offset)?,
            filesz: to_u32(ph.p_filesz)?,
            memsz: to_u32(ph.p_memsz)?,
            flags: ph.p_flags,
            align: to_u32(ph.p_align)?,
        });
        data.push((offset, bytes));
    }
    let file_size = usize::try_from(cursor).map_err(|_| ConvertError::TooLarge)?;
    u32::try_from(file_size).map_err(|_| ConvertError::TooLarge)?;

    let mut out = Vec::with_capacity(file_size);
    write_ehdr(&mut out, entry, phnum);
    for segment in &segments {
        write_phdr(&mut out, segment);
    }
    for (offset, bytes) in data {
        let offset = usize::try_from(offset).map_err(|_| ConvertError::TooLarge)?;
        out.resize(offset, 0);
        out.extend_from_slice(bytes);
    }
    debug_assert_eq!(out.len(), file_size);
    Ok(Elf32Image {
        bytes: out,
        entry,
        segments,
    })
}

fn write_ehdr(out: &mut Vec<u8>, entry: u32, phnum: u16) {
    let mut ident = [0u8; 16];
    ident[..4].copy_from_slice(b"\x7fELF");
    ident[4] = ELFCLASS32;
    ident[5] = ELFDATA2LSB;
    ident[6] = EV_CURRENT;
    // ident[7] = ELFOSABI_SYSV (0), ident[8] = ABI version 0, the rest is padding.
    out.extend_from_slice(&ident);
    out.extend_from_slice(&ET_EXEC.to_le_bytes());
    out.extend_from_slice(&EM_386.to_le_bytes());
    out.extend_from_slice(&u32::from(EV_CURRENT).to_le_bytes()); // e_version
    out.extend_from_slice(&entry.to_le_bytes()); // e_entry
    out.extend_from_slice(&u32::from(EHDR32_SIZE).to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_shoff: no section headers
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&EHDR32_SIZE.to_le_bytes()); // e_ehsize
    out.extend_from_slice(&PHDR32_SIZE.to_le_bytes()); // e_phentsize
    out.extend_from_slice(&phnum.to_le_bytes()); // e_phnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx = SHN_UNDEF
}

fn write_phdr(out: &mut Vec<u8>, segment: &Segment) {
    for field in [
        PT_LOAD,
        segment.offset,
        segment.paddr, // p_vaddr
        segment.paddr, // p_paddr
        segment.filesz,
        segment.memsz,
        segment.flags,
        segment.align,
    ] {
        out.extend_from_slice(&field.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_GNU_STACK};

    const IMAGE_VIRT_OFFSET: u64 = 0xffff_82d0_4000_0000;

    /// One program header of the synthetic input.
    struct Ph {
        p_type: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        paddr: u64,
        filesz: u64,
        memsz: u64,
        align: u64,
    }

    /// A minimal ELF64 (no sections) with the given program headers and file contents.
    fn elf64(entry: u64, phdrs: &[Ph], file: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&ET_EXEC.to_le_bytes());
        out.extend_from_slice(&EM_X86_64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&entry.to_le_bytes());
        out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
        let phnum = u16::try_from(phdrs.len()).expect("few headers");
        out.extend_from_slice(&phnum.to_le_bytes());
        out.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
        assert_eq!(out.len(), 64);
        for ph in phdrs {
            out.extend_from_slice(&ph.p_type.to_le_bytes());
            out.extend_from_slice(&ph.flags.to_le_bytes());
            for v in [ph.offset, ph.vaddr, ph.paddr, ph.filesz, ph.memsz, ph.align] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        assert!(out.len() <= file.len());
        let mut image = file.to_vec();
        image[..out.len()].copy_from_slice(&out);
        image
    }

    /// A file laid out like the hypervisor: a low boot segment with a multiboot1 header at
    /// 0x200000, a high text segment, a high data+bss segment, and a GNU_STACK header.
    fn synthetic() -> (Vec<u8>, Vec<Ph>) {
        let mut file = vec![0u8; 0x4000];
        // .boot at file offset 0x1000: the multiboot1 header, then some "code".
        let flags = 3u32;
        let checksum = 0u32.wrapping_sub(MULTIBOOT1_MAGIC.wrapping_add(flags));
        for (i, word) in [MULTIBOOT1_MAGIC, flags, checksum].into_iter().enumerate() {
            file[0x1000 + 4 * i..0x1000 + 4 * i + 4].copy_from_slice(&word.to_le_bytes());
        }
        for (i, b) in file[0x1010..0x1800].iter_mut().enumerate() {
            *b = u8::try_from(i % 251).expect("below 251");
        }
        // .text at 0x2000 and .data at 0x3000: recognisable patterns.
        file[0x2000..0x3000].fill(0xc3);
        file[0x3000..0x3100].fill(0x5a);
        let phdrs = vec![
            Ph {
                p_type: PT_LOAD,
                flags: PF_R | PF_X,
                offset: 0x1000,
                vaddr: 0x20_0000,
                paddr: 0x20_0000,
                filesz: 0x800,
                memsz: 0x1000,
                align: 0x1000,
            },
            Ph {
                p_type: PT_LOAD,
                flags: PF_R | PF_X,
                offset: 0x2000,
                vaddr: IMAGE_VIRT_OFFSET + 0x20_1000,
                paddr: 0x20_1000,
                filesz: 0x1000,
                memsz: 0x1000,
                align: 0x1000,
            },
            Ph {
                p_type: PT_GNU_STACK,
                flags: PF_R | PF_W,
                offset: 0,
                vaddr: 0,
                paddr: 0,
                filesz: 0,
                memsz: 0,
                align: 0,
            },
            Ph {
                p_type: PT_LOAD,
                flags: PF_R | PF_W,
                offset: 0x3000,
                vaddr: IMAGE_VIRT_OFFSET + 0x20_2000,
                paddr: 0x20_2000,
                filesz: 0x100,
                memsz: 0x5000,
                align: 0x1000,
            },
        ];
        (file, phdrs)
    }

    #[test]
    fn converts_a_hypervisor_like_image() {
        let (file, phdrs) = synthetic();
        let input = elf64(0x20_0010, &phdrs, &file);
        let image = convert(&input).expect("convertible");

        // goblin reads it back as a 32-bit i386 executable.
        let elf = Elf::parse(&image.bytes).expect("valid ELF32");
        assert!(!elf.is_64);
        assert!(elf.little_endian);
        assert_eq!(elf.header.e_machine, EM_386);
        assert_eq!(elf.header.e_type, ET_EXEC);
        assert_eq!(elf.header.e_shnum, 0);
        assert_eq!(elf.entry, 0x20_0010);
        assert_eq!(elf.program_headers.len(), 3, "only the PT_LOADs");

        let loads = phdrs.iter().filter(|p| p.p_type == PT_LOAD);
        for (out, orig) in elf.program_headers.iter().zip(loads) {
            assert_eq!(out.p_type, PT_LOAD);
            assert_eq!(out.p_vaddr, orig.paddr);
            assert_eq!(out.p_paddr, orig.paddr);
            assert_eq!(out.p_filesz, orig.filesz);
            assert_eq!(out.p_memsz, orig.memsz);
            assert_eq!(out.p_flags, orig.flags);
            assert_eq!(out.p_align, orig.align);
            assert_eq!(out.p_offset % out.p_align, out.p_vaddr % out.p_align);
            let start = usize::try_from(out.p_offset).expect("small");
            let len = usize::try_from(out.p_filesz).expect("small");
            let orig_start = usize::try_from(orig.offset).expect("small");
            assert_eq!(
                image.bytes[start..start + len],
                file[orig_start..orig_start + len]
            );
        }
        // Segment order is kept, and the first one starts right after the headers' page.
        assert_eq!(image.segments[0].offset, 0x1000);
        assert_eq!(image.multiboot1_offset(), Some(0x1000));
        assert!(
            image
                .multiboot1_offset()
                .is_some_and(|o| o < MULTIBOOT1_SEARCH)
        );
        assert_eq!(image.memory_span(), 0x20_7000 - 0x20_0000);
        assert_eq!(image.bytes.len(), 0x3100);
    }

    #[test]
    fn unaligned_segments_follow_the_headers() {
        let (file, mut phdrs) = synthetic();
        for ph in &mut phdrs {
            ph.align = 1;
        }
        let image = convert(&elf64(0x20_0010, &phdrs, &file)).expect("convertible");
        // Three headers: 52 + 3 * 32 = 148 bytes, then the data, packed.
        assert_eq!(image.segments[0].offset, 148);
        assert_eq!(image.segments[1].offset, 148 + 0x800);
        assert_eq!(image.multiboot1_offset(), Some(148));
    }

    #[test]
    fn large_alignment_is_kept_modulo_a_page() {
        let (file, mut phdrs) = synthetic();
        phdrs[0].align = 0x20_0000;
        let image = convert(&elf64(0x20_0010, &phdrs, &file)).expect("convertible");
        assert_eq!(image.segments[0].offset, 0x1000);
        assert_eq!(image.segments[0].align, 0x20_0000);
    }

    #[test]
    fn entry_above_4g_is_refused() {
        let (file, phdrs) = synthetic();
        let err = convert(&elf64(IMAGE_VIRT_OFFSET + 0x20_1000, &phdrs, &file))
            .expect_err("64-bit entry");
        assert!(matches!(err, ConvertError::EntryAbove4G(_)));
        assert!(err.to_string().contains("does not fit in 32 bits"));
    }

    #[test]
    fn segment_above_4g_is_refused() {
        let (file, mut phdrs) = synthetic();
        phdrs[3].paddr = 0xffff_f000;
        let err = convert(&elf64(0x20_0010, &phdrs, &file)).expect_err("crosses 4 GiB");
        assert!(matches!(err, ConvertError::SegmentAbove4G { index: 3, .. }));
    }

    #[test]
    fn bad_inputs_are_refused() {
        let (file, mut phdrs) = synthetic();
        // An ELF32 (our own output) is not an input.
        let image = convert(&elf64(0x20_0010, &phdrs, &file)).expect("convertible");
        assert!(matches!(
            convert(&image.bytes),
            Err(ConvertError::NotElf64X86)
        ));
        assert!(matches!(
            convert(b"not an elf at all, just text"),
            Err(ConvertError::Parse(_))
        ));
        phdrs[1].filesz = 0x10_0000;
        phdrs[1].memsz = 0x10_0000;
        assert!(matches!(
            convert(&elf64(0x20_0010, &phdrs, &file)),
            Err(ConvertError::BadSegment { index: 1 })
        ));
        let only_stack: Vec<Ph> = phdrs.into_iter().filter(|p| p.p_type != PT_LOAD).collect();
        assert!(matches!(
            convert(&elf64(0x20_0010, &only_stack, &file)),
            Err(ConvertError::NoLoadSegments)
        ));
    }

    #[test]
    fn multiboot_scans() {
        let mut bytes = vec![0u8; 0x3000];
        assert_eq!(find_multiboot1(&bytes), None);
        // A header past 8 KiB is not found.
        let checksum = 0u32.wrapping_sub(MULTIBOOT1_MAGIC);
        bytes[0x2000..0x2004].copy_from_slice(&MULTIBOOT1_MAGIC.to_le_bytes());
        bytes[0x2008..0x200c].copy_from_slice(&checksum.to_le_bytes());
        assert_eq!(find_multiboot1(&bytes), None);
        bytes[0x1ff0..0x1ff4].copy_from_slice(&MULTIBOOT1_MAGIC.to_le_bytes());
        bytes[0x1ff8..0x1ffc].copy_from_slice(&checksum.to_le_bytes());
        assert_eq!(find_multiboot1(&bytes), Some(0x1ff0));

        let len = 24u32;
        let checksum = 0u32.wrapping_sub(MULTIBOOT2_MAGIC.wrapping_add(len));
        bytes[0x1008..0x100c].copy_from_slice(&MULTIBOOT2_MAGIC.to_le_bytes());
        bytes[0x1010..0x1014].copy_from_slice(&len.to_le_bytes());
        bytes[0x1014..0x1018].copy_from_slice(&checksum.to_le_bytes());
        assert_eq!(find_multiboot2(&bytes), Some(0x1008));
    }
}
