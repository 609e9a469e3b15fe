//! Xen error numbers (reference §3).
//!
//! Hypercalls return `0` or a non-negative value on success and `-XEN_Exxx` in `rax` on failure.
//! The numbering deliberately equals x86 Linux errno values. Grant-table operations additionally
//! report per-entry `GNTST_*` codes (see [`crate::grant`]).

use core::fmt;

/// Largest errno magnitude a hypercall can return: results in `[-4095, -1]` are errors.
pub const MAX_ERRNO: u32 = 4095;

/// Raw errno numbers (positive), one per Xen name.
pub mod raw {
    /// Operation not permitted.
    pub const EPERM: u32 = 1;
    /// No such file or directory / entry.
    pub const ENOENT: u32 = 2;
    /// No such process / domain.
    pub const ESRCH: u32 = 3;
    /// Interrupted call.
    pub const EINTR: u32 = 4;
    /// I/O error.
    pub const EIO: u32 = 5;
    /// No such device or address.
    pub const ENXIO: u32 = 6;
    /// Argument list too long.
    pub const E2BIG: u32 = 7;
    /// Exec format error.
    pub const ENOEXEC: u32 = 8;
    /// Bad file number.
    pub const EBADF: u32 = 9;
    /// No child processes.
    pub const ECHILD: u32 = 10;
    /// Try again (also `EWOULDBLOCK`).
    pub const EAGAIN: u32 = 11;
    /// Out of memory.
    pub const ENOMEM: u32 = 12;
    /// Permission denied.
    pub const EACCES: u32 = 13;
    /// Bad address (unreadable or unwritable guest pointer).
    pub const EFAULT: u32 = 14;
    /// Device or resource busy.
    pub const EBUSY: u32 = 16;
    /// Already exists.
    pub const EEXIST: u32 = 17;
    /// Cross-device link.
    pub const EXDEV: u32 = 18;
    /// No such device.
    pub const ENODEV: u32 = 19;
    /// Not a directory.
    pub const ENOTDIR: u32 = 20;
    /// Is a directory.
    pub const EISDIR: u32 = 21;
    /// Invalid argument.
    pub const EINVAL: u32 = 22;
    /// File table overflow.
    pub const ENFILE: u32 = 23;
    /// Too many open files.
    pub const EMFILE: u32 = 24;
    /// No space left.
    pub const ENOSPC: u32 = 28;
    /// Read-only.
    pub const EROFS: u32 = 30;
    /// Too many links.
    pub const EMLINK: u32 = 31;
    /// Argument out of domain.
    pub const EDOM: u32 = 33;
    /// Result out of range.
    pub const ERANGE: u32 = 34;
    /// Deadlock would occur (also `EDEADLOCK`).
    pub const EDEADLK: u32 = 35;
    /// Name too long.
    pub const ENAMETOOLONG: u32 = 36;
    /// No locks available.
    pub const ENOLCK: u32 = 37;
    /// Function (hypercall or sub-operation) not implemented.
    pub const ENOSYS: u32 = 38;
    /// Directory not empty.
    pub const ENOTEMPTY: u32 = 39;
    /// No data available.
    pub const ENODATA: u32 = 61;
    /// Timer expired (e.g. a single-shot deadline already in the past).
    pub const ETIME: u32 = 62;
    /// Bad message.
    pub const EBADMSG: u32 = 74;
    /// Value too large.
    pub const EOVERFLOW: u32 = 75;
    /// Illegal byte sequence.
    pub const EILSEQ: u32 = 84;
    /// Restart the call (Xen-internal continuation marker; never reaches a guest).
    pub const ERESTART: u32 = 85;
    /// Not a socket.
    pub const ENOTSOCK: u32 = 88;
    /// Message too long.
    pub const EMSGSIZE: u32 = 90;
    /// Operation not supported.
    pub const EOPNOTSUPP: u32 = 95;
    /// Address in use.
    pub const EADDRINUSE: u32 = 98;
    /// Address not available.
    pub const EADDRNOTAVAIL: u32 = 99;
    /// No buffer space.
    pub const ENOBUFS: u32 = 105;
    /// Already connected.
    pub const EISCONN: u32 = 106;
    /// Not connected.
    pub const ENOTCONN: u32 = 107;
    /// Timed out.
    pub const ETIMEDOUT: u32 = 110;
    /// Connection refused.
    pub const ECONNREFUSED: u32 = 111;
}

