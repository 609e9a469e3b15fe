//! `events console`: console input through `VIRQ_CONSOLE` and `CONSOLEIO_read`, as a dom0
//! kernel's console driver takes it. The test types a line once this prints its prompt.

use guest_support::{Checks, info};
use pv_guest_kit::abi::evtchn::VIRQ_CONSOLE;
use pv_guest_kit::hypercall::console;
use pv_guest_kit::{events, println, time};

/// The line the test types.
pub const TYPED: &str = "typed on the console";
/// The prompt after which the test types.
pub const PROMPT: &str = "console: type a line now";

/// The port's handler: the poll below sees the port pending; nothing to do here.
fn on_console(_port: events::Port) {}

pub fn input(c: &mut Checks) {
    let port = events::bind_virq(VIRQ_CONSOLE, 0, on_console);
    c.check(
        "bind VIRQ_CONSOLE on vCPU 0",
        port.is_ok(),
        format_args!("{port:?}"),
    );
    let Ok(port) = port else { return };
    // Events stay masked: the port is polled, so its pending bit stays for us to see.
    events::mask(port);
    println!("{PROMPT}");
    let start = time::now_ns().unwrap_or(0);
    let deadline = start + 20_000_000_000;
    let mut line = [0u8; 128];
    let mut len = 0;
    let mut raised = 0;
    while !line[..len].contains(&b'\n') && time::now_ns().unwrap_or(u64::MAX) < deadline {
        let _ = events::poll(&[port], Some(deadline));
        if events::clear_pending(port) {
            raised += 1;
        }
        let room = &mut line[len..];
        if let Ok(n) = console::read(room) {
            len += usize::try_from(n).unwrap_or(0).min(room.len());
        }
        if len == line.len() {
            break;
        }
    }
    let text = core::str::from_utf8(&line[..len]).unwrap_or("?").trim_end();
    info(format_args!(
        "console: read {:?} after {} VIRQ_CONSOLE event(s), {} ms",
        text,
        raised,
        time::now_ns().unwrap_or(0).saturating_sub(start) / 1_000_000
    ));
    c.check(
        "VIRQ_CONSOLE raised for typed input",
        raised > 0,
        format_args!("{raised} events"),
    );
    c.eq("CONSOLEIO_read returns the typed line", text, TYPED);
}
