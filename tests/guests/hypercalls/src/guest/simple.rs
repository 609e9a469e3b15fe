//! console_io, xen_version, sched_op, set_trap_table, callbacks, fpu_taskswitch, vm_assist,
//! physdev_op, event channels, vcpu_op, unknown numbers and the iret hypercall.

use guest_support::{Checks, Name, info};
use pv_guest_kit::abi::console::CONSOLEIO_WRITE;
use pv_guest_kit::abi::errno::Errno;
use pv_guest_kit::abi::hypercall::*;
use pv_guest_kit::abi::sched::{SCHEDOP_SHUTDOWN, ShutdownReason};
use pv_guest_kit::abi::segments::FLAT_KERNEL_CS;
use pv_guest_kit::abi::traps::{
    CALLBACKF_MASK_EVENTS, CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CallbackRegister,
    CallbackType, CallbackUnregister, TrapInfo,
};
use pv_guest_kit::abi::vcpu::VGCF_IN_SYSCALL;
use pv_guest_kit::abi::version::*;
use pv_guest_kit::abi::vm_assist::{VmAssistCmd, VmAssistType};
use pv_guest_kit::arch::shared;
use pv_guest_kit::errno::result_from_ret;
use pv_guest_kit::hypercall::{console, evtchn, physdev, sched, vcpu, version};
use pv_guest_kit::text::cstr;
use pv_guest_kit::traps;

use super::raw::{self, NON_CANONICAL, UNMAPPED};

pub fn console(c: &mut Checks) {
    let msg = b"console_io: a line written with CONSOLEIO_write\n";
    c.eq("console_io(write) returns 0", console::write(msg), Ok(0));
    c.eq(
        "console_io(write) of an unmapped buffer: -EFAULT",
        result_from_ret(raw::call3(
            HYPERVISOR_CONSOLE_IO,
            u64::from(CONSOLEIO_WRITE),
            16,
            UNMAPPED,
        )),
        Err(Errno::Efault),
    );
    // A long write (more than one call's worth for Oxen, which continues it): carriage
    // returns only, so the transcript does not change.
    static LONG: [u8; 40_000] = [b'\r'; 40_000];
    c.eq(
        "console_io(write) of 40,000 bytes returns 0",
        console::write(&LONG),
        Ok(0),
    );
    c.eq(
        "console_io(unknown command 2): -ENOSYS",
        result_from_ret(raw::call3(HYPERVISOR_CONSOLE_IO, 2, 0, 0)),
        Err(Errno::Enosys),
    );
    let mut buf = [0u8; 16];
    let read = console::read(&mut buf);
    c.check(
        "console_io(read) on dom0: >= 0 bytes",
        read.is_ok_and(|n| n <= 16),
        format_args!("{read:?}"),
    );
}

