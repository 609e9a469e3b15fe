//! Deliberate hypervisor faults for `test_fault=`: the tests use them to check that a fault
//! inside the hypervisor is reported with its vector, registers and stack trace.

use crate::boot::cmdline::TestFault;

/// Recurses until the stack runs into its guard page.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buf = core::hint::black_box([depth; 64]);
    // Never true (the stack runs out long before), but the compiler cannot know that.
    if core::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(core::hint::black_box(depth + 1)).wrapping_add(buf[0])
}

/// Raises the requested fault. Only returns if the fault was handled and resumed, which
/// none of these are.
pub fn trigger(fault: TestFault) {
    log::warn!("test_fault: raising {fault:?} in the hypervisor, as requested");
    match fault {
        // SAFETY: `ud2` raises #UD, which the IDT reports as fatal; it touches no state.
        TestFault::InvalidOpcode => unsafe { core::arch::asm!("ud2") },
        TestFault::PageFault => {
            // An address in the hypervisor's area that nothing maps.
            let p = core::hint::black_box(0xffff_8180_dead_0000u64) as *const u64;
            // SAFETY: deliberately faulting read of an unmapped address (#PF, reported as
            // fatal); no memory is modified.
            let v = unsafe { core::ptr::read_volatile(p) };
            core::hint::black_box(v);
        }
        TestFault::GeneralProtection => {
            let p = core::hint::black_box(0x8000_0000_0000_0000u64) as *const u64;
            // SAFETY: a non-canonical address raises #GP before any memory is accessed.
            let v = unsafe { core::ptr::read_volatile(p) };
            core::hint::black_box(v);
        }
        TestFault::DivideError => {
            // SAFETY: `div` by a zero register raises #DE; registers only.
            unsafe {
                core::arch::asm!("xor %ecx, %ecx", "div %ecx", out("eax") _, out("edx") _, out("ecx") _,
                    options(att_syntax, nomem, nostack));
            }
        }
        // SAFETY: `int3` raises #BP, reported as fatal when taken in the hypervisor.
        TestFault::Breakpoint => unsafe { core::arch::asm!("int3") },
        TestFault::StackOverflow => {
            core::hint::black_box(recurse(0));
        }
        TestFault::Panic => panic!("test_fault=panic: deliberate hypervisor panic"),
    }
}
