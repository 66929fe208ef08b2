//! Sending what is owed to callbacks, with retries.
//!
//! Each due delivery is one POST of the event's JSON (exactly as stored) to the
//! callback's URL, signed by the host. A 2xx answer delivers it; anything else is
//! retried with exponential backoff and jitter until [`MAX_ATTEMPTS`]; every
//! attempt is logged. Deliveries are in the store, so a restart resumes them:
//! at least once, never silently dropped (an event whose callback was deleted is
//! the one exception, by design).
//!
//! Claims: before a delivery is sent, it is rescheduled to [`CLAIM_US`] from now
//! in a commit that requires it unchanged, and its outcome is recorded in a
//! commit that requires the claim. Of several hosts sharing the store, one wins
//! each claim and sends; the others skip it. A host that dies mid-send leaves its
//! claim to run out, and the delivery is sent again then: the only way an event
//! reaches a callback twice.

use std::collections::HashMap;

use crate::error::Result;
use crate::ports::{Bound, Credential, Level, Method, Op, Request, Scan, StoreError};
use crate::schema::callbacks::{
    AttemptRecord, CallbackRecord, DELIVERIES, DELIVERIES_DUE, DELIVERY_ATTEMPTS, DeliveryRecord,
    RESCHEDULE_OPS,
};
use crate::schema::conversations::dashed;
use crate::schema::events::EVENTS;
use crate::schema::history::{HISTORY, HistoryRecord};
use crate::schema::{encode, time_key, time_of_key};
use crate::service::Service;
use crate::share::Share;

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 10;
/// Deliveries sent per call.
const BATCH: u32 = 256;
/// Deadline of one delivery POST.
const TIMEOUT_MS: u32 = 10_000;
/// How long a claim holds a delivery: well past its POST's deadline, so that a
/// live sender always records the outcome before anyone else may send again.
const CLAIM_US: i64 = 60_000_000;
/// Claim commits retried after losing some claims to another host.
const CLAIM_ROUNDS: usize = 8;
/// First retry delay; doubles per attempt up to [`MAX_BACKOFF_US`].
const BASE_BACKOFF_US: i64 = 1_000_000;
const MAX_BACKOFF_US: i64 = 300_000_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliverySummary {
    pub attempted: u32,
    pub delivered: u32,
    pub failed: u32,
    pub next_due_ms: Option<u64>,
}

/// The delay before attempt `attempt + 1`, with ±50% jitter so that a receiver
/// that comes back is not hit by every retry at once.
fn backoff_us(attempt: u32, random: [u8; 16]) -> i64 {
    let base = BASE_BACKOFF_US
        .saturating_mul(1_i64 << attempt.saturating_sub(1).min(20))
        .min(MAX_BACKOFF_US);
    let jitter = f64::from(random[0]) / 255.0 + 0.5;
    (base as f64 * jitter) as i64
}