code_enum! {
    /// A Xen errno (positive magnitude). Use [`Errno::as_neg`] to produce a hypercall result and
    /// [`Errno::from_ret`] to recognise one.
    pub enum Errno: u32 ["errno"] {
        /// Operation not permitted.
        Eperm = raw::EPERM => "EPERM",
        /// No such entry.
        Enoent = raw::ENOENT => "ENOENT",
        /// No such domain.
        Esrch = raw::ESRCH => "ESRCH",
        /// Interrupted.
        Eintr = raw::EINTR => "EINTR",
        /// I/O error.
        Eio = raw::EIO => "EIO",
        /// No such device or address.
        Enxio = raw::ENXIO => "ENXIO",
        /// Argument list too long.
        E2big = raw::E2BIG => "E2BIG",
        /// Exec format error.
        Enoexec = raw::ENOEXEC => "ENOEXEC",
        /// Bad file number.
        Ebadf = raw::EBADF => "EBADF",
        /// No child processes.
        Echild = raw::ECHILD => "ECHILD",
        /// Try again.
        Eagain = raw::EAGAIN => "EAGAIN",
        /// Out of memory.
        Enomem = raw::ENOMEM => "ENOMEM",
        /// Permission denied.
        Eacces = raw::EACCES => "EACCES",
        /// Bad guest address.
        Efault = raw::EFAULT => "EFAULT",
        /// Busy.
        Ebusy = raw::EBUSY => "EBUSY",
        /// Already exists.
        Eexist = raw::EEXIST => "EEXIST",
        /// Cross-device link.
        Exdev = raw::EXDEV => "EXDEV",
        /// No such device.
        Enodev = raw::ENODEV => "ENODEV",
        /// Not a directory.
        Enotdir = raw::ENOTDIR => "ENOTDIR",
        /// Is a directory.
        Eisdir = raw::EISDIR => "EISDIR",
        /// Invalid argument.
        Einval = raw::EINVAL => "EINVAL",
        /// File table overflow.
        Enfile = raw::ENFILE => "ENFILE",
        /// Too many open files.
        Emfile = raw::EMFILE => "EMFILE",
        /// No space left.
        Enospc = raw::ENOSPC => "ENOSPC",
        /// Read-only.
        Erofs = raw::EROFS => "EROFS",
        /// Too many links.
        Emlink = raw::EMLINK => "EMLINK",
        /// Argument out of domain.
        Edom = raw::EDOM => "EDOM",
        /// Result out of range.
        Erange = raw::ERANGE => "ERANGE",
        /// Deadlock would occur.
        Edeadlk = raw::EDEADLK => "EDEADLK",
        /// Name too long.
        Enametoolong = raw::ENAMETOOLONG => "ENAMETOOLONG",
        /// No locks available.
        Enolck = raw::ENOLCK => "ENOLCK",
        /// Not implemented.
        Enosys = raw::ENOSYS => "ENOSYS",
        /// Directory not empty.
        Enotempty = raw::ENOTEMPTY => "ENOTEMPTY",
        /// No data.
        Enodata = raw::ENODATA => "ENODATA",
        /// Timer expired.
        Etime = raw::ETIME => "ETIME",
        /// Bad message.
        Ebadmsg = raw::EBADMSG => "EBADMSG",
        /// Value too large.
        Eoverflow = raw::EOVERFLOW => "EOVERFLOW",
        /// Illegal byte sequence.
        Eilseq = raw::EILSEQ => "EILSEQ",
        /// Restart (internal continuation marker).
        Erestart = raw::ERESTART => "ERESTART",
        /// Not a socket.
        Enotsock = raw::ENOTSOCK => "ENOTSOCK",
        /// Message too long.
        Emsgsize = raw::EMSGSIZE => "EMSGSIZE",
        /// Not supported.
        Eopnotsupp = raw::EOPNOTSUPP => "EOPNOTSUPP",
        /// Address in use.
        Eaddrinuse = raw::EADDRINUSE => "EADDRINUSE",
        /// Address not available.
        Eaddrnotavail = raw::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        /// No buffer space.
        Enobufs = raw::ENOBUFS => "ENOBUFS",
        /// Already connected.
        Eisconn = raw::EISCONN => "EISCONN",
        /// Not connected.
        Enotconn = raw::ENOTCONN => "ENOTCONN",
        /// Timed out.
        Etimedout = raw::ETIMEDOUT => "ETIMEDOUT",
        /// Connection refused.
        Econnrefused = raw::ECONNREFUSED => "ECONNREFUSED",
    }
    try_from: [u64, i32, i64];
}

impl Errno {
    /// `EWOULDBLOCK` is another name for `EAGAIN`.
    pub const EWOULDBLOCK: Self = Self::Eagain;
    /// `EDEADLOCK` is another name for `EDEADLK`.
    pub const EDEADLOCK: Self = Self::Edeadlk;

