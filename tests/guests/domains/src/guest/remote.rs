//! `SCHEDOP_remote_shutdown` from an unprivileged domain, and the domU role
//! `remote-shutdown [self]`, which checks Xen's order of refusals for it (with `self`: that
//! the domain cannot shut itself down this way).
//!
//! Xen 4.17 (`do_sched_op`, `xen/common/sched/core.c`) copies the argument in (`-EFAULT`),
//! looks the domain up by id (`-ESRCH`; `DOMID_SELF` names no domain there), and only then
//! asks XSM, whose default policy refuses a domain that is neither the control domain nor
//! the target's device model (`-EPERM`; `XSM_DM_PRIV` does not accept the caller itself, as
//! `XSM_TARGET` would). So a domU gets `-EPERM` only for a domain that exists, itself
//! included, and stays up.

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::domid::DOMID_SELF;
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::hypercall::HYPERVISOR_SCHED_OP;
use pv_guest_kit::abi::sched::{SCHEDOP_REMOTE_SHUTDOWN, SchedRemoteShutdown, ShutdownReason};
use pv_guest_kit::hypercall::evtchn as raw;
use pv_guest_kit::hypercall::{hypercall2, result_from_ret};
use pv_guest_kit::{HypercallResult, println};

use super::Args;

/// An address this domain does not map (the kit keeps nothing in the lower half).
const UNMAPPED: u64 = 0x1000;

/// `SCHEDOP_remote_shutdown` with the argument at `arg`.
///
/// # Safety
/// `arg` must be readable for 8 bytes or not mapped at all; the hypervisor only reads it.
unsafe fn remote_shutdown_at(arg: u64) -> HypercallResult<u64> {
    // SAFETY: the hypervisor reads the 8-byte argument at `arg` (or fails with -EFAULT) and
    // writes no guest memory; the caller vouches for `arg`.
    result_from_ret(unsafe {
        hypercall2(HYPERVISOR_SCHED_OP, u64::from(SCHEDOP_REMOTE_SHUTDOWN), arg)
    })
}

/// `SCHEDOP_remote_shutdown(dom, poweroff)`.
///
/// # Errors
/// The hypervisor's refusal (for a domU: always, see the module documentation).
pub fn remote_shutdown(dom: u16) -> HypercallResult<u64> {
    let arg = SchedRemoteShutdown {
        domain_id: dom,
        reason: ShutdownReason::Poweroff.raw(),
        ..SchedRemoteShutdown::default()
    };
    // SAFETY: `arg` is a live local of the argument's type.
    unsafe { remote_shutdown_at(core::ptr::from_ref(&arg) as u64) }
}

/// The role: the refusals of `SCHEDOP_remote_shutdown` in Xen's order, then poweroff; with
/// the argument `self`, the refusal to shut down the caller itself instead.
pub fn run(args: Args) -> ! {
    let mut c = Checks::new();
    if args.words().any(|w| w == "self") {
        println!("domains: remote-shutdown self, SCHEDOP_remote_shutdown of itself");
        itself(&mut c);
        c.finish()
    }
    println!("domains: remote-shutdown, the order of SCHEDOP_remote_shutdown's refusals");
    c.eq(
        "SCHEDOP_remote_shutdown(dom0) from a domU: -EPERM",
        remote_shutdown(0),
        Err(Errno::Eperm),
    );
    c.eq(
        "SCHEDOP_remote_shutdown(d9), no such domain: -ESRCH (looked up before the permission)",
        remote_shutdown(9),
        Err(Errno::Esrch),
    );
    c.eq(
        "SCHEDOP_remote_shutdown(DOMID_SELF): -ESRCH (Xen looks ids up without resolving it)",
        remote_shutdown(DOMID_SELF),
        Err(Errno::Esrch),
    );
    c.eq(
        "SCHEDOP_remote_shutdown with an unreadable argument: -EFAULT (copied in first)",
        // SAFETY: nothing is mapped there: the read fails without touching memory.
        unsafe { remote_shutdown_at(UNMAPPED) },
        Err(Errno::Efault),
    );
    c.finish()
}

/// `SCHEDOP_remote_shutdown` of the caller itself: `-EPERM`, and the domain stays up.
fn itself(c: &mut Checks) {
    // Its own id: what `alloc_unbound(remote_dom = DOMID_SELF)` records.
    let me = raw::alloc_unbound(DOMID_SELF).and_then(|port| {
        let status = raw::status(DOMID_SELF, port);
        let _ = raw::close(port);
        status.map(|s| s.unbound_dom())
    });
    c.check(
        "its own domain id (recorded for alloc_unbound(remote_dom = DOMID_SELF))",
        me.is_ok_and(|id| id != 0 && id < DOMID_SELF),
        format_args!("{me:?}"),
    );
    if let Ok(me) = me {
        info(format_args!(
            "asking to shut down d{me}, itself, with SCHEDOP_remote_shutdown"
        ));
        c.eq(
            Name::of(format_args!(
                "SCHEDOP_remote_shutdown(d{me}), itself: -EPERM (XSM_DM_PRIV does not accept \
                 the domain itself; SCHEDOP_shutdown is for that)"
            ))
            .as_str(),
            remote_shutdown(me),
            Err(Errno::Eperm),
        );
    }
}