impl Service<'_> {
    /// Send what is due of the deliveries in `share`.
    pub fn deliver_due(&self, share: &Share) -> Result<DeliverySummary> {
        let now = self.env.now_micros();
        let due = self.due_in(share, now)?;
        let mut summary = DeliverySummary::default();
        if !due.is_empty() {
            self.send_deliveries(&due, now, &mut summary)?;
        }
        summary.next_due_ms = self.next_due_ms()?;
        Ok(summary)
    }

    /// Up to [`BATCH`] ids of deliveries in `share` due by `now`, earliest first.
    fn due_in(&self, share: &Share, now: i64) -> Result<Vec<Vec<u8>>> {
        let mut ids = Vec::new();
        let mut start = Bound::Unbounded;
        loop {
            let page = self.store.scan(Scan {
                table: DELIVERIES_DUE,
                start,
                end: Bound::Included(time_key(now).to_vec()),
                reverse: false,
                limit: BATCH,
            })?;
            let full = page.len() == BATCH as usize;
            for (key, _) in &page {
                let Some(id) = key.get(8..) else { continue };
                if share.holds(&String::from_utf8_lossy(id)) {
                    ids.push(id.to_vec());
                    if ids.len() == BATCH as usize {
                        return Ok(ids);
                    }
                }
            }
            match page.last() {
                Some((last, _)) if full => start = Bound::Excluded(last.clone()),
                _ => return Ok(ids),
            }
        }
    }

    /// Claim each delivery (in one commit, dropping the ones another host
    /// changed meanwhile); the claimed ones as stored, each with its record as
    /// it was before.
    pub(crate) fn claim(
        &self,
        mut wanted: Vec<DeliveryRecord>,
        now: i64,
    ) -> Result<Vec<DeliveryRecord>> {
        for _ in 0..CLAIM_ROUNDS {
            if wanted.is_empty() {
                return Ok(wanted);
            }
            let claimed: Vec<DeliveryRecord> = wanted
                .iter()
                .map(|d| DeliveryRecord {
                    next_at_us: now + CLAIM_US,
                    ..d.clone()
                })
                .collect();
            let ops: Vec<Op> = claimed
                .iter()
                .zip(&wanted)
                .flat_map(|(c, d)| c.reschedule_ops(d))
                .collect();
            match self.store.commit(ops) {
                Ok(()) => return Ok(claimed),
                // The delivery at this op is another host's now: leave it.
                Err(StoreError::Conflict(op)) => {
                    let lost = usize::try_from(op).unwrap_or(usize::MAX) / RESCHEDULE_OPS;
                    if lost >= wanted.len() {
                        return Ok(Vec::new());
                    }
                    wanted.remove(lost);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Vec::new())
    }

    fn send_deliveries(
        &self,
        ids: &[Vec<u8>],
        now: i64,
        summary: &mut DeliverySummary,
    ) -> Result<()> {
        let deliveries: Vec<DeliveryRecord> = self
            .store
            .get_many(DELIVERIES, ids)?
            .into_iter()
            .flatten()
            .map(|b| DeliveryRecord::decode(&b))
            .collect::<Result<_>>()?;
        let callbacks: HashMap<String, CallbackRecord> = self
            .load_callbacks()?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        // What is owed no more (its callback or its event gone) is finished;
        // the rest is claimed before anything is sent.
        let mut ops: Vec<Op> = Vec::new();
        let mut owed = Vec::new();
        for d in deliveries {
            if callbacks.contains_key(&d.callback_id) {
                owed.push(d);
            } else {
                ops.extend(d.finish_ops());
            }
        }
        let claimed = self.claim(owed, now)?;
        let bodies = self.bodies_of(&claimed)?;
        let mut sendable: Vec<(&DeliveryRecord, Request)> = Vec::new();
        for (d, body) in claimed.iter().zip(bodies) {
            match (callbacks.get(&d.callback_id), body) {
                (Some(cb), Some(body)) => sendable.push((d, delivery_request(cb, d, body))),
                _ => ops.extend(d.finish_ops()),
            }
        }
        let (records, requests): (Vec<&DeliveryRecord>, Vec<Request>) =
            sendable.into_iter().unzip();
        let answers = self.http.send_batch(requests);
        for (d, answer) in records.into_iter().zip(answers) {
            let attempt = d.attempts + 1;
            let (status, error) = match &answer {
                Ok(r) if r.is_success() => (Some(r.status), None),
                Ok(r) => (
                    Some(r.status),
                    Some(format!("the receiver answered HTTP {}", r.status)),
                ),
                Err(e) => (None, Some(e.to_string())),
            };
            let state = if error.is_none() {
                summary.delivered += 1;
                ops.extend(d.finish_ops());
                "delivered"
            } else if attempt >= MAX_ATTEMPTS {
                summary.failed += 1;
                ops.extend(d.finish_ops());
                self.log(
                    Level::Warn,
                    "gave up a callback delivery",
                    &[("callback_id", &d.callback_id), ("delivery_id", &d.id)],
                );
                "failed"
            } else {
                let next = DeliveryRecord {
                    attempts: attempt,
                    next_at_us: now + backoff_us(attempt, self.env.random_16()),
                    ..d.clone()
                };
                ops.extend(next.reschedule_ops(d));
                "pending"
            };
            summary.attempted += 1;
            let log = AttemptRecord {
                delivery_id: d.id.clone(),
                event_id: d.event_id.clone(),
                conversation_key: d.conversation_key.clone(),
                attempt,
                at_us: now,
                status,
                error,
                state: state.to_owned(),
            };
            ops.push(Op::Put {
                table: DELIVERY_ATTEMPTS,
                key: log.key(&d.callback_id),
                value: encode(&log),
            });
        }
        match self.store.commit(ops) {
            Ok(()) => Ok(()),
            // A claim ran out and another host took the delivery over (this call
            // outlived its claim): the outcome is theirs to record now.
            Err(StoreError::Conflict(_)) => {
                self.log(
                    Level::Warn,
                    "a delivery's claim ran out before its outcome was recorded; another host owns it now",
                    &[],
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What each delivery sends: the event as stored, or the lifecycle event
    /// rendered from its history entry; none where it is gone. One read per
    /// table.
    fn bodies_of(&self, deliveries: &[DeliveryRecord]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut bodies = vec![None; deliveries.len()];
        for table in [EVENTS, HISTORY] {
            let (at, keys): (Vec<usize>, Vec<Vec<u8>>) = deliveries
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    let (t, key) = d.body_key();
                    (t == table).then_some((i, key))
                })
                .unzip();
            if keys.is_empty() {
                continue;
            }
            for (i, body) in at.into_iter().zip(self.store.get_many(table, &keys)?) {
                bodies[i] = match (table, body) {
                    (HISTORY, Some(entry)) => Some(HistoryRecord::decode(&entry)?.event_json()),
                    (_, body) => body,
                };
            }
        }
        Ok(bodies)
    }

    /// Milliseconds until the earliest pending delivery (0 if already due).
    fn next_due_ms(&self) -> Result<Option<u64>> {
        let first = self.store.scan(Scan {
            table: DELIVERIES_DUE,
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            reverse: false,
            limit: 1,
        })?;
        let now = self.env.now_micros();
        Ok(first
            .first()
            .and_then(|(k, _)| time_of_key(k))
            .map(|at| u64::try_from((at - now).max(0) / 1000).unwrap_or(0)))
    }
}

fn delivery_request(cb: &CallbackRecord, d: &DeliveryRecord, body: Vec<u8>) -> Request {
    let mut request = Request::new(Method::Post, cb.url.clone())
        .json(body)
        .credential(Credential::CallbackSignature(cb.id.clone()));
    let (subject, subject_id) = if d.status_change {
        ("x-sandboxd-sandbox-id", d.conversation_key.clone())
    } else {
        ("x-sandboxd-conversation-id", dashed(&d.conversation_key))
    };
    request.headers.extend([
        ("x-sandboxd-callback-id".to_owned(), cb.id.clone()),
        ("x-sandboxd-delivery-id".to_owned(), d.id.clone()),
        (subject.to_owned(), subject_id),
        ("x-sandboxd-event-id".to_owned(), d.event_id.clone()),
        (
            "x-sandboxd-attempt".to_owned(),
            (d.attempts + 1).to_string(),
        ),
    ]);
    request.timeout_ms = Some(TIMEOUT_MS);
    request
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mid = [127u8; 16];
        assert!((900_000..=1_100_000).contains(&super::backoff_us(1, mid)));
        assert!((1_800_000..=2_200_000).contains(&super::backoff_us(2, mid)));
        assert!(super::backoff_us(30, [255; 16]) <= 450_000_000);
        assert!(super::backoff_us(1, [0; 16]) >= 500_000);
    }
}
