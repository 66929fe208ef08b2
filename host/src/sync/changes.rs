//! Who to wake when conversations change: event streams (by conversation id)
//! and the delivery worker (new events may be owed to callbacks).

use std::sync::Arc;

use tokio::sync::{Notify, broadcast};

/// Changed conversation ids not yet read by a slow stream are dropped for it;
/// a stream that lags re-reads the store, so nothing is lost, only coalesced.
const CAPACITY: usize = 4096;

pub struct Changes {
    conversations: broadcast::Sender<Arc<str>>,
    deliveries: Notify,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            conversations: broadcast::channel(CAPACITY).0,
            deliveries: Notify::new(),
        }
    }
}

impl Changes {
    /// Conversations whose info or events were just stored.
    pub fn publish(&self, conversation_ids: &[String]) {
        for id in conversation_ids {
            // No subscriber is fine: nobody is streaming that conversation.
            let _ = self.conversations.send(Arc::from(id.as_str()));
        }
        if !conversation_ids.is_empty() {
            self.deliveries.notify_one();
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.conversations.subscribe()
    }

    /// Resolves when new events may be owed to callbacks.
    pub async fn deliveries_wanted(&self) {
        self.deliveries.notified().await;
    }
}
