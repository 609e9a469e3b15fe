//! `start_info`: the page whose virtual address a PV guest finds in `rsi` at entry (reference §5),
//! and the dom0 VGA/VESA console description that follows it in the same page (§5.1).

use crate::types::{EvtchnPort, XenPfn};

/// Length of [`StartInfo::magic`].
pub const START_INFO_MAGIC_LEN: usize = 32;
/// Magic string of a 64-bit PV domain (without the terminating NUL).
pub const START_INFO_MAGIC_X86_64: &[u8] = b"xen-3.0-x86_64";
/// Magic string of a 32-bit PAE PV domain on 64-bit Xen (not supported by Oxen; for reference).
pub const START_INFO_MAGIC_X86_32P: &[u8] = b"xen-3.0-x86_32p";
/// The prefix guests check in the magic.
pub const START_INFO_MAGIC_PREFIX: &[u8] = b"xen-3.0";
/// `MAX_GUEST_CMDLINE`: size of [`StartInfo::cmd_line`] including the NUL.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `SIF_PRIVILEGED`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN`: this is the initial (control) domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`: `mod_start` points to a multiboot module list.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`: `mod_start` is a PFN (module not mapped).
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`: tools understand a virtually mapped linear P2M.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// `SIF_PM_MASK`: dom0 power-management options (bits 8–15).
pub const SIF_PM_MASK: u32 = 0xFF << 8;

/// The initial mapping ends on a multiple of this many bytes (reference §4.4, the "4 MiB
/// boundary rule").
pub const INITIAL_MAPPING_ALIGN: u64 = 4 << 20;
/// At least this much mapped, zeroed memory follows the bootstrap stack page (reference §4.4).
pub const INITIAL_MAPPING_MIN_PADDING: u64 = 512 << 10;

/// The end (exclusive virtual address) of the initial mapping, given the end of the bootstrap
/// stack (the initial `rsp`): the first [`INITIAL_MAPPING_ALIGN`] boundary that leaves at least
/// [`INITIAL_MAPPING_MIN_PADDING`] after the stack (reference §4.4).
///
/// Both builders solve for the same value: dom0's "round up to 4 MiB, add 4 MiB if less than
/// 512 KiB remain" and the domU builder's search for the smallest 4 MiB-aligned end holding the
/// page tables, the stack and 512 KiB of padding both give `round_up(stack_end + 512 KiB, 4 MiB)`.
/// `None` if that overflows.
#[must_use]
pub const fn initial_mapping_end(stack_end: u64) -> Option<u64> {
    let Some(min_end) = stack_end.checked_add(INITIAL_MAPPING_MIN_PADDING) else {
        return None;
    };
    let Some(bumped) = min_end.checked_add(INITIAL_MAPPING_ALIGN - 1) else {
        return None;
    };
    Some(bumped & !(INITIAL_MAPPING_ALIGN - 1))
}

bitflags::bitflags! {
    /// [`StartInfo::flags`] as a typed set (`SIF_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct SifFlags: u32 {
        /// Privileged domain.
        const PRIVILEGED = SIF_PRIVILEGED;
        /// Initial domain.
        const INITDOMAIN = SIF_INITDOMAIN;
        /// `mod_start` is a multiboot module list.
        const MULTIBOOT_MOD = SIF_MULTIBOOT_MOD;
        /// `mod_start` is a PFN.
        const MOD_START_PFN = SIF_MOD_START_PFN;
        /// Tools understand a virtual linear P2M.
        const VIRT_P2M_4TOOLS = SIF_VIRT_P2M_4TOOLS;
        /// Power-management bits (a multi-bit field).
        const PM_MASK = SIF_PM_MASK;
    }
}

/// One entry of the `SIF_MULTIBOOT_MOD` module list (16 bytes, terminated by `mod_start == 0`).
///
/// Layout given in prose by reference §5 (`{u32 mod_start; u32 mod_end; u32 cmdline; u32 pad}`);
/// offsets derived, not measured.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MultibootModule {
    /// Start of the module, relative to the package.
    pub mod_start: u32,
    /// Last byte of the module (inclusive), relative to the package.
    pub mod_end: u32,
    /// Offset of the module's command line, relative to the package.
    pub cmdline: u32,
    /// Padding; zero.
    pub _pad0: u32,
}

assert_layout!(MultibootModule, size = 16, align = 4, {
    mod_start: u32 = 0,
    mod_end: u32 = 4,
    cmdline: u32 = 8,
    _pad0: u32 = 12,
});

