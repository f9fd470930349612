//! Collaboration across processes: each room's updates and awareness are published on Redis
//! (`quire:collab:<document id>`), and what other processes publish is applied to the rooms
//! open here. Updates were stored by the process that accepted them, so a lost message only
//! delays a client until it reconnects; it never loses data.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use quire_collab::{Collab, Relay, RemoteKind};
use tokio::sync::mpsc;

const PREFIX: &str = "quire:collab:";

/// Publishes through a queue (so publishing never blocks a room) to Redis.
pub struct RedisRelay {
    node: [u8; 16],
    queue: mpsc::UnboundedSender<(String, Vec<u8>)>,
}

impl Relay for RedisRelay {
    fn publish(&self, document_id: &str, kind: RemoteKind, payload: &[u8]) {
        let mut message = Vec::with_capacity(17 + payload.len());
        message.extend_from_slice(&self.node);
        message.push(kind as u8);
        message.extend_from_slice(payload);
        let _ = self.queue.send((format!("{PREFIX}{document_id}"), message));
    }
}

/// Starts relaying `collab` through the Redis at `url`, until `shutdown` flips.
pub async fn start(
    collab: Arc<Collab>,
    url: &str,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| format!("the Redis URL is not valid: {e}"))?;
    let publisher = redis::aio::ConnectionManager::new(client.clone())
        .await
        .map_err(|e| format!("cannot connect to Redis at {}: {e}", quire_store::redact_url(url)))?;
    let mut node = [0u8; 16];
    // The random part of a ULID.
    node.copy_from_slice(&quire_core::new_id("n").as_bytes()[12..28]);
    let (queue, mut outbox) = mpsc::unbounded_channel::<(String, Vec<u8>)>();
    collab.set_relay(Arc::new(RedisRelay { node, queue }));

    tokio::spawn(async move {
        let mut conn = publisher;
        while let Some((channel, message)) = outbox.recv().await {
            let sent: redis::RedisResult<i64> =
                redis::cmd("PUBLISH").arg(&channel).arg(message).query_async(&mut conn).await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "relaying a document change to other nodes failed");
            }
        }
    });

    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let session = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.psubscribe(format!("{PREFIX}*")).await?;
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let payload = msg.get_payload_bytes();
                    if payload.len() < 17 || payload[..16] == node {
                        continue;
                    }
                    let kind = match payload[16] {
                        1 => RemoteKind::Update,
                        2 => RemoteKind::Awareness,
                        _ => continue,
                    };
                    let Some(document) = msg.get_channel_name().strip_prefix(PREFIX) else { continue };
                    collab.apply_remote(document, kind, &payload[17..]).await;
                }
                Ok::<_, redis::RedisError>(())
            };
            tokio::select! {
                result = session => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "the collaboration relay lost Redis; reconnecting");
                    }
                }
                _ = shutdown.changed() => return,
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
    Ok(())
}
