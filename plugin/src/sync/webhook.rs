//! What agent servers push: a `ConversationInfo`, or a batch of events.
//!
//! Both are authenticated by the session key the agent server holds, through
//! the stored key hash: an unknown key, or the key of a paused sandbox (whose hash
//! was cleared), is `unauthorized`. The pushed data then goes through the same
//! planning as a poll, so an event that arrives both ways is stored once.

use serde_json::Value;

use super::IngestSummary;
use super::plan::Plan;
use crate::agent;
use crate::error::{Error, Result};
use crate::schema::SandboxRecord;
use crate::schema::conversations as conv;
use crate::service::Service;

impl Service<'_> {
    fn sandbox_of_key(&self, session_key: &str) -> Result<SandboxRecord> {
        self.sandbox_for_key(session_key)?
            .ok_or_else(|| Error::Unauthorized("unknown or revoked X-Session-API-Key".into()))
    }

    pub fn ingest_conversation(&self, session_key: &str, body: &[u8]) -> Result<IngestSummary> {
        let sandbox = self.sandbox_of_key(session_key)?;
        let info: Value = serde_json::from_slice(body).map_err(|e| {
            Error::InvalidInput(format!("the body is not a JSON ConversationInfo: {e}"))
        })?;
        if !info.is_object() {
            return Err(Error::InvalidInput(
                "the body must be a JSON object (a ConversationInfo)".into(),
            ));
        }
        // A conversation being deleted tells us nothing to keep.
        if info.get("execution_status").and_then(Value::as_str) == Some("deleting") {
            return Ok(IngestSummary::default());
        }
        let plan = self
            .plan_info(&sandbox, &info)?
            .ok_or_else(|| Error::InvalidInput("the ConversationInfo has no usable id".into()))?;
        let id = plan.conversation_id.clone();
        let replan = |_: usize| -> Result<Plan> {
            self.plan_info(&sandbox, &info)?
                .ok_or_else(|| Error::Internal("a conversation info lost its id".into()))
        };
        let outcome = self.commit_plans(vec![plan], &replan)?;
        Ok(IngestSummary {
            new_events: 0,
            changed_conversations: if outcome.iter().any(|o| o.changed) {
                vec![id]
            } else {
                Vec::new()
            },
        })
    }

    pub fn ingest_events(
        &self,
        session_key: &str,
        conversation_id: &str,
        body: &[u8],
    ) -> Result<IngestSummary> {
        let sandbox = self.sandbox_of_key(session_key)?;
        let key = conv::key_of(conversation_id).ok_or_else(|| {
            Error::InvalidInput(format!("'{conversation_id}' is not a conversation id"))
        })?;
        let raws = agent::parse_event_array(body).map_err(Error::InvalidInput)?;
        if let Some(existing) = self.load_conversation(&key)?
            && existing.created_by_user_id != sandbox.created_by_user_id
        {
            return Err(Error::Unauthorized(format!(
                "conversation '{conversation_id}' belongs to another user's sandbox"
            )));
        }
        let callbacks = self.load_callbacks()?;
        let id = conv::dashed(&key);
        let create = Some((id.as_str(), &sandbox));
        let plan = self.plan_events(&key, create, &raws, &callbacks)?;
        let conversation = plan.conversation_id.clone();
        let replan = |_: usize| self.plan_events(&key, create, &raws, &callbacks);
        let outcomes = self.commit_plans(vec![plan], &replan)?;
        let new_events = outcomes.iter().map(|o| o.new_events).sum();
        Ok(IngestSummary {
            new_events,
            changed_conversations: if outcomes.iter().any(|o| o.changed) {
                vec![conversation]
            } else {
                Vec::new()
            },
        })
    }
}
