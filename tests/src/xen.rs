//! Real Xen 4.17, the reference for differential tests.
//!
//! `cargo xtask build` fetches Debian's `xen-hypervisor-4.17-amd64` package with
//! `apt-get download`, unpacks it with `dpkg-deb -x` and gunzips `boot/xen-4.17-amd64.gz` into
//! `target/oxen/xen-4.17`, a 32-bit multiboot ELF that QEMU's `-kernel` boots directly with
//! the same command line and modules as Oxen. Xen never exits QEMU: when dom0 ends (or Xen
//! panics with `noreboot`) it prints one of [`END_MARKERS`] and halts, and the harness stops
//! QEMU itself, reporting [`crate::Exit::EndMarker`].

use std::path::PathBuf;

/// Debian's package with the hypervisor image.
pub const PACKAGE: &str = "xen-hypervisor-4.17-amd64";

/// The gzipped image inside the package.
pub const PACKAGE_IMAGE: &str = "boot/xen-4.17-amd64.gz";

/// The gunzipped image's name in `target/oxen/`.
pub const IMAGE_NAME: &str = "xen-4.17";

/// Xen's command line before the test's own options.
pub const BASE_CMDLINE: &str = "console=com1 loglvl=all noreboot dom0=pv";

/// dom0 powered off: `Hardware Dom0 halted: halting machine`.
pub const DOM0_HALTED: &str = "Hardware Dom0 halted";

/// dom0 crashed: `Hardware Dom0 crashed: 'noreboot' set - not rebooting.`
pub const DOM0_CRASHED: &str = "Hardware Dom0 crashed";

/// dom0 shut down for another reason (reboot, watchdog, soft reset, ...):
/// `Hardware Dom0 shutdown: ...`.
pub const DOM0_SHUTDOWN: &str = "Hardware Dom0 shutdown";

/// Xen panicked (for example `dom0 kernel not specified`, or `Could not construct domain 0`)
/// and, because of `noreboot`, halted: `Manual reset required ('noreboot' specified)`.
pub const PANIC_HALTED: &str = "Manual reset required";

/// The markers [`crate::Boot::xen`] stops at.
pub const END_MARKERS: [&str; 4] = [DOM0_HALTED, DOM0_CRASHED, DOM0_SHUTDOWN, PANIC_HALTED];

/// Where `cargo xtask build` puts the image.
pub fn image_path() -> PathBuf {
    crate::paths::image_dir().join(IMAGE_NAME)
}

/// Whether the Xen image is there.
pub fn available() -> bool {
    image_path().is_file()
}

/// For a differential test: prints `skipped: ...` and returns `true` when the Xen image could
/// not be obtained (no apt on the machine that ran `cargo xtask build`), so the test returns
/// early.
pub fn skip_if_missing() -> bool {
    if available() {
        return false;
    }
    println!(
        "skipped: {} missing (cargo xtask build fetches it with apt-get download {PACKAGE})",
        crate::paths::display(&image_path())
    );
    true
}
