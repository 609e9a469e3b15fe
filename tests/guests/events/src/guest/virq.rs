//! VIRQs (per-vCPU and global), IPIs and `bind_vcpu`.

use core::sync::atomic::{AtomicU64, Ordering};

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::domid::DOMID_SELF;
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::evtchn::{
    VIRQ_CONSOLE, VIRQ_DEBUG, VIRQ_DOM_EXC, VIRQ_TIMER, VIRQ_XENOPROF,
};
use pv_guest_kit::events::{self, Binding, Port, Status};
use pv_guest_kit::hypercall::evtchn as raw;

fn virq_status(virq: u32, vcpu: u32) -> Result<Status, Errno> {
    Ok(Status {
        binding: Binding::Virq(virq),
        vcpu,
    })
}

static TICKS: AtomicU64 = AtomicU64::new(0);

fn on_tick(_: Port) {
    TICKS.fetch_add(1, Ordering::SeqCst);
}

pub fn virqs(c: &mut Checks, vcpus: u32) {
    let mut bound = [0u32; 16];
    let mut n = 0;
    let mut keep = |port: Result<u32, Errno>| {
        if let (Ok(port), Some(slot)) = (port, bound.get_mut(n)) {
            *slot = port;
            n += 1;
        }
        port
    };

    let timer0 = keep(raw::bind_virq(VIRQ_TIMER, 0));
    c.check(
        "bind_virq(VIRQ_TIMER, vCPU 0): a port",
        timer0.is_ok(),
        format_args!("{timer0:?}"),
    );
    let timer0 = timer0.unwrap_or(0);
    c.eq(
        "status: virq 0, vCPU 0",
        events::status(timer0),
        virq_status(VIRQ_TIMER, 0),
    );
    c.eq(
        "bind_virq(VIRQ_TIMER, vCPU 0) again: -EEXIST",
        raw::bind_virq(VIRQ_TIMER, 0),
        Err(Errno::Eexist),
    );
    let debug0 = keep(raw::bind_virq(VIRQ_DEBUG, 0));
    c.check(
        "bind_virq(VIRQ_DEBUG, vCPU 0): a port",
        debug0.is_ok(),
        format_args!("{debug0:?}"),
    );
    c.eq(
        "bind_virq(VIRQ_DEBUG, vCPU 0) again: -EEXIST",
        raw::bind_virq(VIRQ_DEBUG, 0),
        Err(Errno::Eexist),
    );
    if vcpus >= 2 {
        let timer1 = keep(raw::bind_virq(VIRQ_TIMER, 1));
        c.eq(
            "bind_virq(VIRQ_TIMER, vCPU 1): a port of its own, notifying vCPU 1",
            timer1.and_then(events::status),
            virq_status(VIRQ_TIMER, 1),
        );
        let debug1 = keep(raw::bind_virq(VIRQ_DEBUG, 1));
        c.eq(
            "bind_virq(VIRQ_DEBUG, vCPU 1): a port notifying vCPU 1",
            debug1.and_then(events::status),
            virq_status(VIRQ_DEBUG, 1),
        );
        c.eq(
            "bind_virq(VIRQ_TIMER, vCPU 1) again: -EEXIST",
            raw::bind_virq(VIRQ_TIMER, 1),
            Err(Errno::Eexist),
        );
    }
    for vcpu in [vcpus, 9999, 1 << 31] {
        c.eq(
            Name::of(format_args!(
                "bind_virq(VIRQ_TIMER, vCPU {vcpu:#x}, none such): -ENOENT"
            ))
            .as_str(),
            raw::bind_virq(VIRQ_TIMER, vcpu),
            Err(Errno::Enoent),
        );
    }
    let mut dom_exc = 0;
    for (virq, name) in [
        (VIRQ_DOM_EXC, "VIRQ_DOM_EXC"),
        (VIRQ_CONSOLE, "VIRQ_CONSOLE"),
    ] {
        let port = keep(raw::bind_virq(virq, 0));
        if virq == VIRQ_DOM_EXC {
            dom_exc = port.unwrap_or(0);
        }
        c.eq(
            Name::of(format_args!(
                "bind_virq({name}, vCPU 0): global, notifying vCPU 0"
            ))
            .as_str(),
            port.and_then(events::status),
            virq_status(virq, 0),
        );
        c.eq(
            Name::of(format_args!("bind_virq({name}, vCPU 0) again: -EEXIST")).as_str(),
            raw::bind_virq(virq, 0),
            Err(Errno::Eexist),
        );
        c.eq(
            Name::of(format_args!(
                "bind_virq({name}, vCPU 1): -EINVAL (global VIRQ)"
            ))
            .as_str(),
            raw::bind_virq(virq, 1),
            Err(Errno::Einval),
        );
    }
    for virq in [24u32, 1 << 31, u32::MAX] {
        c.eq(
            Name::of(format_args!("bind_virq(virq {virq:#x}): -EINVAL")).as_str(),
            raw::bind_virq(virq, 0),
            Err(Errno::Einval),
        );
    }
    let unused = raw::bind_virq(5, 0);
    info(format_args!("bind_virq(5, an unused number): {unused:?}"));
    let unused = keep(unused);
    c.eq(
        "bind_virq(5, unused): bound like a global VIRQ",
        unused.and_then(events::status),
        virq_status(5, 0),
    );
    let xenoprof = keep(raw::bind_virq(VIRQ_XENOPROF, 0));
    c.eq(
        "bind_virq(VIRQ_XENOPROF, vCPU 0): per-vCPU",
        xenoprof.and_then(events::status),
        virq_status(VIRQ_XENOPROF, 0),
    );
    c.eq(
        "send on a VIRQ port: -EINVAL",
        raw::send(timer0),
        Err(Errno::Einval),
    );
    c.eq(
        "bind_vcpu(per-vCPU VIRQ port, 0): -EINVAL",
        raw::bind_vcpu(timer0, 0),
        Err(Errno::Einval),
    );
    c.eq(
        "bind_vcpu(global VIRQ port, vCPU 0): 0",
        raw::bind_vcpu(dom_exc, 0),
        Ok(0),
    );
    if vcpus >= 2 {
        c.eq(
            "bind_vcpu(global VIRQ port, vCPU 1): 0, and it notifies vCPU 1",
            raw::bind_vcpu(dom_exc, 1).and_then(|_| events::status(dom_exc)),
            virq_status(VIRQ_DOM_EXC, 1),
        );
    }

    // The timer VIRQ fires: vCPU 0's periodic timer (10 ms by default) raises it.
    TICKS.store(0, Ordering::SeqCst);
    c.eq(
        "attach a handler to the VIRQ_TIMER port",
        events::attach(timer0, 0, on_tick),
        Ok(timer0),
    );
    let was_enabled = events::disable();
    events::enable();
    let ticked = super::spin_until(200_000_000, || TICKS.load(Ordering::SeqCst) >= 3);
    events::restore(was_enabled);
    c.check(
        "VIRQ_TIMER fires on vCPU 0 with nothing armed (the default periodic timer)",
        ticked,
        format_args!("{} ticks in 200 ms", TICKS.load(Ordering::SeqCst)),
    );

    for &port in bound.iter().take(n) {
        let _ = events::close(port);
    }
    c.eq(
        "status of a closed VIRQ port: closed",
        events::status(timer0).map(|s| s.binding),
        Ok(Binding::Closed),
    );
    let again = raw::bind_virq(VIRQ_TIMER, 0);
    c.check(
        "bind_virq(VIRQ_TIMER, 0) after closing its port: allowed again",
        again.is_ok(),
        format_args!("{again:?}"),
    );
    if let Ok(port) = again {
        let _ = raw::close(port);
    }
}