pub fn version(c: &mut Checks) {
    c.eq(
        "xen_version(version): 0x00040011 (4.17)",
        version::version(),
        Ok(0x0004_0011),
    );
    match version::extraversion() {
        Ok(extra) => {
            info(format_args!("extraversion {:?}", cstr(&extra)));
            c.check(
                "xen_version(extraversion): starts with '.'",
                cstr(&extra).starts_with('.'),
                format_args!("{:?}", cstr(&extra)),
            );
        }
        Err(e) => c.fail("xen_version(extraversion)", format_args!("{e:?}")),
    }
    match version::compile_info() {
        Ok(ci) => {
            info(format_args!(
                "compile_info: compiler {:?} by {:?} domain {:?} date {:?}",
                cstr(&ci.compiler),
                cstr(&ci.compile_by),
                cstr(&ci.compile_domain),
                cstr(&ci.compile_date)
            ));
            c.check(
                "xen_version(compile_info): a compiler is named",
                !cstr(&ci.compiler).is_empty(),
                format_args!("empty"),
            );
        }
        Err(e) => c.fail("xen_version(compile_info)", format_args!("{e:?}")),
    }
    let mut caps = [0u8; XEN_CAPABILITIES_INFO_LEN];
    let ret = version::capabilities(&mut caps);
    info(format_args!("capabilities {:?}", cstr(&caps)));
    c.check(
        "xen_version(capabilities): contains xen-3.0-x86_64",
        ret == Ok(0) && cstr(&caps).split(' ').any(|abi| abi == "xen-3.0-x86_64"),
        format_args!("{ret:?} {:?}", cstr(&caps)),
    );
    match version::changeset() {
        Ok(cs) => {
            info(format_args!("changeset {:?}", cstr(&cs)));
            c.pass("xen_version(changeset): 0");
        }
        Err(e) => c.fail("xen_version(changeset)", format_args!("{e:?}")),
    }
    c.eq(
        "xen_version(platform_parameters): virt_start 0xffff800000000000",
        version::platform_parameters().map(|p| p.virt_start),
        Ok(0xffff_8000_0000_0000),
    );
    let features = version::get_features(0);
    info(format_args!("get_features(0) {:#x?}", features));
    c.eq(
        "xen_version(get_features, 0): dom0 + bits 5,6,7,13,17",
        features,
        Ok(XENFEAT_PV64_DOM0),
    );
    c.eq(
        "xen_version(get_features, 1): -EINVAL",
        version::get_features(1),
        Err(Errno::Einval),
    );
    c.eq(
        "xen_version(pagesize, NULL): 4096",
        version::pagesize(),
        Ok(4096),
    );
    let mut scratch = [0u64; 2];
    let pagesize_arg = result_from_ret(raw::call2(
        HYPERVISOR_XEN_VERSION,
        u64::from(XENVER_PAGESIZE),
        scratch.as_mut_ptr() as u64,
    ));
    c.eq(
        "xen_version(pagesize, non-NULL arg): -EINVAL",
        pagesize_arg,
        Err(Errno::Einval),
    );
    c.eq(
        "xen_version(guest_handle): dom0's handle is all zero",
        version::guest_handle(),
        Ok([0; 16]),
    );
    let mut cmdline = [0u8; XEN_COMMANDLINE_LEN];
    let ret = version::commandline(&mut cmdline);
    info(format_args!("commandline {:?}", cstr(&cmdline)));
    c.check(
        "xen_version(commandline) on dom0: Xen's command line",
        ret == Ok(0) && cstr(&cmdline).contains("console=com1"),
        format_args!("{ret:?} {:?}", cstr(&cmdline)),
    );
    let mut id = [0u8; 64];
    let build_id = version::build_id(&mut id);
    info(format_args!("build_id {build_id:?}"));
    c.check(
        "xen_version(build_id) on dom0: a length, or -ENODATA",
        matches!(build_id, Ok(1..=60) | Err(Errno::Enodata)),
        format_args!("{build_id:?}"),
    );
    c.eq(
        "xen_version(capabilities) to an unmapped buffer: -EFAULT",
        result_from_ret(raw::call2(
            HYPERVISOR_XEN_VERSION,
            u64::from(XENVER_CAPABILITIES),
            UNMAPPED,
        )),
        Err(Errno::Efault),
    );
    c.eq(
        "xen_version(get_features) from an unmapped struct: -EFAULT",
        result_from_ret(raw::call2(
            HYPERVISOR_XEN_VERSION,
            u64::from(XENVER_GET_FEATURES),
            UNMAPPED,
        )),
        Err(Errno::Efault),
    );
    // Xen reads the command as a 32-bit int: 0x1_0000_0000 is XENVER_version.
    c.eq(
        "xen_version(0x1_0000_0000): the command is truncated to 32 bits (= XENVER_version)",
        result_from_ret(raw::call2(HYPERVISOR_XEN_VERSION, 0x1_0000_0000, 0)),
        Ok(0x0004_0011),
    );
    for cmd in [11u64, 64, 0xffff_ffff] {
        c.eq(
            Name::of(format_args!(
                "xen_version(unknown command {cmd:#x}): -ENOSYS"
            ))
            .as_str(),
            result_from_ret(raw::call2(HYPERVISOR_XEN_VERSION, cmd, 0)),
            Err(Errno::Enosys),
        );
    }
}

pub fn sched(c: &mut Checks) {
    c.eq("sched_op(yield): 0", sched::yield_now(), Ok(0));
    c.eq(
        "sched_op(unknown command 99): -ENOSYS",
        result_from_ret(raw::call2(HYPERVISOR_SCHED_OP, 99, 0)),
        Err(Errno::Enosys),
    );
    c.eq(
        "sched_op(shutdown) with an unmapped argument: -EFAULT",
        result_from_ret(raw::call2(
            HYPERVISOR_SCHED_OP,
            u64::from(SCHEDOP_SHUTDOWN),
            UNMAPPED,
        )),
        Err(Errno::Efault),
    );
    match shared::vcpu0() {
        Ok(vcpu) => {
            let now = vcpu.system_time_ns();
            c.eq(
                "sched_op(poll), no ports, 1 ms timeout, events masked: 0",
                sched::poll(&[], now + 1_000_000),
                Ok(0),
            );
            let later = vcpu.system_time_ns();
            c.check(
                "sched_op(poll) slept until its timeout",
                later >= now + 1_000_000,
                format_args!("{now} -> {later}"),
            );
            let too_many = [0u32; 129];
            c.eq(
                "sched_op(poll) with 129 ports: -EINVAL",
                sched::poll(&too_many, 0),
                Err(Errno::Einval),
            );
        }
        Err(e) => c.fail("map shared_info", format_args!("{e:?}")),
    }
}

