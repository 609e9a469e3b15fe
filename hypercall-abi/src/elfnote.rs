//! Xen ELF notes, the `FEATURES` string, and the legacy `__xen_guest` section
//! (reference §4.1–§4.2).
//!
//! A PV kernel describes itself with ELF notes whose name is `"Xen"`; the note type selects the
//! item and the descriptor holds a NUL-terminated string or a little-endian number. Images
//! without notes may carry a `__xen_guest` section with a `KEY=VALUE,...` string instead.
//! Everything here is a pure parser over bytes; both the hypervisor's dom0 builder and the
//! toolstack use it.

use core::fmt;

use crate::version::{XenFeature, xenfeat_bit};

/// Note name of every Xen note, including its NUL (`namesz` = 4).
pub const XEN_ELFNOTE_NAME: &[u8; 4] = b"Xen\0";

/// `XEN_ELFNOTE_INFO`: free-form string, ignored.
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// `XEN_ELFNOTE_ENTRY`: virtual entry address.
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// `XEN_ELFNOTE_HYPERCALL_PAGE`: virtual address of the page to fill with stubs.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// `XEN_ELFNOTE_VIRT_BASE`: where pseudo-physical address 0 is mapped.
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// `XEN_ELFNOTE_PADDR_OFFSET`: subtracted from `p_paddr` to get the pseudo-physical address.
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// `XEN_ELFNOTE_XEN_VERSION`: must start with `"xen-3.0"`.
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// `XEN_ELFNOTE_GUEST_OS`: e.g. `"linux"`, `"Mini-OS"`, `"XTF"`.
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// `XEN_ELFNOTE_GUEST_VERSION`: informational.
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// `XEN_ELFNOTE_LOADER`: must start with `"generic"` unless the guest OS is Linux.
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// `XEN_ELFNOTE_PAE_MODE`: x86-32 only.
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// `XEN_ELFNOTE_FEATURES`: the feature string (see [`parse_features`]).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// `XEN_ELFNOTE_BSD_SYMTAB`: `"yes"` appends the symbol table after the image.
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// `XEN_ELFNOTE_HV_START_LOW`: x86-32 only.
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// `XEN_ELFNOTE_L1_MFN_VALID`: mask/value pairs for non-present L1 entries holding MFNs.
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// `XEN_ELFNOTE_SUSPEND_CANCEL`: cooperative suspend cancellation supported.
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// `XEN_ELFNOTE_INIT_P2M`: virtual address for the initial P2M outside the initial mapping.
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// `XEN_ELFNOTE_MOD_START_PFN`: the initrd may be left unmapped (`mod_start` is a PFN).
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES`: 32-bit bitmap of supported `XENFEAT_*`.
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: PVH entry; ignored for PV.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `XEN_ELFNOTE_CRASH_INFO`: crash-dump note (not in images).
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x100_0001;
/// `XEN_ELFNOTE_CRASH_REGS`: crash-dump note (not in images).
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x100_0002;
/// `XEN_ELFNOTE_DUMPCORE_NONE`: core-file note (not in images).
///
/// The reference gives only the range `0x2000000–0x2000003` as `DUMPCORE_*`; the four names
/// were cross-checked against Xen's `elfnote.h`.
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x200_0000;
/// `XEN_ELFNOTE_DUMPCORE_HEADER`: core-file note.
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x200_0001;
/// `XEN_ELFNOTE_DUMPCORE_XEN_VERSION`: core-file note.
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x200_0002;
/// `XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION`: core-file note.
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x200_0003;

code_enum! {
    /// Xen ELF note types. `name()` gives the name without the `XEN_ELFNOTE_` prefix.
    pub enum ElfNoteType: u32 ["Xen ELF note"] {
        /// Free-form info.
        Info = XEN_ELFNOTE_INFO => "INFO",
        /// Entry point.
        Entry = XEN_ELFNOTE_ENTRY => "ENTRY",
        /// Hypercall page.
        HypercallPage = XEN_ELFNOTE_HYPERCALL_PAGE => "HYPERCALL_PAGE",
        /// Virtual base.
        VirtBase = XEN_ELFNOTE_VIRT_BASE => "VIRT_BASE",
        /// Physical address offset.
        PaddrOffset = XEN_ELFNOTE_PADDR_OFFSET => "PADDR_OFFSET",
        /// Xen version string.
        XenVersion = XEN_ELFNOTE_XEN_VERSION => "XEN_VERSION",
        /// Guest OS.
        GuestOs = XEN_ELFNOTE_GUEST_OS => "GUEST_OS",
        /// Guest version.
        GuestVersion = XEN_ELFNOTE_GUEST_VERSION => "GUEST_VERSION",
        /// Loader.
        Loader = XEN_ELFNOTE_LOADER => "LOADER",
        /// PAE mode.
        PaeMode = XEN_ELFNOTE_PAE_MODE => "PAE_MODE",
        /// Feature string.
        Features = XEN_ELFNOTE_FEATURES => "FEATURES",
        /// BSD symbol table.
        BsdSymtab = XEN_ELFNOTE_BSD_SYMTAB => "BSD_SYMTAB",
        /// Hypervisor hole start (32-bit).
        HvStartLow = XEN_ELFNOTE_HV_START_LOW => "HV_START_LOW",
        /// L1 MFN-valid masks.
        L1MfnValid = XEN_ELFNOTE_L1_MFN_VALID => "L1_MFN_VALID",
        /// Suspend cancel.
        SuspendCancel = XEN_ELFNOTE_SUSPEND_CANCEL => "SUSPEND_CANCEL",
        /// Initial P2M address.
        InitP2m = XEN_ELFNOTE_INIT_P2M => "INIT_P2M",
        /// Unmapped initrd.
        ModStartPfn = XEN_ELFNOTE_MOD_START_PFN => "MOD_START_PFN",
        /// Supported-features bitmap.
        SupportedFeatures = XEN_ELFNOTE_SUPPORTED_FEATURES => "SUPPORTED_FEATURES",
        /// PVH entry.
        Phys32Entry = XEN_ELFNOTE_PHYS32_ENTRY => "PHYS32_ENTRY",
        /// Crash info.
        CrashInfo = XEN_ELFNOTE_CRASH_INFO => "CRASH_INFO",
        /// Crash registers.
        CrashRegs = XEN_ELFNOTE_CRASH_REGS => "CRASH_REGS",
        /// Dump-core marker.
        DumpcoreNone = XEN_ELFNOTE_DUMPCORE_NONE => "DUMPCORE_NONE",
        /// Dump-core header.
        DumpcoreHeader = XEN_ELFNOTE_DUMPCORE_HEADER => "DUMPCORE_HEADER",
        /// Dump-core Xen version.
        DumpcoreXenVersion = XEN_ELFNOTE_DUMPCORE_XEN_VERSION => "DUMPCORE_XEN_VERSION",
        /// Dump-core format version.
        DumpcoreFormatVersion = XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION => "DUMPCORE_FORMAT_VERSION",
    }
    try_from: [u64];
}

/// How a note's descriptor is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoteKind {
    /// NUL-terminated string.
    String,
    /// One little-endian number, as wide as the descriptor.
    Number,
    /// Several numbers (`L1_MFN_VALID`: mask/value pairs).
    Numbers,
    /// Not a loader input (crash / dump-core notes).
    Other,
}

impl ElfNoteType {
    /// The descriptor format of this note (reference §4.1 "Kind" column).
    #[must_use]
    pub const fn kind(self) -> NoteKind {
        match self {
            Self::Info
            | Self::XenVersion
            | Self::GuestOs
            | Self::GuestVersion
            | Self::Loader
            | Self::PaeMode
            | Self::Features
            | Self::BsdSymtab => NoteKind::String,
            Self::Entry
            | Self::HypercallPage
            | Self::VirtBase
            | Self::PaddrOffset
            | Self::HvStartLow
            | Self::SuspendCancel
            | Self::InitP2m
            | Self::ModStartPfn
            | Self::SupportedFeatures
            | Self::Phys32Entry => NoteKind::Number,
            Self::L1MfnValid => NoteKind::Numbers,
            Self::CrashInfo
            | Self::CrashRegs
            | Self::DumpcoreNone
            | Self::DumpcoreHeader
            | Self::DumpcoreXenVersion
            | Self::DumpcoreFormatVersion => NoteKind::Other,
        }
    }
}

/// Reads a numeric note descriptor: a little-endian number of 1, 2, 4 or 8 bytes.
#[must_use]
pub fn note_numeric(desc: &[u8]) -> Option<u64> {
    let mut buf = [0u8; 8];
    match desc.len() {
        1 | 2 | 4 | 8 => {
            let (head, _) = buf.split_at_mut(desc.len());
            head.copy_from_slice(desc);
            Some(u64::from_le_bytes(buf))
        }
        _ => None,
    }
}

/// The bytes of a string note descriptor up to (not including) its first NUL.
#[must_use]
pub fn note_string(desc: &[u8]) -> &[u8] {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    desc.get(..end).unwrap_or(desc)
}

/// Prefix the `XEN_VERSION` note (or `XEN_VER` key) must have.
pub const XEN_VERSION_PREFIX: &[u8] = b"xen-3.0";
/// Prefix the `LOADER` note must have (unless the guest OS is Linux).
pub const LOADER_GENERIC_PREFIX: &[u8] = b"generic";
/// Guest-OS prefix that exempts an image from the loader check.
pub const GUEST_OS_LINUX_PREFIX: &[u8] = b"linux";

/// The loader rule of reference §4.1: accept if `LOADER` starts with `"generic"` or `GUEST_OS`
/// starts with `"linux"`.
#[must_use]
pub fn loader_acceptable(loader: Option<&[u8]>, guest_os: Option<&[u8]>) -> bool {
    loader.is_some_and(|l| l.starts_with(LOADER_GENERIC_PREFIX))
        || guest_os.is_some_and(|g| g.starts_with(GUEST_OS_LINUX_PREFIX))
}

/// The version rule of reference §4.1: the Xen version string must start with `"xen-3.0"`.
#[must_use]
pub fn xen_version_acceptable(xen_version: Option<&[u8]>) -> bool {
    xen_version.is_some_and(|v| v.starts_with(XEN_VERSION_PREFIX))
}

// ---------------------------------------------------------------------------------------------
// Feature strings (reference §4.2)

/// Feature bits whose names Xen 4.17's own ELF loader (libelf) recognises. Names of other
/// `XENFEAT_*` bits are treated as unknown by Xen; the reference says all §15.2 names are
/// recognised. [`parse_features`] follows the reference; [`parse_features_known`] with this mask
/// reproduces Xen's loader.
pub const XEN_LIBELF_KNOWN_FEATURES: u32 =
    xenfeat_bit(crate::version::XENFEAT_WRITABLE_PAGE_TABLES)
        | xenfeat_bit(crate::version::XENFEAT_WRITABLE_DESCRIPTOR_TABLES)
        | xenfeat_bit(crate::version::XENFEAT_AUTO_TRANSLATED_PHYSMAP)
        | xenfeat_bit(crate::version::XENFEAT_SUPERVISOR_MODE_KERNEL)
        | xenfeat_bit(crate::version::XENFEAT_PAE_PGDIR_ABOVE_4GB)
        | xenfeat_bit(crate::version::XENFEAT_HVM_CALLBACK_VECTOR)
        | xenfeat_bit(crate::version::XENFEAT_DOM0);

/// Every feature bit defined in reference §15.2.
pub const ALL_KNOWN_FEATURES: u32 = (1 << 18) - 1;

/// One `|`-separated item of a feature string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeatureToken<'a> {
    /// The name without a leading `!`.
    pub name: &'a [u8],
    /// True if the item was prefixed with `!`.
    pub required: bool,
    /// The feature it names, if recognised.
    pub feature: Option<XenFeature>,
}

/// Iterator over the items of a feature string; see [`feature_tokens`].
#[derive(Clone, Debug)]
pub struct FeatureTokens<'a> {
    rest: &'a [u8],
    known: u32,
}

impl<'a> Iterator for FeatureTokens<'a> {
    type Item = FeatureToken<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = match self.rest.iter().position(|&b| b == b'|') {
                Some(i) => (
                    self.rest.get(..i).unwrap_or_default(),
                    self.rest.get(i + 1..).unwrap_or_default(),
                ),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            // An empty item ("a||b", a trailing '|') names nothing and is skipped; a lone "!" is
            // reported as an unknown required name, as Xen's loader rejects it.
            if item.is_empty() {
                continue;
            }
            let (name, required) = match item.strip_prefix(b"!") {
                Some(name) => (name, true),
                None => (item, false),
            };
            let known = self.known;
            let feature = XenFeature::from_name(name).filter(|f| known & f.bit() != 0);
            return Some(FeatureToken {
                name,
                required,
                feature,
            });
        }
    }
}

/// Splits a feature string into items (the string ends at its first NUL, if any).
#[must_use]
pub fn feature_tokens(features: &[u8]) -> FeatureTokens<'_> {
    feature_tokens_known(features, ALL_KNOWN_FEATURES)
}

/// [`feature_tokens`], recognising only the feature bits in `known`.
#[must_use]
pub fn feature_tokens_known(features: &[u8], known: u32) -> FeatureTokens<'_> {
    FeatureTokens {
        rest: note_string(features),
        known,
    }
}

/// Supported and required feature bitmaps (submap 0) of a guest image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet {
    /// Features the kernel can use (required ones included).
    pub supported: u32,
    /// Features the kernel cannot run without.
    pub required: u32,
}

impl FeatureSet {
    /// Adds the bitmap of a `SUPPORTED_FEATURES` note (ORed into `supported`).
    #[must_use]
    pub const fn with_supported_bitmap(self, bitmap: u32) -> Self {
        Self {
            supported: self.supported | bitmap,
            required: self.required,
        }
    }

    /// The loader rule: required features plus `forced` ones (admin-forced) that the kernel does
    /// not declare supported. Non-zero means the build must fail.
    #[must_use]
    pub const fn unsupported_required(self, forced: u32) -> u32 {
        (self.required | forced) & !self.supported
    }
}

/// The result of [`parse_features`]: the bitmaps plus the unrecognised items.
#[derive(Clone, Debug)]
pub struct ParsedFeatures<'a> {
    /// Bitmaps of the recognised items.
    pub set: FeatureSet,
    tokens: FeatureTokens<'a>,
}

impl<'a> ParsedFeatures<'a> {
    /// The unrecognised items, in order. Xen ignores unknown supported names but rejects an image
    /// with an unknown required (`!`) name; the caller decides.
    pub fn unknown(&self) -> impl Iterator<Item = FeatureToken<'a>> + use<'a> {
        self.tokens.clone().filter(|t| t.feature.is_none())
    }

    /// True if any unrecognised item was marked required.
    #[must_use]
    pub fn has_unknown_required(&self) -> bool {
        self.unknown().any(|t| t.required)
    }
}

/// Parses a feature string such as `"!writable_page_tables|pae_pgdir_above_4gb"`.
///
/// Names are `XENFEAT_*` names without the prefix, separated by `|`; a `!` prefix makes the
/// feature required (and supported). Unknown names are not in the bitmaps and are reported by
/// [`ParsedFeatures::unknown`]. The string ends at its first NUL. This follows the reference in
/// recognising every §15.2 name; see [`parse_features_known`] for Xen's narrower loader.
#[must_use]
pub fn parse_features(features: &[u8]) -> ParsedFeatures<'_> {
    parse_features_known(features, ALL_KNOWN_FEATURES)
}

/// [`parse_features`], recognising only the feature bits in `known`
/// (e.g. [`XEN_LIBELF_KNOWN_FEATURES`]).
#[must_use]
pub fn parse_features_known(features: &[u8], known: u32) -> ParsedFeatures<'_> {
    let tokens = feature_tokens_known(features, known);
    let mut set = FeatureSet::default();
    for token in tokens.clone() {
        if let Some(f) = token.feature {
            set.supported |= f.bit();
            if token.required {
                set.required |= f.bit();
            }
        }
    }
    ParsedFeatures { set, tokens }
}

// ---------------------------------------------------------------------------------------------
// Legacy `__xen_guest` section (reference §4.1)

/// Name of the legacy ELF section.
pub const XEN_GUEST_SECTION: &[u8] = b"__xen_guest";

/// Parses a C-style unsigned number like `strtoull(s, NULL, 0)`: `0x`/`0X` hexadecimal, a
/// leading `0` octal, otherwise decimal.
///
/// Unlike `strtoull` the whole input must be a number: no sign, no surrounding whitespace, no
/// trailing characters, no overflow. Returns `None` otherwise.
#[must_use]
pub fn parse_c_number(text: &[u8]) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = text
        .strip_prefix(b"0x")
        .or_else(|| text.strip_prefix(b"0X"))
    {
        (hex, 16)
    } else if text.len() > 1 && text.first() == Some(&b'0') {
        (text.get(1..)?, 8)
    } else {
        (text, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        let digit = char::from(b).to_digit(radix)?;
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))?;
    }
    Some(value)
}

/// One `KEY[=VALUE]` item of a `__xen_guest` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XenGuestItem<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value, or `None` for a bare key.
    pub value: Option<&'a [u8]>,
}

/// Iterator over the items of a `__xen_guest` string; see [`xen_guest_items`].
#[derive(Clone, Debug)]
pub struct XenGuestItems<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for XenGuestItems<'a> {
    type Item = XenGuestItem<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = match self.rest.iter().position(|&b| b == b',') {
                Some(i) => (
                    self.rest.get(..i).unwrap_or_default(),
                    self.rest.get(i + 1..).unwrap_or_default(),
                ),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if item.is_empty() {
                continue;
            }
            return Some(match item.iter().position(|&b| b == b'=') {
                Some(i) => XenGuestItem {
                    key: item.get(..i).unwrap_or_default(),
                    value: Some(item.get(i + 1..).unwrap_or_default()),
                },
                None => XenGuestItem {
                    key: item,
                    value: None,
                },
            });
        }
    }
}

/// Splits a `__xen_guest` string into items (the string ends at its first NUL).
#[must_use]
pub fn xen_guest_items(text: &[u8]) -> XenGuestItems<'_> {
    XenGuestItems {
        rest: note_string(text),
    }
}

/// A numeric `__xen_guest` key had a value that is not a C-style number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvalidXenGuestNumber {
    /// The key whose value failed to parse.
    pub key: &'static str,
}

impl fmt::Display for InvalidXenGuestNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "__xen_guest: {} is not a number", self.key)
    }
}

impl core::error::Error for InvalidXenGuestNumber {}

/// The recognised contents of a legacy `__xen_guest` string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenGuestInfo<'a> {
    /// `GUEST_OS`.
    pub guest_os: Option<&'a [u8]>,
    /// `GUEST_VER`.
    pub guest_ver: Option<&'a [u8]>,
    /// `XEN_VER` (must start with `"xen-3.0"`).
    pub xen_ver: Option<&'a [u8]>,
    /// `LOADER`.
    pub loader: Option<&'a [u8]>,
    /// `PAE` (`yes`, `yes[extended-cr3]`; x86-32 only).
    pub pae: Option<&'a [u8]>,
    /// `BSD_SYMTAB` present (with or without a value).
    pub bsd_symtab: bool,
    /// `VIRT_BASE`.
    pub virt_base: Option<u64>,
    /// `VIRT_ENTRY`.
    pub virt_entry: Option<u64>,
    /// `ELF_PADDR_OFFSET`.
    pub elf_paddr_offset: Option<u64>,
    /// `HYPERCALL_PAGE`: a **page number** relative to `VIRT_BASE` (unlike the note).
    pub hypercall_page: Option<u64>,
    /// `FEATURES` (parse with [`parse_features`]).
    pub features: Option<&'a [u8]>,
    /// Items with keys not listed above (Xen ignores them).
    pub unknown_keys: usize,
}

impl<'a> XenGuestInfo<'a> {
    /// Parses a `__xen_guest` string (comma-separated `KEY=VALUE` items, bare `KEY` allowed).
    /// Later occurrences of a key override earlier ones.
    ///
    /// # Errors
    ///
    /// [`InvalidXenGuestNumber`] if `VIRT_BASE`, `VIRT_ENTRY`, `ELF_PADDR_OFFSET` or
    /// `HYPERCALL_PAGE` has a missing or non-numeric value.
    pub fn parse(text: &'a [u8]) -> Result<Self, InvalidXenGuestNumber> {
        let mut info = Self::default();
        for XenGuestItem { key, value } in xen_guest_items(text) {
            let number = |name: &'static str| {
                value
                    .and_then(parse_c_number)
                    .ok_or(InvalidXenGuestNumber { key: name })
            };
            match key {
                b"GUEST_OS" => info.guest_os = value,
                b"GUEST_VER" => info.guest_ver = value,
                b"XEN_VER" => info.xen_ver = value,
                b"LOADER" => info.loader = value,
                b"PAE" => info.pae = value,
                b"BSD_SYMTAB" => info.bsd_symtab = true,
                b"FEATURES" => info.features = value,
                b"VIRT_BASE" => info.virt_base = Some(number("VIRT_BASE")?),
                b"VIRT_ENTRY" => info.virt_entry = Some(number("VIRT_ENTRY")?),
                b"ELF_PADDR_OFFSET" => {
                    info.elf_paddr_offset = Some(number("ELF_PADDR_OFFSET")?);
                }
                b"HYPERCALL_PAGE" => info.hypercall_page = Some(number("HYPERCALL_PAGE")?),
                _ => info.unknown_keys = info.unknown_keys.saturating_add(1),
            }
        }
        Ok(info)
    }

    /// Virtual address of the hypercall page: `VIRT_BASE + HYPERCALL_PAGE * 4096`
    /// (`VIRT_BASE` defaults to 0). `None` if unset or on overflow.
    #[must_use]
    pub fn hypercall_page_va(&self) -> Option<u64> {
        let page = self.hypercall_page?;
        page.checked_mul(crate::PAGE_SIZE as u64)?
            .checked_add(self.virt_base.unwrap_or(0))
    }

    /// The physical-address offset: `ELF_PADDR_OFFSET`, defaulting to `VIRT_BASE` for legacy
    /// images (and to 0 if neither is given).
    #[must_use]
    pub fn paddr_offset(&self) -> u64 {
        self.elf_paddr_offset.or(self.virt_base).unwrap_or(0)
    }

    /// The parsed `FEATURES` value (empty when absent).
    #[must_use]
    pub fn parsed_features(&self) -> ParsedFeatures<'a> {
        parse_features(self.features.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{
        XENFEAT_DOM0, XENFEAT_MMU_PT_UPDATE_PRESERVE_AD, XENFEAT_PAE_PGDIR_ABOVE_4GB,
        XENFEAT_WRITABLE_PAGE_TABLES,
    };
    use std::vec::Vec;

    const WPT: u32 = 1 << XENFEAT_WRITABLE_PAGE_TABLES;
    const PAE: u32 = 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB;

    fn unknown(p: &ParsedFeatures<'_>) -> Vec<(Vec<u8>, bool)> {
        p.unknown().map(|t| (t.name.to_vec(), t.required)).collect()
    }

    #[test]
    fn xtf_feature_string() {
        let p = parse_features(b"!writable_page_tables|pae_pgdir_above_4gb");
        assert_eq!(
            p.set,
            FeatureSet {
                supported: WPT | PAE,
                required: WPT
            }
        );
        assert_eq!(unknown(&p), []);
        assert!(!p.has_unknown_required());
    }

    #[test]
    fn required_implies_supported_and_order_does_not_matter() {
        let p = parse_features(b"pae_pgdir_above_4gb|!dom0");
        assert_eq!(p.set.supported, PAE | (1 << XENFEAT_DOM0));
        assert_eq!(p.set.required, 1 << XENFEAT_DOM0);
        assert_eq!(p.set.unsupported_required(0), 0);
        assert_eq!(p.set.unsupported_required(WPT), WPT);
    }

    #[test]
    fn unknown_names_are_reported_not_set() {
        let p = parse_features(b"frobnicate|!teleport|writable_page_tables");
        assert_eq!(
            p.set,
            FeatureSet {
                supported: WPT,
                required: 0
            }
        );
        assert_eq!(
            unknown(&p),
            [
                (b"frobnicate".to_vec(), false),
                (b"teleport".to_vec(), true)
            ]
        );
        assert!(p.has_unknown_required());
        // Prefix-qualified names are not recognised.
        let q = parse_features(b"XENFEAT_dom0");
        assert_eq!(q.set, FeatureSet::default());
        assert_eq!(unknown(&q), [(b"XENFEAT_dom0".to_vec(), false)]);
    }

    #[test]
    fn empty_and_degenerate_strings() {
        let p = parse_features(b"");
        assert_eq!(p.set, FeatureSet::default());
        assert_eq!(unknown(&p), []);
        // Empty items are skipped, a lone "!" is an unknown required (empty) name.
        let q = parse_features(b"|writable_page_tables||!|");
        assert_eq!(q.set.supported, WPT);
        assert_eq!(unknown(&q), [(Vec::new(), true)]);
        // The string ends at the first NUL (note descriptors are NUL-terminated).
        let r = parse_features(b"!writable_page_tables\0|dom0");
        assert_eq!(
            r.set,
            FeatureSet {
                supported: WPT,
                required: WPT
            }
        );
        // "!!name" is not a valid name.
        let s = parse_features(b"!!dom0");
        assert_eq!(unknown(&s), [(b"!dom0".to_vec(), true)]);
    }

    #[test]
    fn libelf_mask_treats_newer_names_as_unknown() {
        let text = b"!mmu_pt_update_preserve_ad|writable_page_tables";
        let reference = parse_features(text);
        assert_eq!(
            reference.set.required,
            1 << XENFEAT_MMU_PT_UPDATE_PRESERVE_AD
        );
        let xen = parse_features_known(text, XEN_LIBELF_KNOWN_FEATURES);
        assert_eq!(
            xen.set,
            FeatureSet {
                supported: WPT,
                required: 0
            }
        );
        assert!(xen.has_unknown_required());
    }

    #[test]
    fn supported_features_note_is_ored() {
        let p = parse_features(b"!writable_page_tables");
        assert_eq!(p.set.with_supported_bitmap(PAE).supported, WPT | PAE);
    }

    #[test]
    fn note_types_and_kinds() {
        assert_eq!(ElfNoteType::try_from(2u32), Ok(ElfNoteType::HypercallPage));
        assert_eq!(ElfNoteType::HypercallPage.kind(), NoteKind::Number);
        assert_eq!(ElfNoteType::Features.kind(), NoteKind::String);
        assert_eq!(
            ElfNoteType::try_from(0x200_0003u64),
            Ok(ElfNoteType::DumpcoreFormatVersion)
        );
        assert!(ElfNoteType::try_from(19u32).is_err());
        assert_eq!(
            note_numeric(&0xffff_ffff_8000_0000u64.to_le_bytes()),
            Some(0xffff_ffff_8000_0000)
        );
        assert_eq!(note_numeric(&[0x00, 0x10, 0, 0]), Some(0x1000));
        assert_eq!(note_numeric(&[1, 2, 3]), None);
        assert_eq!(note_string(b"xen-3.0\0\0\0"), b"xen-3.0");
    }

    #[test]
    fn loader_rules() {
        assert!(loader_acceptable(Some(b"generic"), Some(b"XTF")));
        assert!(loader_acceptable(None, Some(b"linux")));
        assert!(!loader_acceptable(Some(b"elf"), Some(b"Mini-OS")));
        assert!(!loader_acceptable(None, None));
        assert!(xen_version_acceptable(Some(b"xen-3.0")));
        assert!(!xen_version_acceptable(Some(b"xen-2.0")));
        assert!(!xen_version_acceptable(None));
    }

    #[test]
    fn c_numbers() {
        assert_eq!(parse_c_number(b"0"), Some(0));
        assert_eq!(parse_c_number(b"4096"), Some(4096));
        assert_eq!(parse_c_number(b"0x10"), Some(16));
        assert_eq!(parse_c_number(b"0XfF"), Some(255));
        assert_eq!(parse_c_number(b"010"), Some(8));
        assert_eq!(
            parse_c_number(b"0xFFFFFFFF80000000"),
            Some(0xFFFF_FFFF_8000_0000)
        );
        assert_eq!(parse_c_number(b"0x1_0000_0000_0000_0000"), None);
        assert_eq!(parse_c_number(b"0x10000000000000000"), None); // overflow
        assert_eq!(parse_c_number(b"08"), None); // not octal
        assert_eq!(parse_c_number(b"0x"), None);
        assert_eq!(parse_c_number(b""), None);
        assert_eq!(parse_c_number(b"12ab"), None);
        assert_eq!(parse_c_number(b"-1"), None);
    }

    #[test]
    fn legacy_xen_guest_string() {
        let text = b"GUEST_OS=linux,GUEST_VER=2.6,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,\
ELF_PADDR_OFFSET=0x0,HYPERCALL_PAGE=0x2,LOADER=generic,FEATURES=!writable_page_tables,\
BSD_SYMTAB,PAE=yes[extended-cr3],FOO=bar\0garbage";
        let info = XenGuestInfo::parse(text).expect("valid string");
        assert_eq!(info.guest_os, Some(&b"linux"[..]));
        assert_eq!(info.guest_ver, Some(&b"2.6"[..]));
        assert_eq!(info.virt_base, Some(0xffff_ffff_8000_0000));
        assert_eq!(info.elf_paddr_offset, Some(0));
        assert_eq!(info.hypercall_page, Some(2));
        assert_eq!(info.hypercall_page_va(), Some(0xffff_ffff_8000_2000));
        assert_eq!(info.paddr_offset(), 0);
        assert!(info.bsd_symtab);
        assert_eq!(info.pae, Some(&b"yes[extended-cr3]"[..]));
        assert_eq!(info.unknown_keys, 1);
        assert_eq!(
            info.parsed_features().set,
            FeatureSet {
                supported: WPT,
                required: WPT
            }
        );
        assert!(loader_acceptable(info.loader, info.guest_os));
        assert!(xen_version_acceptable(info.xen_ver));
    }

    #[test]
    fn legacy_defaults_and_errors() {
        let info = XenGuestInfo::parse(b"VIRT_BASE=0xC0000000,HYPERCALL_PAGE=1").expect("valid");
        // ELF_PADDR_OFFSET defaults to VIRT_BASE for legacy images.
        assert_eq!(info.paddr_offset(), 0xC000_0000);
        assert_eq!(info.hypercall_page_va(), Some(0xC000_1000));
        assert_eq!(
            XenGuestInfo::parse(b"VIRT_BASE=oops"),
            Err(InvalidXenGuestNumber { key: "VIRT_BASE" })
        );
        assert_eq!(
            XenGuestInfo::parse(b"HYPERCALL_PAGE"),
            Err(InvalidXenGuestNumber {
                key: "HYPERCALL_PAGE"
            })
        );
        let empty = XenGuestInfo::parse(b"").expect("empty is valid");
        assert_eq!(empty, XenGuestInfo::default());
        assert_eq!(empty.hypercall_page_va(), None);
        let huge = XenGuestInfo::parse(b"HYPERCALL_PAGE=0xffffffffffffffff").expect("valid");
        assert_eq!(huge.hypercall_page_va(), None);
        let items: Vec<_> = xen_guest_items(b"A=1,,B").collect();
        assert_eq!(
            items,
            [
                XenGuestItem {
                    key: b"A",
                    value: Some(b"1")
                },
                XenGuestItem {
                    key: b"B",
                    value: None
                },
            ]
        );
    }
}
