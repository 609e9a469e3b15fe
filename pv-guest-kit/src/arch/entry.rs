//! The guest's entry point and image metadata.
//!
//! # What the domain builder does and what `_start` does (reference §4.6)
//!
//! The builder loads the image, fills the hypercall page, maps everything up to a 4 MiB boundary,
//! and enters `_start` in guest kernel mode with `rsi` = the `start_info` page, `rsp` = the end
//! of a one-page bootstrap stack, every other register 0 and events masked. `_start` clears the
//! direction flag, switches to the kit's own 64 KiB stack in `.bss` (which the builder has
//! zeroed, as it zero-fills every segment's `p_memsz`; the kit clears nothing itself) and calls
//! `rust_start` with the `start_info` address and the initial `rsp`. `rust_start` checks that
//! the hypercall page was filled, records the boot information, sets up the heap and the logger
//! and calls the guest's main function, named by [`guest_kernel!`](crate::guest_kernel).
//!
//! # The Xen ELF notes (reference §4.1–§4.2)
//!
//! In `.note.Xen` (a `PT_NOTE` segment of `link.ld`), name `"Xen"`:
//!
//! | note | value |
//! |---|---|
//! | `XEN_VERSION` | `"xen-3.0"` |
//! | `LOADER` | `"generic"` |
//! | `VIRT_BASE` | the link base, `0xffffffff80000000` (`link.ld`) |
//! | `PADDR_OFFSET` | 0: segments' `p_paddr` are their addresses minus `VIRT_BASE` |
//! | `ENTRY` | `_start` |
//! | `HYPERCALL_PAGE` | the page-aligned page in `.text` the builder fills |
//! | `FEATURES` | [`FEATURES`] |
//! | `GUEST_OS`, `GUEST_VERSION` | the guest crate's name and version, from [`guest_kernel!`](crate::guest_kernel) |

use core::arch::global_asm;

use hypercall_abi::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_LOADER,
    XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION,
};
use hypercall_abi::start_info as abi;

use crate::boot::StartInfo;

/// The `FEATURES` note: the `XENFEAT_*` names the kernel supports (`!name` = requires).
///
/// Real Xen 4.17's dom0 builder refuses a kernel that does not declare `dom0` as supported
/// ("Kernel does not support Dom0 operation"), so every kit guest declares it; a domU builder
/// ignores it. Nothing is required: the kit writes page tables only through hypercalls.
pub const FEATURES: &str = "dom0";

/// The size of the kit's boot stack.
pub const STACK_SIZE: usize = 64 * 1024;

/// What the hypercall page holds before the builder fills it (`ret`, as XTF does); the kit
/// stops at entry if the first byte still holds it.
pub const HYPERCALL_PAGE_POISON: u8 = 0xc3;

global_asm!(
    // The hypercall page: page-aligned, in .text, poisoned until the builder fills it.
    ".pushsection .text.pv_guest_kit.hypercall_page, \"ax\", @progbits",
    ".balign 4096",
    ".globl pv_guest_kit_hypercall_page",
    "pv_guest_kit_hypercall_page:",
    ".fill 4096, 1, {poison}",
    ".popsection",
    // The entry point.
    ".pushsection .text.pv_guest_kit.entry, \"ax\", @progbits",
    ".globl _start",
    ".type _start, @function",
    "_start:",
    "    cld",
    "    mov %rsi, %rdi",
    "    mov %rsp, %rsi",
    "    lea pv_guest_kit_stack_top(%rip), %rsp",
    "    xor %ebp, %ebp",
    "    call {rust_start}",
    "    ud2",
    ".size _start, . - _start",
    ".popsection",
    // The boot stack, in .bss (zeroed by the builder).
    ".pushsection .bss.pv_guest_kit.stack, \"aw\", @nobits",
    ".balign 4096",
    ".globl pv_guest_kit_stack_bottom",
    "pv_guest_kit_stack_bottom:",
    ".skip {stack_size}",
    ".globl pv_guest_kit_stack_top",
    "pv_guest_kit_stack_top:",
    ".popsection",
    // The Xen notes: namesz 4 ("Xen\0"), descsz, type, name, descriptor padded to 4 bytes.
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4, 2f - 1f, {n_xen_version}",
    ".asciz \"Xen\"",
    "1: .asciz \"xen-3.0\"",
    "2: .balign 4",
    ".long 4, 2f - 1f, {n_loader}",
    ".asciz \"Xen\"",
    "1: .asciz \"generic\"",
    "2: .balign 4",
    ".long 4, 2f - 1f, {n_features}",
    ".asciz \"Xen\"",
    "1: .asciz \"dom0\"",
    "2: .balign 4",
    ".long 4, 8, {n_virt_base}",
    ".asciz \"Xen\"",
    ".quad __pv_guest_virt_base",
    ".long 4, 8, {n_paddr_offset}",
    ".asciz \"Xen\"",
    ".quad 0",
    ".long 4, 8, {n_entry}",
    ".asciz \"Xen\"",
    ".quad _start",
    ".long 4, 8, {n_hypercall_page}",
    ".asciz \"Xen\"",
    ".quad pv_guest_kit_hypercall_page",
    ".popsection",
    poison = const HYPERCALL_PAGE_POISON,
    rust_start = sym rust_start,
    stack_size = const STACK_SIZE,
    n_xen_version = const XEN_ELFNOTE_XEN_VERSION,
    n_loader = const XEN_ELFNOTE_LOADER,
    n_features = const XEN_ELFNOTE_FEATURES,
    n_virt_base = const XEN_ELFNOTE_VIRT_BASE,
    n_paddr_offset = const XEN_ELFNOTE_PADDR_OFFSET,
    n_entry = const XEN_ELFNOTE_ENTRY,
    n_hypercall_page = const XEN_ELFNOTE_HYPERCALL_PAGE,
    options(att_syntax)
);

