//! The checks, in the order a PV kernel brings its memory up. Expected values are what real Xen
//! 4.17 does for a PV dom0 (measured; `docs/porting-guide.md` §7 lists them).
//!
//! 1. [`frames`]: the kit's frame allocator hands out zeroed frames beyond the initial mapping,
//!    consistent with the P2M and the M2P, makes them read-only and writable again, reuses
//!    freed ones and refuses double frees.
//! 2. [`space`]: a fresh 4-level address space (new L4/L3/L2/L1 frames, read-only, entries
//!    written with `mmu_update`), pinned and loaded with `new_baseptr`; Xen fills its slots;
//!    the kernel keeps running on it; 10,000 pages mapped and unmapped in batches at a
//!    lower-half window and their contents checked through it; `protect`.
//! 3. [`errors`]: what Xen refuses, and with which errno: writable mappings of page tables,
//!    superpages, Xen's L4 slots, bad tables, pins and roots of the wrong type, partial
//!    batches, bad addresses, `multicall` with a failing entry.
//! 4. [`ptwr`]: `vm_assist(writable_pagetables)`: a plain `mov` and a `cmpxchg` on a read-only
//!    mapping of an L1 become validated updates; invalid values leave the table untouched and
//!    deliver the #PF; L2 writes are never emulated; without the assist every write faults.
//! 5. [`user`]: a separate user L4 without the kernel, the kit's demo program in user mode:
//!    system calls reach the callback with Xen's frame, a user page fault arrives with the U
//!    bit, `iret` returns to user mode, a user access to kernel memory faults.
//! 6. Back on the boot tables: the fresh address space is released and every frame freed
//!    (none is still typed as a page table).

mod errors;
mod frames;
#[allow(unsafe_code, reason = "the hypercalls under test")]
mod hc;
mod ptwr;
#[allow(unsafe_code, reason = "accesses through the mappings under test")]
mod raw;
mod space;
mod user;

use guest_support::{Checks, info};
use pv_guest_kit::mm::{AddressSpace, frames as alloc_frames};
use pv_guest_kit::{StartInfo, println, traps};

pv_guest_kit::guest_kernel!(main);

fn main(si: StartInfo) -> ! {
    println!("address-space: page tables, writable page tables and user mode on a PV guest");
    let mut c = Checks::new();
    c.eq("set_trap_table with the kit's stubs", traps::init(), Ok(0));
    guest_support::catch::install(&[13, 14]);
    info(format_args!("nr_pages {}", si.nr_pages));

    let boot = AddressSpace::current();
    frames::checks(&mut c);
    let Some(mut ctx) = space::build(&mut c, boot) else {
        c.finish();
    };
    space::window(&mut c, &mut ctx);
    errors::checks(&mut c, &ctx);
    errors::shared_info_never_a_table(&mut c, si.shared_info);
    ptwr::checks(&mut c, &ctx);
    user::checks(&mut c, &ctx);
    space::teardown(&mut c, ctx);
    let stats = alloc_frames::stats();
    info(format_args!("allocator at the end: {stats:?}"));
    c.finish()
}
