//! Conversations and events: the poll cycle, the webhooks, and the one place both
//! store what they learn ([`plan`]).
//!
//! Invariants:
//! - An event is stored once per conversation, by event id (an event without an
//!   id is known by the digest of its bytes), whether it came by poll, by webhook
//!   or both; its deliveries to callbacks are queued in the same commit.
//! - A conversation belongs to the owner of the sandbox it was first seen in;
//!   nothing another user's agent server says can change that.
//! - A conversation's status moves only forward in time: a status is applied only
//!   if its source (an info's `updated_at`, a state-update event's timestamp) is
//!   not older than the one already applied, so a late info push never undoes a
//!   `finished` learned from events.

mod plan;
mod poll;
mod webhook;

pub use plan::StoreOutcome;

/// What one poll cycle did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleSummary {
    pub sandboxes: u32,
    pub conversations: u32,
    pub new_events: u32,
    pub requests: u32,
    /// Sandbox id and reason.
    pub failures: Vec<(String, String)>,
    pub changed_conversations: Vec<String>,
}

/// What one webhook delivered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    pub new_events: u32,
    pub changed_conversations: Vec<String>,
}

#[cfg(test)]
mod tests;
