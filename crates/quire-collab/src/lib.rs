//! Quire's real-time collaboration engine: every document is a Yjs document (the `yrs`
//! crate) that clients edit together through the y-websocket protocol.
//!
//! [`Collab`] keeps one [`Room`] per open document: the `yrs` document and its awareness
//! (presence), loaded from the store (snapshot plus the updates since) before any client is
//! served. A client is a [`Session`]: it feeds the session the binary messages it receives
//! and sends back what the session answers; what other clients must see arrives on the
//! room's broadcast channel, encoded once for all of them.
//!
//! Durability comes first: an update is appended to the store's log (committed) before it
//! is applied to the document or relayed, so whatever any client saw survives a crash. The
//! log is compacted into a snapshot in the background, and idle rooms leave memory.
//!
//! It knows nothing of HTTP or WebSockets: the server moves the bytes.

pub mod board;
pub mod build_config;
pub mod content;
pub mod kinds;
pub mod limits;
pub mod markdown;
mod order;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use quire_core::{Activity, ActivityKind, ConnectionState, Error, PresenceStatus, PresenceUser, Result};
use quire_store::Store;
use tokio::sync::broadcast;
use yrs::sync::{Awareness, AwarenessUpdate, Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct CollabConfig {
    /// Updates accepted before the log is folded into a new snapshot.
    pub snapshot_every: usize,
    /// How long a room with no client stays in memory.
    pub idle_timeout: Duration,
    /// Messages a slow client may fall behind before it is disconnected (it then reconnects
    /// and resynchronises).
    pub channel_capacity: usize,
    /// A connected client quiet for this long is `away`.
    pub away_after: Duration,
    /// An awareness state not renewed for this long is removed (clients renew every 15 s).
    pub awareness_timeout: Duration,
    /// How long a client that left is still listed as `offline`.
    pub offline_kept: Duration,
    /// Awareness changes that arrive within this window go to the room's clients as one
    /// message (each client's latest state), so that a room of N clients each moving their
    /// cursor costs one send per client per window instead of N. Zero sends each at once.
    pub awareness_batch: Duration,
    /// What one client may ask of a room.
    pub session: limits::SessionLimits,
}

impl Default for CollabConfig {
    fn default() -> Self {
        CollabConfig {
            snapshot_every: 500,
            idle_timeout: Duration::from_secs(60),
            channel_capacity: 4096,
            away_after: Duration::from_secs(30),
            awareness_timeout: Duration::from_secs(30),
            offline_kept: Duration::from_secs(600),
            awareness_batch: Duration::from_millis(20),
            session: limits::SessionLimits::default(),
        }
    }
}

/// What travels between processes serving the same document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// A document update, already stored by the process that accepted it.
    Update = 1,
    /// An awareness update.
    Awareness = 2,
}

/// Carries a room's changes to the other processes (Redis pub/sub when configured). Each
/// process hands what it receives to [`Collab::apply_remote`]. An update travels with who
/// made it (`by`), so that every process knows a document's editors.
pub trait Relay: Send + Sync {
    fn publish(&self, document_id: &str, kind: RemoteKind, by: Option<&PresenceUser>, payload: &[u8]);
}

/// A message for the other clients of a room, encoded once.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The session that caused it (which does not get it back).
    pub origin: u64,
    /// Encoded once; every subscriber sends the same buffer.
    pub bytes: Bytes,
}

struct RoomState {
    awareness: Awareness,
    /// Updates applied since the last snapshot.
    pending: usize,
    /// The answer to a client that has nothing yet (sync step 2 with the whole document),
    /// encoded once per document state: a join storm costs one encoding, not one per client.
    full_state: Option<Bytes>,
    /// Awareness clients changed since the last broadcast (see `awareness_batch`).
    awareness_changed: HashSet<yrs::block::ClientID>,
    /// Which session (and user) announced each awareness client id of this process: only
    /// it, or a later connection of the same user (a reconnecting tab), may change it.
    awareness_owners: HashMap<yrs::block::ClientID, (u64, String)>,
}

