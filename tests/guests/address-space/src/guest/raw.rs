//! Memory accesses through mappings the guest builds, and the instructions the writable
//! page-table checks execute. Every access goes through a raw pointer (volatile): these pages
//! are never Rust objects, and their mappings change under the checks.
//!
//! The `probe_*` functions execute one instruction of a known length, so that the catching
//! #PF handler (`guest_support::catch`) can resume after it.

use core::arch::asm;

/// Reads the quadword at `va`.
pub fn read(va: u64) -> u64 {
    // SAFETY: `va` is mapped by the caller (a window page, a direct-map page or a page table
    // mapped read-only); the read has no side effect.
    unsafe { (va as *const u64).read_volatile() }
}

/// Writes the quadword at `va`.
pub fn write(va: u64, value: u64) {
    // SAFETY: `va` is a writable mapping of a frame the guest allocated for the checks (never a
    // Rust object).
    unsafe { (va as *mut u64).write_volatile(value) }
}

/// `mov (%rax), %rax` (3 bytes: 48 8B 00), for `catch(3, ..)` on addresses that may fault.
pub fn probe_read(va: u64) -> u64 {
    let value: u64;
    // SAFETY: a read; a #PF is caught by the test's handler, which skips the instruction.
    unsafe {
        asm!(".byte 0x48, 0x8b, 0x00", inout("rax") va => value, options(nostack, readonly));
    }
    value
}

/// `mov %rdx, (%rax)` (3 bytes: 48 89 10), for `catch(3, ..)`: a write that may fault, or that
/// Xen may emulate (a page-table entry written through a read-only mapping).
pub fn probe_write(va: u64, value: u64) {
    // SAFETY: the target is a window page, or a page table mapped read-only: the write either
    // faults (caught, skipped) or the hypervisor validates and emulates it. Never Rust memory.
    unsafe {
        asm!(".byte 0x48, 0x89, 0x10", in("rax") va, in("rdx") value, options(nostack));
    }
}

/// `lock cmpxchg %rdx, (%rcx)` (5 bytes: F0 48 0F B1 11) with `rax = expected`; returns `rax`
/// (the old value when it matched, else the value found), for `catch(5, ..)`.
pub fn probe_cmpxchg(va: u64, expected: u64, new: u64) -> u64 {
    let found: u64;
    // SAFETY: as `probe_write`.
    unsafe {
        asm!(
            ".byte 0xf0, 0x48, 0x0f, 0xb1, 0x11",
            in("rcx") va,
            in("rdx") new,
            inout("rax") expected => found,
            options(nostack),
        );
    }
    found
}
