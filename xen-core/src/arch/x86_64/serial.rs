//! 16550 UART driver for the hypervisor console (COM1 by default).

use x86_64::instructions::port::Port;

/// I/O base of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// The UART's input clock divided by 16: the baud rate for divisor 1.
const UART_BASE_BAUD: u32 = 115_200;

/// Register offsets from the I/O base.
mod reg {
    pub const DATA: u16 = 0; // RBR/THR, DLL when DLAB=1
    pub const IER: u16 = 1; // DLM when DLAB=1
    pub const FCR: u16 = 2;
    pub const LCR: u16 = 3;
    pub const MCR: u16 = 4;
    pub const LSR: u16 = 5;
}

/// Line-status bits.
mod lsr {
    pub const DATA_READY: u8 = 1 << 0;
    pub const THR_EMPTY: u8 = 1 << 5;
}

/// Line-control value for 8 data bits, no parity, 1 stop bit.
pub const LCR_8N1: u8 = 0x03;
const LCR_DLAB: u8 = 0x80;

/// A 16550-compatible UART at an I/O port base.
#[derive(Debug, Clone, Copy)]
pub struct Uart {
    base: u16,
}

impl Uart {
    /// A UART at `base`; nothing is programmed until [`Uart::init`].
    pub const fn new(base: u16) -> Self {
        Self { base }
    }

    fn out(&self, offset: u16, value: u8) {
        let mut port = Port::<u8>::new(self.base + offset);
        // SAFETY: the port belongs to this UART, which only the hypervisor drives; writing
        // its registers has no effect on memory.
        unsafe { port.write(value) }
    }

    fn inp(&self, offset: u16) -> u8 {
        let mut port = Port::<u8>::new(self.base + offset);
        // SAFETY: as in `out`: reading a UART register only affects the UART.
        unsafe { port.read() }
    }

    /// Programs the line: `baud` (0 keeps the firmware's divisor) and line control `lcr`.
    /// Interrupts stay off: the hypervisor polls.
    pub fn init(&self, baud: u32, lcr: u8) {
        self.out(reg::IER, 0x00);
        if baud != 0 {
            let divisor = (UART_BASE_BAUD / baud.clamp(1, UART_BASE_BAUD)).clamp(1, 0xffff);
            self.out(reg::LCR, LCR_DLAB);
            self.out(reg::DATA, (divisor & 0xff) as u8);
            self.out(reg::IER, ((divisor >> 8) & 0xff) as u8);
        }
        self.out(reg::LCR, lcr & 0x7f);
        // FIFOs on and cleared, 14-byte receive threshold.
        self.out(reg::FCR, 0xc7);
        // DTR, RTS, OUT2.
        self.out(reg::MCR, 0x0b);
    }

    /// Sends one byte, waiting for room in the transmitter (bounded, so a dead UART cannot
    /// hang the hypervisor).
    pub fn put(&self, byte: u8) {
        for _ in 0..100_000 {
            if self.inp(reg::LSR) & lsr::THR_EMPTY != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        self.out(reg::DATA, byte);
    }

    /// Sends bytes, turning `\n` into `\r\n`.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }

    /// A received byte, if one is waiting.
    pub fn try_get(&self) -> Option<u8> {
        if self.inp(reg::LSR) & lsr::DATA_READY != 0 {
            Some(self.inp(reg::DATA))
        } else {
            None
        }
    }

    /// Waits until everything written has left the transmitter.
    pub fn flush(&self) {
        for _ in 0..100_000 {
            // Bit 6: transmitter empty (holding and shift registers).
            if self.inp(reg::LSR) & 0x40 != 0 {
                return;
            }
            core::hint::spin_loop();
        }
    }
}
