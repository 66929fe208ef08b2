//! Turning what an agent server said into storage commits.
//!
//! Planning is separate from committing so the poll cycle can fold many
//! conversations into one commit (one disk flush), and fall back to one commit
//! per conversation when a concurrent writer (a webhook) changed one of them.

use std::collections::HashSet;

use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::agent::{self, EventMeta, STATE_UPDATE};
use crate::error::{Error, Result};
use crate::ports::{Level, Op, StoreError};
use crate::schema::SandboxRecord;
use crate::schema::callbacks::{CallbackRecord, DeliveryRecord};
use crate::schema::conversations::{self as conv, ConversationRecord};
use crate::schema::events::{self, MAX_EVENT_ID};
use crate::service::Service;
use crate::time;

/// How often a plan is redone after losing a race with another writer.
const ATTEMPTS: usize = 3;

/// Most ops folded into one commit (the host accepts 100,000); a single plan
/// larger than this still goes in one commit of its own.
const MAX_GROUP_OPS: usize = 4_000;

/// A commit that brings one conversation up to date.
pub struct Plan {
    pub ops: Vec<Op>,
    pub conversation_id: String,
    pub new_events: u32,
    /// Whether anything is written at all.
    pub changes: bool,
}

/// What storing produced for one conversation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreOutcome {
    pub new_events: u32,
    pub changed: bool,
}

/// An event read for storing: where it goes, and what it changes.
struct Incoming<'a> {
    raw: &'a RawValue,
    id: String,
    time_us: i64,
    meta: EventMeta,
}

/// The fields a `ConversationInfo` sets on a stored conversation.
fn apply_info(record: &mut ConversationRecord, info: &Value) {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let o = info.as_object();
    let get = |k: &str| o.and_then(|o| o.get(k));
    if let Some(title) = text(get("title")) {
        record.title = Some(title);
    }
    if let Some(model) = text(
        get("agent")
            .and_then(|a| a.get("llm"))
            .and_then(|l| l.get("model")),
    ) {
        record.llm_model = Some(model);
    }
    for (field, slot) in [
        ("stats", &mut record.stats),
        ("metrics", &mut record.metrics),
        ("tags", &mut record.tags),
    ] {
        if let Some(v) = get(field).filter(|v| !v.is_null()) {
            *slot = Some(v.clone());
        }
    }
    if let Some(created) = text(get("created_at")) {
        record.created_at = Some(created);
    }
    let updated = text(get("updated_at"));
    let source_us = updated.as_deref().and_then(time::parse).unwrap_or(0);
    if let Some(status) = text(get("execution_status")).filter(|s| s != "deleting") {
        set_status(record, status, source_us);
    }
    if updated.is_some() {
        record.updated_at = updated;
    }
    record.raw = Some(info.clone());
}

/// Apply a status if its source is not older than the one applied before.
fn set_status(record: &mut ConversationRecord, status: String, source_us: i64) {
    if source_us >= record.status_at_us {
        record.execution_status = Some(status);
        record.status_at_us = source_us;
    }
}

/// What a `ConversationStateUpdateEvent` changes.
fn apply_state_update(record: &mut ConversationRecord, meta: &EventMeta, time_us: i64) {
    let (Some(key), Some(value)) = (meta.key.as_deref(), meta.value.as_ref()) else {
        return;
    };
    match key {
        "execution_status" => {
            if let Some(s) = value.as_str() {
                set_status(record, s.to_owned(), time_us);
            }
        }
        "stats" => record.stats = Some(value.clone()),
        "full_state" => {
            if let Some(s) = value.get("execution_status").and_then(Value::as_str) {
                set_status(record, s.to_owned(), time_us);
            }
            if let Some(stats) = value.get("stats").filter(|v| !v.is_null()) {
                record.stats = Some(stats.clone());
            }
        }
        _ => {}
    }
}

/// An event's id: its own, or the digest of its bytes when it has none (or an
/// unreasonably long one), so repeats of it are still recognised.
fn event_id(meta: &EventMeta, raw: &RawValue) -> String {
    match meta.id.as_deref() {
        Some(id) if !id.is_empty() && id.len() <= MAX_EVENT_ID => id.to_owned(),
        _ => {
            let digest = Sha256::digest(raw.get().as_bytes());
            let hex = hex::encode(&digest[..16]);
            format!("sha256-{hex}")
        }
    }
}

