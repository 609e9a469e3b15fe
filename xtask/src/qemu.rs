//! The QEMU configuration of `cargo xtask run`.
//!
//! The argument list itself is built by [`oxen_tests::qemu::qemu_args`], the same function
//! the integration tests use, so `cargo xtask run` boots exactly what the tests boot. This
//! module only turns the command-line options into a [`QemuConfig`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oxen_tests::qemu::{Medium, Module, QemuConfig, Serial, join_cmdline};
use oxen_tests::{HYPERVISOR_BASE_CMDLINE, paths};

use crate::BootArgs;

/// Parses `--module "path args"` options; relative paths are taken from the current
/// directory, and every module must exist and be expressible on QEMU's command line.
///
/// # Errors
/// A module file is missing, or its string contains a comma.
pub fn modules(specs: &[String]) -> Result<Vec<Module>> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    specs
        .iter()
        .map(|spec| {
            let mut module = Module::parse(spec);
            if module.path.as_os_str().is_empty() {
                bail!("--module {spec:?}: no file name");
            }
            module.path = absolute(&cwd, &module.path);
            if !module.path.is_file() {
                bail!("--module {spec:?}: {} is not a file", module.path.display());
            }
            module
                .initrd_entry()
                .with_context(|| format!("--module {spec:?}"))?;
            Ok(module)
        })
        .collect()
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

/// The hypervisor's command line: `console=com1` and the user's options.
pub fn hypervisor_cmdline(append: &str) -> String {
    join_cmdline([HYPERVISOR_BASE_CMDLINE, append])
}

/// The configuration of an interactive run: the hypervisor (or the ISO) with the serial
/// console and the QEMU monitor multiplexed on the terminal.
///
/// # Errors
/// A module is missing or has a comma.
pub fn run_config(boot: &BootArgs, iso: Option<PathBuf>) -> Result<QemuConfig> {
    let medium = match iso {
        Some(iso) => Medium::Cdrom(iso),
        None => Medium::Kernel {
            image: paths::image_dir().join(oxen_tests::HYPERVISOR_IMAGE),
            cmdline: hypervisor_cmdline(&boot.append),
            modules: modules(&boot.modules)?,
        },
    };
    let mut config = QemuConfig::new(medium);
    config.serial = Serial::StdioWithMonitor;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_starts_with_the_console() {
        assert_eq!(hypervisor_cmdline(""), "console=com1");
        assert_eq!(hypervisor_cmdline("loglvl=all"), "console=com1 loglvl=all");
    }

    #[test]
    fn modules_are_checked() {
        let manifest = paths::workspace_root().join("Cargo.toml");
        let spec = format!("{} dom0 console=hvc0", manifest.display());
        let parsed = modules(&[spec]).expect("the manifest exists");
        assert_eq!(parsed, [Module::new(&manifest, "dom0 console=hvc0")]);

        let err = modules(&[format!("{} a,b", manifest.display())]).expect_err("comma");
        assert!(format!("{err:#}").contains("comma"), "{err:#}");
        let err = modules(&["/nonexistent/kernel".to_owned()]).expect_err("missing");
        assert!(format!("{err:#}").contains("is not a file"), "{err:#}");
    }
}