static IPI: AtomicU64 = AtomicU64::new(0);

fn on_ipi(_: Port) {
    IPI.fetch_add(1, Ordering::SeqCst);
}

pub fn ipis(c: &mut Checks, vcpus: u32) {
    let ipi = raw::bind_ipi(0);
    c.eq(
        "bind_ipi(vCPU 0): a port, status ipi on vCPU 0",
        ipi.and_then(events::status),
        Ok(Status {
            binding: Binding::Ipi,
            vcpu: 0,
        }),
    );
    let Ok(ipi) = ipi else {
        return;
    };
    c.check(
        "a new IPI port is not pending",
        !events::is_pending(ipi),
        format_args!("pending"),
    );
    let _ = events::attach(ipi, 0, on_ipi);
    let was_enabled = events::disable();
    events::enable();
    for _ in 0..10_000 {
        let _ = raw::send(ipi);
    }
    events::restore(was_enabled);
    c.eq(
        "10,000 IPIs to the sending vCPU itself: exactly 10,000 handler calls",
        IPI.load(Ordering::SeqCst),
        10_000,
    );
    c.eq(
        "bind_vcpu(IPI port, 0): -EINVAL",
        raw::bind_vcpu(ipi, 0),
        Err(Errno::Einval),
    );
    let _ = events::close(ipi);
    for vcpu in [vcpus, 9999, 1 << 31] {
        c.eq(
            Name::of(format_args!("bind_ipi(vCPU {vcpu:#x}, none such): -ENOENT")).as_str(),
            raw::bind_ipi(vcpu),
            Err(Errno::Enoent),
        );
    }
    if vcpus >= 2 {
        let remote = raw::bind_ipi(1);
        c.eq(
            "bind_ipi(vCPU 1): notifies vCPU 1",
            remote.and_then(events::status),
            Ok(Status {
                binding: Binding::Ipi,
                vcpu: 1,
            }),
        );
        if let Ok(port) = remote {
            c.eq("send on vCPU 1's IPI port: 0", raw::send(port), Ok(0));
            c.check(
                "... pending (vCPU 1 is not running to take it)",
                events::is_pending(port),
                format_args!("not pending"),
            );
            let _ = raw::close(port);
        }
    }
}

