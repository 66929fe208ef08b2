//! The host's share of conversation sync: running the plugin's poll cycle on a
//! schedule, running callback deliveries, and telling live event streams that
//! something changed.
//!
//! The decisions (what to fetch, what is new, what is owed) are the plugin's;
//! these tasks only decide *when* to ask.

mod changes;
mod deliveries;
mod poller;

pub use changes::Changes;
pub use deliveries::run_deliveries;
pub use poller::{Poller, run_poller};
