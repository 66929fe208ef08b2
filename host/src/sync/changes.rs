//! Who to wake when conversations change: event streams (by conversation id)
//! and the delivery worker (new events may be owed to callbacks), in this
//! process and, with replicas, in the others (see `crate::cluster::bridge`).

use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, broadcast, mpsc};

/// Changed conversation ids not yet read by a slow stream are dropped for it;
/// a stream that lags re-reads the store, so nothing is lost, only coalesced.
const CAPACITY: usize = 4096;

pub struct Changes {
    conversations: broadcast::Sender<Arc<str>>,
    deliveries: Notify,
    /// Where changes go to reach the other replicas, if there are any.
    remote: OnceLock<mpsc::UnboundedSender<Vec<String>>>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            conversations: broadcast::channel(CAPACITY).0,
            deliveries: Notify::new(),
            remote: OnceLock::new(),
        }
    }
}

impl Changes {
    /// Also hand every change published here to `remote` (the other replicas).
    pub fn forward_to(&self, remote: mpsc::UnboundedSender<Vec<String>>) {
        let _ = self.remote.set(remote);
    }

    /// Conversations whose info or events were just stored (here).
    pub fn publish(&self, conversation_ids: &[String]) {
        if let Some(remote) = self.remote.get()
            && !conversation_ids.is_empty()
        {
            let _ = remote.send(conversation_ids.to_vec());
        }
        self.publish_local(conversation_ids);
    }

    /// Conversations that changed, as another replica told: wake this
    /// process's streams and deliveries only.
    pub fn publish_local(&self, conversation_ids: &[String]) {
        for id in conversation_ids {
            // No subscriber is fine: nobody is streaming that conversation.
            let _ = self.conversations.send(Arc::from(id.as_str()));
        }
        if !conversation_ids.is_empty() {
            self.deliveries.notify_one();
        }
    }

    /// Sandboxes' statuses may have changed: lifecycle events may be owed to
    /// callbacks (this process's deliveries; another replica's find theirs
    /// within their idle wait).
    pub fn sandboxes_changed(&self) {
        self.deliveries.notify_one();
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.conversations.subscribe()
    }

    /// Resolves when new events may be owed to callbacks.
    pub async fn deliveries_wanted(&self) {
        self.deliveries.notified().await;
    }
}
