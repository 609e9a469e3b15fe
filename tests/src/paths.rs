//! Where the workspace, the target directory and the boot images are.
//!
//! `cargo xtask build` writes the images to `<target>/oxen/` and the harness reads them from
//! there, both through these functions: `<target>` is `$CARGO_TARGET_DIR` when set (relative
//! to the workspace root if relative), else `<workspace>/target`.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.join(".."), Path::to_path_buf)
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// The directory of boot images: `<target>/oxen`.
pub fn image_dir() -> PathBuf {
    target_dir().join("oxen")
}

/// A path for messages: relative to the workspace root when it is inside it.
pub fn display(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `path` if absolute, else `path` under the workspace root.
pub fn from_root(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace_root().join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("tests").join("Cargo.toml").is_file());
    }

    #[test]
    fn relative_paths_are_shown_from_the_root() {
        let image = workspace_root().join("target/oxen/xen-core");
        assert_eq!(display(&image), "target/oxen/xen-core");
        assert_eq!(display(Path::new("/elsewhere/x")), "/elsewhere/x");
        assert_eq!(
            from_root(Path::new("target/oxen/a")),
            image.with_file_name("a")
        );
    }
}
