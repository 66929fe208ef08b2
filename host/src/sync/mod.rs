//! The host's background work: running the plugin's poll cycle on a schedule,
//! running callback deliveries, reconciling the store with the runtime API, and
//! telling live event streams that something changed.
//!
//! The decisions (what to fetch, what is new, what is owed, what to repair) are
//! the plugin's; these tasks only decide *when* to ask.

mod changes;
mod deliveries;
mod poller;
mod reconciler;

pub use changes::Changes;
pub use deliveries::run_deliveries;
pub use poller::{Poller, run_poller};
pub use reconciler::{Reconciler, run_reconciler};
