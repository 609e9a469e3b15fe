//! domU role `crash`: binds its channel to dom0, sends one event, and executes `ud2` with no
//! trap table: the hypervisor crashes the domain (`Domain N crashed: ...`), destroys it (its
//! end of the channel closes, dom0's becomes unbound again) and tells dom0 with
//! `VIRQ_DOM_EXC`. No verdict line: the crash is the point.

use guest_support::Checks;
use pv_guest_kit::{events, println, time};

use super::channel;

/// The line printed just before the fault.
pub const ANNOUNCE: &str = "domains: crash: executing ud2 with no trap table";

pub fn run() -> ! {
    println!("domains: crash, after one event to dom0");
    // No trap table on purpose; events and a timer only to find the channel.
    let mut c = Checks::new();
    c.eq("events::init", events::init(), Ok(()));
    c.check("time::init", time::init().is_ok(), format_args!("failed"));
    events::enable();
    if channel::connect(&mut c).is_some() {
        c.eq("hello sent to dom0", channel::send(), Ok(()));
    }
    println!("{ANNOUNCE}");
    #[allow(unsafe_code, reason = "the fault under test")]
    // SAFETY: ud2 raises #UD; with no trap table the hypervisor crashes the domain, so nothing
    // after it runs.
    unsafe {
        core::arch::asm!("ud2", options(noreturn, nomem, nostack));
    }
}