/// What the room knows of one session's presence.
struct Seen {
    user: PresenceUser,
    last_seen: Instant,
    last_seen_at: time::OffsetDateTime,
    activity: Option<Activity>,
    /// The client said its person is away (`"away": true` in its awareness state: the tab
    /// hidden, or no input for a while), however recently it wrote.
    away: bool,
    left: bool,
}

/// One open document.
pub struct Room {
    id: String,
    state: tokio::sync::Mutex<Option<RoomState>>,
    presence: Mutex<HashMap<u64, Seen>>,
    tx: broadcast::Sender<Frame>,
    sessions: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Room {
    /// How many sessions of this process `user_id` has open on the room now (a person with
    /// two tabs has two): 1 after a join means they just arrived, 0 after a leave that they went.
    pub fn live_sessions_of(&self, user_id: &str) -> usize {
        self.presence.lock().expect("presence").values().filter(|s| !s.left && s.user.id == user_id).count()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Clients connected now.
    pub fn session_count(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }
}

/// Told of every change to a document, with who made it: those stored by this process
/// (`here`) and those relayed from others (whether or not the document is open here).
/// Version history debounces them.
pub trait ChangeObserver: Send + Sync {
    fn changed(&self, document_id: &str, by: &PresenceUser, here: bool);
}

/// The engine: the open rooms and the store behind them.
pub struct Collab {
    store: Arc<dyn Store>,
    config: CollabConfig,
    relay: std::sync::OnceLock<Arc<dyn Relay>>,
    /// Weak: the observer (version history) holds the engine, and a cycle would keep both,
    /// and the store's connections, alive after the application is dropped.
    observer: std::sync::OnceLock<std::sync::Weak<dyn ChangeObserver>>,
    full_encodes: AtomicU64,
    diff_encodes: AtomicU64,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_session: AtomicU64,
}

fn encode(message: &Message) -> Bytes {
    message.encode_v1().into()
}

fn protocol_error(e: impl std::fmt::Display) -> Error {
    Error::invalid("message", format!("not a valid y-websocket message: {e}"))
}

/// Runs a decoder of client bytes, a panic in it as a refused message: yrs asserts on some
/// malformed input (an awareness client id over 53 bits, found by fuzzing) instead of
/// returning an error, which ended the socket's task without its cleanup.
fn decode_guarded<T>(decode: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .map_err(|_| protocol_error("the message could not be decoded"))
}

// Documents are encoded with `encode_diff_v1`, never `encode_state_as_update_v1`: the latter
// merges in changes still waiting for a missing dependency (yrs's pending update), and a
// pending update that did not encode back (found by fuzzing) made that merge panic inside a
// transaction, an abort. What waits is not part of the document: its author has it, and
// the room relayed it as it came.

/// Applies stored state to a fresh document.
fn load_into(doc: &Doc, stored: &quire_store::StoredDoc) -> Result<()> {
    let mut txn = doc.transact_mut();
    if let Some(snapshot) = &stored.snapshot {
        let update =
            Update::decode_v1(snapshot).map_err(|e| Error::Internal(format!("a stored snapshot is damaged: {e}")))?;
        txn.apply_update(update).map_err(|e| Error::Internal(format!("a stored snapshot does not apply: {e}")))?;
    }
    for (seq, bytes) in &stored.updates {
        match Update::decode_v1(bytes) {
            Ok(update) => {
                if let Err(e) = txn.apply_update(update) {
                    tracing::error!(seq, error = %e, "a stored update does not apply; skipped");
                }
            }
            Err(e) => tracing::error!(seq, error = %e, "a stored update is damaged; skipped"),
        }
    }
    Ok(())
}

impl Collab {
    pub fn new(store: Arc<dyn Store>, config: CollabConfig) -> Arc<Collab> {
        Arc::new(Collab {
            store,
            config,
            relay: std::sync::OnceLock::new(),
            observer: std::sync::OnceLock::new(),
            full_encodes: AtomicU64::new(0),
            diff_encodes: AtomicU64::new(0),
            rooms: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
        })
    }

    /// Sends every change to other processes through `relay` from now on.
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        let _ = self.relay.set(relay);
    }

    /// Tells `observer` of every change stored from now on, while its owner keeps it.
    pub fn set_observer(&self, observer: &Arc<dyn ChangeObserver>) {
        let _ = self.observer.set(Arc::downgrade(observer));
    }

    fn observer(&self) -> Option<Arc<dyn ChangeObserver>> {
        self.observer.get().and_then(std::sync::Weak::upgrade)
    }

    fn publish(&self, document_id: &str, kind: RemoteKind, by: Option<&PresenceUser>, payload: &[u8]) {
        if let Some(relay) = self.relay.get() {
            relay.publish(document_id, kind, by, payload);
        }
    }

    /// Applies a change another process made to a document open here, and relays it to
    /// the local clients. (The other process stored it; a document not open here will read
    /// it from the store when it opens.) The observer hears of every relayed update.
    pub async fn apply_remote(&self, document_id: &str, kind: RemoteKind, by: Option<&PresenceUser>, payload: &[u8]) {
        if let (RemoteKind::Update, Some(by), Some(observer)) = (kind, by, self.observer()) {
            observer.changed(document_id, by, false);
        }
        let Some(room) = self.rooms.lock().expect("rooms").get(document_id).cloned() else { return };
        let mut state = room.state.lock().await;
        let Some(st) = state.as_mut() else { return };
        let message = match kind {
            RemoteKind::Update => {
                let Ok(update) = Update::decode_v1(payload) else { return };
                if let Err(e) = st.awareness.doc().transact_mut().apply_update(update) {
                    tracing::warn!(document = %document_id, error = %e, "a relayed update does not apply");
                    return;
                }
                st.full_state = None;
                Message::Sync(SyncMessage::Update(payload.to_vec()))
            }
            RemoteKind::Awareness => {
                let Ok(update) = AwarenessUpdate::decode_v1(payload) else { return };
                let clients: Vec<_> = update.clients.keys().copied().collect();
                if st.awareness.apply_update(update).is_ok() {
                    self.awareness_changed(&room, st, 0, clients);
                }
                return;
            }
        };
        let _ = room.tx.send(Frame { origin: 0, bytes: encode(&message) });
    }

    /// Sends the current awareness of `clients` to the room: at once when batching is off,
    /// else together with every other change of the batch window.
    fn awareness_changed(&self, room: &Arc<Room>, st: &mut RoomState, origin: u64, clients: Vec<yrs::block::ClientID>) {
        let window = self.config.awareness_batch;
        if window.is_zero() {
            if let Ok(update) = st.awareness.update_with_clients(clients) {
                let _ = room.tx.send(Frame { origin, bytes: encode(&Message::Awareness(update)) });
            }
            return;
        }
        let first = st.awareness_changed.is_empty();
        st.awareness_changed.extend(clients);
        if first {
            let room = room.clone();
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                let mut state = room.state.lock().await;
                let Some(st) = state.as_mut() else { return };
                let clients: Vec<_> = st.awareness_changed.drain().collect();
                // The batch holds the sender's own state too; Yjs clients ignore what they know.
                if let Ok(update) = st.awareness.update_with_clients(clients) {
                    let _ = room.tx.send(Frame { origin: 0, bytes: encode(&Message::Awareness(update)) });
                }
            });
        }
    }

    /// How often a whole document was encoded for a joining client (a join storm should
    /// cost one per document state).
    pub fn full_state_encodes(&self) -> u64 {
        self.full_encodes.load(Ordering::Relaxed)
    }

    /// How often a document was encoded for a client that had part of it (sync step 1 with
    /// a state vector).
    pub fn diff_encodes(&self) -> u64 {
        self.diff_encodes.load(Ordering::Relaxed)
    }

    /// Rooms in memory now.
    pub fn open_rooms(&self) -> usize {
        self.rooms.lock().expect("rooms").len()
    }

    fn room(&self, document_id: &str) -> Arc<Room> {
        let mut rooms = self.rooms.lock().expect("rooms");
        let room = rooms.entry(document_id.to_string()).or_insert_with(|| {
            Arc::new(Room {
                id: document_id.to_string(),
                state: tokio::sync::Mutex::new(None),
                presence: Mutex::new(HashMap::new()),
                tx: broadcast::channel(self.config.channel_capacity).0,
                sessions: AtomicUsize::new(0),
                idle_since: Mutex::new(Instant::now()),
            })
        });
        room.sessions.fetch_add(1, Ordering::SeqCst);
        room.clone()
    }

    /// Connects a client to a document: loads it if it is not open, and returns the session,
    /// the messages to send first (sync step 1 and the current awareness), and the channel
    /// of what other clients cause.
    pub async fn join(
        self: &Arc<Self>,
        document_id: &str,
        read_only: bool,
        user: PresenceUser,
    ) -> Result<(Session, Vec<Bytes>, broadcast::Receiver<Frame>)> {
        let room = self.room(document_id);
        let session = Session {
            collab: self.clone(),
            room: room.clone(),
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            user: user.clone(),
            read_only,
            clients: HashSet::new(),
            budgets: limits::Budgets::new(&self.config.session),
            left: false,
        };
        let mut state = room.state.lock().await;
        if state.is_none() {
            // Nobody is served before the document has loaded: the lock is held meanwhile.
            let stored = self.store.load_doc(document_id).await?;
            let doc = Doc::new();
            load_into(&doc, &stored)?;
            *state = Some(RoomState {
                awareness: Awareness::new(doc),
                pending: stored.updates.len(),
                full_state: None,
                awareness_changed: HashSet::new(),
                awareness_owners: HashMap::new(),
            });
        }
        let st = state.as_ref().expect("loaded above");
        let seen = Seen {
            user,
            last_seen: Instant::now(),
            last_seen_at: time::OffsetDateTime::now_utc(),
            activity: None,
            away: false,
            left: false,
        };
        room.presence.lock().expect("presence").insert(session.id, seen);
        // Subscribed under the lock: no update can slip between the state sent and the feed.
        let rx = room.tx.subscribe();
        let sv = st.awareness.doc().transact().state_vector();
        let mut first = vec![encode(&Message::Sync(SyncMessage::SyncStep1(sv)))];
        let presence = st.awareness.update().map_err(|e| Error::Internal(e.to_string()))?;
        if !presence.clients.is_empty() {
            first.push(encode(&Message::Awareness(presence)));
        }
        drop(state);
        Ok((session, first, rx))
    }

    /// Folds a room's log into a snapshot when enough updates piled up (or `force`). What
    /// is folded is what the store holds, read at once (snapshot and log), not the room's
    /// copy: that copy may lack updates other processes stored whose relay has not arrived,
    /// and the snapshot replaces every update it claims to cover.
    async fn compact(&self, room: &Room, force: bool) -> Result<()> {
        {
            let mut state = room.state.lock().await;
            let Some(st) = state.as_mut() else { return Ok(()) };
            if st.pending == 0 || (!force && st.pending < self.config.snapshot_every) {
                return Ok(());
            }
            st.pending = 0;
        }
        let stored = self.store.load_doc(&room.id).await?;
        let Some(&(through, _)) = stored.updates.last() else { return Ok(()) };
        let folded = Doc::new();
        load_into(&folded, &stored)?;
        let snapshot = folded.transact().encode_diff_v1(&StateVector::default());
        self.store.save_doc_snapshot(&room.id, &snapshot, through).await
    }

    /// Who is on a document: one entry per user (their liveliest connection), recent leavers
    /// as `offline`. Empty when the document is not open.
    pub fn presence(&self, document_id: &str) -> Vec<ConnectionState> {
        let Some(room) = self.rooms.lock().expect("rooms").get(document_id).cloned() else { return Vec::new() };
        let mut seen = room.presence.lock().expect("presence");
        seen.retain(|_, s| !s.left || s.last_seen.elapsed() < self.config.offline_kept);
        let rank = |st: PresenceStatus| match st {
            PresenceStatus::Online => 2,
            PresenceStatus::Away => 1,
            PresenceStatus::Offline => 0,
        };
        let mut by_user: HashMap<String, ConnectionState> = HashMap::new();
        for s in seen.values() {
            let status = if s.left {
                PresenceStatus::Offline
            } else if !s.away && s.last_seen.elapsed() < self.config.away_after {
                PresenceStatus::Online
            } else {
                PresenceStatus::Away
            };
            let state = ConnectionState {
                user: s.user.clone(),
                status,
                last_seen: s.last_seen_at,
                activity: s.activity.clone(),
            };
            match by_user.get(&s.user.id) {
                Some(have) if (rank(have.status), have.last_seen) >= (rank(status), s.last_seen_at) => {}
                _ => {
                    by_user.insert(s.user.id.clone(), state);
                }
            }
        }
        let mut out: Vec<ConnectionState> = by_user.into_values().collect();
        out.sort_by(|a, b| a.user.name.cmp(&b.user.name).then(a.user.id.cmp(&b.user.id)));
        out
    }

    /// Removes awareness states their clients stopped renewing (yrs never expires them), and
    /// tells the room.
    async fn expire_awareness(&self, room: &Room) {
        let mut state = room.state.lock().await;
        let Some(st) = state.as_mut() else { return };
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let limit = self.config.awareness_timeout.as_millis() as u64;
        let stale: Vec<yrs::block::ClientID> = st
            .awareness
            .iter()
            .filter(|(_, c)| c.data.is_some() && now.saturating_sub(c.last_updated) > limit)
            .map(|(id, _)| id)
            .collect();
        if stale.is_empty() {
            return;
        }
        for id in &stale {
            st.awareness.remove_state(*id);
        }
        if let Ok(update) = st.awareness.update_with_clients(stale) {
            let _ = room.tx.send(Frame { origin: 0, bytes: encode(&Message::Awareness(update)) });
        }
    }

    /// Snapshots and drops rooms nobody has used for the idle timeout; returns how many left.
    pub async fn evict_idle(&self) -> usize {
        let idle: Vec<Arc<Room>> = {
            let mut rooms = self.rooms.lock().expect("rooms");
            let timeout = self.config.idle_timeout;
            let gone: Vec<String> = rooms
                .iter()
                .filter(|(_, r)| r.session_count() == 0 && r.idle_since.lock().expect("idle").elapsed() >= timeout)
                .map(|(id, _)| id.clone())
                .collect();
            gone.iter().filter_map(|id| rooms.remove(id)).collect()
        };
        for room in &idle {
            if let Err(e) = self.compact(room, true).await {
                tracing::warn!(document = %room.id, error = %e, "snapshot on eviction failed; the log still holds every update");
            }
        }
        idle.len()
    }

    /// Runs [`Collab::evict_idle`] every few seconds until `shutdown` flips, then snapshots
    /// every room.
    pub fn spawn_janitor(self: &Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let collab = self.clone();
        tokio::spawn(async move {
            let shortest = collab.config.idle_timeout.min(collab.config.awareness_timeout);
            let every = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        collab.evict_idle().await;
                        let open: Vec<Arc<Room>> = collab.rooms.lock().expect("rooms").values().cloned().collect();
                        for room in open {
                            collab.expire_awareness(&room).await;
                        }
                    }
                    _ = shutdown.changed() => break,
                }
            }
            let rooms: Vec<Arc<Room>> = collab.rooms.lock().expect("rooms").values().cloned().collect();
            for room in rooms {
                if let Err(e) = collab.compact(&room, true).await {
                    // Nothing is lost: the updates stay in the log and the next load folds them.
                    tracing::warn!(document = %room.id, error = %e, "compacting a room at shutdown failed");
                }
            }
        });
    }

    /// Changes a document outside any editor (a REST write, a pipeline's output): `change`
    /// runs on a scratch copy, and the difference goes through the same path as a client's
    /// update — stored, applied, relayed — so open editors see only what changed.
    pub async fn edit(
        self: &Arc<Self>,
        document_id: &str,
        writer: PresenceUser,
        change: impl FnOnce(&Doc) -> Result<()> + Send,
    ) -> Result<()> {
        let (mut session, _, _) = self.join(document_id, false, writer).await?;
        session.room.presence.lock().expect("presence").remove(&session.id);
        let update = {
            let state = session.room.state.lock().await;
            let st = state.as_ref().expect("joined rooms are loaded");
            let full = st.awareness.doc().transact().encode_diff_v1(&StateVector::default());
            drop(state);
            let scratch = Doc::new();
            scratch
                .transact_mut()
                .apply_update(Update::decode_v1(&full).map_err(|e| Error::Internal(e.to_string()))?)
                .map_err(|e| Error::Internal(e.to_string()))?;
            // Capture exactly what the change's transactions did (a diff against a state
            // vector would carry the whole delete set along).
            let captured = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
            let sink = captured.clone();
            scratch
                .observe_update_v1("quire-edit", move |_, e| sink.lock().expect("capture").push(e.update.clone()))
                .map_err(|e| Error::Internal(e.to_string()))?;
            let outcome = change(&scratch);
            let _ = scratch.unobserve_update_v1("quire-edit");
            outcome?;
            let updates = std::mem::take(&mut *captured.lock().expect("capture"));
            match updates.len() {
                0 => None,
                1 => updates.into_iter().next(),
                _ => Some(yrs::merge_updates_v1(updates).map_err(|e| Error::Internal(e.to_string()))?),
            }
        };
        let result = match update {
            Some(bytes) => match Update::decode_v1(&bytes) {
                Ok(decoded) => session.apply(decoded, bytes).await,
                Err(e) => Err(Error::Internal(e.to_string())),
            },
            None => Ok(()),
        };
        session.leave().await;
        result
    }

    /// The document's current content, for reading outside a session.
    pub async fn read<T>(self: &Arc<Self>, document_id: &str, f: impl FnOnce(&Doc) -> T) -> Result<T> {
        let reader = PresenceUser { id: "system".into(), name: "Quire".into() };
        let (session, _, _) = self.join(document_id, true, reader).await?;
        // Reading is not being there.
        session.room.presence.lock().expect("presence").remove(&session.id);
        let out = {
            let state = session.room.state.lock().await;
            f(state.as_ref().expect("joined rooms are loaded").awareness.doc())
        };
        session.leave().await;
        Ok(out)
    }
}

