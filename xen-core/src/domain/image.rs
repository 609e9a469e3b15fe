//! PV kernel images: the ELF headers (read with `goblin`), the Xen notes (or the legacy
//! `__xen_guest` string), and every check the loader makes before a byte is copied
//! (reference §4.1–§4.3).
//!
//! The image is untrusted input: every offset and size is checked against the file, and a
//! malformed or hostile image yields an [`ImageError`] that says what is wrong.

use alloc::string::String;
use alloc::vec::Vec;
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{EM_X86_64, ET_EXEC, Header};
use goblin::elf::program_header::{PT_LOAD, PT_NOTE, ProgramHeader};
use goblin::elf::section_header::{SHT_NOTE, SectionHeader};
use hypercall_abi::elfnote::{self as en, FeatureSet, XenGuestInfo};
use hypercall_abi::version::{
    XENFEAT_AUTO_TRANSLATED_PHYSMAP, XENFEAT_DOM0, XENFEAT_HVM_CALLBACK_VECTOR,
    XENFEAT_SUPERVISOR_MODE_KERNEL, xenfeat_bit,
};

/// Most `PT_LOAD` segments accepted.
const MAX_SEGMENTS: usize = 32;
/// Largest kernel image span accepted (1 GiB).
const MAX_IMAGE_SPAN: u64 = 1 << 30;

/// One loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_paddr`.
    pub paddr: u64,
    /// Offset of its bytes in the file.
    pub offset: u64,
    /// Bytes taken from the file.
    pub filesz: u64,
    /// Bytes in memory (the rest zero-filled).
    pub memsz: u64,
}

/// Where the Xen metadata came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotesSource {
    /// ELF notes named "Xen".
    ElfNotes,
    /// The legacy `__xen_guest` section.
    LegacyXenGuest,
}

/// The Xen metadata of a kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XenNotes {
    /// `GUEST_OS`.
    pub guest_os: Option<String>,
    /// `GUEST_VERSION`.
    pub guest_version: Option<String>,
    /// `XEN_VERSION`.
    pub xen_version: Option<String>,
    /// `LOADER`.
    pub loader: Option<String>,
    /// `FEATURES`.
    pub features: Option<String>,
    /// `VIRT_BASE`.
    pub virt_base: Option<u64>,
    /// `PADDR_OFFSET`.
    pub paddr_offset: Option<u64>,
    /// `ENTRY`.
    pub entry: Option<u64>,
    /// `HYPERCALL_PAGE` (a virtual address).
    pub hypercall_page: Option<u64>,
    /// `SUPPORTED_FEATURES` bitmap.
    pub supported_features: Option<u32>,
    /// `INIT_P2M`.
    pub init_p2m: Option<u64>,
    /// `MOD_START_PFN`.
    pub mod_start_pfn: bool,
    /// `SUSPEND_CANCEL`.
    pub suspend_cancel: bool,
}

