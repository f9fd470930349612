//! Collaboration across processes: each room's updates and awareness are published on Redis
//! (`quire:collab:<document id>`), and what other processes publish is applied to the rooms
//! open here. Updates were stored by the process that accepted them, so a lost message only
//! delays a client until it reconnects; it never loses data.
//!
//! A message is `<16 bytes: node><kind><payload>`; kind 1 is an update, 2 awareness, 3 an
//! update with who made it (`<u16 id length><id><u16 name length><name><update>`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use quire_collab::{Collab, Relay, RemoteKind};
use quire_core::PresenceUser;
use tokio::sync::mpsc;

const PREFIX: &str = "quire:collab:";

/// Publishes through a queue (so publishing never blocks a room) to Redis.
pub struct RedisRelay {
    node: [u8; 16],
    queue: mpsc::UnboundedSender<(String, Vec<u8>)>,
}

impl Relay for RedisRelay {
    fn publish(&self, document_id: &str, kind: RemoteKind, by: Option<&PresenceUser>, payload: &[u8]) {
        let mut message = Vec::with_capacity(17 + payload.len());
        message.extend_from_slice(&self.node);
        encode(&mut message, kind, by, payload);
        let _ = self.queue.send((format!("{PREFIX}{document_id}"), message));
    }
}

/// The kind of an update that names who made it.
const UPDATE_BY: u8 = 3;

/// Appends a message's kind, author and payload (what follows the node).
fn encode(message: &mut Vec<u8>, kind: RemoteKind, by: Option<&PresenceUser>, payload: &[u8]) {
    match (kind, by) {
        (RemoteKind::Update, Some(by)) => {
            message.push(UPDATE_BY);
            for part in [&by.id, &by.name] {
                let part = &part.as_bytes()[..part.len().min(u16::MAX as usize)];
                message.extend_from_slice(&(part.len() as u16).to_be_bytes());
                message.extend_from_slice(part);
            }
        }
        _ => message.push(kind as u8),
    }
    message.extend_from_slice(payload);
}

/// A message's kind, author and payload (what follows the node).
fn decode(message: &[u8]) -> Option<(RemoteKind, Option<PresenceUser>, &[u8])> {
    let (&kind, mut rest) = message.split_first()?;
    let mut part = || {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let text = String::from_utf8_lossy(rest.get(2..2 + len)?).into_owned();
        rest = &rest[2 + len..];
        Some(text)
    };
    match kind {
        1 => Some((RemoteKind::Update, None, rest)),
        2 => Some((RemoteKind::Awareness, None, rest)),
        UPDATE_BY => {
            let (id, name) = (part()?, part()?);
            Some((RemoteKind::Update, Some(PresenceUser { id, name }), rest))
        }
        _ => None,
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
                    let Some((kind, by, update)) = decode(&payload[16..]) else { continue };
                    let Some(document) = msg.get_channel_name().strip_prefix(PREFIX) else { continue };
                    collab.apply_remote(document, kind, by.as_ref(), update).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_kind_author_and_payload() {
        let ada = PresenceUser { id: "usr_ada".into(), name: "Ada Lovelace".into() };
        for (kind, by) in [(RemoteKind::Update, Some(&ada)), (RemoteKind::Update, None), (RemoteKind::Awareness, None)]
        {
            let mut m = Vec::new();
            encode(&mut m, kind, by, b"\x01\x02payload");
            let (k, who, payload) = decode(&m).unwrap();
            assert_eq!((k, who.as_ref(), payload), (kind, by, &b"\x01\x02payload"[..]));
        }
        let mut m = Vec::new();
        encode(&mut m, RemoteKind::Update, Some(&ada), b"");
        assert!(decode(&m[..5]).is_none(), "a cut message is dropped, not misread");
        assert!(decode(&[9, 1, 2]).is_none(), "an unknown kind is dropped");
    }
}
