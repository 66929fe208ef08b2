//! Reload triggers that come from outside: the plugin file changing, SIGHUP.
//!
//! The watcher watches the file's directory, not the file: editors and
//! deployment tools replace a file by writing a temporary one and renaming it
//! over, which a watch on the old inode would miss (Kubernetes volumes swap a
//! `..data` symlink, hence those names count too). A burst of events (`cp`
//! truncating, writing in chunks, closing) is debounced: the reload starts once
//! the directory has been quiet for [`QUIET`], or after [`MAX_WAIT`] of
//! continuous writing. A reload of unchanged bytes is a no-op, so spurious
//! events cost a read and a hash.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{PluginHost, Trigger};

/// How long the file must stay untouched before it is read.
const QUIET: Duration = Duration::from_millis(50);
/// Longest wait for quiet; a file written continuously is read anyway.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    _inner: RecommendedWatcher,
}

/// Reload `host` whenever the file at `path` changes.
pub fn watch(host: Arc<PluginHost>, path: &Path) -> anyhow::Result<Watcher> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{} does not name a file", path.display()))?
        .to_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => ".".into(),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let mut inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && concerns(&event, &name)
        {
            let _ = tx.send(());
        }
    })?;
    inner.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(debounce(host, rx));
    Ok(Watcher { _inner: inner })
}

/// Whether an event may have changed the plugin file. Opening and reading
/// (ours included) do not.
fn concerns(event: &notify::Event, name: &OsString) -> bool {
    let changes = matches!(
        event.kind,
        EventKind::Any
            | EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    );
    changes
        && event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|f| f == name || f.as_encoded_bytes().starts_with(b".."))
        })
}

async fn debounce(host: Arc<PluginHost>, mut events: mpsc::UnboundedReceiver<()>) {
    while events.recv().await.is_some() {
        let give_up = Instant::now() + MAX_WAIT;
        loop {
            match tokio::time::timeout(QUIET, events.recv()).await {
                Ok(Some(())) if Instant::now() < give_up => continue,
                Ok(None) => return,
                _ => break,
            }
        }
        // A file that is gone is mid-replacement: its creation will be an event.
        if host.file().is_some_and(Path::exists) {
            // The outcome is logged and recorded by the reload itself.
            let _ = host.reload(Trigger::Watch).await;
        }
    }
}

/// Reload `host` on every SIGHUP.
pub fn reload_on_sighup(host: Arc<PluginHost>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                // Swaps and refusals are logged by the reload itself.
                if let Err(super::ReloadError::NoFile) = host.reload(Trigger::Signal).await {
                    tracing::info!("SIGHUP: {}", super::ReloadError::NoFile);
                }
            }
        });
    }
    Ok(())
}
