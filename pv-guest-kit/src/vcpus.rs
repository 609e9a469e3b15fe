//! Secondary vCPUs: starting them on a Rust entry point, stopping them, their runstate and
//! `vcpu_info` placement (reference §12.3–§12.4).
//!
//! ```ignore
//! use pv_guest_kit::{events, vcpus};
//!
//! fn second(id: u32) -> ! {
//!     // Runs on vCPU `id`, its own stack, events masked, the kit's trap table and upcall.
//!     events::enable();
//!     loop { let _ = pv_guest_kit::time::wait_until(|| false, None); }
//! }
//!
//! events::init()?;
//! vcpus::start(1, second, vcpus::DEFAULT_STACK_SIZE)?;   // VCPUOP_initialise + VCPUOP_up
//! ```
//!
//! [`start`] needs [`crate::events::init`] first (vCPU 0's per-vCPU record and the upcall
//! entry). The new vCPU gets a heap-allocated stack (never freed), the kernel's page tables,
//! its own kernel GS base (so [`current`] works there), a copy of the trap table the kit
//! installed on the calling vCPU ([`crate::traps`]), the kit's upcall entry and, if registered,
//! failsafe entry. It starts with the event mask its `vcpu_info` holds — masked, in a fresh
//! `shared_info` — and its 10 ms periodic timer running.
//!
//! What the kit assumes per vCPU: ids 0–31 (the legacy `vcpu_info` slots, unless moved with
//! [`register_vcpu_info`]); vCPU 0 runs on the kit's boot stack, the others on their own; the
//! trap-handler table of [`crate::traps`] and the event handlers are shared by all vCPUs; the
//! heap has one lock for all (don't allocate in event handlers).

extern crate alloc;

use hypercall_abi::vcpu::VcpuRunstateInfo;

pub use crate::arch::percpu::{MAX_VCPUS, current};
pub use crate::arch::vcpu_areas::{RunstateArea, VcpuInfoArea};
use crate::errno::{Errno, HypercallResult};
use crate::hypercall::vcpu as raw;

/// A secondary vCPU's entry point: called with the vCPU id on its own stack, never returns
/// (to stop, a vCPU can ask another to [`down`] it, or block forever).
pub type Entry = fn(u32) -> !;

/// The stack size [`start`] is usually given: 64 KiB, like the boot stack.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;

static ENTRIES: spin::Mutex<[Option<Entry>; MAX_VCPUS]> = spin::Mutex::new([None; MAX_VCPUS]);

/// Initialises vCPU `id` to run `entry(id)` on a new stack of `stack_size` bytes
/// (`VCPUOP_initialise`) without starting it. The stack is leaked, even when the hypervisor
/// refuses.
///
/// # Errors
/// `-EINVAL` for an id past 31 or a stack under 4 KiB; `-ENOMEM` if the stack cannot be
/// allocated; the hypervisor's error (`-EEXIST` if the vCPU was initialised before, `-ENOENT`
/// if the domain has no such vCPU).
pub fn initialise(id: u32, entry: Entry, stack_size: usize) -> HypercallResult<()> {
    let index = usize::try_from(id).map_err(|_| Errno::Einval)?;
    if index >= MAX_VCPUS || stack_size < 4096 {
        return Err(Errno::Einval);
    }
    if !crate::arch::percpu::ready() {
        crate::arch::percpu::init_boot_vcpu()?;
    }
    let mut stack = alloc::vec::Vec::new();
    stack
        .try_reserve_exact(stack_size)
        .map_err(|_| Errno::Enomem)?;
    stack.resize(stack_size, 0u8);
    let stack: &'static mut [u8] = stack.leak();
    crate::arch::smp::initialise(id, stack)?;
    // The vCPU runs only after VCPUOP_up, which comes after this.
    if let Some(slot) = ENTRIES.lock().get_mut(index) {
        *slot = Some(entry);
    }
    Ok(())
}

/// Initialises vCPU `id` as [`initialise`] does and starts it (`VCPUOP_up`).
///
/// # Errors
/// As [`initialise`] and [`up`].
pub fn start(id: u32, entry: Entry, stack_size: usize) -> HypercallResult<()> {
    initialise(id, entry, stack_size)?;
    up(id)
}

/// Where a kit-started vCPU goes after `arch::smp`'s entry: its entry function.
pub(crate) fn secondary_main(id: u32) -> ! {
    let entry = ENTRIES
        .lock()
        .get(usize::try_from(id).unwrap_or(usize::MAX))
        .copied()
        .flatten();
    match entry {
        Some(entry) => entry(id),
        None => panic!("vCPU {id} started with no entry function"),
    }
}

/// Starts (or restarts after [`down`]) an initialised vCPU (`VCPUOP_up`). A restarted vCPU
/// continues where it stopped.
///
/// # Errors
/// `-EINVAL` if it was never initialised, `-ENOENT` if it does not exist.
pub fn up(id: u32) -> HypercallResult<()> {
    raw::up(id).map(|_| ())
}

/// Stops vCPU `id` (`VCPUOP_down`); its context is kept for a later [`up`]. Xen shuts the
/// domain down (poweroff) when its last running vCPU goes down.
///
/// # Errors
/// `-ENOENT` if it does not exist.
pub fn down(id: u32) -> HypercallResult<()> {
    raw::down(id).map(|_| ())
}

/// Whether vCPU `id` is up (`VCPUOP_is_up`).
///
/// # Errors
/// `-ENOENT` if it does not exist.
pub fn is_up(id: u32) -> HypercallResult<bool> {
    raw::is_up(id).map(|up| up != 0)
}

/// vCPU `id`'s runstate (`VCPUOP_get_runstate_info`).
///
/// # Errors
/// `-ENOENT` if it does not exist.
pub fn runstate(id: u32) -> HypercallResult<VcpuRunstateInfo> {
    raw::get_runstate_info(id)
}

/// Makes Xen keep vCPU `id`'s runstate in `area` from now on
/// (`VCPUOP_register_runstate_memory_area`); read it with [`RunstateArea::read`].
///
/// # Errors
/// As [`crate::arch::vcpu_areas::register_runstate_area`].
pub fn register_runstate_area(id: u32, area: &'static RunstateArea) -> HypercallResult<()> {
    crate::arch::vcpu_areas::register_runstate_area(id, area).map(|_| ())
}

/// Moves vCPU `id`'s `vcpu_info` into `area` (`VCPUOP_register_vcpu_info`); the kit's event
/// and time code use the new place from then on. Call it on vCPU `id` itself, or for a vCPU
/// that is down. Events are masked on the calling vCPU meanwhile; Xen follows the move with a
/// spurious upcall (every selector bit set), which the dispatcher absorbs.
///
/// # Errors
/// As [`crate::arch::vcpu_areas::register_vcpu_info`]: `-EINVAL` if Xen refuses (moved
/// already, or a running other vCPU).
pub fn register_vcpu_info(id: u32, area: &'static mut VcpuInfoArea) -> HypercallResult<()> {
    crate::events::without_events(|| crate::arch::vcpu_areas::register_vcpu_info(id, area))
        .map(|_| ())
}