/// The `console` union of `start_info` (16 bytes at offset 72).
///
/// The storage follows the domU member (`{xen_pfn_t mfn; uint32_t evtchn;}`). The dom0 member
/// (`{uint32_t info_off; uint32_t info_size;}`) overlays `mfn`: `info_off` is its low half and
/// `info_size` its high half (x86-64 is little-endian); use the `dom0_*` accessors.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartInfoConsole {
    /// domU: MFN of the console ring page. dom0: `info_off | info_size << 32`.
    pub mfn: XenPfn,
    /// domU: local event-channel port of the console.
    pub evtchn: EvtchnPort,
    /// Padding; zero.
    pub _pad0: u32,
}

impl StartInfoConsole {
    /// The domU view: console ring MFN and port.
    #[must_use]
    pub const fn domu(mfn: XenPfn, evtchn: EvtchnPort) -> Self {
        Self {
            mfn,
            evtchn,
            _pad0: 0,
        }
    }

    /// The dom0 view: offset of [`Dom0VgaConsoleInfo`] from the start of `start_info` and its
    /// size (0 if there is no VGA/VESA console).
    #[must_use]
    pub const fn dom0(info_off: u32, info_size: u32) -> Self {
        Self {
            mfn: (info_size as u64) << 32 | info_off as u64,
            evtchn: 0,
            _pad0: 0,
        }
    }

    /// dom0 view: `console.dom0.info_off` (byte offset 72 of `start_info`).
    #[must_use]
    pub const fn dom0_info_off(&self) -> u32 {
        (self.mfn & 0xFFFF_FFFF) as u32
    }

    /// dom0 view: `console.dom0.info_size` (byte offset 76 of `start_info`).
    #[must_use]
    pub const fn dom0_info_size(&self) -> u32 {
        (self.mfn >> 32) as u32
    }
}

assert_layout!(StartInfoConsole, size = 16, align = 8, {
    mfn: u64 = 0,
    evtchn: u32 = 8,
    _pad0: u32 = 12,
});

/// `start_info` (1168 bytes, measured; reference §5).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    /// NUL-terminated `"xen-<version>-<platform>"`, e.g. `"xen-3.0-x86_64"`.
    pub magic: [u8; START_INFO_MAGIC_LEN],
    /// Total pages allocated to the domain.
    pub nr_pages: u64,
    /// Machine address (not MFN) of the shared_info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// MFN of the XenStore ring page.
    pub store_mfn: XenPfn,
    /// Local event-channel port for XenStore.
    pub store_evtchn: EvtchnPort,
    /// Padding; zero.
    pub _pad1: u32,
    /// Console information (domU ring or dom0 VGA info location).
    pub console: StartInfoConsole,
    /// Virtual address of the bootstrap L4 page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames, contiguous from `pt_base`.
    pub nr_pt_frames: u64,
    /// Virtual address of the P2M array (`xen_pfn_t[nr_pages]`).
    pub mfn_list: u64,
    /// Virtual address of the initrd/module, or its PFN with `SIF_MOD_START_PFN`; 0 if none.
    pub mod_start: u64,
    /// Module size in bytes.
    pub mod_len: u64,
    /// NUL-terminated kernel command line.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of P2M frames placed via `INIT_P2M` (0 otherwise).
    pub first_p2m_pfn: u64,
    /// Number of such P2M frames.
    pub nr_p2m_frames: u64,
}

impl Default for StartInfo {
    fn default() -> Self {
        Self {
            magic: [0; START_INFO_MAGIC_LEN],
            nr_pages: 0,
            shared_info: 0,
            flags: 0,
            _pad0: 0,
            store_mfn: 0,
            store_evtchn: 0,
            _pad1: 0,
            console: StartInfoConsole::default(),
            pt_base: 0,
            nr_pt_frames: 0,
            mfn_list: 0,
            mod_start: 0,
            mod_len: 0,
            cmd_line: [0; MAX_GUEST_CMDLINE],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }
}

/// A string did not fit a fixed-size NUL-terminated field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TooLong {
    /// Bytes available including the terminating NUL.
    pub capacity: usize,
    /// Bytes that were offered (without NUL).
    pub len: usize,
}

impl core::fmt::Display for TooLong {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} bytes do not fit a {}-byte NUL-terminated field",
            self.len, self.capacity
        )
    }
}

impl core::error::Error for TooLong {}

