//! Compiled components on disk, so a restart or a swap back to a version seen
//! before skips Cranelift.
//!
//! A file is named `<sha256 of the wasm>-<engine compatibility hash>.cwasm`:
//! the same bytes compiled by an engine with the same settings and wasmtime
//! version. wasmtime checks the header again when loading; a file it rejects
//! is deleted and the component compiled afresh.
//!
//! Safety invariant: `Component::deserialize_file` trusts its input (it is
//! machine code). Files get there only through [`CompileCache::component`],
//! written whole under a temporary name and renamed, in a directory created
//! `0700` inside the data directory; whoever can write there can already
//! replace the sandboxd binary's data wholesale.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled files kept; older ones are removed when a new one is written.
const MAX_ENTRIES: usize = 16;

/// A component and how it was obtained.
pub struct Compiled {
    pub component: Component,
    pub from_cache: bool,
    pub millis: f64,
}

pub struct CompileCache {
    /// None when the directory could not be made: every load compiles.
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> CompileCache {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        let dir = match private_dir(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot use the compiled-plugin cache; every load will compile");
                None
            }
        };
        CompileCache { dir, engine_key }
    }

    fn path(&self, sha256: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{sha256}-{}.cwasm", self.engine_key)))
    }

    /// The component of `wasm` (whose hash is `sha256`): loaded compiled when
    /// the cache has it, compiled (and cached) otherwise. Blocking: run it off
    /// the async executor.
    pub fn component(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<Compiled, String> {
        let started = Instant::now();
        let millis = || started.elapsed().as_secs_f64() * 1e3;
        if let Some(path) = self.path(sha256).filter(|p| p.exists()) {
            // SAFETY: see the module invariant: only this cache writes these
            // files, whole, from `Component::serialize`.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    return Ok(Compiled {
                        component,
                        from_cache: true,
                        millis: millis(),
                    });
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "discarding an unusable compiled plugin");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(engine, wasm).map_err(|e| format!("{e:#}"))?;
        let compiled = Compiled {
            component,
            from_cache: false,
            millis: millis(),
        };
        if let Some(path) = self.path(sha256)
            && let Err(e) = self.store(&compiled.component, &path)
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot cache the compiled plugin");
        }
        Ok(compiled)
    }

    fn store(&self, component: &Component, path: &Path) -> anyhow::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let bytes = component.serialize()?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path)?;
        self.prune(dir);
        Ok(())
    }

    /// Keep the newest [`MAX_ENTRIES`] compiled files.
    fn prune(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if files.len() <= MAX_ENTRIES {
            return;
        }
        files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        for (_, old) in files.into_iter().skip(MAX_ENTRIES) {
            let _ = std::fs::remove_file(old);
        }
    }
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
