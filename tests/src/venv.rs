//! Python virtual environments that tests need (the real OpenHands agent
//! server, the schemathesis API fuzzer), made once and shared.
//!
//! A venv lives in the cargo target directory (or where its override variable
//! says), is made under an exclusive file lock (`<venv>.lock`, which the
//! `scripts/` helpers take too), gets one pinned pip requirement, and is marked
//! complete only after the install succeeded: so parallel tests and processes
//! install once, and an interrupted install is redone, never half-used.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One venv: where it lives and what goes in.
pub struct Venv {
    /// Its directory under the target directory.
    pub dir_name: &'static str,
    /// A variable that names another directory for it.
    pub dir_override: &'static str,
    /// The pinned pip requirement (`name==version`).
    pub requirement: &'static str,
    /// The file written into the venv once the install succeeded (the
    /// `scripts/` helpers look for the same one).
    pub marker: &'static str,
    /// Finds the Python to make it with; `Err` lists what was tried.
    pub base_python: fn() -> Result<PathBuf, String>,
    /// What a person should do when the venv cannot be made.
    pub help: &'static str,
}

impl Venv {
    pub fn dir(&self) -> PathBuf {
        match std::env::var_os(self.dir_override).filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => target_dir().join(self.dir_name),
        }
    }

    fn marker(&self) -> PathBuf {
        self.dir().join(self.marker)
    }

    /// The venv's `bin/` directory, made and filled first if need be.
    ///
    /// # Panics
    /// With [`Venv::help`] if no Python is found or the install fails.
    pub fn bin(&self) -> PathBuf {
        let venv = self.dir();
        let python = venv.join("bin").join("python");
        let marker = self.marker();
        if marker.is_file() && python.exists() {
            return venv.join("bin");
        }
        if let Some(parent) = venv.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        let lock_path = PathBuf::from(format!("{}.lock", venv.display()));
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
        // Someone else may have finished while we waited for the lock.
        if marker.is_file() && python.exists() {
            return venv.join("bin");
        }
        if !python.exists() {
            if venv.exists() {
                // Only ever delete a half-made venv, never a directory named by
                // mistake in the override variable.
                let empty = fs::read_dir(&venv).is_ok_and(|mut entries| entries.next().is_none());
                assert!(
                    empty || venv.join("pyvenv.cfg").is_file(),
                    "{} exists but is no venv (no bin/python, no pyvenv.cfg): remove it or \
                     point {} elsewhere",
                    venv.display(),
                    self.dir_override
                );
                fs::remove_dir_all(&venv).unwrap_or_else(|e| {
                    panic!("cannot remove the broken venv {}: {e}", venv.display())
                });
            }
            let base = (self.base_python)().unwrap_or_else(|tried| {
                panic!(
                    "no Python to make {} with. Tried: {tried}.\n{}",
                    venv.display(),
                    self.help
                )
            });
            eprintln!(
                "creating the venv {} with {}",
                venv.display(),
                base.display()
            );
            self.run(
                Command::new(&base).arg("-m").arg("venv").arg(&venv),
                "python -m venv",
            );
        }
        eprintln!("pip install {} into {}", self.requirement, venv.display());
        self.run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--progress-bar", "off"])
                .arg(self.requirement)
                .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
                .env("PIP_NO_INPUT", "1"),
            "pip install",
        );
        fs::write(
            &marker,
            format!("{}\n{}\n", self.requirement, python.display()),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
        drop(lock);
        venv.join("bin")
    }

    fn run(&self, command: &mut Command, what: &str) {
        let status = command
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        assert!(status.success(), "{what} failed ({status}). {}", self.help);
    }
}

/// The cargo target directory: the nearest ancestor of the test executable holding
/// cargo's `CACHEDIR.TAG` (target/<profile>/deps/<test> → target), else
/// `CARGO_TARGET_DIR`, else two levels above the executable's directory.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    if let Some(dir) = exe
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
    {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.pop();
    dir
}

/// The `python3` on `PATH`, if it is at least 3.9.
pub fn find_python3() -> Result<PathBuf, String> {
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let python = dir.join("python3");
        if python.is_file()
            && python_version(&python).is_some_and(|(major, minor)| major == 3 && minor >= 9)
        {
            return Ok(python);
        }
    }
    Err("python3 (3.9 or newer) on PATH".into())
}

/// A Python 3.12 interpreter: `PYTHON312` (any Python ≥ 3.12 it names), else
/// `python3.12` on `PATH`, else `<pyenv root>/versions/3.12*/bin/python3.12` (the
/// newest). Each candidate is run to check its version. `Err` lists what was tried.
pub fn find_python312() -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    if let Some(python) = std::env::var_os("PYTHON312").filter(|p| !p.is_empty()) {
        let python = PathBuf::from(python);
        if python_version(&python).is_some_and(|(major, minor)| major == 3 && minor >= 12) {
            return Ok(python);
        }
        tried.push(format!(
            "PYTHON312={} (not a Python ≥ 3.12)",
            python.display()
        ));
    } else {
        tried.push("PYTHON312 (unset)".to_owned());
    }
    let is_312 = |python: &Path| python_version(python) == Some((3, 12));
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let python = dir.join("python3.12");
        if python.is_file() {
            if is_312(&python) {
                return Ok(python);
            }
            tried.push(format!("{} (does not run)", python.display()));
        }
    }
    tried.push("python3.12 on PATH".to_owned());
    let root = pyenv_root();
    let versions = root.join("versions");
    let mut found: Vec<PathBuf> = fs::read_dir(&versions)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().starts_with("3.12"))
                .map(|entry| entry.path().join("bin").join("python3.12"))
                .filter(|python| python.is_file())
                .collect()
        })
        .unwrap_or_default();
    // Newest patch release first ("3.12.10" after "3.12.9").
    found.sort_by_key(|python| {
        let version = python
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        version
            .split('.')
            .map(|part| part.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    for python in found.into_iter().rev() {
        if is_312(&python) {
            return Ok(python);
        }
    }
    tried.push(format!("{}/3.12*/bin/python3.12", versions.display()));
    Err(tried.join(", "))
}

fn pyenv_root() -> PathBuf {
    if let Some(root) = std::env::var_os("PYENV_ROOT").filter(|root| !root.is_empty()) {
        return PathBuf::from(root);
    }
    if let Ok(output) = Command::new("pyenv")
        .arg("root")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        && output.status.success()
    {
        let root = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !root.is_empty() {
            return PathBuf::from(root);
        }
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".pyenv")
}

fn python_version(python: &Path) -> Option<(u32, u32)> {
    let output = Command::new(python)
        .args([
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut parts = text.split_whitespace().map(str::parse::<u32>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}