fn trap_entry(vector: u8, address: u64) -> [TrapInfo; 2] {
    [
        TrapInfo {
            vector,
            flags: 0,
            cs: FLAT_KERNEL_CS,
            _pad0: 0,
            address,
        },
        TrapInfo::default(),
    ]
}

/// `SCHEDOP_shutdown_code(poweroff)`. On Xen the recorded code then overrides the reason of
/// any later shutdown, a crash included, so this runs last, just before the guest's own
/// poweroff (a failed run still prints `RESULT: FAIL`).
pub fn shutdown_code(c: &mut Checks) {
    c.eq(
        "sched_op(shutdown_code, poweroff): 0",
        sched::shutdown_code(ShutdownReason::Poweroff),
        Ok(0),
    );
}

pub fn trap_table(c: &mut Checks) {
    c.eq(
        "set_trap_table(unmapped pointer): -EFAULT",
        result_from_ret(raw::set_trap_table_raw(UNMAPPED)),
        Err(Errno::Efault),
    );
    let bad = trap_entry(0x90, NON_CANONICAL);
    c.eq(
        "set_trap_table with a non-canonical handler: -EINVAL",
        result_from_ret(raw::set_trap_table_raw(bad.as_ptr() as u64)),
        Err(Errno::Einval),
    );
    c.eq(
        "set_trap_table(NULL) clears the table: 0",
        result_from_ret(raw::set_trap_table_raw(0)),
        Ok(0),
    );
    c.eq(
        "set_trap_table: the kit's table again",
        traps::init(),
        Ok(0),
    );
    let good = trap_entry(0x90, traps::stub_address(0x90));
    c.eq(
        "set_trap_table with one entry: 0",
        result_from_ret(raw::set_trap_table_raw(good.as_ptr() as u64)),
        Ok(0),
    );
}

fn register(kind: u16, flags: u16, address: u64) -> Result<u64, Errno> {
    let arg = CallbackRegister {
        type_: kind,
        flags,
        _pad0: 0,
        address,
    };
    raw::callback_op_raw(CALLBACKOP_REGISTER, core::ptr::from_ref(&arg) as u64)
}

fn unregister(kind: u16) -> Result<u64, Errno> {
    let arg = CallbackUnregister {
        type_: kind,
        _unused: 0,
    };
    raw::callback_op_raw(CALLBACKOP_UNREGISTER, core::ptr::from_ref(&arg) as u64)
}

pub fn callbacks(c: &mut Checks) {
    // Entry points: unused trap stubs (events stay masked, so none is ever entered).
    let entry = traps::stub_address(0xf0);
    for kind in CallbackType::ALL {
        let ret = register(kind.raw(), CALLBACKF_MASK_EVENTS, entry);
        info(format_args!("callback_op(register, {kind}) {ret:?}"));
        let want = if *kind == CallbackType::SysenterDeprecated {
            Err(Errno::Enosys)
        } else {
            Ok(0)
        };
        c.eq(
            Name::of(format_args!("callback_op(register, {kind})")).as_str(),
            ret,
            want,
        );
    }
    c.eq(
        "callback_op(register, unknown type 6): -ENOSYS",
        register(6, 0, entry),
        Err(Errno::Enosys),
    );
    c.eq(
        "callback_op(register, event, non-canonical): -EINVAL",
        register(CallbackType::Event.raw(), 0, NON_CANONICAL),
        Err(Errno::Einval),
    );
    c.eq(
        "callback_op(register) from an unmapped struct: -EFAULT",
        raw::callback_op_raw(CALLBACKOP_REGISTER, UNMAPPED),
        Err(Errno::Efault),
    );
    c.eq(
        "callback_op(unknown command 2): -ENOSYS",
        raw::callback_op_raw(2, 0),
        Err(Errno::Enosys),
    );
    for kind in CallbackType::ALL {
        let ret = unregister(kind.raw());
        info(format_args!("callback_op(unregister, {kind}) {ret:?}"));
        let want = match kind {
            CallbackType::Nmi => Ok(0),
            CallbackType::SysenterDeprecated => Err(Errno::Enosys),
            _ => Err(Errno::Einval),
        };
        c.eq(
            Name::of(format_args!("callback_op(unregister, {kind})")).as_str(),
            ret,
            want,
        );
    }
    c.eq(
        "callback_op(unregister, unknown type 6): -ENOSYS",
        unregister(6),
        Err(Errno::Enosys),
    );
    c.eq(
        "set_callbacks(event, failsafe, syscall): 0",
        raw::set_callbacks(entry, traps::failsafe_entry(), entry),
        Ok(0),
    );
    let bad = raw::set_callbacks(NON_CANONICAL, NON_CANONICAL, NON_CANONICAL);
    info(format_args!("set_callbacks(non-canonical x3) {bad:?}"));
    c.eq(
        "set_callbacks with non-canonical addresses: 0 (errors are ignored)",
        bad,
        Ok(0),
    );
    c.eq(
        "set_callbacks again with the stubs: 0",
        raw::set_callbacks(entry, traps::failsafe_entry(), entry),
        Ok(0),
    );
    let top = pv_guest_kit::arch::entry::stack_range().end;
    c.eq(
        "stack_switch(FLAT_KERNEL_SS, the kit's stack top): 0",
        raw::stack_switch(pv_guest_kit::abi::segments::FLAT_KERNEL_SS, top),
        Ok(0),
    );
}

