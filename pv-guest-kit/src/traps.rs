//! Exceptions for guest kernels: a virtual IDT of the kit's stubs and Rust handlers.
//!
//! ```ignore
//! use pv_guest_kit::traps::{self, TrapFrame};
//!
//! fn skip_ud2(frame: &mut TrapFrame) {
//!     frame.rip += 2; // resume after the 2-byte ud2
//! }
//!
//! traps::init()?;                       // vectors 0-31: the kit's stubs, DPL 0 (#BP/#OF 3)
//! traps::set_handler(6, skip_ud2);      // #UD
//! ```
//!
//! A handler receives the [`TrapFrame`] (vector, error code, RIP, CS with the saved upcall mask
//! in bits 32–39, RFLAGS, RSP, SS and every general register) and may change any of it; the
//! stub returns to what the frame says through the `iret` hypercall. A vector with no handler
//! panics with the frame, which shuts the domain down with `SHUTDOWN_crash`.

use core::sync::atomic::{AtomicU32, Ordering};

pub use crate::arch::traps::{Gate, failsafe_entry, stub_address};
use crate::errno::HypercallResult;
pub use crate::frame::{FailsafeFrame, TrapFrame, vector_name};

/// An exception handler.
pub type Handler = fn(&mut TrapFrame);
/// A failsafe-callback handler (reference §8.6). After it returns, the kit loads null selectors
/// into DS, ES, FS and GS and returns to the frame's RIP.
pub type FailsafeHandler = fn(&mut FailsafeFrame);

static HANDLERS: spin::Mutex<[Option<Handler>; 256]> = spin::Mutex::new([None; 256]);
static FAILSAFE: spin::Mutex<Option<FailsafeHandler>> = spin::Mutex::new(None);

/// The vCPU that holds the handler table's lock to change it (`NOBODY`: none). An exception
/// taken on another vCPU meanwhile waits for the lock; one taken on that vCPU itself (inside
/// the change) cannot, and is treated as unhandled.
static CHANGING: AtomicU32 = AtomicU32::new(NOBODY);
const NOBODY: u32 = u32::MAX;

/// Runs `f` on the handler table, recording which vCPU holds it.
fn change_table<R>(f: impl FnOnce(&mut [Option<Handler>; 256]) -> R) -> R {
    let mut table = HANDLERS.lock();
    CHANGING.store(crate::arch::percpu::current(), Ordering::SeqCst);
    let result = f(&mut table);
    CHANGING.store(NOBODY, Ordering::SeqCst);
    result
}

/// The gate [`init`] installs for an exception vector: DPL 3 for `#BP` (3) and `#OF` (4), so
/// that `int3`/`into` also work where a hypervisor checks the DPL; DPL 0 otherwise; events
/// left as they are.
pub const fn default_gate(vector: u8) -> Gate {
    Gate {
        vector,
        dpl: if matches!(vector, 3 | 4) { 3 } else { 0 },
        mask_events: false,
    }
}

/// Installs the kit's stubs for the exception vectors 0–31 except NMI (2) and the reserved 15.
///
/// # Errors
/// The hypervisor's `set_trap_table` error.
///
/// # Panics
/// If the assembler did not lay the stubs out 16 bytes apart (a kit bug).
pub fn init() -> HypercallResult {
    assert!(
        crate::arch::traps::stubs_well_formed(),
        "pv-guest-kit: trap stubs are not 16 bytes apart"
    );
    let mut gates = [default_gate(0); 30];
    for (gate, vector) in gates
        .iter_mut()
        .zip((0u8..32).filter(|v| !matches!(v, 2 | 15)))
    {
        *gate = default_gate(vector);
    }
    crate::arch::traps::install(&gates)
}

/// Installs (or changes) the virtual-IDT entries for `gates`, pointing at the kit's stubs.
///
/// # Errors
/// The hypervisor's `set_trap_table` error.
pub fn set_gates(gates: &[Gate]) -> HypercallResult {
    crate::arch::traps::install(gates)
}

/// Installs one gate.
///
/// # Errors
/// The hypervisor's `set_trap_table` error.
pub fn set_gate(vector: u8, dpl: u8, mask_events: bool) -> HypercallResult {
    set_gates(&[Gate {
        vector,
        dpl,
        mask_events,
    }])
}

/// Sets the Rust handler for `vector` (for every vCPU); returns the previous one.
pub fn set_handler(vector: u8, handler: Handler) -> Option<Handler> {
    change_table(|table| {
        table
            .get_mut(usize::from(vector))
            .and_then(|slot| slot.replace(handler))
    })
}

/// Removes the Rust handler for `vector` (it then panics when taken); returns it.
pub fn clear_handler(vector: u8) -> Option<Handler> {
    change_table(|table| table.get_mut(usize::from(vector)).and_then(Option::take))
}

/// Sets the failsafe handler and registers the kit's failsafe entry with the hypervisor
/// (`CALLBACKTYPE_failsafe`, masking events on entry if `mask_events`).
///
/// # Errors
/// The hypervisor's `callback_op` error.
pub fn set_failsafe_handler(handler: FailsafeHandler, mask_events: bool) -> HypercallResult {
    *FAILSAFE.lock() = Some(handler);
    crate::arch::traps::register_failsafe(mask_events)
}

/// Called by the stubs: runs the vector's handler, or reports the exception and panics.
pub(crate) fn dispatch(frame: &mut TrapFrame) {
    let vector = usize::try_from(frame.vector).unwrap_or(usize::MAX);
    // Copy the handler out so that it runs without the lock (it may set handlers itself). If
    // another vCPU is changing the table, wait for it; if this vCPU is (the exception hit
    // inside the change), treat the exception as unhandled rather than deadlock.
    let me = crate::arch::percpu::current();
    let handler = loop {
        if let Some(table) = HANDLERS.try_lock() {
            break table.get(vector).copied().flatten();
        }
        if CHANGING.load(Ordering::SeqCst) == me {
            break None;
        }
        core::hint::spin_loop();
    };
    match handler {
        Some(handler) => handler(frame),
        None => panic!("unhandled exception: {frame}"),
    }
}

/// Called by the failsafe entry.
pub(crate) fn dispatch_failsafe(frame: &mut FailsafeFrame) {
    let handler = FAILSAFE.try_lock().and_then(|h| *h);
    match handler {
        Some(handler) => handler(frame),
        None => panic!(
            "failsafe callback with no handler: ds {:#x} es {:#x} fs {:#x} gs {:#x} at {:#x}",
            frame.ds, frame.es, frame.fs, frame.gs, frame.rip
        ),
    }
}