pub fn bind_vcpu(c: &mut Checks, vcpus: u32) {
    let Ok(u) = raw::alloc_unbound(DOMID_SELF) else {
        return;
    };
    c.eq(
        "bind_vcpu(unbound port, vCPU 0): 0",
        raw::bind_vcpu(u, 0),
        Ok(0),
    );
    if vcpus >= 2 {
        c.eq(
            "bind_vcpu(unbound port, vCPU 1): 0, status says vCPU 1",
            raw::bind_vcpu(u, 1)
                .and_then(|_| events::status(u))
                .map(|s| s.vcpu),
            Ok(1),
        );
    }
    for vcpu in [vcpus, 9999] {
        c.eq(
            Name::of(format_args!(
                "bind_vcpu(unbound port, vCPU {vcpu}, none such): -ENOENT"
            ))
            .as_str(),
            raw::bind_vcpu(u, vcpu),
            Err(Errno::Enoent),
        );
    }
    let l = raw::bind_interdomain(DOMID_SELF, u);
    if let Ok(l) = l {
        c.eq(
            "bind_vcpu(interdomain port, vCPU 0): 0",
            raw::bind_vcpu(l, 0),
            Ok(0),
        );
        if vcpus >= 2 {
            c.eq(
                "status after bind_vcpu(interdomain, vCPU 1): vCPU 1",
                raw::bind_vcpu(l, 1)
                    .and_then(|_| events::status(l))
                    .map(|s| s.vcpu),
                Ok(1),
            );
            let _ = raw::bind_vcpu(l, 0);
        }
        let _ = raw::close(l);
    }
    if vcpus >= 2 {
        // The unbound end (bound to vCPU 1 above) comes back to vCPU 0 when closed and reused.
        let _ = raw::close(u);
        let again = raw::alloc_unbound(DOMID_SELF);
        c.eq(
            "a port closed while bound to vCPU 1 is reused notifying vCPU 0",
            again.and_then(events::status).map(|s| s.vcpu),
            Ok(0),
        );
        if let Ok(p) = again {
            let _ = raw::close(p);
        }
    } else {
        let _ = raw::close(u);
    }
    c.eq(
        "bind_vcpu(closed port, 0): -EINVAL",
        raw::bind_vcpu(u, 0),
        Err(Errno::Einval),
    );
}