/// A long multicall (more entries than Oxen runs per call before continuing it): every entry
/// runs once and gets its own result.
pub fn long_multicall(c: &mut Checks) {
    use pv_guest_kit::abi::multicall::MulticallEntry;
    static mut ENTRIES: [MulticallEntry; 300] = [MulticallEntry {
        op: HYPERVISOR_XEN_VERSION as u64,
        result: u64::MAX,
        args: [XENVER_VERSION as u64, 0, 0, 0, 0, 0],
    }; 300];
    // SAFETY: the entries are only used here, one call at a time, and each runs
    // xen_version(XENVER_version), which changes nothing.
    let (ret, good) = unsafe {
        let entries = &mut *core::ptr::addr_of_mut!(ENTRIES);
        let ret = pv_guest_kit::hypercall::multicall::multicall(entries);
        let good = entries.iter().filter(|e| e.result == 0x0004_0011).count();
        (ret, good)
    };
    c.eq("multicall of 300 xen_version entries: 0", ret, Ok(0));
    c.eq(
        "multicall of 300 entries: every result is 0x00040011",
        good,
        300,
    );
}

pub fn misc(c: &mut Checks) {
    use pv_guest_kit::hypercall::traps::fpu_taskswitch;
    c.eq("fpu_taskswitch(1): 0", fpu_taskswitch(true), Ok(0));
    c.eq("fpu_taskswitch(0): 0", fpu_taskswitch(false), Ok(0));

    use pv_guest_kit::hypercall::mm::vm_assist;
    for kind in [
        VmAssistType::WritablePagetables,
        VmAssistType::ArchitecturalIopl,
        VmAssistType::RunstateUpdateFlag,
        VmAssistType::M2pStrict,
        VmAssistType::FourGbSegments,
    ] {
        let on = vm_assist(VmAssistCmd::Enable, kind);
        let off = vm_assist(VmAssistCmd::Disable, kind);
        info(format_args!(
            "vm_assist({kind}) enable {on:?} disable {off:?}"
        ));
        c.eq(
            Name::of(format_args!("vm_assist(enable, {kind}) then disable: 0, 0")).as_str(),
            (on, off),
            (Ok(0), Ok(0)),
        );
    }
    for kind in [6u64, 31, 33, 64] {
        c.eq(
            Name::of(format_args!(
                "vm_assist(enable, unknown type {kind}): -EINVAL"
            ))
            .as_str(),
            result_from_ret(raw::call2(HYPERVISOR_VM_ASSIST, 0, kind)),
            Err(Errno::Einval),
        );
    }
    c.eq(
        "vm_assist(unknown command 2): -ENOSYS",
        result_from_ret(raw::call2(HYPERVISOR_VM_ASSIST, 2, 2)),
        Err(Errno::Enosys),
    );

    for iopl in 0..=3 {
        c.eq(
            Name::of(format_args!("physdev_op(set_iopl, {iopl}): 0")).as_str(),
            physdev::set_iopl(iopl),
            Ok(0),
        );
    }
    c.eq(
        "physdev_op(set_iopl, 4): -EINVAL",
        physdev::set_iopl(4),
        Err(Errno::Einval),
    );
    let _ = physdev::set_iopl(0);

    match evtchn::alloc_unbound(0) {
        Ok(port) => {
            info(format_args!("event_channel_op(alloc_unbound) port {port}"));
            c.pass("event_channel_op(alloc_unbound): a port");
            c.eq(
                "event_channel_op(send) on an unbound port: 0",
                evtchn::send(port),
                Ok(0),
            );
            c.eq("event_channel_op(close): 0", evtchn::close(port), Ok(0));
            c.eq(
                "event_channel_op(send) on the closed port: -EINVAL",
                evtchn::send(port),
                Err(Errno::Einval),
            );
        }
        Err(e) => c.fail("event_channel_op(alloc_unbound)", format_args!("{e:?}")),
    }
    c.eq(
        "event_channel_op(send) on port 0: -EINVAL",
        evtchn::send(0),
        Err(Errno::Einval),
    );
    c.eq(
        "event_channel_op(send) on port 5000: -EINVAL",
        evtchn::send(5000),
        Err(Errno::Einval),
    );
    c.eq(
        "event_channel_op(unknown command 99): -ENOSYS",
        result_from_ret(raw::call2(HYPERVISOR_EVENT_CHANNEL_OP, 99, 0)),
        Err(Errno::Enosys),
    );

    c.eq("vcpu_op(is_up, 0): 1", vcpu::is_up(0), Ok(1));
    c.eq(
        "vcpu_op(is_up, 1) with one vCPU: -ENOENT",
        vcpu::is_up(1),
        Err(Errno::Enoent),
    );
}