/// One connected client.
pub struct Session {
    collab: Arc<Collab>,
    room: Arc<Room>,
    id: u64,
    /// Who edits through it.
    user: PresenceUser,
    read_only: bool,
    /// Awareness client ids this connection announced, removed when it leaves.
    clients: HashSet<yrs::block::ClientID>,
    /// What it may still ask.
    budgets: limits::Budgets,
    left: bool,
}

impl Session {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    /// Makes the session read-only (or not) from now on, e.g. when a member's role changes.
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    /// Handles one binary message from the client; returns the replies for it alone.
    pub async fn handle(&mut self, data: &[u8]) -> Result<Vec<Bytes>> {
        if let Some(seen) = self.room.presence.lock().expect("presence").get_mut(&self.id) {
            seen.last_seen = Instant::now();
            seen.last_seen_at = time::OffsetDateTime::now_utc();
        }
        let mut decoder = DecoderV1::from(data);
        let mut reader = MessageReader::new(&mut decoder);
        let mut replies = Vec::new();
        let mut n = 0;
        while let Some(message) = decode_guarded(|| reader.next())? {
            n += 1;
            if n > self.budgets.limits.messages_per_frame {
                return Err(Error::TooManyRequests {
                    message: format!("more than {} messages in one frame", self.budgets.limits.messages_per_frame),
                    retry_after_secs: 0,
                });
            }
            self.budgets.message()?;
            let message = message.map_err(protocol_error)?;
            self.handle_message(message, &mut replies).await?;
        }
        Ok(replies)
    }

