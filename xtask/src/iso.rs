//! `cargo xtask iso`: a GRUB rescue ISO that boots the hypervisor with multiboot2.
//!
//! `target/oxen/iso-root/` holds `boot/xen-core` (the 32-bit image), the modules under
//! `boot/modules/` and `boot/grub/grub.cfg`; `grub-mkrescue` turns it into
//! `target/oxen/oxen.iso`. GRUB 2 passes only the words after a module's file name as the
//! module's string (and after the image name as the command line); the hypervisor knows this
//! from the loader name and, like Xen, takes GRUB 2's strings whole.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use oxen_tests::paths;

use crate::{BootArgs, qemu, tool_exists};

/// The Debian packages `grub-mkrescue` needs for a BIOS-bootable ISO.
const GRUB_PACKAGES: &str = "grub-pc-bin grub-common xorriso mtools";

/// GRUB's BIOS modules, from `grub-pc-bin`.
const GRUB_I386_PC: &str = "/usr/lib/grub/i386-pc";

/// Characters GRUB's script parser would interpret.
const GRUB_SPECIAL: &[char] = &[
    '\'', '"', '\\', '$', ';', '{', '}', '|', '&', '<', '>', '#', '\n',
];

/// Builds `target/oxen/oxen.iso` from the already built images; returns its path.
///
/// # Errors
/// The GRUB tools are missing, a module is missing or has characters GRUB would interpret,
/// or `grub-mkrescue` fails.
pub fn make_iso(boot: &BootArgs) -> Result<PathBuf> {
    let missing: Vec<&str> = ["grub-mkrescue", "xorriso", "mformat"]
        .into_iter()
        .filter(|tool| !tool_exists(tool))
        .collect();
    if !missing.is_empty() || !Path::new(GRUB_I386_PC).is_dir() {
        bail!(
            "cannot build an ISO: {} missing; install the Debian packages: apt-get install {GRUB_PACKAGES}",
            if missing.is_empty() {
                GRUB_I386_PC.to_owned()
            } else {
                missing.join(", ")
            }
        );
    }
    let out_dir = paths::image_dir();
    let root = out_dir.join("iso-root");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("cannot clean {}", root.display()))?;
    }
    let grub_dir = root.join("boot/grub");
    let module_dir = root.join("boot/modules");
    fs::create_dir_all(&grub_dir)
        .with_context(|| format!("cannot create {}", grub_dir.display()))?;
    fs::create_dir_all(&module_dir)
        .with_context(|| format!("cannot create {}", module_dir.display()))?;

    let image = out_dir.join(oxen_tests::HYPERVISOR_IMAGE);
    copy(&image, &root.join("boot/xen-core"))?;
    let cmdline = qemu::hypervisor_cmdline(&boot.append);
    check_grub_text(&cmdline, "--append")?;
    let mut entry = format!("    multiboot2 /boot/xen-core {cmdline}\n");
    for (index, module) in qemu::modules(&boot.modules)?.iter().enumerate() {
        check_grub_text(&module.args, "--module")?;
        let name = module
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .context("module file name is not UTF-8")?;
        let iso_path = format!("/boot/modules/{index}-{name}");
        check_grub_text(&iso_path, "--module")?;
        copy(&module.path, &root.join(iso_path.trim_start_matches('/')))?;
        writeln!(entry, "    module2 {iso_path} {}", module.args).context("formatting grub.cfg")?;
    }
    let grub_cfg = format!(
        "# Written by `cargo xtask iso`.\nset timeout=0\nset default=0\n\nmenuentry \"Oxen\" {{\n{entry}    boot\n}}\n"
    );
    fs::write(grub_dir.join("grub.cfg"), grub_cfg).context("cannot write grub.cfg")?;

    let iso = out_dir.join("oxen.iso");
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&root)
        .output()
        .context("cannot run grub-mkrescue")?;
    if !output.status.success() {
        bail!(
            "grub-mkrescue failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let size = fs::metadata(&iso).map(|m| m.len()).unwrap_or_default();
    println!(
        "{}: {} KiB (GRUB, multiboot2: {})",
        paths::display(&iso),
        size.div_ceil(1024),
        cmdline
    );
    Ok(iso)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

fn check_grub_text(text: &str, option: &str) -> Result<()> {
    if let Some(c) = text.chars().find(|c| GRUB_SPECIAL.contains(c)) {
        bail!(
            "{option} {text:?}: the character {c:?} would be interpreted by GRUB's grub.cfg parser"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_special_characters_are_refused() {
        assert!(check_grub_text("console=com1 loglvl=all dom0_mem=64M", "--append").is_ok());
        assert!(check_grub_text("a=$b", "--append").is_err());
        assert!(check_grub_text("a;reboot", "--module").is_err());
    }
}
