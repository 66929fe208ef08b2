//! Events.
//!
//! Tables:
//! - `events`: conversation key ‖ 0 ‖ time key ‖ event id → the event's JSON,
//!   byte for byte as the agent server sent it. A conversation's events page in
//!   timestamp order (ties by id) with one range scan.
//! - `event_ids`: conversation key ‖ 0 ‖ event id → time key ‖ arrival number.
//!   What makes each event stored once whichever way it arrives (poll or
//!   webhook), and how a page id (an event id) finds its place. (Events stored
//!   before arrival numbers existed have the time key alone.)
//! - `event_arrivals`: conversation key ‖ 0 ‖ arrival number → time key ‖ event
//!   id. A conversation's events in the order they were stored, which is not
//!   their timestamps' order (agent servers' clocks and batches disagree): what
//!   an event stream follows, so that an event with an older timestamp stored
//!   later still reaches it.
//!
//! Invariant: an event's three entries are written in the same commit, and a
//! conversation's arrival numbers come from its `event_count`, which every
//! commit storing events updates under a precondition: two writers never give
//! out one number.

use super::time_key;
use crate::ports::Op;

pub const EVENTS: &str = "events";
pub const EVENT_IDS: &str = "event_ids";
pub const EVENT_ARRIVALS: &str = "event_arrivals";

/// Longest event id kept as given; longer ones are replaced by a digest.
pub const MAX_EVENT_ID: usize = 256;

/// The prefix of one conversation's entries in either table.
pub fn conversation_prefix(conversation_key: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(conversation_key.len() + 1);
    key.extend_from_slice(conversation_key.as_bytes());
    key.push(0);
    key
}

pub fn event_key(conversation_key: &str, time_us: i64, event_id: &str) -> Vec<u8> {
    let mut key = conversation_prefix(conversation_key);
    key.extend_from_slice(&time_key(time_us));
    key.extend_from_slice(event_id.as_bytes());
    key
}

pub fn event_id_key(conversation_key: &str, event_id: &str) -> Vec<u8> {
    let mut key = conversation_prefix(conversation_key);
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// The time and id of an `events` key, given its conversation prefix length.
pub fn split_event_key(key: &[u8], prefix_len: usize) -> Option<(i64, &str)> {
    let rest = key.get(prefix_len..)?;
    let time = super::time_of_key(rest)?;
    let id = std::str::from_utf8(rest.get(8..)?).ok()?;
    Some((time, id))
}

/// The largest event the store keeps: an event is one value, and the host's
/// storage refuses values over 1 MiB (`wit/storage.wit`). A larger one is
/// refused by a webhook and skipped (with a warning) by a poll, so that it
/// cannot fail the commit of everything else.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// The `event_arrivals` key of arrival number `seq`.
pub fn arrival_key(conversation_key: &str, seq: u64) -> Vec<u8> {
    let mut key = conversation_prefix(conversation_key);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// What `event_ids` holds of an event: its time key, and its arrival number
/// (none for an event stored before they existed).
pub fn split_id_value(value: &[u8]) -> Option<([u8; 8], Option<u64>)> {
    let time: [u8; 8] = value.get(..8)?.try_into().ok()?;
    let seq = value
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes);
    Some((time, seq))
}

/// Store one new event, the `seq`-th of its conversation to arrive: its three
/// entries, and the precondition that it is new.
pub fn insert_ops(
    conversation_key: &str,
    time_us: i64,
    event_id: &str,
    seq: u64,
    raw: &[u8],
) -> [Op; 4] {
    let id_key = event_id_key(conversation_key, event_id);
    let time = time_key(time_us);
    [
        Op::RequireAbsent {
            table: EVENT_IDS,
            key: id_key.clone(),
        },
        Op::Put {
            table: EVENT_IDS,
            key: id_key,
            value: [time.as_slice(), &seq.to_be_bytes()].concat(),
        },
        Op::Put {
            table: EVENT_ARRIVALS,
            key: arrival_key(conversation_key, seq),
            value: [time.as_slice(), event_id.as_bytes()].concat(),
        },
        Op::Put {
            table: EVENTS,
            key: event_key(conversation_key, time_us, event_id),
            value: raw.to_vec(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_by_time_then_id_and_split_back() {
        let mut keys = [
            event_key("c", 20, "a"),
            event_key("c", -5, "z"),
            event_key("c", 20, "0"),
        ];
        keys.sort();
        let prefix = conversation_prefix("c").len();
        let parts: Vec<_> = keys
            .iter()
            .filter_map(|k| split_event_key(k, prefix))
            .collect();
        assert_eq!(parts, vec![(-5, "z"), (20, "0"), (20, "a")]);
    }

    #[test]
    fn conversations_do_not_share_prefixes() {
        assert!(!event_key("ab", 1, "x").starts_with(&conversation_prefix("a")));
    }
}
