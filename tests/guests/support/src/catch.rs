//! Catching an expected exception: run a closure whose faulting instruction has a known length;
//! the handler records the exception and resumes after that instruction.

use core::sync::atomic::{AtomicU64, Ordering};

use pv_guest_kit::traps::{self, TrapFrame};

/// What the handler saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caught {
    /// The vector.
    pub vector: u64,
    /// The error code (0 where there is none).
    pub error_code: u64,
    /// The RIP in the frame.
    pub rip: u64,
}

static SKIP: AtomicU64 = AtomicU64::new(0);
static CAUGHT: spin::Mutex<Option<Caught>> = spin::Mutex::new(None);

fn handler(frame: &mut TrapFrame) {
    *CAUGHT.lock() = Some(Caught {
        vector: frame.vector,
        error_code: frame.error_code,
        rip: frame.rip,
    });
    frame.rip = frame.rip.wrapping_add(SKIP.load(Ordering::SeqCst));
}

/// Makes the catching handler the handler of `vectors`.
pub fn install(vectors: &[u8]) {
    for &vector in vectors {
        traps::set_handler(vector, handler);
    }
}

/// Runs `f`; if it raises an exception on an installed vector, the handler skips `insn_len`
/// bytes from the frame's RIP (so `f`'s faulting instruction must be `insn_len` bytes long
/// and be a fault, not a trap). Returns `f`'s result and the exception, if any.
pub fn catch<R>(insn_len: u64, f: impl FnOnce() -> R) -> (R, Option<Caught>) {
    *CAUGHT.lock() = None;
    SKIP.store(insn_len, Ordering::SeqCst);
    let result = f();
    let caught = CAUGHT.lock().take();
    (result, caught)
}