impl Service<'_> {
    /// Every event callback (a short list: subscriptions are created by hand).
    pub(crate) fn load_callbacks(&self) -> Result<Vec<CallbackRecord>> {
        let rows = self.store.scan(crate::ports::Scan {
            table: crate::schema::callbacks::CALLBACKS,
            start: crate::ports::Bound::Unbounded,
            end: crate::ports::Bound::Unbounded,
            reverse: false,
            limit: 100_000,
        })?;
        rows.iter()
            .map(|(_, v)| CallbackRecord::decode(v))
            .collect()
    }

    pub(crate) fn load_conversation(&self, key: &str) -> Result<Option<ConversationRecord>> {
        match self.store.get(conv::CONVERSATIONS, key.as_bytes())? {
            Some(bytes) => ConversationRecord::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Plan storing a `ConversationInfo` from `sandbox`'s agent server. None when
    /// the info has no usable id. A conversation of another owner is refused.
    pub(crate) fn plan_info(&self, sandbox: &SandboxRecord, info: &Value) -> Result<Option<Plan>> {
        let Some(id) = info.get("id").and_then(Value::as_str) else {
            return Ok(None);
        };
        let Some(key) = conv::key_of(id) else {
            return Ok(None);
        };
        let existing = self.load_conversation(&key)?;
        let (old, mut record) = match existing {
            Some(old) => {
                if old.created_by_user_id != sandbox.created_by_user_id {
                    return Err(Error::Unauthorized(format!(
                        "conversation '{id}' belongs to another user"
                    )));
                }
                let record = old.clone();
                (Some(old), record)
            }
            None => (None, self.new_conversation(id, sandbox)),
        };
        apply_info(&mut record, info);
        let (ops, changes) = match &old {
            Some(old) if *old == record => (Vec::new(), false),
            Some(old) => (record.update_ops(old), true),
            None => (record.insert_ops(), true),
        };
        Ok(Some(Plan {
            ops,
            conversation_id: record.id.clone(),
            new_events: 0,
            changes,
        }))
    }

    pub(crate) fn new_conversation(&self, id: &str, sandbox: &SandboxRecord) -> ConversationRecord {
        ConversationRecord {
            id: id.to_owned(),
            sandbox_id: sandbox.id.clone(),
            created_by_user_id: sandbox.created_by_user_id.clone(),
            title: None,
            execution_status: None,
            status_at_us: 0,
            llm_model: None,
            stats: None,
            metrics: None,
            tags: None,
            created_at: None,
            updated_at: None,
            raw: None,
            max_event_us: None,
            event_count: 0,
            order_us: self.env.now_micros(),
        }
    }

    /// Plan storing events of the conversation `key` (which must exist, or be
    /// `create`d for `sandbox`): only events not stored yet, with the state they
    /// change and their deliveries.
    pub(crate) fn plan_events(
        &self,
        key: &str,
        create: Option<(&str, &SandboxRecord)>,
        raws: &[&RawValue],
        callbacks: &[CallbackRecord],
    ) -> Result<Plan> {
        let now = self.env.now_micros();
        let mut seen = HashSet::new();
        let mut incoming: Vec<Incoming<'_>> = Vec::with_capacity(raws.len());
        for raw in raws {
            let Some(meta) = agent::event_meta(raw) else {
                self.log(
                    Level::Warn,
                    "skipped an event that is not a JSON object",
                    &[("conversation", key)],
                );
                continue;
            };
            if raw.get().len() > events::MAX_EVENT_BYTES {
                self.log(
                    Level::Warn,
                    "skipped an event larger than the store keeps",
                    &[
                        ("conversation", key),
                        ("bytes", &raw.get().len().to_string()),
                    ],
                );
                continue;
            }
            let id = event_id(&meta, raw);
            if !seen.insert(id.clone()) {
                continue;
            }
            let time_us = meta
                .timestamp
                .as_deref()
                .and_then(time::parse)
                .unwrap_or(now);
            incoming.push(Incoming {
                raw,
                id,
                time_us,
                meta,
            });
        }

        let old = self.load_conversation(key)?;
        let mut record = match (&old, create) {
            (Some(old), _) => old.clone(),
            (None, Some((id, sandbox))) => self.new_conversation(id, sandbox),
            (None, None) => return Err(Error::NotFound(format!("conversation '{key}' not found"))),
        };

        let id_keys: Vec<Vec<u8>> = incoming
            .iter()
            .map(|e| events::event_id_key(key, &e.id))
            .collect();
        let known = if id_keys.is_empty() {
            Vec::new()
        } else {
            self.store.get_many(events::EVENT_IDS, &id_keys)?
        };
        // Arrival numbers follow the order the events came in; their state
        // is applied in their timestamps' order.
        let mut fresh: Vec<(u64, &Incoming<'_>)> = incoming
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .zip(record.event_count..)
            .map(|((e, _), seq)| (seq, e))
            .collect();
        fresh.sort_by_key(|(_, e)| e.time_us);

        let mut ops = Vec::new();
        for (seq, e) in &fresh {
            ops.extend(events::insert_ops(
                key,
                e.time_us,
                &e.id,
                *seq,
                e.raw.get().as_bytes(),
            ));
            if e.meta.kind.as_deref() == Some(STATE_UPDATE) {
                apply_state_update(&mut record, &e.meta, e.time_us);
            }
            for cb in callbacks {
                if cb.wants(
                    key,
                    record.created_by_user_id.as_deref(),
                    e.meta.kind.as_deref(),
                ) {
                    ops.extend(
                        DeliveryRecord::new(&cb.id, key, e.time_us, &e.id, now).insert_ops(),
                    );
                }
            }
            record.max_event_us = Some(record.max_event_us.map_or(e.time_us, |m| m.max(e.time_us)));
        }
        record.event_count += fresh.len() as u64;

        let conversation_ops = match &old {
            Some(old) if *old == record => Vec::new(),
            Some(old) => record.update_ops(old),
            None => record.insert_ops(),
        };
        let changes = !conversation_ops.is_empty() || !ops.is_empty();
        let mut all = conversation_ops;
        all.extend(ops);
        Ok(Plan {
            ops: all,
            conversation_id: record.id,
            new_events: fresh.len() as u32,
            changes,
        })
    }

    /// Commit plans together, in groups that fit one commit; if another writer
    /// got in between, redo that group's plans one by one with `replan`.
    pub(crate) fn commit_plans(
        &self,
        plans: Vec<Plan>,
        replan: &dyn Fn(usize) -> Result<Plan>,
    ) -> Result<Vec<StoreOutcome>> {
        let mut outcomes = Vec::with_capacity(plans.len());
        let mut group: Vec<Op> = Vec::new();
        let mut members: Vec<(usize, StoreOutcome)> = Vec::new();
        let total = plans.len();
        for (i, plan) in plans.into_iter().enumerate() {
            if !group.is_empty() && group.len() + plan.ops.len() > MAX_GROUP_OPS {
                outcomes.extend(self.commit_group(
                    std::mem::take(&mut group),
                    std::mem::take(&mut members),
                    replan,
                )?);
            }
            members.push((
                i,
                StoreOutcome {
                    new_events: plan.new_events,
                    changed: plan.changes,
                },
            ));
            group.extend(plan.ops);
            if i + 1 == total {
                outcomes.extend(self.commit_group(
                    std::mem::take(&mut group),
                    std::mem::take(&mut members),
                    replan,
                )?);
            }
        }
        Ok(outcomes)
    }

    fn commit_group(
        &self,
        ops: Vec<Op>,
        members: Vec<(usize, StoreOutcome)>,
        replan: &dyn Fn(usize) -> Result<Plan>,
    ) -> Result<Vec<StoreOutcome>> {
        if ops.is_empty() {
            return Ok(members.into_iter().map(|(_, o)| o).collect());
        }
        match self.store.commit(ops) {
            Ok(()) => Ok(members.into_iter().map(|(_, o)| o).collect()),
            Err(StoreError::Conflict(_)) => members
                .iter()
                .map(|(i, _)| self.commit_alone(*i, replan))
                .collect(),
            Err(e) => Err(e.into()),
        }
    }

    fn commit_alone(
        &self,
        i: usize,
        replan: &dyn Fn(usize) -> Result<Plan>,
    ) -> Result<StoreOutcome> {
        for _ in 0..ATTEMPTS {
            let plan = replan(i)?;
            let outcome = StoreOutcome {
                new_events: plan.new_events,
                changed: plan.changes,
            };
            if plan.ops.is_empty() {
                return Ok(outcome);
            }
            match self.store.commit(plan.ops) {
                Ok(()) => return Ok(outcome),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(
            "a conversation is being changed by other writers; retry".into(),
        ))
    }
}

/// The `timestamp__gte` a poll resumes from: the newest event stored, minus a
/// margin, because agent servers' timestamps have no timezone and events do not
/// always become visible in timestamp order. Repeats in the margin are dropped by
/// event id.
pub fn resume_from(record: &ConversationRecord) -> Option<String> {
    const MARGIN_US: i64 = 30_000_000;
    let since = record.max_event_us?.saturating_sub(MARGIN_US);
    chrono::DateTime::from_timestamp_micros(since)
        .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
}
