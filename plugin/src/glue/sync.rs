//! `sync`, `conversations` and `callbacks`.

use super::convert::from_share;
use super::exports::sandboxd::plugin::{callbacks, conversations, sync};
#[cfg(feature = "faults")]
use super::faults;
use super::sandboxd::plugin::types;
use super::{Component, with_service};

impl sync::Guest for Component {
    fn poll(share: types::Share) -> Result<sync::CycleSummary, types::Error> {
        #[cfg(feature = "faults")]
        faults::before_background_call();
        with_service(|s| s.poll(&from_share(&share))).map(|c| sync::CycleSummary {
            sandboxes: c.sandboxes,
            conversations: c.conversations,
            new_events: c.new_events,
            requests: c.requests,
            failures: c
                .failures
                .into_iter()
                .map(|(sandbox_id, reason)| sync::SyncFailure { sandbox_id, reason })
                .collect(),
            changed_conversations: c.changed_conversations,
        })
    }

    fn ingest_conversation(
        session_api_key: String,
        body: Vec<u8>,
    ) -> Result<sync::IngestSummary, types::Error> {
        with_service(|s| s.ingest_conversation(&session_api_key, &body)).map(to_ingest)
    }

    fn ingest_events(
        session_api_key: String,
        conversation_id: String,
        body: Vec<u8>,
    ) -> Result<sync::IngestSummary, types::Error> {
        with_service(|s| s.ingest_events(&session_api_key, &conversation_id, &body)).map(to_ingest)
    }
}

fn to_ingest(i: crate::sync::IngestSummary) -> sync::IngestSummary {
    sync::IngestSummary {
        new_events: i.new_events,
        changed_conversations: i.changed_conversations,
    }
}

impl conversations::Guest for Component {
    fn search(
        sandbox_id: Option<String>,
        page_id: Option<String>,
        limit: u32,
    ) -> Result<conversations::JsonPage, types::Error> {
        with_service(|s| s.search_conversations(sandbox_id.as_deref(), page_id.as_deref(), limit))
            .map(to_json_page)
    }

    fn get(id: String) -> Result<String, types::Error> {
        with_service(|s| s.get_conversation(&id))
    }

    fn search_events(
        conversation_id: String,
        q: conversations::EventQuery,
    ) -> Result<conversations::JsonPage, types::Error> {
        let query = crate::conversations::EventQuery {
            page_id: q.page_id,
            limit: q.limit,
            kind: q.kind,
            timestamp_gte: q.timestamp_gte,
            timestamp_lt: q.timestamp_lt,
            descending: q.descending,
        };
        with_service(|s| s.search_events(&conversation_id, &query)).map(to_json_page)
    }

    fn stream_events(
        conversation_id: String,
        after_event_id: Option<String>,
        limit: u32,
    ) -> Result<conversations::JsonPage, types::Error> {
        with_service(|s| s.stream_events(&conversation_id, after_event_id.as_deref(), limit))
            .map(to_json_page)
    }

    fn stream_start(
        conversation_id: String,
        last_event_id: Option<String>,
    ) -> Result<conversations::StreamPosition, types::Error> {
        with_service(|s| s.stream_start(&conversation_id, last_event_id.as_deref())).map(|p| {
            conversations::StreamPosition {
                conversation_id: p.conversation_id,
                after_event_id: p.after_event_id,
            }
        })
    }
}

fn to_json_page(p: crate::conversations::JsonPage) -> conversations::JsonPage {
    conversations::JsonPage {
        items: p.items,
        ids: p.ids,
        next_page_id: p.next_page_id,
    }
}

impl callbacks::Guest for Component {
    fn create(
        id: String,
        url: String,
        conversation_id: Option<String>,
        event_kinds: Option<Vec<String>>,
    ) -> Result<callbacks::Callback, types::Error> {
        with_service(|s| s.create_callback(&id, &url, conversation_id.as_deref(), event_kinds))
            .map(to_callback)
    }

    fn all() -> Result<Vec<callbacks::Callback>, types::Error> {
        with_service(|s| s.list_callbacks()).map(|all| all.into_iter().map(to_callback).collect())
    }

    fn get(id: String) -> Result<callbacks::Callback, types::Error> {
        with_service(|s| s.get_callback(&id)).map(to_callback)
    }

    fn delete(id: String) -> Result<(), types::Error> {
        with_service(|s| s.delete_callback(&id))
    }

    fn deliveries(
        callback_id: String,
        page_id: Option<String>,
        limit: u32,
    ) -> Result<callbacks::AttemptPage, types::Error> {
        with_service(|s| s.callback_deliveries(&callback_id, page_id.as_deref(), limit)).map(
            |(items, next_page_id)| callbacks::AttemptPage {
                items: items.into_iter().map(to_attempt).collect(),
                next_page_id,
            },
        )
    }

    fn deliver_due(share: types::Share) -> Result<callbacks::DeliverySummary, types::Error> {
        #[cfg(feature = "faults")]
        faults::before_background_call();
        with_service(|s| s.deliver_due(&from_share(&share))).map(|d| callbacks::DeliverySummary {
            attempted: d.attempted,
            delivered: d.delivered,
            failed: d.failed,
            next_due_ms: d.next_due_ms,
        })
    }
}

fn to_callback(c: crate::schema::callbacks::CallbackRecord) -> callbacks::Callback {
    callbacks::Callback {
        id: c.id,
        url: c.url,
        conversation_id: c
            .conversation_key
            .map(|k| crate::schema::conversations::dashed(&k)),
        event_kinds: c.event_kinds,
        created_by_user_id: c.created_by_user_id,
        created_at: crate::time::iso8601(c.created_at_us),
    }
}

fn to_attempt(a: crate::schema::callbacks::AttemptRecord) -> callbacks::DeliveryAttempt {
    callbacks::DeliveryAttempt {
        delivery_id: a.delivery_id,
        event_id: a.event_id,
        conversation_id: crate::schema::conversations::dashed(&a.conversation_key),
        attempt: a.attempt,
        at: crate::time::iso8601(a.at_us),
        status: a.status,
        error: a.error,
        state: match a.state.as_str() {
            "delivered" => callbacks::DeliveryState::Delivered,
            "failed" => callbacks::DeliveryState::Failed,
            _ => callbacks::DeliveryState::Pending,
        },
    }
}