/// Copies `src` into `dst` followed by NUL padding.
fn copy_cstr(dst: &mut [u8], src: &[u8]) -> Result<(), TooLong> {
    let too_long = TooLong {
        capacity: dst.len(),
        len: src.len(),
    };
    if src.len() >= dst.len() {
        return Err(too_long);
    }
    let (head, tail) = dst.split_at_mut(src.len());
    head.copy_from_slice(src);
    tail.fill(0);
    Ok(())
}

/// The bytes of a NUL-terminated field up to (not including) the first NUL.
fn cstr_bytes(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field.get(..end).unwrap_or(field)
}

impl StartInfo {
    /// A zeroed `start_info` with the 64-bit PV magic filled in.
    #[must_use]
    pub fn new_x86_64() -> Self {
        let mut si = Self::default();
        let (head, _) = si.magic.split_at_mut(START_INFO_MAGIC_X86_64.len());
        head.copy_from_slice(START_INFO_MAGIC_X86_64);
        si
    }

    /// The magic without its NUL terminator.
    #[must_use]
    pub fn magic_bytes(&self) -> &[u8] {
        cstr_bytes(&self.magic)
    }

    /// True if the magic starts with `"xen-3.0"`, the prefix guests check.
    #[must_use]
    pub fn has_valid_magic(&self) -> bool {
        self.magic.starts_with(START_INFO_MAGIC_PREFIX)
    }

    /// The command line without its NUL terminator.
    #[must_use]
    pub fn cmd_line_bytes(&self) -> &[u8] {
        cstr_bytes(&self.cmd_line)
    }

    /// Stores a command line (NUL-padded).
    ///
    /// # Errors
    ///
    /// [`TooLong`] if `cmdline` has 1024 bytes or more (the NUL must fit).
    pub fn set_cmd_line(&mut self, cmdline: &[u8]) -> Result<(), TooLong> {
        copy_cstr(&mut self.cmd_line, cmdline)
    }

    /// [`flags`](Self::flags) as typed `SIF_*` flags (unknown bits kept).
    #[must_use]
    pub const fn sif_flags(&self) -> SifFlags {
        SifFlags::from_bits_retain(self.flags)
    }
}

assert_layout!(StartInfo, size = 1168, align = 8, {
    magic: [u8; 32] = 0,
    nr_pages: u64 = 32,
    shared_info: u64 = 40,
    flags: u32 = 48,
    _pad0: u32 = 52,
    store_mfn: u64 = 56,
    store_evtchn: u32 = 64,
    _pad1: u32 = 68,
    console: StartInfoConsole = 72,
    pt_base: u64 = 88,
    nr_pt_frames: u64 = 96,
    mfn_list: u64 = 104,
    mod_start: u64 = 112,
    mod_len: u64 = 120,
    cmd_line: [u8; 1024] = 128,
    first_p2m_pfn: u64 = 1152,
    nr_p2m_frames: u64 = 1160,
});

// Absolute offsets of the union members, as measured in reference §5.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(StartInfo, console.mfn) == 72); // console.domU.mfn
    assert!(offset_of!(StartInfo, console.evtchn) == 80); // console.domU.evtchn
    assert!(offset_of!(StartInfo, console._pad0) == 84);
    // console.dom0.info_off @72 and info_size @76 are the halves of `console.mfn`.
};

/// `XEN_VGATYPE_TEXT_MODE_3`: VGA text mode 3.
pub const XEN_VGATYPE_TEXT_MODE_3: u8 = 0x03;
/// `XEN_VGATYPE_VESA_LFB`: VESA linear framebuffer.
pub const XEN_VGATYPE_VESA_LFB: u8 = 0x23;
/// `XEN_VGATYPE_EFI_LFB`: EFI linear framebuffer.
pub const XEN_VGATYPE_EFI_LFB: u8 = 0x70;

/// Size of [`Dom0VgaConsoleInfo`] as reported in `console.dom0.info_size`.
pub const DOM0_VGA_CONSOLE_INFO_SIZE: u32 = 40;

/// The `text_mode_3` member of `dom0_vga_console_info.u` (offsets relative to the union, which
/// starts at byte 4 of the struct; derived, not measured, from the absolute offsets of §5.1).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0VgaTextMode3 {
    /// Font height in pixels.
    pub font_height: u16,
    /// Cursor column.
    pub cursor_x: u16,
    /// Cursor row.
    pub cursor_y: u16,
    /// Number of text rows.
    pub rows: u16,
    /// Number of text columns.
    pub columns: u16,
}