// The FEATURES note above spells the constant out; keep the two together.
const _: () = assert!(matches!(FEATURES.as_bytes(), b"dom0"));

unsafe extern "C" {
    /// `VIRT_BASE`, an absolute symbol defined by `link.ld`.
    static __pv_guest_virt_base: u8;
    /// The first byte of the image (`link.ld`).
    static __pv_guest_image_start: u8;
    /// The end of the image, page-aligned (`link.ld`).
    static __pv_guest_image_end: u8;
    /// The lowest address of the kit's stack.
    static pv_guest_kit_stack_bottom: u8;
    /// The top of the kit's stack.
    static pv_guest_kit_stack_top: u8;
}

unsafe extern "Rust" {
    /// The guest's main function, defined by [`guest_kernel!`](crate::guest_kernel).
    safe fn pv_guest_kit_main(start_info: StartInfo) -> !;
}

/// `VIRT_BASE` as linked (`link.ld`): the virtual address of pseudo-physical frame 0.
pub fn virt_base() -> u64 {
    // Only the address of the linker symbol is taken.
    core::ptr::addr_of!(__pv_guest_virt_base) as u64
}

/// The image's extent `[start, end)`, end page-aligned.
pub fn image_range() -> core::ops::Range<u64> {
    core::ptr::addr_of!(__pv_guest_image_start) as u64
        ..core::ptr::addr_of!(__pv_guest_image_end) as u64
}

/// The kit's boot stack `[bottom, top)`.
pub fn stack_range() -> core::ops::Range<u64> {
    core::ptr::addr_of!(pv_guest_kit_stack_bottom) as u64
        ..core::ptr::addr_of!(pv_guest_kit_stack_top) as u64
}

static BOOT: spin::Once<StartInfo> = spin::Once::new();

/// The boot information, once `_start` has recorded it (always, by the time guest code runs).
pub fn boot_info() -> Option<StartInfo> {
    BOOT.get().copied()
}

/// Whether the builder filled the hypercall page (its first byte is no longer the poison).
fn hypercall_page_filled() -> bool {
    let page = crate::hypercall::page_address() as *const u8;
    // Volatile because the builder wrote the page behind the compiler's back.
    // SAFETY: the page is part of the image's .text, mapped and readable.
    unsafe { page.read_volatile() != HYPERCALL_PAGE_POISON }
}

/// Stops the domain the only way that works without hypercalls: an exception with no trap
/// table, which makes the hypervisor crash the domain.
fn crash_without_hypercalls() -> ! {
    // SAFETY: `ud2` raises #UD; with no trap table installed yet the hypervisor crashes the
    // domain, so this never returns.
    unsafe { core::arch::asm!("ud2", options(noreturn, nomem, nostack)) }
}

/// The Rust side of `_start`.
extern "C" fn rust_start(start_info: *const abi::StartInfo, initial_rsp: u64) -> ! {
    if !hypercall_page_filled() || start_info.is_null() {
        crash_without_hypercalls();
    }
    // SAFETY: the builder passes the address of the start_info page in rsi (reference §4.6);
    // it is mapped for the domain's lifetime and the hypervisor does not rewrite it while the
    // guest runs (only on resume, which the kit does not support).
    let raw: &'static abi::StartInfo = unsafe { &*start_info };
    let info = *BOOT.call_once(|| StartInfo::new(raw, initial_rsp));
    if let Some(mapping) = info.initial_mapping(virt_base()) {
        super::heap::init(mapping.free());
    }
    crate::logger::init(log::LevelFilter::Info);
    pv_guest_kit_main(info)
}

/// Declares the guest's main function: `pv_guest_kit::guest_kernel!(main);` with
/// `fn main(start_info: pv_guest_kit::StartInfo) -> !`.
///
/// The macro names `main` as the function the kit's `_start` calls, and adds the `GUEST_OS`
/// and `GUEST_VERSION` ELF notes with the guest crate's package name and version (override
/// them with `guest_kernel!(main, guest_os = "...", guest_version = "...")`).
#[macro_export]
macro_rules! guest_kernel {
    ($main:path) => {
        $crate::guest_kernel!(
            $main,
            guest_os = ::core::env!("CARGO_PKG_NAME"),
            guest_version = ::core::env!("CARGO_PKG_VERSION")
        );
    };
    ($main:path, guest_os = $os:expr, guest_version = $version:expr $(,)?) => {
        #[doc(hidden)]
        #[allow(
            unsafe_code,
            reason = "the kit's entry point calls the guest's main by this name"
        )]
        #[unsafe(no_mangle)]
        fn pv_guest_kit_main(start_info: $crate::StartInfo) -> ! {
            let main: fn($crate::StartInfo) -> ! = $main;
            main(start_info)
        }

        ::core::arch::global_asm!(
            ".pushsection .note.Xen, \"a\", @note",
            ".balign 4",
            ".long 4, 2f - 1f, 6",
            ".asciz \"Xen\"",
            ::core::concat!("1: .asciz \"", $os, "\""),
            "2: .balign 4",
            ".long 4, 2f - 1f, 7",
            ".asciz \"Xen\"",
            ::core::concat!("1: .asciz \"", $version, "\""),
            "2: .balign 4",
            ".popsection",
        );
    };
}

// The note types the macro spells as numbers.
const _: () = {
    assert!(hypercall_abi::elfnote::XEN_ELFNOTE_GUEST_OS == 6);
    assert!(hypercall_abi::elfnote::XEN_ELFNOTE_GUEST_VERSION == 7);
};