/// What is wrong with a kernel image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Not an ELF file, or its headers cannot be read.
    NotElf,
    /// An ELF file, but not a 64-bit little-endian x86-64 executable.
    WrongKind(&'static str),
    /// A header, note or segment lies (partly) outside the file.
    Truncated(&'static str),
    /// No loadable segment.
    NoLoadSegments,
    /// Too many loadable segments.
    TooManySegments,
    /// A segment's file size exceeds its memory size, or its addresses overflow.
    BadSegment(u64),
    /// Two segments overlap in memory.
    OverlappingSegments(u64, u64),
    /// Neither Xen notes nor a `__xen_guest` section.
    NoXenNotes,
    /// The `__xen_guest` string is malformed.
    BadLegacyString,
    /// `XEN_VERSION` missing or not `xen-3.0...`.
    BadXenVersion,
    /// `LOADER` missing or not `generic...` (and the guest is not Linux).
    BadLoader,
    /// `PADDR_OFFSET` given without `VIRT_BASE`.
    PaddrOffsetWithoutVirtBase,
    /// `VIRT_BASE` lies above the image.
    VirtBaseAboveImage,
    /// The entry point lies outside the image.
    EntryOutsideImage(u64),
    /// The hypercall page lies outside the image or is not page aligned.
    BadHypercallPage(u64),
    /// `INIT_P2M` lies inside the image.
    InitP2mInsideImage,
    /// The image spans more than the loader accepts.
    TooBig(u64),
    /// The image requires a feature this hypervisor does not provide.
    UnsupportedRequiredFeature(String),
    /// The image lists its supported features without `dom0` but is to be dom0.
    NoDom0Support,
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::NotElf => write!(f, "not an ELF image"),
            ImageError::WrongKind(w) => write!(f, "not a 64-bit x86-64 executable: {w}"),
            ImageError::Truncated(w) => {
                write!(f, "truncated image: {w} beyond the end of the file")
            }
            ImageError::NoLoadSegments => write!(f, "no loadable segment"),
            ImageError::TooManySegments => write!(f, "more than {MAX_SEGMENTS} loadable segments"),
            ImageError::BadSegment(a) => write!(
                f,
                "bad segment at {a:#x}: file size above memory size or address overflow"
            ),
            ImageError::OverlappingSegments(a, b) => {
                write!(f, "segments at {a:#x} and {b:#x} overlap")
            }
            ImageError::NoXenNotes => write!(
                f,
                "no Xen ELF notes and no __xen_guest section: not a Xen PV kernel"
            ),
            ImageError::BadLegacyString => write!(f, "malformed __xen_guest string"),
            ImageError::BadXenVersion => write!(f, "XEN_VERSION note missing or not for xen-3.0"),
            ImageError::BadLoader => write!(
                f,
                "LOADER note missing or not 'generic' (and not a Linux kernel)"
            ),
            ImageError::PaddrOffsetWithoutVirtBase => {
                write!(f, "PADDR_OFFSET given without VIRT_BASE")
            }
            ImageError::VirtBaseAboveImage => write!(f, "VIRT_BASE lies above the image"),
            ImageError::EntryOutsideImage(e) => write!(f, "entry point {e:#x} outside the image"),
            ImageError::BadHypercallPage(p) => write!(
                f,
                "hypercall page {p:#x} outside the image or not page aligned"
            ),
            ImageError::InitP2mInsideImage => write!(f, "INIT_P2M lies inside the image"),
            ImageError::TooBig(s) => write!(f, "image spans {s:#x} bytes, too big"),
            ImageError::UnsupportedRequiredFeature(n) => write!(
                f,
                "the kernel requires feature '{n}', which Oxen does not provide"
            ),
            ImageError::NoDom0Support => write!(
                f,
                "the kernel does not support dom0 operation (no 'dom0' feature)"
            ),
        }
    }
}

/// A kernel image, checked and ready to plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelImage {
    /// Loadable segments, sorted by `paddr`.
    pub segments: Vec<Segment>,
    /// `e_entry`.
    pub elf_entry: u64,
    /// The Xen metadata.
    pub notes: XenNotes,
    /// Where it came from.
    pub source: NotesSource,
}

/// Where and how the kernel goes into the guest's address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImagePlan {
    /// Start of the initial mapping (pseudo-physical 0).
    pub virt_base: u64,
    /// Added to `p_paddr` to get a segment's virtual address.
    pub virt_offset: u64,
    /// First virtual address of the kernel.
    pub virt_kstart: u64,
    /// One past its last.
    pub virt_kend: u64,
    /// The entry point.
    pub entry: u64,
    /// Where to write the hypercall page, if anywhere.
    pub hypercall_page: Option<u64>,
    /// The kernel's features.
    pub features: FeatureSet,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(en::note_string(bytes)).into_owned()
}

/// Feature bits a PV kernel may require and still run on Oxen.
pub const REQUIRABLE_FEATURES: u32 = !(xenfeat_bit(XENFEAT_AUTO_TRANSLATED_PHYSMAP)
    | xenfeat_bit(XENFEAT_SUPERVISOR_MODE_KERNEL)
    | xenfeat_bit(XENFEAT_HVM_CALLBACK_VECTOR));

fn range<'b>(
    bytes: &'b [u8],
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<&'b [u8], ImageError> {
    let start = usize::try_from(offset).map_err(|_| ImageError::Truncated(what))?;
    let len = usize::try_from(len).map_err(|_| ImageError::Truncated(what))?;
    let end = start.checked_add(len).ok_or(ImageError::Truncated(what))?;
    bytes.get(start..end).ok_or(ImageError::Truncated(what))
}