assert_layout!(Dom0VgaTextMode3, size = 10, align = 2, {
    font_height: u16 = 0,
    cursor_x: u16 = 2,
    cursor_y: u16 = 4,
    rows: u16 = 6,
    columns: u16 = 8,
});

/// The `vesa_lfb` member of `dom0_vga_console_info.u` (the larger member; offsets relative to
/// the union at byte 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0VgaVesaLfb {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes per scan line.
    pub bytes_per_line: u16,
    /// Bits per pixel.
    pub bits_per_pixel: u16,
    /// Low 32 bits of the framebuffer physical address.
    pub lfb_base: u32,
    /// Framebuffer size in units of 64 KiB.
    pub lfb_size: u32,
    /// Bit position of red.
    pub red_pos: u8,
    /// Width of red.
    pub red_size: u8,
    /// Bit position of green.
    pub green_pos: u8,
    /// Width of green.
    pub green_size: u8,
    /// Bit position of blue.
    pub blue_pos: u8,
    /// Width of blue.
    pub blue_size: u8,
    /// Bit position of the reserved channel.
    pub rsvd_pos: u8,
    /// Width of the reserved channel.
    pub rsvd_size: u8,
    /// VBE capabilities.
    pub gbl_caps: u32,
    /// VBE mode attributes.
    pub mode_attrs: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// High 32 bits of the framebuffer physical address.
    pub ext_lfb_base: u32,
}

assert_layout!(Dom0VgaVesaLfb, size = 36, align = 4, {
    width: u16 = 0,
    height: u16 = 2,
    bytes_per_line: u16 = 4,
    bits_per_pixel: u16 = 6,
    lfb_base: u32 = 8,
    lfb_size: u32 = 12,
    red_pos: u8 = 16,
    red_size: u8 = 17,
    green_pos: u8 = 18,
    green_size: u8 = 19,
    blue_pos: u8 = 20,
    blue_size: u8 = 21,
    rsvd_pos: u8 = 22,
    rsvd_size: u8 = 23,
    gbl_caps: u32 = 24,
    mode_attrs: u16 = 28,
    _pad0: u16 = 30,
    ext_lfb_base: u32 = 32,
});

/// `dom0_vga_console_info` (40 bytes; reference §5.1), placed in the `start_info` page at
/// `console.dom0.info_off`.
///
/// The union is stored as its VESA member; [`text_mode_3`](Self::text_mode_3) reads the text-mode
/// view of the same bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0VgaConsoleInfo {
    /// `XEN_VGATYPE_*`.
    pub video_type: u8,
    /// Padding; zero.
    pub _pad0: [u8; 3],
    /// The union (VESA layout).
    pub u: Dom0VgaVesaLfb,
}

impl Dom0VgaConsoleInfo {
    /// Builds a text-mode-3 description.
    #[must_use]
    pub const fn from_text_mode_3(text: Dom0VgaTextMode3) -> Self {
        let mut u = Dom0VgaVesaLfb {
            width: 0,
            height: 0,
            bytes_per_line: 0,
            bits_per_pixel: 0,
            lfb_base: 0,
            lfb_size: 0,
            red_pos: 0,
            red_size: 0,
            green_pos: 0,
            green_size: 0,
            blue_pos: 0,
            blue_size: 0,
            rsvd_pos: 0,
            rsvd_size: 0,
            gbl_caps: 0,
            mode_attrs: 0,
            _pad0: 0,
            ext_lfb_base: 0,
        };
        u.width = text.font_height;
        u.height = text.cursor_x;
        u.bytes_per_line = text.cursor_y;
        u.bits_per_pixel = text.rows;
        u.lfb_base = text.columns as u32;
        Self {
            video_type: XEN_VGATYPE_TEXT_MODE_3,
            _pad0: [0; 3],
            u,
        }
    }

    /// The text-mode view of the union (meaningful when `video_type` is text mode 3).
    #[must_use]
    pub const fn text_mode_3(&self) -> Dom0VgaTextMode3 {
        Dom0VgaTextMode3 {
            font_height: self.u.width,
            cursor_x: self.u.height,
            cursor_y: self.u.bytes_per_line,
            rows: self.u.bits_per_pixel,
            columns: (self.u.lfb_base & 0xFFFF) as u16,
        }
    }

