//! The kit's panic handler (feature `panic-handler`, on by default): prints the panic and
//! shuts the domain down with `SHUTDOWN_crash`.

#[cfg(feature = "panic-handler")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => crate::console::_println(format_args!(
            "PANIC at {}:{}: {}",
            at.file(),
            at.line(),
            info.message()
        )),
        None => crate::console::_println(format_args!("PANIC: {}", info.message())),
    }
    crate::arch::shutdown(hypercall_abi::sched::ShutdownReason::Crash)
}