pub fn unknown_numbers(c: &mut Checks) {
    for nr in [11u32, 38, 43, 47, 50, 55, 56, 60, 100, 127] {
        c.eq(
            Name::of(format_args!("hypercall {nr} through the page: -ENOSYS")).as_str(),
            result_from_ret(raw::call0(nr)),
            Err(Errno::Enosys),
        );
    }
    for nr in [128u64, 255, 0x1_0000_0011, u64::MAX] {
        c.eq(
            Name::of(format_args!("hypercall {nr:#x} by direct syscall: -ENOSYS")).as_str(),
            result_from_ret(raw::syscall(nr, 0, 0)),
            Err(Errno::Enosys),
        );
    }
    c.eq(
        "xen_version(version) by direct syscall: 0x00040011",
        result_from_ret(raw::syscall(u64::from(HYPERVISOR_XEN_VERSION), 0, 0)),
        Ok(0x0004_0011),
    );
    let regs = raw::preserved_registers();
    let want = [
        0x1111_1111_1111_1111u64,
        0x2222_2222_2222_2222,
        0x3333_3333_3333_3333,
        0x4444_4444_4444_4444,
        0x5555_5555_5555_5555,
        0x6666_6666_6666_6666,
        0x7777_7777_7777_7777,
        0x8888_8888_8888_8888,
    ];
    c.check(
        "the hypercall page preserves rcx, r11, rbx, r9, r12-r15",
        regs == want,
        format_args!("{regs:#x?}"),
    );
}

pub fn iret(c: &mut Checks) {
    let Ok(vcpu) = shared::vcpu0() else {
        c.fail("map shared_info", format_args!("refused"));
        return;
    };
    vcpu.set_upcall_mask(1);
    let plain = raw::iret_here(true, 0);
    let mask_after_if = vcpu.upcall_mask();
    vcpu.set_upcall_mask(1);
    c.check(
        "iret hypercall: returns to the frame, restores rax/rcx/r11 and rsp",
        plain.rax == 0xaaaa_aaaa_aaaa_aaaa
            && plain.rcx == 0xcccc_cccc_cccc_cccc
            && plain.r11 == 0xbbbb_bbbb_bbbb_bbbb
            && plain.rsp_restored,
        format_args!("{plain:x?}"),
    );
    c.eq(
        "iret hypercall with RFLAGS.IF set: evtchn_upcall_mask 0",
        mask_after_if,
        0,
    );
    vcpu.set_upcall_mask(0);
    let masked = raw::iret_here(false, 0);
    let mask_after_no_if = vcpu.upcall_mask();
    vcpu.set_upcall_mask(1);
    c.check(
        "iret hypercall with RFLAGS.IF clear: returns",
        masked.rsp_restored && masked.rax == 0xaaaa_aaaa_aaaa_aaaa,
        format_args!("{masked:x?}"),
    );
    c.eq(
        "iret hypercall with RFLAGS.IF clear: evtchn_upcall_mask 1",
        mask_after_no_if,
        1,
    );
    let sys = raw::iret_here(false, VGCF_IN_SYSCALL);
    info(format_args!("iret with VGCF_in_syscall: {sys:x?}"));
    c.check(
        "iret hypercall with VGCF_in_syscall: rax restored, rcx = the return RIP (sysret)",
        sys.rax == 0xaaaa_aaaa_aaaa_aaaa && sys.rcx == sys.target && sys.rsp_restored,
        format_args!("{sys:x?}"),
    );
}
