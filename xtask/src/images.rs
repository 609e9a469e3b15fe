//! `cargo xtask build`: the bare-metal images in `target/oxen/`.
//!
//! Every image is one line of [`IMAGES`]: a crate's binary (or example) built for
//! `x86_64-unknown-none` and written to `target/oxen/<name>`. The hypervisor is converted to the
//! 32-bit ELF that multiboot loaders accept ([`crate::elf32`]), and its unmodified 64-bit ELF
//! is kept as `<name>-syms` for gdb and for symbolizing stack traces; guest kernels are copied
//! as they are (the domain builder loads 64-bit ELFs). The same step fetches real Xen for the
//! differential tests ([`fetch_xen`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use oxen_tests::{paths, xen};

use crate::{cargo, elf32, run_checked, tool_exists};

/// The bare-metal target.
pub const BARE_METAL_TARGET: &str = "x86_64-unknown-none";

/// Which of a crate's targets is the image.
#[derive(Clone, Copy, Debug)]
pub enum Artifact {
    /// `--bin NAME`
    Bin(&'static str),
    /// `--example NAME`
    Example(&'static str),
}

/// What becomes of the built ELF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Converted to a 32-bit multiboot ELF; the 64-bit ELF is kept as `<name>-syms`.
    Hypervisor,
    /// Copied unchanged (a PV guest kernel, loaded by a domain builder).
    Guest,
}

/// One image of `target/oxen/`.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    /// The file name in `target/oxen/`.
    pub name: &'static str,
    /// The Cargo package.
    pub package: &'static str,
    /// The binary or example.
    pub artifact: Artifact,
    /// What to do with it.
    pub kind: Kind,
}

impl Image {
    /// The hypervisor `package`'s binary `bin`, converted, as `target/oxen/<name>`.
    pub const fn hypervisor(name: &'static str, package: &'static str, bin: &'static str) -> Image {
        Image {
            name,
            package,
            artifact: Artifact::Bin(bin),
            kind: Kind::Hypervisor,
        }
    }

    /// A guest kernel: `package`'s binary `bin`, copied as `target/oxen/<name>`.
    pub const fn guest_bin(name: &'static str, package: &'static str, bin: &'static str) -> Image {
        Image {
            name,
            package,
            artifact: Artifact::Bin(bin),
            kind: Kind::Guest,
        }
    }

    /// A guest kernel: `package`'s example `example`, copied as `target/oxen/<name>`.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "every guest so far is a bin crate (see pv-guest-kit's README)"
        )
    )]
    pub const fn guest_example(
        name: &'static str,
        package: &'static str,
        example: &'static str,
    ) -> Image {
        Image {
            name,
            package,
            artifact: Artifact::Example(example),
            kind: Kind::Guest,
        }
    }

    /// Where Cargo puts the built ELF.
    fn cargo_output(&self, profile_dir: &Path) -> PathBuf {
        match self.artifact {
            Artifact::Bin(bin) => profile_dir.join(bin),
            Artifact::Example(example) => profile_dir.join("examples").join(example),
        }
    }
}

/// Every image `cargo xtask build` makes. Add a guest with one line, e.g.
/// `Image::guest_bin("hello", "pv-guest-hello", "hello"),`.
pub const IMAGES: &[Image] = &[
    Image::hypervisor("xen-core", "xen-core", "xen-core"),
    // pv-guest-kit's example guest (pv-guest-kit/examples/hello).
    Image::guest_bin("hello", "pv-guest-hello", "hello"),
    // The test guests (tests/guests/), run on real Xen by tests/tests/guests_xen.rs.
    Image::guest_bin("exceptions", "guest-exceptions", "exceptions"),
    Image::guest_bin("hypercalls", "guest-hypercalls", "hypercalls"),
    Image::guest_bin("crash-no-traps", "guest-crash-no-traps", "crash-no-traps"),
    Image::guest_bin("bench", "guest-bench", "bench"),
    Image::guest_bin("address-space", "guest-address-space", "address-space"),
    Image::guest_bin("mmu-storm", "guest-mmu-storm", "mmu-storm"),
    Image::guest_bin("events", "guest-events", "events"),
    Image::guest_bin("timers", "guest-timers", "timers"),
    Image::guest_bin("vcpus", "guest-vcpus", "vcpus"),
    // Several domains at once (dom0 orchestrating boot-time domUs), run by tests/tests/domains.rs.
    Image::guest_bin("domains", "guest-domains", "domains"),
];

