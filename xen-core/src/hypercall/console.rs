//! `console_io` (hypercall 18): writing to and reading from the hypervisor console.

use super::{Ctx, HcResult};
use hypercall_abi::console::{CONSOLEIO_READ, CONSOLEIO_WRITE};
use hypercall_abi::errno::Errno;

/// Bytes copied from the guest per step.
const CHUNK: usize = 256;
/// Bytes written per call before a long write continues itself (Xen preempts long writes
/// the same way).
const PER_CALL: u64 = 16 * 1024;

/// `console_io(cmd, count, buf)`.
pub fn console_io(cx: &mut Ctx<'_>, args: [u64; 5]) -> HcResult {
    let cmd = super::lo32(args[0]);
    // `count` is an unsigned int in the ABI: only its low 32 bits count.
    let count = args[1] & 0xffff_ffff;
    let buf = args[2];
    match cmd {
        CONSOLEIO_WRITE => {
            let mut done = 0u64;
            let mut chunk = [0u8; CHUNK];
            while done < count {
                if done >= PER_CALL {
                    // A long write continues as a new call, so it cannot hold the CPU.
                    cx.continue_with(
                        hypercall_abi::hypercall::HYPERVISOR_CONSOLE_IO,
                        [u64::from(cmd), count - done, buf.wrapping_add(done), 0, 0],
                    );
                    return Ok(0);
                }
                let n = usize::try_from((count - done).min(CHUNK as u64)).unwrap_or(CHUNK);
                let va = buf.checked_add(done).ok_or(Errno::Efault)?;
                cx.mem.read(va, &mut chunk[..n])?;
                if cx.dom.privileged {
                    cx.plat.console_write(&chunk[..n]);
                } else {
                    let now = cx.plat.now_ns();
                    let plat = &mut *cx.plat;
                    cx.dom
                        .console
                        .write(&chunk[..n], now, &mut |line| plat.console_write(line));
                }
                done += n as u64;
            }
            Ok(0)
        }
        CONSOLEIO_READ => {
            if !cx.dom.privileged {
                return Err(Errno::Eperm);
            }
            if count > i32::MAX as u64 {
                return Err(Errno::E2big);
            }
            let mut chunk = [0u8; CHUNK];
            let want = usize::try_from(count.min(CHUNK as u64)).unwrap_or(CHUNK);
            let got = cx.sys.console_in.peek(&mut chunk[..want]);
            cx.mem.write(buf, &chunk[..got])?;
            // Consumed only once delivered: a bad buffer loses no input.
            cx.sys.console_in.consume(got);
            Ok(got as u64)
        }
        _ => Err(Errno::Enosys),
    }
}
