//! Bounce frames: how the hypervisor enters a guest kernel's exception, event, syscall,
//! failsafe and NMI handlers, with Xen's exact frame layout (reference §8.3, §8.6).
//!
//! This module computes what to write and what the registers become; the runtime writes the
//! words to the guest stack through the checked guest-memory path (a fault there crashes the
//! domain) after switching the vCPU to kernel mode if it was in user mode.

use super::frame::Frame;
use hypercall_abi::segments::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};

/// RFLAGS bits.
pub mod rflags {
    /// Trap flag.
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// Direction flag.
    pub const DF: u64 = 1 << 10;
    /// I/O privilege level (two bits).
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume flag.
    pub const RF: u64 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check.
    pub const AC: u64 = 1 << 18;
}

/// What is being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A processor exception (with its error code, for vectors that have one).
    Exception {
        /// The vector.
        vector: u8,
        /// The error code, if the vector has one.
        error_code: Option<u32>,
    },
    /// A software interrupt `int $n` (no error code).
    SoftwareInterrupt(u8),
    /// The event-channel upcall.
    Event,
    /// `syscall` from guest user mode.
    Syscall,
    /// The failsafe callback, with the data selectors that could not be loaded
    /// (DS, ES, FS, GS).
    Failsafe([u64; 4]),
    /// A (virtual) NMI.
    Nmi,
}

/// The hypervisor area no part of a bounce frame (and not its start) may touch:
/// `[HYPERVISOR_VIRT_START, HYPERVISOR_VIRT_END + 64)`, as Xen checks.
pub const FORBIDDEN_STACK: (u64, u64) = (
    hypercall_abi::traps::BOUNCE_FORBIDDEN_START,
    hypercall_abi::traps::BOUNCE_FORBIDDEN_END,
);

/// The largest bounce frame, in words (the failsafe callback's).
pub const MAX_WORDS: usize = 11;

/// The result: the words to write (lowest address first), where, and the new register state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounce {
    /// The frame, lowest address first, in its first `len` words.
    frame: [u64; MAX_WORDS],
    /// Words in use.
    len: usize,
    /// Where the frame starts (the handler's `rsp`).
    pub rsp: u64,
    /// The handler's `rflags`.
    pub rflags: u64,
}

impl Bounce {
    /// The frame, lowest address first.
    pub fn words(&self) -> &[u64] {
        self.frame.get(..self.len).unwrap_or(&self.frame)
    }
}

/// Why a bounce cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BounceError {
    /// The stack to build the frame on lies in (or wraps into) the hypervisor's area.
    BadStack(u64),
}

/// Builds the bounce frame for `what`, interrupting `frame`.
///
/// - `stack`: where the frame goes: the interrupted `rsp` (kernel mode) or the registered
///   kernel stack (user mode);
/// - `was_user`: the vCPU was in guest user mode (the saved CS keeps RPL 3; else RPL 0);
/// - `old_mask`: `evtchn_upcall_mask` before delivery (saved in CS bits 32–39, and the saved
///   RFLAGS.IF is its negation);
/// - `iopl`: the virtual IOPL to report in the saved RFLAGS (0 unless the architectural-IOPL
///   assist is on).
#[inline]
pub fn bounce(
    frame: &Frame,
    what: Delivery,
    stack: u64,
    was_user: bool,
    old_mask: u8,
    iopl: u8,
) -> Result<Bounce, BounceError> {
    let start = stack & !15;
    let cs = if was_user {
        frame.cs | 3
    } else {
        frame.cs & !3
    };
    let saved_cs = (cs & 0xffff) | (u64::from(old_mask) << 32);
    let mut saved_flags = frame.rflags & !(rflags::IF | rflags::IOPL);
    if old_mask == 0 {
        saved_flags |= rflags::IF;
    }
    saved_flags |= (u64::from(iopl) & 3) << 12;

    // rcx, r11, then what the delivery adds, then the iret frame (built without branches on
    // the common paths: the words past `len` are never written to the guest).
    let mut words = [0u64; MAX_WORDS];
    words[0] = frame.rcx;
    words[1] = frame.r11;
    let extra = match what {
        Delivery::Exception {
            error_code: Some(e),
            ..
        } => {
            words[2] = u64::from(e);
            1
        }
        Delivery::Failsafe(segs) => {
            words[2..6].copy_from_slice(&segs);
            4
        }
        _ => 0,
    };
    let tail = [frame.rip, saved_cs, saved_flags, frame.rsp, frame.ss];
    words[2 + extra..7 + extra].copy_from_slice(&tail);
    let len = 7 + extra;

    let bytes = (len * 8) as u64;
    let rsp = start
        .checked_sub(bytes)
        .ok_or(BounceError::BadStack(stack))?;
    // Neither end of the frame may touch the hypervisor's area.
    if (rsp < FORBIDDEN_STACK.1 && start >= FORBIDDEN_STACK.0) || stack < bytes {
        return Err(BounceError::BadStack(stack));
    }
    let mut new_flags =
        frame.rflags & !(rflags::TF | rflags::NT | rflags::RF | rflags::VM | rflags::AC);
    if what == Delivery::Syscall {
        new_flags &= !rflags::DF;
    }
    // The hardware IF is always on while a PV guest runs; its IOPL is always 0.
    new_flags = (new_flags | rflags::IF) & !rflags::IOPL;
    Ok(Bounce {
        frame: words,
        len,
        rsp,
        rflags: new_flags,
    })
}