/// Crates that must build (and pass clippy) for the bare-metal target.
pub const BARE_METAL_CRATES: &[&str] = &[
    "xen-core",
    "hypercall-abi",
    "pv-guest-kit",
    "dom0-tools",
    "pv-guest-hello",
    "guest-support",
    "guest-exceptions",
    "guest-hypercalls",
    "guest-crash-no-traps",
    "guest-bench",
    "guest-address-space",
    "guest-mmu-storm",
    "guest-events",
    "guest-timers",
    "guest-vcpus",
    "guest-domains",
];

/// Cargo's profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `--release` (the default for images).
    Release,
    /// The dev profile (`--debug`).
    Debug,
}

impl Profile {
    /// The directory under `target/<triple>/`.
    pub const fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// Builds every image of [`IMAGES`] into `target/oxen/`, then fetches Xen if missing.
///
/// # Errors
/// Cargo fails (its output is on the terminal), an ELF cannot be converted, or a file cannot
/// be written.
pub fn build(profile: Profile) -> Result<()> {
    let out_dir = paths::image_dir();
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;

    let mut command = cargo();
    command.args(["build", "--target", BARE_METAL_TARGET]);
    if profile == Profile::Release {
        command.arg("--release");
    }
    for image in IMAGES {
        command.args(["--package", image.package]);
        match image.artifact {
            Artifact::Bin(bin) => command.args(["--bin", bin]),
            Artifact::Example(example) => command.args(["--example", example]),
        };
    }
    run_checked(&mut command, "building the bare-metal images")?;

    let profile_dir = paths::target_dir()
        .join(BARE_METAL_TARGET)
        .join(profile.dir());
    for image in IMAGES {
        let input = image.cargo_output(&profile_dir);
        let output = out_dir.join(image.name);
        match image.kind {
            Kind::Hypervisor => install_hypervisor(&input, &output)?,
            Kind::Guest => install_guest(&input, &output)?,
        }
    }
    crate::c_guests::build(&out_dir)?;
    fetch_xen(&out_dir);
    Ok(())
}

/// Writes `output` (ELF32) and `output-syms` (the input, unchanged) and reports them.
fn install_hypervisor(input: &Path, output: &Path) -> Result<()> {
    let elf64 = fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let image = elf32::convert(&elf64)
        .with_context(|| format!("cannot convert {} to a 32-bit ELF", input.display()))?;
    let Some(mb1) = image.multiboot1_offset() else {
        bail!(
            "{}: no multiboot1 header within the first {} bytes of the 32-bit image: QEMU's \
             -kernel would not boot it",
            input.display(),
            elf32::MULTIBOOT1_SEARCH
        );
    };
    write_atomically(output, &image.bytes)?;
    let syms = sibling(output, "-syms");
    write_atomically(&syms, &elf64)?;
    let mb2 = image
        .multiboot2_offset()
        .map_or_else(|| "none".to_owned(), |o| format!("{o:#x}"));
    println!(
        "{}: {} ({} bytes): 32-bit multiboot ELF, entry {:#x}, {} segments, {} KiB in memory, \
         multiboot1 header at {mb1:#x}, multiboot2 header at {mb2}",
        image_label(output),
        size_label(image.bytes.len()),
        image.bytes.len(),
        image.entry,
        image.segments.len(),
        image.memory_span().div_ceil(1024),
    );
    println!(
        "{}: {} (64-bit ELF with symbols, for gdb)",
        image_label(&syms),
        size_label(elf64.len())
    );
    Ok(())
}

/// Copies a guest kernel.
fn install_guest(input: &Path, output: &Path) -> Result<()> {
    let bytes = fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    write_atomically(output, &bytes)?;
    println!("{}: {}", image_label(output), size_label(bytes.len()));
    Ok(())
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes a file through a temporary name and a rename, so a reader never sees half of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling(path, ".partial");
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn image_label(path: &Path) -> String {
    paths::display(path)
}

fn size_label(bytes: usize) -> String {
    let bytes_u64 = u64::try_from(bytes).unwrap_or(u64::MAX);
    if bytes_u64 >= 1 << 20 {
        format!("{:.1} MiB", bytes_u64 as f64 / f64::from(1u32 << 20))
    } else {
        format!("{} KiB", bytes_u64.div_ceil(1024))
    }
}

/// Puts real Xen 4.17 at `target/oxen/xen-4.17` for the differential tests, unless it is
/// already there. Uses `apt-get download` + `dpkg-deb -x` + `gzip -d`; when any of them is
/// missing or fails, prints a warning and goes on (the tests that need Xen then skip).
pub fn fetch_xen(out_dir: &Path) {
    let target = out_dir.join(xen::IMAGE_NAME);
    if target.is_file() {
        return;
    }
    match try_fetch_xen(out_dir, &target) {
        Ok(version) => println!(
            "{}: Xen {version} from Debian's {} (for differential tests)",
            image_label(&target),
            xen::PACKAGE
        ),
        Err(err) => eprintln!(
            "warning: cannot fetch real Xen into {}: {err:#}\nwarning: the differential \
             tests against Xen will be skipped",
            image_label(&target)
        ),
    }
}

fn try_fetch_xen(out_dir: &Path, target: &Path) -> Result<String> {
    for tool in ["apt-get", "dpkg-deb", "gzip"] {
        if !tool_exists(tool) {
            bail!("`{tool}` not found (not a Debian machine?)");
        }
    }
    let work = out_dir.join(".xen-download");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("cannot clean {}", work.display()))?;
    }
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    let download = Command::new("apt-get")
        .args(["download", xen::PACKAGE])
        .current_dir(&work)
        .output()
        .context("cannot run apt-get")?;
    if !download.status.success() {
        bail!(
            "`apt-get download {}` failed ({}): {}",
            xen::PACKAGE,
            download.status,
            String::from_utf8_lossy(&download.stderr).trim()
        );
    }
    let deb = fs::read_dir(&work)
        .with_context(|| format!("cannot list {}", work.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download left no .deb file")?;
    let version = deb
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.split('_').nth(1))
        .unwrap_or("4.17")
        .replace("%3a", ":");

    let unpacked = work.join("unpacked");
    let extract = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .output()
        .context("cannot run dpkg-deb")?;
    if !extract.status.success() {
        bail!(
            "`dpkg-deb -x {}` failed: {}",
            deb.display(),
            String::from_utf8_lossy(&extract.stderr).trim()
        );
    }
    let gz = unpacked.join(xen::PACKAGE_IMAGE);
    let gunzip = Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .output()
        .context("cannot run gzip")?;
    if !gunzip.status.success() || gunzip.stdout.is_empty() {
        bail!(
            "cannot gunzip {}: {}",
            gz.display(),
            String::from_utf8_lossy(&gunzip.stderr).trim()
        );
    }
    write_atomically(target, &gunzip.stdout)?;
    fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let hypervisors = IMAGES.iter().filter(|i| i.kind == Kind::Hypervisor).count();
        assert_eq!(hypervisors, 1);
        assert!(
            IMAGES
                .iter()
                .any(|i| i.name == oxen_tests::HYPERVISOR_IMAGE)
        );
        for (i, a) in IMAGES.iter().enumerate() {
            assert!(IMAGES[i + 1..].iter().all(|b| b.name != a.name));
            assert!(!a.name.ends_with("-syms") && a.name != xen::IMAGE_NAME);
        }
    }

    #[test]
    fn cargo_output_paths() {
        let dir = Path::new("/t/x86_64-unknown-none/release");
        assert_eq!(
            Image::hypervisor("xen-core", "xen-core", "xen-core").cargo_output(dir),
            dir.join("xen-core")
        );
        assert_eq!(
            Image::guest_example("hello", "pv-guest-kit", "hello").cargo_output(dir),
            dir.join("examples/hello")
        );
        assert_eq!(
            Image::guest_bin("hello", "hello-guest", "hello").cargo_output(dir),
            dir.join("hello")
        );
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(size_label(1), "1 KiB");
        assert_eq!(size_label(3 << 20), "3.0 MiB");
        assert_eq!(
            sibling(Path::new("/a/xen-core"), "-syms"),
            Path::new("/a/xen-core-syms")
        );
    }
}