    async fn handle_message(&mut self, message: Message, replies: &mut Vec<Bytes>) -> Result<()> {
        match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                self.budgets.sync_request()?;
                let mut state = self.room.state.lock().await;
                let st = state.as_mut().expect("joined rooms are loaded");
                if sv.is_empty() {
                    let full = match &st.full_state {
                        Some(full) => full.clone(),
                        None => {
                            self.collab.full_encodes.fetch_add(1, Ordering::Relaxed);
                            let update = st.awareness.doc().transact().encode_diff_v1(&sv);
                            let full: Bytes = encode(&Message::Sync(SyncMessage::SyncStep2(update)));
                            st.full_state = Some(full.clone());
                            full
                        }
                    };
                    replies.push(full);
                } else {
                    self.collab.diff_encodes.fetch_add(1, Ordering::Relaxed);
                    let update = st.awareness.doc().transact().encode_diff_v1(&sv);
                    replies.push(encode(&Message::Sync(SyncMessage::SyncStep2(update))));
                }
            }
            Message::Sync(SyncMessage::SyncStep2(bytes)) | Message::Sync(SyncMessage::Update(bytes)) => {
                self.budgets.update_bytes(bytes.len())?;
                let update = decode_guarded(|| Update::decode_v1(&bytes))?.map_err(protocol_error)?;
                if update.is_empty() {
                    // A client with nothing new answers sync step 1 with an empty update.
                    return Ok(());
                }
                if self.read_only {
                    replies.push(encode(&Message::Auth(Some(
                        "read-only: you may view this document, not change it".into(),
                    ))));
                    return Ok(());
                }
                self.apply(update, bytes).await?;
            }
            Message::Awareness(update) => self.presence(update).await?,
            Message::AwarenessQuery => {
                self.budgets.sync_request()?;
                let state = self.room.state.lock().await;
                let st = state.as_ref().expect("joined rooms are loaded");
                let update = st.awareness.update().map_err(|e| Error::Internal(e.to_string()))?;
                replies.push(encode(&Message::Awareness(update)));
            }
            Message::Auth(_) | Message::Custom(..) => {}
        }
        Ok(())
    }

    /// Stores, applies and relays a document update, in that order, cut to what continues
    /// the room's state (see `order`).
    async fn apply(&mut self, mut update: Update, mut bytes: Vec<u8>) -> Result<()> {
        let compact = {
            let mut state = self.room.state.lock().await;
            let st = state.as_mut().expect("joined rooms are loaded");
            let known = st.awareness.doc().transact().state_vector();
            if let std::borrow::Cow::Owned(cut) =
                decode_guarded(|| order::in_order(&bytes, &known))?.map_err(protocol_error)?
            {
                update = decode_guarded(|| Update::decode_v1(&cut))?.map_err(protocol_error)?;
                tracing::debug!(document = %self.room.id, sent = bytes.len(), kept = cut.len(), "an update out of order was cut");
                bytes = cut;
                if update.is_empty() {
                    return Ok(());
                }
            }
            if !order::clocks_in_range(&update) {
                return Err(Error::invalid("update", "a change's clock is out of range"));
            }
            // Durable before anyone sees it; the room lock keeps log order = apply order.
            self.collab.store.append_doc_update(&self.room.id, &bytes).await?;
            st.awareness
                .doc()
                .transact_mut()
                .apply_update(update)
                .map_err(|e| Error::invalid("update", e.to_string()))?;
            st.pending += 1;
            st.full_state = None;
            self.collab.publish(&self.room.id, RemoteKind::Update, Some(&self.user), &bytes);
            let frame = Frame { origin: self.id, bytes: encode(&Message::Sync(SyncMessage::Update(bytes))) };
            let _ = self.room.tx.send(frame);
            st.pending >= self.collab.config.snapshot_every
        };
        if let Some(observer) = self.collab.observer() {
            observer.changed(&self.room.id, &self.user, true);
        }
        if compact {
            let collab = self.collab.clone();
            let room = self.room.clone();
            tokio::spawn(async move {
                if let Err(e) = collab.compact(&room, false).await {
                    tracing::warn!(document = %room.id, error = %e, "compacting the update log failed; it will be retried");
                }
            });
        }
        Ok(())
    }

    async fn presence(&mut self, mut update: AwarenessUpdate) -> Result<()> {
        let limits = &self.budgets.limits;
        if let Some((client, _)) = update.clients.iter().find(|(_, e)| e.json.len() > limits.awareness_state_bytes) {
            return Err(Error::invalid(
                "awareness",
                format!("client {client}'s state is over the limit of {} bytes", limits.awareness_state_bytes),
            ));
        }
        // yrs counts a state's clock up by one when it removes the state (the client
        // leaves), which overflowed on a clock a client sent at the top of its range (found
        // by fuzzing; the abort took the server with it). Clients count from zero, one per
        // change: half the range is more than any will reach.
        if let Some((client, _)) = update.clients.iter().find(|(_, e)| e.clock > u32::MAX / 2) {
            return Err(Error::invalid("awareness", format!("client {client}'s clock is out of range")));
        }
        let mut state = self.room.state.lock().await;
        let st = state.as_mut().expect("joined rooms are loaded");
        // Only the connection that announced a client id (or the same user's next one, a
        // reconnecting tab) may change or remove its state: anyone else's is left alone.
        update.clients.retain(|client, _| match st.awareness_owners.get(client) {
            Some((session, user)) => *session == self.id || *user == self.user.id,
            None => true,
        });
        for (client, entry) in &update.clients {
            if &*entry.json == "null" {
                self.clients.remove(client);
                st.awareness_owners.remove(client);
            } else {
                if !self.clients.contains(client) && self.clients.len() >= limits.awareness_clients {
                    return Err(Error::invalid(
                        "awareness",
                        format!("one connection may announce at most {} awareness clients", limits.awareness_clients),
                    ));
                }
                self.clients.insert(*client);
                st.awareness_owners.insert(*client, (self.id, self.user.id.clone()));
                let said: serde_json::Value = serde_json::from_str(&entry.json).unwrap_or_default();
                if let Some(seen) = self.room.presence.lock().expect("presence").get_mut(&self.id) {
                    if let Some(activity) = activity_of(&said) {
                        seen.activity = Some(activity);
                    }
                    seen.away = said.get("away").and_then(serde_json::Value::as_bool).unwrap_or(false);
                }
            }
        }
        if update.clients.is_empty() {
            return Ok(());
        }
        self.collab.publish(&self.room.id, RemoteKind::Awareness, None, &update.encode_v1());
        let clients: Vec<_> = update.clients.keys().copied().collect();
        st.awareness.apply_update(update).map_err(|e| Error::invalid("awareness", e.to_string()))?;
        self.collab.awareness_changed(&self.room, st, self.id, clients);
        Ok(())
    }

    /// Disconnects: the client's presence is removed (and others told), and the room may
    /// leave memory once idle.
    pub async fn leave(mut self) {
        self.finish().await;
    }

    async fn finish(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        if !self.clients.is_empty() {
            let mut state = self.room.state.lock().await;
            if let Some(st) = state.as_mut() {
                // Client ids another connection took over (the same user's reconnected tab)
                // are theirs now.
                self.clients.retain(|c| st.awareness_owners.get(c).is_none_or(|(session, _)| *session == self.id));
                for client in &self.clients {
                    st.awareness.remove_state(*client);
                    st.awareness_owners.remove(client);
                }
                let clients: Vec<_> = self.clients.iter().copied().collect();
                if !clients.is_empty()
                    && let Ok(update) = st.awareness.update_with_clients(clients.clone())
                {
                    self.collab.publish(&self.room.id, RemoteKind::Awareness, None, &update.encode_v1());
                    self.collab.awareness_changed(&self.room, st, self.id, clients);
                }
            }
        }
        if let Some(seen) = self.room.presence.lock().expect("presence").get_mut(&self.id) {
            seen.left = true;
            seen.last_seen = Instant::now();
            seen.last_seen_at = time::OffsetDateTime::now_utc();
        }
        if self.room.sessions.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.room.idle_since.lock().expect("idle") = Instant::now();
        }
    }
}

/// The `activity` a client put in its awareness state: `"editing"`, or
/// `{"type": "editing", "resource": "section-2"}`.
/// What an awareness state (its JSON, read once per change) says its person is doing.
fn activity_of(v: &serde_json::Value) -> Option<Activity> {
    let a = v.get("activity")?;
    let (kind, resource) = match a {
        serde_json::Value::String(s) => (s.as_str(), None),
        serde_json::Value::Object(o) => {
            (o.get("type")?.as_str()?, o.get("resource").and_then(|r| r.as_str()).map(String::from))
        }
        _ => return None,
    };
    Some(Activity { kind: ActivityKind::parse(kind)?, resource, timestamp: time::OffsetDateTime::now_utc() })
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.left {
            // Dropped without `leave` (a task was cancelled): at least count it gone.
            self.left = true;
            if let Some(seen) = self.room.presence.lock().expect("presence").get_mut(&self.id) {
                seen.left = true;
            }
            if self.room.sessions.fetch_sub(1, Ordering::SeqCst) == 1 {
                *self.room.idle_since.lock().expect("idle") = Instant::now();
            }
        }
    }
}