/// Walks the notes in `data` (a `PT_NOTE` segment or `SHT_NOTE` section) and records Xen's.
/// Returns whether any was found.
fn read_notes(data: &[u8], notes: &mut XenNotes) -> Result<bool, ImageError> {
    let mut off = 0usize;
    let mut found = false;
    let word = |at: usize| -> Result<u32, ImageError> {
        let b = data
            .get(at..at + 4)
            .ok_or(ImageError::Truncated("note header"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    while off + 12 <= data.len() {
        let namesz = word(off)? as usize;
        let descsz = word(off + 4)? as usize;
        let ty = word(off + 8)?;
        let name_at = off + 12;
        let desc_at = name_at
            .checked_add(namesz.checked_add(3).ok_or(ImageError::Truncated("note"))? & !3)
            .ok_or(ImageError::Truncated("note"))?;
        let next = desc_at
            .checked_add(descsz.checked_add(3).ok_or(ImageError::Truncated("note"))? & !3)
            .ok_or(ImageError::Truncated("note"))?;
        let name = data
            .get(name_at..name_at + namesz)
            .ok_or(ImageError::Truncated("note name"))?;
        let desc = data
            .get(desc_at..desc_at + descsz)
            .ok_or(ImageError::Truncated("note descriptor"))?;
        if name == en::XEN_ELFNOTE_NAME || name == &en::XEN_ELFNOTE_NAME[..3] {
            found = true;
            let num = || en::note_numeric(desc);
            match ty {
                en::XEN_ELFNOTE_GUEST_OS => notes.guest_os = Some(text(desc)),
                en::XEN_ELFNOTE_GUEST_VERSION => notes.guest_version = Some(text(desc)),
                en::XEN_ELFNOTE_XEN_VERSION => notes.xen_version = Some(text(desc)),
                en::XEN_ELFNOTE_LOADER => notes.loader = Some(text(desc)),
                en::XEN_ELFNOTE_FEATURES => notes.features = Some(text(desc)),
                en::XEN_ELFNOTE_VIRT_BASE => notes.virt_base = num(),
                en::XEN_ELFNOTE_PADDR_OFFSET => notes.paddr_offset = num(),
                en::XEN_ELFNOTE_ENTRY => notes.entry = num(),
                en::XEN_ELFNOTE_HYPERCALL_PAGE => notes.hypercall_page = num(),
                en::XEN_ELFNOTE_INIT_P2M => notes.init_p2m = num(),
                en::XEN_ELFNOTE_MOD_START_PFN => {
                    notes.mod_start_pfn = num().is_some_and(|v| v != 0)
                }
                en::XEN_ELFNOTE_SUSPEND_CANCEL => {
                    notes.suspend_cancel = num().is_some_and(|v| v != 0)
                }
                en::XEN_ELFNOTE_SUPPORTED_FEATURES => {
                    notes.supported_features = num().and_then(|v| u32::try_from(v).ok());
                }
                _ => {}
            }
        }
        off = next;
    }
    Ok(found)
}

impl KernelImage {
    /// Reads and checks the headers, segments and Xen metadata of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<KernelImage, ImageError> {
        let hdr = goblin::elf::Elf::parse_header(bytes).map_err(|_| ImageError::NotElf)?;
        if hdr.e_ident[goblin::elf::header::EI_CLASS] != goblin::elf::header::ELFCLASS64 {
            return Err(ImageError::WrongKind("not ELFCLASS64"));
        }
        if hdr.e_ident[goblin::elf::header::EI_DATA] != goblin::elf::header::ELFDATA2LSB {
            return Err(ImageError::WrongKind("not little-endian"));
        }
        if hdr.e_machine != EM_X86_64 {
            return Err(ImageError::WrongKind("machine is not x86-64"));
        }
        if hdr.e_type != ET_EXEC {
            return Err(ImageError::WrongKind("not an executable (ET_EXEC)"));
        }
        let ctx = Ctx::new(Container::Big, Endian::Little);
        let phoff =
            usize::try_from(hdr.e_phoff).map_err(|_| ImageError::Truncated("program headers"))?;
        range(
            bytes,
            hdr.e_phoff,
            u64::from(hdr.e_phnum) * 56,
            "program headers",
        )?;
        let phdrs = ProgramHeader::parse(bytes, phoff, usize::from(hdr.e_phnum), ctx)
            .map_err(|_| ImageError::Truncated("program headers"))?;

        let mut segments = Vec::new();
        let mut notes = XenNotes::default();
        let mut found_notes = false;
        for ph in &phdrs {
            match ph.p_type {
                PT_LOAD if ph.p_memsz > 0 => {
                    if segments.len() >= MAX_SEGMENTS {
                        return Err(ImageError::TooManySegments);
                    }
                    if ph.p_filesz > ph.p_memsz || ph.p_paddr.checked_add(ph.p_memsz).is_none() {
                        return Err(ImageError::BadSegment(ph.p_paddr));
                    }
                    range(bytes, ph.p_offset, ph.p_filesz, "a segment")?;
                    segments.push(Segment {
                        paddr: ph.p_paddr,
                        offset: ph.p_offset,
                        filesz: ph.p_filesz,
                        memsz: ph.p_memsz,
                    });
                }
                PT_NOTE => {
                    let data = range(bytes, ph.p_offset, ph.p_filesz, "a note segment")?;
                    found_notes |= read_notes(data, &mut notes)?;
                }
                _ => {}
            }
        }
        if segments.is_empty() {
            return Err(ImageError::NoLoadSegments);
        }
        segments.sort_by_key(|s| s.paddr);
        for w in segments.windows(2) {
            if w[0].paddr + w[0].memsz > w[1].paddr {
                return Err(ImageError::OverlappingSegments(w[0].paddr, w[1].paddr));
            }
        }

        // Sections: more notes, or the legacy string.
        let sections = if hdr.e_shnum > 0 && hdr.e_shoff != 0 {
            range(
                bytes,
                hdr.e_shoff,
                u64::from(hdr.e_shnum) * 64,
                "section headers",
            )?;
            let shoff = usize::try_from(hdr.e_shoff)
                .map_err(|_| ImageError::Truncated("section headers"))?;
            SectionHeader::parse(bytes, shoff, usize::from(hdr.e_shnum), ctx)
                .map_err(|_| ImageError::Truncated("section headers"))?
        } else {
            Vec::new()
        };
        if !found_notes {
            for sh in sections.iter().filter(|s| s.sh_type == SHT_NOTE) {
                let data = range(bytes, sh.sh_offset, sh.sh_size, "a note section")?;
                found_notes |= read_notes(data, &mut notes)?;
            }
        }
        let mut source = NotesSource::ElfNotes;
        if !found_notes {
            let legacy = Self::legacy_string(bytes, &hdr, &sections)?;
            let Some(legacy) = legacy else {
                return Err(ImageError::NoXenNotes);
            };
            notes = Self::notes_from_legacy(legacy)?;
            source = NotesSource::LegacyXenGuest;
        }
        Ok(KernelImage {
            segments,
            elf_entry: hdr.e_entry,
            notes,
            source,
        })
    }

    fn legacy_string<'b>(
        bytes: &'b [u8],
        hdr: &Header,
        sections: &[SectionHeader],
    ) -> Result<Option<&'b [u8]>, ImageError> {
        let Some(strtab) = sections.get(usize::from(hdr.e_shstrndx)) else {
            return Ok(None);
        };
        let names = range(bytes, strtab.sh_offset, strtab.sh_size, "section names")?;
        for sh in sections {
            let name_at = sh.sh_name;
            let Some(name) = names.get(name_at..) else {
                continue;
            };
            if en::note_string(name) == en::XEN_GUEST_SECTION {
                return Ok(Some(range(
                    bytes,
                    sh.sh_offset,
                    sh.sh_size,
                    "the __xen_guest section",
                )?));
            }
        }
        Ok(None)
    }

    fn notes_from_legacy(s: &[u8]) -> Result<XenNotes, ImageError> {
        let info =
            XenGuestInfo::parse(en::note_string(s)).map_err(|_| ImageError::BadLegacyString)?;
        let t = |v: Option<&[u8]>| v.map(|b| String::from_utf8_lossy(b).into_owned());
        Ok(XenNotes {
            guest_os: t(info.guest_os),
            guest_version: t(info.guest_ver),
            xen_version: t(info.xen_ver),
            loader: t(info.loader),
            features: t(info.features),
            virt_base: info.virt_base,
            // Legacy images default PADDR_OFFSET to VIRT_BASE.
            paddr_offset: Some(info.paddr_offset()),
            entry: info.virt_entry,
            hypercall_page: info.hypercall_page_va(),
            ..XenNotes::default()
        })
    }

    /// Checks the Xen rules and works out where everything goes. `dom0` asks for the dom0
    /// rules (the kernel must declare the `dom0` feature).
    pub fn plan(&self, dom0: bool) -> Result<ImagePlan, ImageError> {
        let n = &self.notes;
        if !en::xen_version_acceptable(n.xen_version.as_deref().map(str::as_bytes)) {
            return Err(ImageError::BadXenVersion);
        }
        if !en::loader_acceptable(
            n.loader.as_deref().map(str::as_bytes),
            n.guest_os.as_deref().map(str::as_bytes),
        ) {
            return Err(ImageError::BadLoader);
        }
        if n.paddr_offset.is_some() && n.virt_base.is_none() && self.source == NotesSource::ElfNotes
        {
            return Err(ImageError::PaddrOffsetWithoutVirtBase);
        }
        let parsed = en::parse_features(n.features.as_deref().unwrap_or("").as_bytes());
        if let Some(unknown) = parsed.unknown().find(|t| t.required) {
            return Err(ImageError::UnsupportedRequiredFeature(
                String::from_utf8_lossy(unknown.name).into_owned(),
            ));
        }
        let features = parsed
            .set
            .with_supported_bitmap(n.supported_features.unwrap_or(0));
        let unsupported = features.required & !REQUIRABLE_FEATURES;
        if unsupported != 0 {
            let bit = unsupported.trailing_zeros();
            let name = hypercall_abi::version::XenFeature::try_from(bit).map_or_else(
                |_| alloc::format!("feature {bit}"),
                |f| String::from(f.name()),
            );
            return Err(ImageError::UnsupportedRequiredFeature(name));
        }
        // As in Xen 4.17: a kernel that lists its supported features with a
        // SUPPORTED_FEATURES note must include `dom0` there or in FEATURES to be dom0; one
        // without that note is not asked.
        if dom0
            && n.supported_features.is_some()
            && features.supported & xenfeat_bit(XENFEAT_DOM0) == 0
        {
            return Err(ImageError::NoDom0Support);
        }

        let virt_base = n.virt_base.unwrap_or(0);
        let paddr_offset = n.paddr_offset.unwrap_or(0);
        let virt_offset = virt_base.wrapping_sub(paddr_offset);
        let pstart = self.segments.iter().map(|s| s.paddr).min().unwrap_or(0);
        let pend = self
            .segments
            .iter()
            .map(|s| s.paddr + s.memsz)
            .max()
            .unwrap_or(0);
        let virt_kstart = pstart.wrapping_add(virt_offset);
        let virt_kend = pend.wrapping_add(virt_offset);
        if virt_kstart > virt_kend {
            return Err(ImageError::BadSegment(pstart));
        }
        if virt_kend - virt_kstart > MAX_IMAGE_SPAN {
            return Err(ImageError::TooBig(virt_kend - virt_kstart));
        }
        if virt_base > virt_kstart {
            return Err(ImageError::VirtBaseAboveImage);
        }
        let entry = n.entry.unwrap_or(self.elf_entry);
        if entry < virt_kstart || entry > virt_kend {
            return Err(ImageError::EntryOutsideImage(entry));
        }
        if let Some(hp) = n.hypercall_page
            && (hp < virt_kstart || hp.saturating_add(4096) > virt_kend || !hp.is_multiple_of(4096))
        {
            return Err(ImageError::BadHypercallPage(hp));
        }
        if let Some(p2m) = n.init_p2m
            && p2m >= virt_kstart
            && p2m < virt_kend
        {
            return Err(ImageError::InitP2mInsideImage);
        }
        Ok(ImagePlan {
            virt_base,
            virt_offset,
            virt_kstart,
            virt_kend,
            entry,
            hypercall_page: n.hypercall_page,
            features,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;

    /// A tiny ELF64 builder for tests: one PT_LOAD (or more) and a PT_NOTE.
    pub(crate) struct ElfBuilder {
        pub entry: u64,
        pub loads: Vec<(u64, u64, Vec<u8>, u64)>, // (vaddr, paddr, data, memsz)
        pub notes: Vec<(u32, Vec<u8>)>,
        pub machine: u16,
        pub class: u8,
    }

    pub(crate) fn note_num(v: u64) -> Vec<u8> {
        v.to_le_bytes().to_vec()
    }
    pub(crate) fn note_str(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    impl ElfBuilder {
        /// A valid high-half PV kernel: 3 pages at 0xffffffff80000000 (paddr 0), hypercall page
        /// at its second page.
        pub(crate) fn pv_kernel() -> ElfBuilder {
            let base = 0xffff_ffff_8000_0000;
            ElfBuilder {
                entry: base + 0x10,
                loads: vec![(base, 0, vec![0x90; 0x2100], 0x3000)],
                notes: vec![
                    (en::XEN_ELFNOTE_XEN_VERSION, note_str("xen-3.0")),
                    (en::XEN_ELFNOTE_GUEST_OS, note_str("Oxen-test")),
                    (en::XEN_ELFNOTE_LOADER, note_str("generic")),
                    (en::XEN_ELFNOTE_VIRT_BASE, note_num(base)),
                    (en::XEN_ELFNOTE_PADDR_OFFSET, note_num(0)),
                    (en::XEN_ELFNOTE_HYPERCALL_PAGE, note_num(base + 0x1000)),
                    (
                        en::XEN_ELFNOTE_FEATURES,
                        note_str("!writable_page_tables|dom0"),
                    ),
                ],
                machine: EM_X86_64,
                class: 2,
            }
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let phnum = self.loads.len() + 1;
            let mut notes = Vec::new();
            for (ty, desc) in &self.notes {
                notes.extend_from_slice(&4u32.to_le_bytes());
                notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
                notes.extend_from_slice(&ty.to_le_bytes());
                notes.extend_from_slice(b"Xen\0");
                notes.extend_from_slice(desc);
                while notes.len() % 4 != 0 {
                    notes.push(0);
                }
            }
            let mut out = vec![0u8; 64 + 56 * phnum];
            let mut data_at = out.len() as u64;
            let mut phdrs = Vec::new();
            let mut blobs = Vec::new();
            for (vaddr, paddr, data, memsz) in &self.loads {
                phdrs.push((PT_LOAD, data_at, *vaddr, *paddr, data.len() as u64, *memsz));
                blobs.push(data.clone());
                data_at += data.len() as u64;
            }
            phdrs.push((
                PT_NOTE,
                data_at,
                0,
                0,
                notes.len() as u64,
                notes.len() as u64,
            ));
            blobs.push(notes);
            out[0..4].copy_from_slice(b"\x7fELF");
            out[4] = self.class;
            out[5] = 1;
            out[6] = 1;
            out[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
            out[18..20].copy_from_slice(&self.machine.to_le_bytes());
            out[20..24].copy_from_slice(&1u32.to_le_bytes());
            out[24..32].copy_from_slice(&self.entry.to_le_bytes());
            out[32..40].copy_from_slice(&64u64.to_le_bytes());
            out[52..54].copy_from_slice(&64u16.to_le_bytes());
            out[54..56].copy_from_slice(&56u16.to_le_bytes());
            out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
            for (i, (ty, off, vaddr, paddr, filesz, memsz)) in phdrs.iter().enumerate() {
                let p = 64 + 56 * i;
                out[p..p + 4].copy_from_slice(&ty.to_le_bytes());
                out[p + 4..p + 8].copy_from_slice(&7u32.to_le_bytes());
                out[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
                out[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
                out[p + 24..p + 32].copy_from_slice(&paddr.to_le_bytes());
                out[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
                out[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
                out[p + 48..p + 56].copy_from_slice(&0x1000u64.to_le_bytes());
            }
            for b in blobs {
                out.extend_from_slice(&b);
            }
            out
        }

        fn set_note(&mut self, ty: u32, desc: Option<Vec<u8>>) {
            self.notes.retain(|(t, _)| *t != ty);
            if let Some(d) = desc {
                self.notes.push((ty, d));
            }
        }
    }

    #[test]
    fn a_good_kernel_plans() {
        let img = KernelImage::parse(&ElfBuilder::pv_kernel().build()).unwrap();
        assert_eq!(img.source, NotesSource::ElfNotes);
        assert_eq!(img.notes.guest_os.as_deref(), Some("Oxen-test"));
        let p = img.plan(true).unwrap();
        assert_eq!(p.virt_base, 0xffff_ffff_8000_0000);
        assert_eq!(p.virt_kstart, 0xffff_ffff_8000_0000);
        assert_eq!(p.virt_kend, 0xffff_ffff_8000_3000);
        assert_eq!(p.entry, 0xffff_ffff_8000_0010);
        assert_eq!(p.hypercall_page, Some(0xffff_ffff_8000_1000));
        assert_ne!(
            p.features.required & xenfeat_bit(hypercall_abi::version::XENFEAT_WRITABLE_PAGE_TABLES),
            0
        );
    }

    #[test]
    fn not_elf_or_wrong_kind() {
        assert_eq!(KernelImage::parse(b"hello, world"), Err(ImageError::NotElf));
        assert_eq!(KernelImage::parse(&[]), Err(ImageError::NotElf));
        let mut b = ElfBuilder::pv_kernel();
        b.machine = 3;
        assert!(matches!(
            KernelImage::parse(&b.build()),
            Err(ImageError::WrongKind(_))
        ));
        let mut elf = ElfBuilder::pv_kernel().build();
        elf[4] = 1; // ELFCLASS32
        assert!(KernelImage::parse(&elf).is_err());
    }

    #[test]
    fn truncated_images_are_refused_at_every_cut() {
        let elf = ElfBuilder::pv_kernel().build();
        for cut in [10, 64, 100, 64 + 56, 64 + 56 * 2 - 1, elf.len() - 1] {
            assert!(KernelImage::parse(&elf[..cut]).is_err(), "cut at {cut}");
        }
        // A segment claiming bytes past the end of the file.
        let mut elf = ElfBuilder::pv_kernel().build();
        elf[64 + 32..64 + 40].copy_from_slice(&0x10_0000u64.to_le_bytes());
        elf[64 + 40..64 + 48].copy_from_slice(&0x10_0000u64.to_le_bytes());
        assert_eq!(
            KernelImage::parse(&elf),
            Err(ImageError::Truncated("a segment"))
        );
        // filesz > memsz.
        let mut elf = ElfBuilder::pv_kernel().build();
        elf[64 + 40..64 + 48].copy_from_slice(&0x10u64.to_le_bytes());
        assert!(matches!(
            KernelImage::parse(&elf),
            Err(ImageError::BadSegment(_))
        ));
        // A huge phnum.
        let mut elf = ElfBuilder::pv_kernel().build();
        elf[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(KernelImage::parse(&elf).is_err());
    }

    #[test]
    fn overlapping_segments_are_refused() {
        let mut b = ElfBuilder::pv_kernel();
        let base = 0xffff_ffff_8000_0000u64;
        b.loads.push((base + 0x2000, 0x2000, vec![1; 16], 0x1000));
        assert!(matches!(
            KernelImage::parse(&b.build()),
            Err(ImageError::OverlappingSegments(..))
        ));
    }

    #[test]
    fn note_rules() {
        let plan = |b: &ElfBuilder| KernelImage::parse(&b.build()).and_then(|i| i.plan(true));
        let mut b = ElfBuilder::pv_kernel();
        b.notes.clear();
        assert_eq!(KernelImage::parse(&b.build()), Err(ImageError::NoXenNotes));

        let mut b = ElfBuilder::pv_kernel();
        b.set_note(en::XEN_ELFNOTE_XEN_VERSION, Some(note_str("xen-2.0")));
        assert_eq!(plan(&b), Err(ImageError::BadXenVersion));
        b.set_note(en::XEN_ELFNOTE_XEN_VERSION, None);
        assert_eq!(plan(&b), Err(ImageError::BadXenVersion));

        let mut b = ElfBuilder::pv_kernel();
        b.set_note(en::XEN_ELFNOTE_LOADER, Some(note_str("elfboot")));
        assert_eq!(plan(&b), Err(ImageError::BadLoader));
        b.set_note(en::XEN_ELFNOTE_GUEST_OS, Some(note_str("linux")));
        assert!(plan(&b).is_ok(), "Linux kernels need no generic loader");

        let mut b = ElfBuilder::pv_kernel();
        b.set_note(en::XEN_ELFNOTE_VIRT_BASE, None);
        assert_eq!(plan(&b), Err(ImageError::PaddrOffsetWithoutVirtBase));

        let mut b = ElfBuilder::pv_kernel();
        b.set_note(en::XEN_ELFNOTE_FEATURES, Some(note_str("!frobnicate|dom0")));
        assert_eq!(
            plan(&b),
            Err(ImageError::UnsupportedRequiredFeature("frobnicate".into()))
        );
        b.set_note(en::XEN_ELFNOTE_FEATURES, Some(note_str("frobnicate|dom0")));
        assert!(plan(&b).is_ok(), "unknown optional features are ignored");
        b.set_note(
            en::XEN_ELFNOTE_FEATURES,
            Some(note_str("!auto_translated_physmap|dom0")),
        );
        assert!(matches!(
            plan(&b),
            Err(ImageError::UnsupportedRequiredFeature(_))
        ));
        // Without a SUPPORTED_FEATURES note, dom0 support is not asked for (Xen 4.17).
        b.set_note(
            en::XEN_ELFNOTE_FEATURES,
            Some(note_str("writable_page_tables")),
        );
        assert!(plan(&b).is_ok());
        // With one, `dom0` must be there or in FEATURES.
        b.set_note(en::XEN_ELFNOTE_SUPPORTED_FEATURES, Some(note_num(1)));
        assert_eq!(plan(&b), Err(ImageError::NoDom0Support));
        assert!(KernelImage::parse(&b.build()).unwrap().plan(false).is_ok());
        b.set_note(
            en::XEN_ELFNOTE_SUPPORTED_FEATURES,
            Some(note_num(1 << XENFEAT_DOM0)),
        );
        assert!(plan(&b).is_ok());
        b.set_note(en::XEN_ELFNOTE_SUPPORTED_FEATURES, Some(note_num(1)));
        b.set_note(en::XEN_ELFNOTE_FEATURES, Some(note_str("dom0")));
        assert!(plan(&b).is_ok());
    }

    #[test]
    fn addresses_must_lie_in_the_image() {
        let plan = |b: &ElfBuilder| KernelImage::parse(&b.build()).and_then(|i| i.plan(true));
        let base = 0xffff_ffff_8000_0000u64;
        let mut b = ElfBuilder::pv_kernel();
        b.entry = base + 0x10_0000;
        assert_eq!(
            plan(&b),
            Err(ImageError::EntryOutsideImage(base + 0x10_0000))
        );
        b.set_note(en::XEN_ELFNOTE_ENTRY, Some(note_num(base + 0x20)));
        assert_eq!(plan(&b).unwrap().entry, base + 0x20, "the ENTRY note wins");

        let mut b = ElfBuilder::pv_kernel();
        b.set_note(
            en::XEN_ELFNOTE_HYPERCALL_PAGE,
            Some(note_num(base + 0x1800)),
        );
        assert!(matches!(plan(&b), Err(ImageError::BadHypercallPage(_))));
        b.set_note(
            en::XEN_ELFNOTE_HYPERCALL_PAGE,
            Some(note_num(base + 0x3000)),
        );
        assert!(matches!(plan(&b), Err(ImageError::BadHypercallPage(_))));

        let mut b = ElfBuilder::pv_kernel();
        b.set_note(en::XEN_ELFNOTE_VIRT_BASE, Some(note_num(base + 0x1000)));
        b.set_note(en::XEN_ELFNOTE_PADDR_OFFSET, Some(note_num(0x1000)));
        assert_eq!(plan(&b), Err(ImageError::VirtBaseAboveImage));

        let mut b = ElfBuilder::pv_kernel();
        b.set_note(en::XEN_ELFNOTE_INIT_P2M, Some(note_num(base + 0x1000)));
        assert_eq!(plan(&b), Err(ImageError::InitP2mInsideImage));

        let mut b = ElfBuilder::pv_kernel();
        b.loads[0].3 = 3 << 29;
        assert!(matches!(plan(&b), Err(ImageError::TooBig(_))));
        // A segment reaching past the top of the address space.
        b.loads[0].3 = 2 << 30;
        assert!(plan(&b).is_err());
    }

    #[test]
    fn paddr_not_vaddr_places_segments() {
        // Linux-style: VIRT_BASE high, PADDR_OFFSET 0, small p_paddr, p_vaddr irrelevant.
        let mut b = ElfBuilder::pv_kernel();
        b.loads[0].0 = 0x1234_0000; // a bogus p_vaddr
        b.loads[0].1 = 0x20_0000;
        b.entry = 0xffff_ffff_8020_0010;
        b.set_note(
            en::XEN_ELFNOTE_HYPERCALL_PAGE,
            Some(note_num(0xffff_ffff_8020_1000)),
        );
        let p = KernelImage::parse(&b.build()).unwrap().plan(true).unwrap();
        assert_eq!(p.virt_kstart, 0xffff_ffff_8020_0000);
    }
}
