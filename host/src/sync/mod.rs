//! The host's background work: running the plugin's poll cycle on a schedule,
//! running callback deliveries, reconciling the store with the runtime API,
//! running the lifecycle policy pass, and telling live event streams that
//! something changed.
//!
//! The decisions (what to fetch, what is new, what is owed, what to repair) are
//! the plugin's; these tasks only decide *when* to ask.

mod changes;
mod deliveries;
mod lifecycle;
mod poller;
mod reconciler;

pub use changes::Changes;
pub use deliveries::run_deliveries;
pub use lifecycle::{Lifecycle, run_lifecycle};
pub use poller::{Poller, run_poller};
pub use reconciler::{Reconciler, run_reconciler};

/// `id: why; id: why`: a background pass's failures, for its one log line.
fn failures_line(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(id, why)| format!("{id}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}
