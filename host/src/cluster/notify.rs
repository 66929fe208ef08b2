//! Changes across replicas: a conversation whose events replica A stored
//! wakes the event streams held open on replica B, through PostgreSQL's
//! `LISTEN`/`NOTIFY`.
//!
//! Each replica sends what it publishes locally as one notification per batch
//! (`<replica id>\n<conversation id>\n…`, under PostgreSQL's 8,000-byte cap)
//! on the channel `sandboxd_changes`, and listens on it on a connection of its
//! own, publishing what the others sent (its own it already has). A lost
//! notification (a reconnect) costs a stream the latency of its periodic
//! re-read of the store, never an event: the store is the source.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::storage::PgStore;
use crate::storage::postgres::describe;
use crate::sync::Changes;

const CHANNEL: &str = "sandboxd_changes";
/// Under PostgreSQL's 8,000-byte payload limit.
const MAX_PAYLOAD: usize = 7_900;
/// The first wait before reconnecting the listener; it doubles, to a minute.
const FIRST_RETRY: Duration = Duration::from_millis(200);

/// Forward `changes` to the other replicas and theirs to `changes`.
pub fn bridge(store: &PgStore, changes: &Arc<Changes>, replica: &str) {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<String>>();
    changes.forward_to(tx);
    tokio::spawn(send(store.clone(), rx, replica.to_owned()));
    tokio::spawn(listen(store.clone(), changes.clone(), replica.to_owned()));
}

/// The notifications one batch of changed ids makes.
fn payloads(replica: &str, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = replica.to_owned();
    for id in ids {
        if current.len() + 1 + id.len() > MAX_PAYLOAD && current.len() > replica.len() {
            out.push(std::mem::replace(&mut current, replica.to_owned()));
        }
        if replica.len() + 1 + id.len() <= MAX_PAYLOAD {
            current.push('\n');
            current.push_str(id);
        }
    }
    if current.len() > replica.len() {
        out.push(current);
    }
    out
}

async fn send(store: PgStore, mut rx: mpsc::UnboundedReceiver<Vec<String>>, replica: String) {
    while let Some(mut ids) = rx.recv().await {
        // Whatever else is waiting goes in the same notifications.
        while let Ok(more) = rx.try_recv() {
            ids.extend(more);
        }
        ids.sort();
        ids.dedup();
        let client = match store.pool().get().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot notify the other replicas of changes");
                continue;
            }
        };
        for payload in payloads(&replica, &ids) {
            tracing::debug!(
                conversations = ids.len(),
                "notifying the other replicas of changes"
            );
            if let Err(e) = client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .await
            {
                tracing::warn!(error = %describe(&e), "cannot notify the other replicas of changes");
            }
        }
    }
}

async fn listen(store: PgStore, changes: Arc<Changes>, replica: String) {
    let mut retry = FIRST_RETRY;
    loop {
        match listen_once(&store, &changes, &replica).await {
            Ok(()) => retry = FIRST_RETRY,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?retry, "the change listener lost its connection")
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(Duration::from_secs(60));
    }
}

/// Listen until the connection ends.
async fn listen_once(store: &PgStore, changes: &Changes, replica: &str) -> anyhow::Result<()> {
    let (client, mut connection) = store.config().connect(NoTls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the change listener's connection ended");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    tracing::debug!("listening for the other replicas' changes");
    while let Some(payload) = rx.recv().await {
        tracing::debug!(bytes = payload.len(), "a change notification");
        let mut lines = payload.lines();
        if lines.next() == Some(replica) {
            continue;
        }
        let ids: Vec<String> = lines.map(str::to_owned).collect();
        changes.publish_local(&ids);
    }
    driver.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn payloads_stay_under_the_limit_and_lose_no_id() {
        let ids: Vec<String> = (0..1000).map(|i| format!("conversation-{i:04}")).collect();
        let payloads = super::payloads("r1", &ids);
        assert!(payloads.len() > 1);
        let mut seen = Vec::new();
        for p in &payloads {
            assert!(p.len() <= super::MAX_PAYLOAD);
            let mut lines = p.lines();
            assert_eq!(lines.next(), Some("r1"));
            seen.extend(lines.map(str::to_owned));
        }
        assert_eq!(seen, ids);
        assert!(super::payloads("r1", &[]).is_empty());
    }
}