    /// Full 64-bit framebuffer address of the VESA view (`ext_lfb_base:lfb_base`).
    #[must_use]
    pub const fn lfb_address(&self) -> u64 {
        (self.u.ext_lfb_base as u64) << 32 | self.u.lfb_base as u64
    }
}

assert_layout!(Dom0VgaConsoleInfo, size = 40, align = 4, {
    video_type: u8 = 0,
    _pad0: [u8; 3] = 1,
    u: Dom0VgaVesaLfb = 4,
});

// Absolute offsets from reference §5.1.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Dom0VgaConsoleInfo, u.width) == 4);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.height) == 6);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.bytes_per_line) == 8);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.bits_per_pixel) == 10);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.lfb_base) == 12);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.lfb_size) == 16);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.red_pos) == 20);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.rsvd_size) == 27);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.gbl_caps) == 28);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.mode_attrs) == 32);
    assert!(offset_of!(Dom0VgaConsoleInfo, u._pad0) == 34);
    assert!(offset_of!(Dom0VgaConsoleInfo, u.ext_lfb_base) == 36);
    // Text-mode view: font_height 4, cursor_x 6, cursor_y 8, rows 10, columns 12.
    assert!(4 + offset_of!(Dom0VgaTextMode3, columns) == 12);
    assert!(core::mem::size_of::<Dom0VgaConsoleInfo>() == DOM0_VGA_CONSOLE_INFO_SIZE as usize);
    // Xen places the VGA info right after the struct: info_off = sizeof(start_info).
    assert!(core::mem::size_of::<StartInfo>() == 1168);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_and_cmdline() {
        let mut si = StartInfo::new_x86_64();
        assert_eq!(si.magic_bytes(), b"xen-3.0-x86_64");
        assert!(si.has_valid_magic());
        assert_eq!(si.set_cmd_line(b"console=hvc0"), Ok(()));
        assert_eq!(si.cmd_line_bytes(), b"console=hvc0");
        let long = [b'a'; MAX_GUEST_CMDLINE];
        assert_eq!(
            si.set_cmd_line(&long),
            Err(TooLong {
                capacity: 1024,
                len: 1024
            })
        );
        assert!(si.set_cmd_line(&long[..1023]).is_ok());
        assert!(!StartInfo::default().has_valid_magic());
    }

    #[test]
    fn console_union_views() {
        let dom0 = StartInfoConsole::dom0(1168, DOM0_VGA_CONSOLE_INFO_SIZE);
        assert_eq!(dom0.dom0_info_off(), 1168);
        assert_eq!(dom0.dom0_info_size(), 40);
        let domu = StartInfoConsole::domu(0x1234, 3);
        assert_eq!((domu.mfn, domu.evtchn), (0x1234, 3));
    }

    #[test]
    fn vga_text_view_round_trips() {
        let text = Dom0VgaTextMode3 {
            font_height: 16,
            cursor_x: 1,
            cursor_y: 2,
            rows: 25,
            columns: 80,
        };
        let info = Dom0VgaConsoleInfo::from_text_mode_3(text);
        assert_eq!(info.video_type, XEN_VGATYPE_TEXT_MODE_3);
        assert_eq!(info.text_mode_3(), text);
    }

    #[test]
    fn initial_mapping_end_follows_the_4_mib_rule() {
        const MIB: u64 = 1 << 20;
        let base = 0xffff_ffff_8000_0000;
        // Plenty of room before the boundary: the boundary itself.
        assert_eq!(initial_mapping_end(base + MIB), Some(base + 4 * MIB));
        // Exactly 512 KiB left: still that boundary.
        assert_eq!(
            initial_mapping_end(base + 3 * MIB + 512 * 1024),
            Some(base + 4 * MIB)
        );
        // Less than 512 KiB left: one more 4 MiB.
        assert_eq!(
            initial_mapping_end(base + 3 * MIB + 516 * 1024),
            Some(base + 8 * MIB)
        );
        // A stack ending on a boundary gets the whole next 4 MiB.
        assert_eq!(initial_mapping_end(base + 4 * MIB), Some(base + 8 * MIB));
        assert_eq!(initial_mapping_end(u64::MAX - 4096), None);
    }

    #[test]
    fn sif_flags() {
        let si = StartInfo {
            flags: SIF_PRIVILEGED | SIF_INITDOMAIN,
            ..StartInfo::default()
        };
        assert!(si.sif_flags().contains(SifFlags::INITDOMAIN));
        assert_eq!(SifFlags::PM_MASK.bits(), 0xFF00);
    }
}