    /// The hypercall return value for this error: `-errno` as a signed 64-bit integer.
    #[must_use]
    pub const fn as_neg(self) -> i64 {
        -(self.raw() as i64)
    }

    /// The same value as [`as_neg`](Self::as_neg), as the raw 64-bit pattern placed in `rax`.
    #[must_use]
    pub const fn as_rax(self) -> u64 {
        self.as_neg().cast_unsigned()
    }

    /// Recognises a hypercall return value that is `-errno` for a known errno.
    ///
    /// Returns `None` for success values (≥ 0) and for negative values that name no Xen errno.
    #[must_use]
    pub fn from_ret(ret: i64) -> Option<Self> {
        if !is_error_ret(ret) {
            return None;
        }
        u32::try_from(ret.unsigned_abs())
            .ok()
            .and_then(Self::from_raw)
    }

    /// [`from_ret`](Self::from_ret) for a raw `rax` value.
    #[must_use]
    pub fn from_rax(rax: u64) -> Option<Self> {
        Self::from_ret(rax.cast_signed())
    }
}

/// True when `ret` lies in the error range `[-4095, -1]` (whether or not the errno is known).
#[must_use]
pub const fn is_error_ret(ret: i64) -> bool {
    ret < 0 && ret >= -(MAX_ERRNO as i64)
}

/// The failure half of [`check_ret`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetError {
    /// A recognised Xen errno.
    Errno(Errno),
    /// A value in the error range that names no known errno, or a negative value outside it.
    Unknown(i64),
}

impl fmt::Display for RetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Errno(e) => write!(f, "hypercall failed: -{e}"),
            Self::Unknown(v) => write!(f, "hypercall failed with unknown value {v}"),
        }
    }
}

impl core::error::Error for RetError {}

/// Splits a hypercall return value into success (the non-negative value) or an error.
///
/// # Errors
///
/// Any negative `ret`: [`RetError::Errno`] when it is `-errno` of a known errno, otherwise
/// [`RetError::Unknown`].
pub fn check_ret(ret: i64) -> Result<u64, RetError> {
    if ret >= 0 {
        return Ok(ret.cast_unsigned());
    }
    match Errno::from_ret(ret) {
        Some(e) => Err(RetError::Errno(e)),
        None => Err(RetError::Unknown(ret)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_errno() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_ret(e.as_neg()), Some(e));
            assert_eq!(Errno::from_rax(e.as_rax()), Some(e));
            assert_eq!(Errno::try_from(e.raw()), Ok(e));
            assert_eq!(Errno::try_from(i64::from(e.raw())), Ok(e));
            assert_eq!(check_ret(e.as_neg()), Err(RetError::Errno(e)));
        }
        assert_eq!(Errno::ALL.len(), 49);
    }

    #[test]
    fn specific_values_from_reference() {
        assert_eq!(Errno::Enosys.as_neg(), -38);
        assert_eq!(Errno::Enosys.as_rax(), 0xFFFF_FFFF_FFFF_FFDA);
        assert_eq!(Errno::Einval.raw(), 22);
        assert_eq!(Errno::Etime.raw(), 62);
        assert_eq!(Errno::Erestart.raw(), 85);
        assert_eq!(Errno::Econnrefused.raw(), 111);
        assert_eq!(Errno::EWOULDBLOCK, Errno::Eagain);
        assert_eq!(Errno::EDEADLOCK.raw(), 35);
        assert_eq!(Errno::Enoent.name(), "ENOENT");
    }

    #[test]
    fn undefined_numbers_and_success_values_are_not_errnos() {
        // 15 (ENOTBLK), 25-27, 29, 32 are not defined by Xen.
        for n in [15u32, 25, 26, 27, 29, 32, 0, 4096] {
            assert!(Errno::try_from(n).is_err(), "{n}");
        }
        assert_eq!(Errno::from_ret(0), None);
        assert_eq!(Errno::from_ret(22), None);
        assert_eq!(Errno::from_ret(-15), None);
        assert_eq!(Errno::from_ret(-4096), None);
        assert_eq!(Errno::from_ret(i64::MIN), None);
        assert_eq!(check_ret(-15), Err(RetError::Unknown(-15)));
        assert_eq!(check_ret(0x0004_0011), Ok(0x0004_0011));
        assert!(is_error_ret(-1) && is_error_ret(-4095));
        assert!(!is_error_ret(-4096) && !is_error_ret(0));
    }
}
