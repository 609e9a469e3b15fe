//! Event channels with the 2-level ABI (reference §6.3, §10; `SCHEDOP_poll` helpers for §12.1).
//!
//! [`EventHub`] holds every domain's port table, so an interdomain operation sees both of its
//! ends at once; the hypervisor keeps the hub under one lock. Each `EVTCHNOP_*` command of the
//! 2-level ABI is one method here, with Xen 4.17's argument checks, in Xen's order, and Xen's
//! error numbers; the hypercall layer only decodes arguments and copies results. The FIFO
//! commands are not handled here (the hypercall layer answers `-ENOSYS`), nor are PIRQs yet.
//!
//! Guest-visible state (pending and mask bitmaps, selectors, `evtchn_upcall_pending`) is in
//! guest memory and reached only through [`EventMemory`]; vCPUs to wake leave through
//! [`EventSink`]. Raising a port follows reference §10.3 exactly: pending bit, then (if
//! unmasked) selector, then `evtchn_upcall_pending` and a kick, each step only if the previous
//! one changed something; pollers hear about every newly pending port.
//!
//! Every number that comes from a guest (port, vCPU, VIRQ, domain id) is checked before it is
//! used; none can make this code panic or index out of bounds.
//!
//! Where Oxen knowingly differs from Xen:
//! - Xen's XSM default policy also lets a device-model stub domain act on its target; Oxen has
//!   no stub domains, so "another domain" always needs the privileged (control) domain.
//! - Xen grows port tables in buckets sized by `sizeof(struct evtchn)`; Oxen grows by
//!   [`PORT_CHUNK`] ports. Only which unallocated ports are `-EINVAL` rather than "closed" for
//!   `status`/`unmask` differs, which no guest can rely on.
//! - Operations are atomic under the hub's lock, so Xen's transient errors (`-EBUSY` from a
//!   concurrent reset, `-EINVAL` from a dying domain's allocation) cannot happen; the caller
//!   removes a domain with [`EventHub::remove_domain`] when it starts dying.
//! - vCPUs numbered 32 and up have no `vcpu_info` until they register one: events for them
//!   set pending bits only (Xen points them at a shared dummy `vcpu_info`).

mod delivery;
mod table;
#[cfg(test)]
mod tests;

pub use delivery::{
    EventMemory, EventSink, mask_bit, pending_bit, selector_word, upcall_mask_byte,
};
pub use table::{MAX_PORT_2L, PORT_CHUNK, PortState, virq_is_global};

use crate::types::{DomId, PAGE_SIZE, Paddr, Port, VcpuRef};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use delivery::VCPU_INFO_SIZE;
use hypercall_abi::domid::{DOMID_SELF, is_reserved};
use hypercall_abi::errno::Errno;
use hypercall_abi::evtchn::{
    EVTCHN_2L_NR_CHANNELS, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI,
    EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ, EvtchnStatus, NR_VIRQS,
};
use table::DomainEvents;

/// How a domain's event channels are set up when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventDomainConfig {
    /// Number of vCPUs (ids `0..nr_vcpus`).
    pub nr_vcpus: u32,
    /// Highest port the domain may allocate (Xen's `max_evtchn_port`); capped at
    /// [`MAX_PORT_2L`]. The toolstack's usual domU value is 1023.
    pub max_port: u32,
    /// Machine address of the domain's shared_info frame (page-aligned).
    pub shared_info: Paddr,
    /// Whether the domain may act on other domains' channels (the control domain).
    pub privileged: bool,
}

/// A port's binding and vCPU, as `EVTCHNOP_status` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// The binding (free and reserved ports both report `EVTCHNSTAT_closed`).
    pub state: PortState,
    /// The vCPU the port notifies.
    pub vcpu: u32,
}

impl PortStatus {
    /// The `EVTCHNSTAT_*` code.
    #[must_use]
    pub const fn code(&self) -> u32 {
        match self.state {
            PortState::Free | PortState::Reserved => EVTCHNSTAT_CLOSED,
            PortState::Unbound { .. } => EVTCHNSTAT_UNBOUND,
            PortState::Interdomain { .. } => EVTCHNSTAT_INTERDOMAIN,
            PortState::Virq { .. } => EVTCHNSTAT_VIRQ,
            PortState::Ipi => EVTCHNSTAT_IPI,
        }
    }

