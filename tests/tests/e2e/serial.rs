//! Which tests of this binary may run at the same time.
//!
//! All end-to-end tests share one process, so libtest runs them side by side (as
//! many at once as `--test-threads`, the number of cores by default). That is fine
//! for most of them, but a few load the machine so much that the others' timeouts
//! would fail beside them (the load test saturates every core for a minute; the
//! crash test's kill moments must not drift). Those take the turn [`alone`]; every
//! other test takes a [`shared`] turn first thing, so it runs beside any ordinary
//! test but never beside one that runs alone.
//!
//! A test that starts no process still takes its shared turn: one rule for every
//! test is easier to keep than a list of exceptions.
//!
//! The lock is tokio's: it is held across the test's awaits, and it is fair, so a
//! test waiting to run alone is not starved by a stream of shared turns (later
//! shared turns queue behind it). It works across the tests' separate runtimes.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static TURN: RwLock<()> = RwLock::const_new(());

/// Waits until no other test runs and keeps them all out until the guard drops.
pub async fn alone() -> RwLockWriteGuard<'static, ()> {
    TURN.write().await
}

/// Waits while a test runs [`alone`]; any number of shared turns run together.
pub async fn shared() -> RwLockReadGuard<'static, ()> {
    TURN.read().await
}

/// [`shared`] for a test without an async runtime.
pub fn shared_blocking() -> RwLockReadGuard<'static, ()> {
    TURN.blocking_read()
}
