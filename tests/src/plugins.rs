//! Plugin components built by the tests themselves: the normal plugin, the
//! deliberately faulty one (the `faults` feature), one stamped with another
//! version, and one built against another version of the contract.
//!
//! Each is a real `cargo build --target wasm32-wasip2` of `plugin/`, into
//! `target/test-plugins` (its own target directory: the outer cargo holds the
//! lock of the main one), then copied to `target/test-plugins/out/<name>.wasm`.
//! Builds are serialised across test processes by a lock file, because they
//! share one output path before the copy.
//!
//! ```no_run
//! use sandboxd_tests::plugins::{self, Variant};
//! let wasm = plugins::build(&Variant::Faults);
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// Which plugin to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// The plugin as shipped.
    Normal,
    /// With deliberate faults on special ids (see `plugin/src/glue/faults.rs`);
    /// version `<crate version>+faults`.
    Faults,
    /// The normal plugin reporting this version (`SANDBOXD_PLUGIN_VERSION`),
    /// built with the release-grade `plugin` profile, for benchmarks.
    Stamped(String),
    /// The normal plugin built against `wit/` with its package version set to
    /// this one: what a plugin for another contract version looks like.
    Contract(String),
}

impl Variant {
    fn file_name(&self) -> String {
        match self {
            Variant::Normal => "normal.wasm".into(),
            Variant::Faults => "faults.wasm".into(),
            Variant::Stamped(v) => format!("stamped-{v}.wasm"),
            Variant::Contract(v) => format!("contract-{v}.wasm"),
        }
    }

    fn profile(&self) -> &'static str {
        match self {
            Variant::Stamped(_) => "plugin",
            _ => "plugin-test",
        }
    }
}

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn target_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("test-plugins")
}

/// Build `variant` (or reuse an up-to-date build) and return its path.
pub fn build(variant: &Variant) -> PathBuf {
    let target = target_dir();
    let out = target.join("out");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let lock = std::fs::File::create(out.join(".lock"))
        .unwrap_or_else(|e| panic!("cannot create the build lock: {e}"));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot take the build lock: {e}"));

    let source = match variant {
        Variant::Contract(version) => contract_tree(&target, version),
        _ => workspace_root(),
    };
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&source)
        .args(["build", "--package", "sandboxd-plugin"])
        .args(["--target", "wasm32-wasip2", "--profile", variant.profile()])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("SANDBOXD_PLUGIN_VERSION");
    match variant {
        Variant::Faults => {
            cargo.args(["--features", "faults"]);
        }
        Variant::Stamped(version) => {
            cargo.env("SANDBOXD_PLUGIN_VERSION", version);
        }
        Variant::Contract(_) => {
            // The copied lock file still lists the host's crates; cargo trims it.
            cargo.arg("--offline");
        }
        Variant::Normal => {
            cargo.arg("--locked");
        }
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    assert!(status.success(), "building the {variant:?} plugin failed");
    let built = target
        .join("wasm32-wasip2")
        .join(variant.profile())
        .join("sandboxd_plugin.wasm");
    let dest = out.join(variant.file_name());
    std::fs::copy(&built, &dest)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", built.display(), dest.display()));
    dest
}

/// A copy of the workspace's plugin and WIT with the package version changed,
/// as a workspace of its own.
fn contract_tree(target: &Path, version: &str) -> PathBuf {
    let root = workspace_root();
    let tree = target.join(format!("contract-{version}"));
    let _ = std::fs::remove_dir_all(tree.join("wit"));
    let _ = std::fs::remove_dir_all(tree.join("plugin"));
    copy_dir(&root.join("plugin"), &tree.join("plugin"));
    copy_dir(&root.join("wit"), &tree.join("wit"));
    let current = format!("sandboxd:plugin@{}", contract_version());
    let wit_files = read_dir(&tree.join("wit"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wit"));
    for entry in wit_files {
        let text = std::fs::read_to_string(&entry).unwrap_or_else(|e| panic!("{e}"));
        let text = text.replace(&current, &format!("sandboxd:plugin@{version}"));
        std::fs::write(&entry, text).unwrap_or_else(|e| panic!("{e}"));
    }
    let manifest =
        std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_else(|e| panic!("{e}"));
    let manifest = manifest
        .replace(
            r#"members = ["host", "plugin", "tests", "tests/fuzz", "wit"]"#,
            r#"members = ["plugin", "wit"]"#,
        )
        .replace(
            r#"default-members = ["host", "plugin", "tests", "tests/fuzz", "wit"]"#,
            r#"default-members = ["plugin", "wit"]"#,
        );
    assert!(
        manifest.contains(r#"members = ["plugin", "wit"]"#),
        "the workspace members line changed; update tests/src/plugins.rs"
    );
    std::fs::write(tree.join("Cargo.toml"), manifest).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(root.join("Cargo.lock"), tree.join("Cargo.lock"))
        .unwrap_or_else(|e| panic!("{e}"));
    tree
}

/// The contract version of the workspace's `wit/` (`package sandboxd:plugin@X;`).
pub fn contract_version() -> String {
    sandboxd_contract::VERSION.to_owned()
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for path in read_dir(from) {
        let dest = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}