/// Points `frame` at a handler: `rip`, the flat kernel selectors, the bounce's stack and flags.
#[inline]
pub fn enter_handler(frame: &mut Frame, handler: u64, b: &Bounce) {
    frame.rip = handler;
    frame.cs = u64::from(FLAT_KERNEL_CS);
    frame.ss = u64::from(FLAT_KERNEL_SS);
    frame.rsp = b.rsp;
    frame.rflags = b.rflags;
}

/// Whether a delivery masks events on entry: event upcalls and NMIs always, virtual IDT entries
/// with the interrupt-gate flag, syscall/failsafe callbacks registered with the mask flag.
#[inline]
pub fn masks_events(what: Delivery, gate_flags: u8, callback_masks: bool) -> bool {
    match what {
        Delivery::Event | Delivery::Nmi => true,
        Delivery::Exception { .. } | Delivery::SoftwareInterrupt(_) => gate_flags & 4 != 0,
        Delivery::Syscall | Delivery::Failsafe(_) => callback_masks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interrupted() -> Frame {
        Frame {
            rcx: 0x1111,
            r11: 0x2222,
            rip: 0xffff_ffff_8000_1234,
            cs: 0xe033,
            rflags: 0x246 | rflags::TF | rflags::AC,
            rsp: 0xffff_ffff_8010_0008,
            ss: 0xe02b,
            ..Frame::default()
        }
    }

    #[test]
    fn exception_with_error_code_from_kernel_mode() {
        let f = interrupted();
        let what = Delivery::Exception {
            vector: 14,
            error_code: Some(0x2),
        };
        let b = bounce(&f, what, f.rsp, false, 0, 0).unwrap();
        // 16-byte aligned start, 8 words.
        assert_eq!(b.rsp, 0xffff_ffff_8010_0000 - 64);
        assert_eq!(
            b.words(),
            &[
                0x1111,
                0x2222,
                2,
                f.rip,
                0xe030,
                0x246 | rflags::TF | rflags::AC,
                f.rsp,
                0xe02b
            ]
        );
        // The handler runs with TF and AC cleared, IF on.
        assert_eq!(b.rflags, 0x246);
        let mut g = f;
        enter_handler(&mut g, 0xffff_ffff_8000_9000, &b);
        assert_eq!(
            (g.rip, g.cs, g.ss, g.rsp),
            (0xffff_ffff_8000_9000, 0xe033, 0xe02b, b.rsp)
        );
    }

    #[test]
    fn masked_events_show_in_cs_and_if() {
        let f = interrupted();
        let b = bounce(&f, Delivery::SoftwareInterrupt(0x80), f.rsp, false, 1, 0).unwrap();
        assert_eq!(b.words().len(), 7);
        assert_eq!(b.words()[2], f.rip);
        assert_eq!(b.words()[3], 0xe030 | (1 << 32));
        assert_eq!(b.words()[4] & rflags::IF, 0);
        // An event delivery from user mode on the kernel stack keeps RPL 3.
        let b = bounce(&f, Delivery::Event, 0xffff_ffff_8020_0000, true, 0, 0).unwrap();
        assert_eq!(b.words()[3], 0xe033);
        assert_ne!(b.words()[4] & rflags::IF, 0);
        assert_eq!(b.rsp, 0xffff_ffff_8020_0000 - 56);
    }

    #[test]
    fn syscall_clears_df_and_architectural_iopl_is_reported() {
        let mut f = interrupted();
        f.rflags |= rflags::DF;
        let b = bounce(&f, Delivery::Syscall, 0x7000_0000, true, 0, 3).unwrap();
        assert_eq!(b.rflags & rflags::DF, 0);
        assert_eq!(b.words()[4] & rflags::IOPL, rflags::IOPL);
        assert_eq!(b.rflags & rflags::IOPL, 0, "the real IOPL stays 0");
    }

    #[test]
    fn failsafe_frame_has_eleven_words() {
        let f = interrupted();
        let b = bounce(&f, Delivery::Failsafe([1, 2, 3, 4]), f.rsp, false, 0, 0).unwrap();
        assert_eq!(b.words().len(), 11);
        assert_eq!(&b.words()[2..6], &[1, 2, 3, 4]);
        assert_eq!(b.words()[6], f.rip);
    }

    #[test]
    fn stacks_in_or_near_the_hypervisor_area_are_refused() {
        let f = interrupted();
        for sp in [
            0xffff_8000_0000_0000,
            0xffff_8400_0000_0000,
            0xffff_8800_0000_0040,
            0xffff_8800_0000_0020,
            0x20,
        ] {
            assert!(
                bounce(&f, Delivery::Event, sp, false, 0, 0).is_err(),
                "{sp:#x}"
            );
        }
        // Just above the area's guard: the frame fits.
        assert!(bounce(&f, Delivery::Event, 0xffff_8800_0000_0080, false, 0, 0).is_ok());
        assert!(bounce(&f, Delivery::Event, 0x0000_7fff_ffff_f000, false, 0, 0).is_ok());
    }

    #[test]
    fn which_deliveries_mask_events() {
        let ex = Delivery::Exception {
            vector: 3,
            error_code: None,
        };
        assert!(masks_events(Delivery::Event, 0, false));
        assert!(masks_events(Delivery::Nmi, 0, false));
        assert!(masks_events(ex, 4, false));
        assert!(!masks_events(ex, 3, true));
        assert!(masks_events(Delivery::Syscall, 0, true));
        assert!(!masks_events(Delivery::Syscall, 4, false));
    }
}