    /// Writes the OUT fields of an `evtchn_status` the guest passed in. As in Xen, only the
    /// union member of the reported status is written; the other union bytes keep the
    /// guest's values.
    pub fn fill(&self, out: &mut EvtchnStatus) {
        const DOM_BITS: u32 = u16::MAX as u32;
        out.status = self.code();
        out.vcpu = self.vcpu;
        match self.state {
            PortState::Unbound { remote } => {
                out.u[0] = (out.u[0] & !DOM_BITS) | u32::from(remote.0);
            }
            PortState::Interdomain {
                remote,
                remote_port,
            } => {
                out.u[0] = (out.u[0] & !DOM_BITS) | u32::from(remote.0);
                out.u[1] = remote_port.0;
            }
            PortState::Virq { virq } => out.u[0] = virq,
            PortState::Free | PortState::Reserved | PortState::Ipi => {}
        }
    }
}

/// Every domain's event channels.
#[derive(Debug, Default)]
pub struct EventHub {
    /// Per-domain state, by id.
    domains: BTreeMap<DomId, DomainEvents>,
}

impl EventHub {
    /// An empty hub.
    #[must_use]
    pub const fn new() -> Self {
        EventHub {
            domains: BTreeMap::new(),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Domains and vCPUs

    /// Adds a domain with no ports bound (port 0 reserved).
    ///
    /// # Errors
    /// `EEXIST` if `dom` is known already; `EINVAL` for a reserved id or a shared_info address
    /// that is not a whole page.
    pub fn add_domain(&mut self, dom: DomId, cfg: EventDomainConfig) -> Result<(), Errno> {
        if is_reserved(dom.0)
            || cfg.shared_info.page_offset() != 0
            || cfg.shared_info.checked_add(PAGE_SIZE).is_none()
        {
            return Err(Errno::Einval);
        }
        if self.domains.contains_key(&dom) {
            return Err(Errno::Eexist);
        }
        let d = DomainEvents::new(cfg.shared_info, cfg.privileged, cfg.max_port, cfg.nr_vcpus);
        self.domains.insert(dom, d);
        Ok(())
    }

    /// Closes every port of `dom` and forgets the domain (Xen's `evtchn_destroy`). The remote
    /// end of each of its interdomain channels becomes unbound, waiting for `dom` again.
    /// Call it before the domain's shared_info frame is freed.
    ///
    /// # Errors
    /// `ESRCH` if `dom` is unknown.
    pub fn remove_domain(&mut self, dom: DomId, mem: &mut dyn EventMemory) -> Result<(), Errno> {
        let valid = self.domain(dom)?.valid_ports();
        for port in (1..valid).rev() {
            // Free ports answer EINVAL; there is nothing to undo for them.
            let _ = self.close_port(dom, Port(port), mem);
        }
        self.domains.remove(&dom);
        Ok(())
    }

    /// Whether `dom` is known.
    #[must_use]
    pub fn contains(&self, dom: DomId) -> bool {
        self.domains.contains_key(&dom)
    }

    /// Records that vCPU `v` moved its `vcpu_info` to `vcpu_info` (`VCPUOP_register_vcpu_info`,
    /// after the caller copied the old contents there). As Xen does, every selector bit and
    /// `evtchn_upcall_pending` are then set and the vCPU kicked, so nothing pending is lost.
    ///
    /// # Errors
    /// `ESRCH` for an unknown domain, `ENOENT` for an unknown vCPU, `EINVAL` for an address
    /// whose 64 bytes would wrap.
    pub fn set_vcpu_info(
        &mut self,
        v: VcpuRef,
        vcpu_info: Paddr,
        mem: &mut dyn EventMemory,
        sink: &mut dyn EventSink,
    ) -> Result<(), Errno> {
        let d = self.domain_mut(v.dom)?;
        let slot = d.vcpu_mut(v.vcpu).ok_or(Errno::Enoent)?;
        if vcpu_info.checked_add(VCPU_INFO_SIZE).is_none() {
            return Err(Errno::Einval);
        }
        slot.vcpu_info = Some(vcpu_info);
        delivery::mark_all_pending(mem, sink, &d.target(v.dom, v.vcpu));
        Ok(())
    }

    /// Where vCPU `v`'s `vcpu_info` is, if it has one.
    #[must_use]
    pub fn vcpu_info(&self, v: VcpuRef) -> Option<Paddr> {
        self.domains.get(&v.dom)?.vcpu(v.vcpu)?.vcpu_info
    }

    // -----------------------------------------------------------------------------------------
    // EVTCHNOP_* commands. `caller` is the calling domain; other domain ids are as the guest
    // passed them (DOMID_SELF allowed).

    /// `EVTCHNOP_alloc_unbound`: allocates a port of `dom` that `remote_dom` may bind to.
    /// `DOMID_SELF` means the caller in both places.
    ///
    /// # Errors
    /// `ESRCH` if `dom` does not exist; `ENOSPC` if it has no free port; then `EPERM` if `dom`
    /// is not the caller and the caller is not privileged (Xen allocates before its XSM check,
    /// so a full domain reports `ENOSPC` first). `remote_dom` is not checked.
    pub fn alloc_unbound(
        &mut self,
        caller: DomId,
        dom: DomId,
        remote_dom: DomId,
    ) -> Result<Port, Errno> {
        let id = self.resolve(caller, dom)?;
        let allowed = id == caller || self.privileged(caller);
        let remote = if remote_dom.0 == DOMID_SELF {
            caller
        } else {
            remote_dom
        };
        let d = self.domain_mut(id)?;
        let port = d.find_free_port()?;
        if !allowed {
            return Err(Errno::Eperm);
        }
        let chn = d.channel_mut(port).ok_or(Errno::Enospc)?;
        chn.state = PortState::Unbound { remote };
        Ok(port)
    }

    /// `EVTCHNOP_bind_interdomain`: connects a new port of the caller to `remote_port` of
    /// `remote_dom`, which must be unbound and waiting for the caller (`DOMID_SELF`: a
    /// loopback channel). The new port is then raised, in case the other end was notified
    /// before the connection existed.
    ///
    /// # Errors
    /// `ESRCH` if `remote_dom` does not exist; `ENOSPC` if the caller has no free port;
    /// `EINVAL` if `remote_port` is not valid in `remote_dom` or not unbound for the caller.
    pub fn bind_interdomain(
        &mut self,
        caller: DomId,
        remote_dom: DomId,
        remote_port: Port,
        mem: &mut dyn EventMemory,
        sink: &mut dyn EventSink,
    ) -> Result<Port, Errno> {
        let rid = self.resolve(caller, remote_dom)?;
        let lport = self.domain_mut(caller)?.find_free_port()?;
        let rchn = self
            .domain(rid)?
            .channel(remote_port)
            .ok_or(Errno::Einval)?;
        if rchn.state != (PortState::Unbound { remote: caller }) {
            return Err(Errno::Einval);
        }

        let r = self
            .domain_mut(rid)?
            .channel_mut(remote_port)
            .ok_or(Errno::Einval)?;
        r.state = PortState::Interdomain {
            remote: caller,
            remote_port: lport,
        };
        let ld = self.domain_mut(caller)?;
        let l = ld.channel_mut(lport).ok_or(Errno::Enospc)?;
        l.state = PortState::Interdomain {
            remote: rid,
            remote_port,
        };
        let notify = l.notify_vcpu;
        let target = ld.target(caller, notify);
        delivery::set_pending(mem, sink, &target, lport);
        Ok(lport)
    }

    /// `EVTCHNOP_bind_virq`: binds VIRQ `virq` to a new port notifying `vcpu`.
    ///
    /// # Errors
    /// `EINVAL` for `virq >= NR_VIRQS` or a global VIRQ on a vCPU other than 0; `ENOENT` for a
    /// vCPU that does not exist; `EEXIST` if the VIRQ is bound on that vCPU already; `ENOSPC`
    /// if no port is free.
    pub fn bind_virq(&mut self, caller: DomId, virq: u32, vcpu: u32) -> Result<Port, Errno> {
        if virq >= NR_VIRQS || (virq_is_global(virq) && vcpu != 0) {
            return Err(Errno::Einval);
        }
        let d = self.domain_mut(caller)?;
        if d.vcpu(vcpu).is_none() {
            return Err(Errno::Enoent);
        }
        if d.virq_port(vcpu, virq).is_some() {
            return Err(Errno::Eexist);
        }
        let port = d.find_free_port()?;
        let chn = d.channel_mut(port).ok_or(Errno::Enospc)?;
        chn.state = PortState::Virq { virq };
        chn.notify_vcpu = vcpu;
        let slot = d.virq_slot(vcpu, virq).ok_or(Errno::Einval)?;
        *slot = Some(port);
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`: allocates an IPI port notifying `vcpu`.
    ///
    /// # Errors
    /// `ENOENT` for a vCPU that does not exist; `ENOSPC` if no port is free.
    pub fn bind_ipi(&mut self, caller: DomId, vcpu: u32) -> Result<Port, Errno> {
        let d = self.domain_mut(caller)?;
        if d.vcpu(vcpu).is_none() {
            return Err(Errno::Enoent);
        }
        let port = d.find_free_port()?;
        let chn = d.channel_mut(port).ok_or(Errno::Enospc)?;
        chn.state = PortState::Ipi;
        chn.notify_vcpu = vcpu;
        Ok(port)
    }

    /// `EVTCHNOP_bind_vcpu`: sends `port`'s future events to `vcpu`. Allowed for unbound,
    /// interdomain and global-VIRQ ports. Bits already set stay where they are.
    ///
    /// # Errors
    /// `ENOENT` for a vCPU that does not exist (checked first); `EINVAL` for an invalid port,
    /// or one that is free, per-vCPU VIRQ or IPI.
    pub fn bind_vcpu(&mut self, caller: DomId, port: Port, vcpu: u32) -> Result<(), Errno> {
        let d = self.domain_mut(caller)?;
        if d.vcpu(vcpu).is_none() {
            return Err(Errno::Enoent);
        }
        let chn = d.channel_mut(port).ok_or(Errno::Einval)?;
        match chn.state {
            PortState::Virq { virq } if virq_is_global(virq) => chn.notify_vcpu = vcpu,
            PortState::Unbound { .. } | PortState::Interdomain { .. } => chn.notify_vcpu = vcpu,
            PortState::Virq { .. } | PortState::Ipi | PortState::Free | PortState::Reserved => {
                return Err(Errno::Einval);
            }
        }
        Ok(())
    }

    /// `EVTCHNOP_close`: frees `port`, clearing its pending bit. The other end of an
    /// interdomain channel becomes unbound, waiting for the caller again.
    ///
    /// # Errors
    /// `EINVAL` for an invalid, free or reserved port.
    pub fn close(
        &mut self,
        caller: DomId,
        port: Port,
        mem: &mut dyn EventMemory,
    ) -> Result<(), Errno> {
        self.close_port(caller, port, mem)
    }

    /// `EVTCHNOP_send`: through an interdomain port, raises the remote port; through an IPI
    /// port, raises that port; through an unbound port, does nothing.
    ///
    /// # Errors
    /// `EINVAL` for an invalid port, or one that is free, reserved or bound to a VIRQ.
    pub fn send(
        &self,
        caller: DomId,
        port: Port,
        mem: &mut dyn EventMemory,
        sink: &mut dyn EventSink,
    ) -> Result<(), Errno> {
        let d = self.domain(caller)?;
        let chn = d.channel(port).ok_or(Errno::Einval)?;
        match chn.state {
            PortState::Interdomain {
                remote,
                remote_port,
            } => {
                // The peer always exists while the channel does (see `check_invariants`).
                if let Some(rd) = self.domains.get(&remote)
                    && let Some(rchn) = rd.channel(remote_port)
                {
                    let target = rd.target(remote, rchn.notify_vcpu);
                    delivery::set_pending(mem, sink, &target, remote_port);
                }
                Ok(())
            }
            PortState::Ipi => {
                delivery::set_pending(mem, sink, &d.target(caller, chn.notify_vcpu), port);
                Ok(())
            }
            PortState::Unbound { .. } => Ok(()),
            PortState::Virq { .. } | PortState::Free | PortState::Reserved => Err(Errno::Einval),
        }
    }

    /// `EVTCHNOP_status`: what `port` of `dom` is bound to. Use [`PortStatus::fill`] to answer
    /// the guest.
    ///
    /// # Errors
    /// `ESRCH` if `dom` does not exist; `EINVAL` if `port` is not valid there; `EPERM` if
    /// `dom` is not the caller and the caller is not privileged.
    pub fn status(&self, caller: DomId, dom: DomId, port: Port) -> Result<PortStatus, Errno> {
        let id = self.resolve(caller, dom)?;
        let chn = self.domain(id)?.channel(port).ok_or(Errno::Einval)?;
        if id != caller && !self.privileged(caller) {
            return Err(Errno::Eperm);
        }
        Ok(PortStatus {
            state: chn.state,
            vcpu: chn.notify_vcpu,
        })
    }

    /// `EVTCHNOP_unmask`: clears `port`'s mask bit; if it was set and the port is pending,
    /// delivers the held-back notification to the port's vCPU (any valid port, bound or not).
    ///
    /// # Errors
    /// `EINVAL` for an invalid port.
    pub fn unmask(
        &self,
        caller: DomId,
        port: Port,
        mem: &mut dyn EventMemory,
        sink: &mut dyn EventSink,
    ) -> Result<(), Errno> {
        let d = self.domain(caller)?;
        let chn = d.channel(port).ok_or(Errno::Einval)?;
        delivery::unmask(mem, sink, &d.target(caller, chn.notify_vcpu), port);
        Ok(())
    }

    /// `EVTCHNOP_reset`: closes every port of `dom`. Resetting another domain needs
    /// privilege, and (as Xen requires) that domain must be paused by the controller, which
    /// the caller reports in `target_paused`.
    ///
    /// # Errors
    /// `ESRCH` if `dom` does not exist; `EPERM` if it is not the caller and the caller is not
    /// privileged; `EINVAL` if it is not the caller and not paused.
    pub fn reset(
        &mut self,
        caller: DomId,
        dom: DomId,
        target_paused: bool,
        mem: &mut dyn EventMemory,
    ) -> Result<(), Errno> {
        let id = self.resolve(caller, dom)?;
        if id != caller && !self.privileged(caller) {
            return Err(Errno::Eperm);
        }
        if id != caller && !target_paused {
            return Err(Errno::Einval);
        }
        let valid = self.domain(id)?.valid_ports();
        for port in 1..valid {
            // Free ports answer EINVAL; there is nothing to undo for them.
            let _ = self.close_port(id, Port(port), mem);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Raising events from the hypervisor

    /// Raises per-vCPU VIRQ `virq` on vCPU `v`, if bound. Returns whether it was bound;
    /// global VIRQs and numbers past [`NR_VIRQS`] are ignored (false).
    pub fn send_virq(
        &self,
        v: VcpuRef,
        virq: u32,
        mem: &mut dyn EventMemory,
        sink: &mut dyn EventSink,
    ) -> bool {
        if virq >= NR_VIRQS || virq_is_global(virq) {
            return false;
        }
        let Some(d) = self.domains.get(&v.dom) else {
            return false;
        };
        let Some(port) = d.virq_port(v.vcpu, virq) else {
            return false;
        };
        delivery::set_pending(mem, sink, &d.target(v.dom, v.vcpu), port);
        true
    }

    /// Raises global VIRQ `virq` of `dom`, if bound, on whichever vCPU its port notifies.
    /// Returns whether it was bound; per-vCPU VIRQs and numbers past [`NR_VIRQS`] are
    /// ignored (false).
    pub fn send_global_virq(
        &self,
        dom: DomId,
        virq: u32,
        mem: &mut dyn EventMemory,
        sink: &mut dyn EventSink,
    ) -> bool {
        if virq >= NR_VIRQS || !virq_is_global(virq) {
            return false;
        }
        let Some(d) = self.domains.get(&dom) else {
            return false;
        };
        let Some(port) = d.virq_port(0, virq) else {
            return false;
        };
        let Some(chn) = d.channel(port) else {
            return false;
        };
        delivery::set_pending(mem, sink, &d.target(dom, chn.notify_vcpu), port);
        true
    }

    /// Raises `port` of `dom` on the vCPU it notifies, whatever it is bound to.
    ///
    /// # Errors
    /// `ESRCH` for an unknown domain; `EINVAL` for an invalid, free or reserved port.
    pub fn raise(
        &self,
        dom: DomId,
        port: Port,
        mem: &mut dyn EventMemory,
        sink: &mut dyn EventSink,
    ) -> Result<(), Errno> {
        let d = self.domain(dom)?;
        let chn = d.channel(port).ok_or(Errno::Einval)?;
        if matches!(chn.state, PortState::Free | PortState::Reserved) {
            return Err(Errno::Einval);
        }
        delivery::set_pending(mem, sink, &d.target(dom, chn.notify_vcpu), port);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Queries for the scheduler and the return-to-guest path

    /// Whether `port` of `dom` is pending (one port of `SCHEDOP_poll`).
    ///
    /// # Errors
    /// `ESRCH` for an unknown domain; `EINVAL` for an invalid port.
    pub fn is_pending(&self, dom: DomId, port: Port, mem: &dyn EventMemory) -> Result<bool, Errno> {
        let d = self.domain(dom)?;
        d.channel(port).ok_or(Errno::Einval)?;
        Ok(delivery::is_pending(mem, d.shared_info, port))
    }

    /// `SCHEDOP_poll`'s check: looks at `ports` in order and answers true at the first pending
    /// one, as Xen does (so an invalid port after a pending one is not reported).
    ///
    /// # Errors
    /// `ESRCH` for an unknown domain; `EINVAL` at the first invalid port met.
    pub fn any_pending(
        &self,
        dom: DomId,
        ports: &[Port],
        mem: &dyn EventMemory,
    ) -> Result<bool, Errno> {
        for &port in ports {
            if self.is_pending(dom, port, mem)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether an event upcall is due on `v` (reference §8.4): its `evtchn_upcall_pending` is
    /// non-zero and its `evtchn_upcall_mask` zero. False for a vCPU without a `vcpu_info`.
    #[must_use]
    pub fn upcall_deliverable(&self, v: VcpuRef, mem: &dyn EventMemory) -> bool {
        self.vcpu_info(v)
            .is_some_and(|vi| delivery::upcall_deliverable(mem, vi))
    }

    /// The binding of `port` of `dom`, if both exist.
    #[must_use]
    pub fn port_state(&self, dom: DomId, port: Port) -> Option<PortState> {
        Some(self.domains.get(&dom)?.channel(port)?.state)
    }

    /// The vCPU `port` of `dom` notifies, if both exist.
    #[must_use]
    pub fn notify_vcpu(&self, dom: DomId, port: Port) -> Option<u32> {
        Some(self.domains.get(&dom)?.channel(port)?.notify_vcpu)
    }

    /// The port VIRQ `virq` is bound to on `v` (global VIRQs: look on vCPU 0).
    #[must_use]
    pub fn virq_port(&self, v: VcpuRef, virq: u32) -> Option<Port> {
        self.domains.get(&v.dom)?.virq_port(v.vcpu, virq)
    }

    /// Number of valid ports of `dom` (allocated table entries, port 0 included).
    #[must_use]
    pub fn valid_ports(&self, dom: DomId) -> Option<u32> {
        Some(self.domains.get(&dom)?.valid_ports())
    }

    /// Checks the hub's internal consistency; a description of the first problem otherwise.
    /// Meant for tests and debug builds:
    /// - every table has between one chunk and 4096 ports, a whole number of chunks, port 0
    ///   reserved and nothing else reserved;
    /// - free ports notify vCPU 0; bound ports lie within `max_port` and notify an existing
    ///   vCPU;
    /// - each interdomain port's peer exists and points back at it;
    /// - each VIRQ port is in exactly the VIRQ table slot it belongs to (vCPU 0 for global
    ///   VIRQs, its own vCPU for per-vCPU ones), and each slot points at such a port.
    ///
    /// # Errors
    /// A message naming the domain, port or vCPU at fault.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (&dom, d) in &self.domains {
            self.check_domain(dom, d)?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Internals

    /// The domain named `dom` from `caller`'s point of view (`DOMID_SELF` is the caller).
    fn resolve(&self, caller: DomId, dom: DomId) -> Result<DomId, Errno> {
        let id = if dom.0 == DOMID_SELF { caller } else { dom };
        if self.domains.contains_key(&id) {
            Ok(id)
        } else {
            Err(Errno::Esrch)
        }
    }

    /// Whether `dom` exists and is privileged.
    fn privileged(&self, dom: DomId) -> bool {
        self.domains.get(&dom).is_some_and(|d| d.privileged)
    }

    /// Domain `dom`, or `ESRCH`.
    fn domain(&self, dom: DomId) -> Result<&DomainEvents, Errno> {
        self.domains.get(&dom).ok_or(Errno::Esrch)
    }

    /// Domain `dom`, or `ESRCH`.
    fn domain_mut(&mut self, dom: DomId) -> Result<&mut DomainEvents, Errno> {
        self.domains.get_mut(&dom).ok_or(Errno::Esrch)
    }

    /// Closes one port (Xen's `evtchn_close`).
    fn close_port(
        &mut self,
        dom: DomId,
        port: Port,
        mem: &mut dyn EventMemory,
    ) -> Result<(), Errno> {
        let d = self.domain_mut(dom)?;
        let chn = *d.channel(port).ok_or(Errno::Einval)?;
        let mut peer = None;
        match chn.state {
            PortState::Free | PortState::Reserved => return Err(Errno::Einval),
            PortState::Unbound { .. } | PortState::Ipi => {}
            PortState::Virq { virq } => {
                for v in &mut d.vcpus {
                    let slot = usize::try_from(virq).ok().and_then(|i| v.virqs.get_mut(i));
                    if let Some(slot) = slot
                        && *slot == Some(port)
                    {
                        *slot = None;
                    }
                }
            }
            PortState::Interdomain {
                remote,
                remote_port,
            } => peer = Some((remote, remote_port)),
        }
        d.free(mem, port);

        if let Some((remote, remote_port)) = peer
            && let Some(rchn) = self
                .domains
                .get_mut(&remote)
                .and_then(|rd| rd.channel_mut(remote_port))
            && rchn.state
                == (PortState::Interdomain {
                    remote: dom,
                    remote_port: port,
                })
        {
            rchn.state = PortState::Unbound { remote: dom };
        }
        Ok(())
    }

    /// One domain's part of [`EventHub::check_invariants`].
    fn check_domain(&self, dom: DomId, d: &DomainEvents) -> Result<(), String> {
        let valid = d.valid_ports();
        if valid < PORT_CHUNK || !valid.is_multiple_of(PORT_CHUNK) || valid > EVTCHN_2L_NR_CHANNELS
        {
            return Err(format!("{dom}: table of {valid} ports"));
        }
        if d.max_port > MAX_PORT_2L {
            return Err(format!("{dom}: max_port {} too high", d.max_port));
        }
        for (port, chn) in d.channels() {
            let at = format!("{dom} port {}", port.0);
            match chn.state {
                PortState::Reserved if port.0 != 0 => return Err(format!("{at}: reserved")),
                _ if port.0 == 0 && chn.state != PortState::Reserved => {
                    return Err(format!("{at}: not reserved"));
                }
                PortState::Free | PortState::Reserved => {
                    if chn.notify_vcpu != 0 {
                        return Err(format!("{at}: free but notifies v{}", chn.notify_vcpu));
                    }
                    continue;
                }
                _ => {}
            }
            if port.0 > d.max_port {
                return Err(format!("{at}: bound above max_port {}", d.max_port));
            }
            if chn.notify_vcpu != 0 && chn.notify_vcpu >= d.nr_vcpus() {
                return Err(format!("{at}: notifies missing v{}", chn.notify_vcpu));
            }
            match chn.state {
                PortState::Interdomain {
                    remote,
                    remote_port,
                } => {
                    let back = self
                        .domains
                        .get(&remote)
                        .and_then(|rd| rd.channel(remote_port))
                        .map(|c| c.state);
                    let expected = PortState::Interdomain {
                        remote: dom,
                        remote_port: port,
                    };
                    if back != Some(expected) {
                        return Err(format!(
                            "{at}: peer {remote} port {} is {back:?}",
                            remote_port.0
                        ));
                    }
                }
                PortState::Virq { virq } => {
                    if virq >= NR_VIRQS {
                        return Err(format!("{at}: VIRQ {virq}"));
                    }
                    let holder = if virq_is_global(virq) {
                        0
                    } else {
                        chn.notify_vcpu
                    };
                    if d.virq_port(holder, virq) != Some(port) {
                        return Err(format!("{at}: VIRQ {virq} not in v{holder}'s table"));
                    }
                }
                _ => {}
            }
        }
        for (vcpu, ve) in (0u32..).zip(d.vcpus.iter()) {
            for (virq, slot) in (0u32..).zip(ve.virqs.iter()) {
                let Some(port) = *slot else { continue };
                let at = format!("{dom} v{vcpu} VIRQ {virq}");
                let Some(chn) = d.channel(port) else {
                    return Err(format!("{at}: invalid port {}", port.0));
                };
                if chn.state != (PortState::Virq { virq }) {
                    return Err(format!("{at}: port {} is {:?}", port.0, chn.state));
                }
                let owner_ok = if virq_is_global(virq) {
                    vcpu == 0
                } else {
                    chn.notify_vcpu == vcpu
                };
                if !owner_ok {
                    return Err(format!("{at}: held by the wrong vCPU"));
                }
            }
        }
        Ok(())
    }
}
