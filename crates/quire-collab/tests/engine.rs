//! The engine with in-process clients that speak the y-websocket protocol through `yrs`.

use std::sync::Arc;
use std::time::Duration;

use quire_collab::{Collab, CollabConfig, Frame, Session};
use quire_store::testing::Backend;
use tokio::sync::broadcast;
use yrs::sync::{Awareness, Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};

/// A client: its own replica, its session and its feed.
struct Client {
    awareness: Awareness,
    session: Session,
    rx: broadcast::Receiver<Frame>,
}

fn messages(data: &[u8]) -> Vec<Message> {
    let mut decoder = DecoderV1::from(data);
    MessageReader::new(&mut decoder).map(|m| m.unwrap()).collect()
}

impl Client {
    async fn connect(collab: &Arc<Collab>, doc: &str, read_only: bool) -> Client {
        Client::connect_as(collab, doc, read_only, "usr_tester").await
    }

    async fn connect_as(collab: &Arc<Collab>, doc: &str, read_only: bool, user_id: &str) -> Client {
        let user = quire_core::PresenceUser { id: user_id.into(), name: user_id.trim_start_matches("usr_").into() };
        let (session, first, rx) = collab.join(doc, read_only, user).await.unwrap();
        let mut c = Client { awareness: Awareness::new(Doc::new()), session, rx };
        // As y-websocket does: answer the server's step 1, send our own.
        for m in first {
            c.receive(&m).await;
        }
        let sv = c.awareness.doc().transact().state_vector();
        c.send(Message::Sync(SyncMessage::SyncStep1(sv))).await;
        c
    }

    /// Handles a message from the server, answering it as a client would.
    async fn receive(&mut self, data: &[u8]) -> Vec<String> {
        let mut notes = Vec::new();
        for m in messages(data) {
            match m {
                Message::Sync(SyncMessage::SyncStep1(sv)) => {
                    let diff = self.awareness.doc().transact().encode_state_as_update_v1(&sv);
                    self.send(Message::Sync(SyncMessage::SyncStep2(diff))).await;
                }
                Message::Sync(SyncMessage::SyncStep2(u)) | Message::Sync(SyncMessage::Update(u)) => {
                    self.awareness.doc().transact_mut().apply_update(Update::decode_v1(&u).unwrap()).unwrap();
                }
                Message::Awareness(u) => {
                    notes.extend(u.clients.values().map(|e| e.json.to_string()));
                    self.awareness.apply_update(u).unwrap();
                }
                Message::Auth(Some(reason)) => notes.push(format!("denied: {reason}")),
                _ => {}
            }
        }
        notes
    }

    async fn send(&mut self, m: Message) -> Vec<String> {
        let replies = self.session.handle(&m.encode_v1()).await.unwrap();
        let mut notes = Vec::new();
        for r in replies {
            notes.extend(Box::pin(self.receive(&r)).await);
        }
        notes
    }

    /// Types `text` at the end and sends the change; returns the server's replies as notes.
    async fn type_text(&mut self, text: &str) -> Vec<String> {
        let before = self.awareness.doc().transact().state_vector();
        {
            let t = self.awareness.doc().get_or_insert_text("body");
            let mut txn = self.awareness.doc().transact_mut();
            let len = t.len(&txn);
            t.insert(&mut txn, len, text);
        }
        let update = self.awareness.doc().transact().encode_state_as_update_v1(&before);
        self.send(Message::Sync(SyncMessage::Update(update))).await
    }

    /// Applies everything the room relayed so far.
    async fn drain(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        while let Ok(Ok(frame)) = tokio::time::timeout(Duration::from_millis(50), self.rx.recv()).await {
            if frame.origin != self.session.id() {
                notes.extend(self.receive(&frame.bytes).await);
            }
        }
        notes
    }

    fn text(&self) -> String {
        let t = self.awareness.doc().get_or_insert_text("body");
        t.get_string(&self.awareness.doc().transact())
    }
}

quire_store::for_each_backend!(
    clients_converge_and_late_joiners_catch_up,
    accepted_updates_survive_a_restart,
    viewers_are_read_only,
    presence_is_relayed_and_removed_on_leave,
    idle_rooms_are_snapshotted_and_evicted,
    presence_shows_who_is_here_and_what_they_do,
    a_join_storm_encodes_the_document_once,
    content_is_replaced_by_its_difference,
    awareness_changes_in_one_window_go_out_as_one_message,
    the_observer_hears_of_each_stored_change_and_who_made_it,
    relayed_updates_reach_the_other_process_with_who_made_them,
    changes_are_taken_in_their_authors_order,
    changes_waiting_for_a_dependency_stay_out_of_the_document,
);

/// Quire itself, as the writer of `Collab::edit`.
fn quire() -> quire_core::PresenceUser {
    quire_core::PresenceUser { id: "system".into(), name: "Quire".into() }
}

async fn clients_converge_and_late_joiners_catch_up(b: Backend) {
    let t = b.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let mut a = Client::connect(&collab, "doc_1", false).await;
    let mut b2 = Client::connect(&collab, "doc_1", false).await;
    a.type_text("Hello").await;
    b2.drain().await;
    b2.type_text(", world").await;
    a.drain().await;
    assert_eq!(a.text(), "Hello, world");
    assert_eq!(b2.text(), "Hello, world");
    // Concurrent edits from both sides converge.
    a.type_text("!").await;
    b2.type_text("?").await;
    a.drain().await;
    b2.drain().await;
    assert_eq!(a.text(), b2.text());
    assert_eq!(a.text().len(), "Hello, world!?".len());
    // A late joiner gets everything at once.
    let late = Client::connect(&collab, "doc_1", false).await;
    assert_eq!(late.text(), a.text());
    assert_eq!(collab.open_rooms(), 1);
}

async fn accepted_updates_survive_a_restart(b: Backend) {
    let t = b.open(Default::default()).await;
    {
        let collab = Collab::new(t.store.clone(), CollabConfig::default());
        let mut a = Client::connect(&collab, "doc_2", false).await;
        for word in ["one ", "two ", "three"] {
            a.type_text(word).await;
        }
        // Dropped without any snapshot: the log alone must hold everything.
    }
    assert_eq!(t.store.load_doc("doc_2").await.unwrap().updates.len(), 3);
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let again = Client::connect(&collab, "doc_2", false).await;
    assert_eq!(again.text(), "one two three");
    let read = collab.read("doc_2", |doc| doc.get_or_insert_text("body").get_string(&doc.transact())).await.unwrap();
    assert_eq!(read, "one two three");
}

async fn viewers_are_read_only(b: Backend) {
    let t = b.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let mut editor = Client::connect(&collab, "doc_3", false).await;
    editor.type_text("Spec").await;
    let mut viewer = Client::connect(&collab, "doc_3", true).await;
    assert_eq!(viewer.text(), "Spec", "viewers read");
    let notes = viewer.type_text(" (defaced)").await;
    assert!(notes.iter().any(|n| n.starts_with("denied: read-only")), "{notes:?}");
    editor.drain().await;
    assert_eq!(editor.text(), "Spec", "the viewer's change reached nobody");
    assert_eq!(t.store.load_doc("doc_3").await.unwrap().updates.len(), 1, "nor the log");
    // Promoted to editor, a session may write (this one never edited locally, so its
    // replica has not diverged from the room's).
    let mut promoted = Client::connect(&collab, "doc_3", true).await;
    promoted.session.set_read_only(false);
    promoted.type_text("!").await;
    editor.drain().await;
    assert!(editor.text().ends_with('!'));
}

async fn presence_is_relayed_and_removed_on_leave(b: Backend) {
    let t = b.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let mut a = Client::connect(&collab, "doc_4", false).await;
    let mut b2 = Client::connect(&collab, "doc_4", false).await;
    a.awareness.set_local_state_raw(r#"{"user":{"name":"Ada"},"activity":"editing"}"#);
    let update = a.awareness.update().unwrap();
    a.send(Message::Awareness(update)).await;
    let seen = b2.drain().await;
    assert!(seen.iter().any(|s| s.contains("Ada")), "{seen:?}");
    // A late joiner receives the present states first thing.
    let c = Client::connect(&collab, "doc_4", false).await;
    assert!(c.awareness.iter().any(|(_, s)| s.data.as_deref().is_some_and(|d| d.contains("Ada"))));
    // Leaving removes Ada's state for everyone.
    a.session.leave().await;
    let seen = b2.drain().await;
    assert!(seen.iter().any(|s| s == "null"), "a removal was relayed: {seen:?}");
    let d = Client::connect(&collab, "doc_4", false).await;
    assert!(!d.awareness.iter().any(|(_, s)| s.data.as_deref().is_some_and(|d| d.contains("Ada"))));
}

async fn idle_rooms_are_snapshotted_and_evicted(b: Backend) {
    let t = b.open(Default::default()).await;
    // Long enough that "not idle yet", checked at once, holds on a loaded machine.
    let config = CollabConfig { snapshot_every: 3, idle_timeout: Duration::from_secs(1), ..CollabConfig::default() };
    let collab = Collab::new(t.store.clone(), config);
    let mut a = Client::connect(&collab, "doc_5", false).await;
    for i in 0..4 {
        a.type_text(&format!("{i}")).await;
    }
    // The third update triggered a background snapshot.
    for _ in 0..50 {
        if t.store.load_doc("doc_5").await.unwrap().snapshot.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored = t.store.load_doc("doc_5").await.unwrap();
    assert!(stored.snapshot.is_some() && stored.updates.len() <= 1, "{stored:?}");
    a.session.leave().await;
    assert_eq!(collab.evict_idle().await, 0, "not idle long enough yet");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut evicted = 0;
    while evicted == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        evicted = collab.evict_idle().await;
    }
    assert_eq!(evicted, 1, "evicted once idle");
    assert_eq!(collab.open_rooms(), 0);
    let stored = t.store.load_doc("doc_5").await.unwrap();
    assert!(stored.updates.is_empty(), "everything folded into the snapshot on eviction");
    let again = Client::connect(&collab, "doc_5", false).await;
    assert_eq!(again.text(), "0123");
    // Garbage is refused, not applied.
    let mut s = again.session;
    assert!(s.handle(&[0, 9, 1, 0]).await.is_err(), "an unknown sync message");
    assert!(s.handle(&[0, 2, 3, 255, 255, 255]).await.is_err(), "an update that does not decode");
    // Found by fuzzing: an awareness client id over 53 bits made yrs panic in the decoder,
    // which ended the socket's task without its cleanup. It is a refused message now, and
    // the session goes on.
    let over_53_bits = [1, 10, 7, 255, 255, 255, 255, 255, 255, 255, 33, 0, 91, 0];
    assert!(s.handle(&over_53_bits).await.is_err(), "a client id out of range");
    assert!(s.handle(&[3]).await.is_ok(), "the session still answers");
    // Found by fuzzing: an awareness clock at the top of its range overflowed when the
    // state was removed on leaving, an abort. It is refused; one in range is taken.
    let awareness = |clock: u32| {
        let entry = yrs::sync::awareness::AwarenessUpdateEntry { clock, json: r#"{"user":{"name":"A"}}"#.into() };
        let clients = std::iter::once((yrs::block::ClientID::new(5), entry)).collect();
        Message::Awareness(yrs::sync::AwarenessUpdate { clients }).encode_v1()
    };
    assert!(s.handle(&awareness(u32::MAX)).await.is_err(), "a clock out of range");
    assert!(s.handle(&awareness(7)).await.is_ok(), "a clock in range");
    s.leave().await;
}

async fn presence_shows_who_is_here_and_what_they_do(b: Backend) {
    use quire_core::{ActivityKind, PresenceStatus};
    let t = b.open(Default::default()).await;
    // Long enough that "online", checked at once, holds on a loaded machine; the changes
    // that follow are waited for.
    let config = CollabConfig {
        away_after: Duration::from_secs(1),
        awareness_timeout: Duration::from_secs(1),
        ..CollabConfig::default()
    };
    let collab = Collab::new(t.store.clone(), config);
    let (_stop, running) = tokio::sync::watch::channel(false);
    collab.spawn_janitor(running);
    assert!(collab.presence("doc_6").is_empty(), "nobody on a closed document");
    let mut ada = Client::connect_as(&collab, "doc_6", false, "usr_ada").await;
    let bo = Client::connect_as(&collab, "doc_6", true, "usr_bo").await;
    ada.awareness.set_local_state_raw(r#"{"user":{"name":"Ada"},"activity":{"type":"editing","resource":"goals"}}"#);
    let update = ada.awareness.update().unwrap();
    ada.send(Message::Awareness(update)).await;
    let mut carl = Client::connect_as(&collab, "doc_6", false, "usr_carl").await;
    carl.drain().await;
    let here: Vec<_> = collab.presence("doc_6").into_iter().filter(|p| p.user.id != "usr_carl").collect();
    assert_eq!(
        here.iter().map(|p| (p.user.id.as_str(), p.status)).collect::<Vec<_>>(),
        [("usr_ada", PresenceStatus::Online), ("usr_bo", PresenceStatus::Online)]
    );
    let activity = here[0].activity.clone().expect("Ada said what she does");
    assert_eq!((activity.kind, activity.resource.as_deref()), (ActivityKind::Editing, Some("goals")));
    // Saying so makes a person away at once (a hidden tab), and back again.
    let status_of = |who: &str| collab.presence("doc_6").into_iter().find(|p| p.user.id == who).map(|p| p.status);
    carl.awareness.set_local_state_raw(r#"{"user":{"name":"Carl"},"away":true}"#);
    let update = carl.awareness.update().unwrap();
    carl.send(Message::Awareness(update)).await;
    assert_eq!(status_of("usr_carl"), Some(PresenceStatus::Away));
    carl.awareness.set_local_state_raw(r#"{"user":{"name":"Carl"},"away":false}"#);
    let update = carl.awareness.update().unwrap();
    carl.send(Message::Awareness(update)).await;
    assert_eq!(status_of("usr_carl"), Some(PresenceStatus::Online));
    // Quiet for a while: away. Left: offline, still listed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !collab.presence("doc_6").iter().all(|p| p.status == PresenceStatus::Away) {
        assert!(tokio::time::Instant::now() < deadline, "never away: {:?}", collab.presence("doc_6"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bo.session.leave().await;
    let bo_now = collab.presence("doc_6").into_iter().find(|p| p.user.id == "usr_bo").unwrap();
    assert_eq!(bo_now.status, PresenceStatus::Offline);
    // An awareness state not renewed expires, and the others are told.
    let mut seen = Vec::new();
    while !seen.iter().any(|s| s == "null") {
        assert!(tokio::time::Instant::now() < deadline, "Ada's stale state was never removed: {seen:?}");
        seen.extend(carl.drain().await);
    }
    let again = Client::connect_as(&collab, "doc_6", false, "usr_dee").await;
    assert!(!again.awareness.iter().any(|(_, s)| s.data.as_deref().is_some_and(|d| d.contains("Ada"))));
}

async fn a_join_storm_encodes_the_document_once(b: Backend) {
    let t = b.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let mut writer = Client::connect(&collab, "doc_7", false).await;
    writer.type_text(&"x".repeat(10_000)).await;
    let before = collab.full_state_encodes();
    let mut joined = Vec::new();
    for _ in 0..20 {
        joined.push(Client::connect(&collab, "doc_7", false).await);
    }
    assert!(joined.iter().all(|c| c.text().len() == 10_000));
    assert_eq!(collab.full_state_encodes() - before, 1, "twenty joiners, one encoding");
    // A change makes the next joiner's copy fresh.
    writer.type_text("y").await;
    let late = Client::connect(&collab, "doc_7", false).await;
    assert_eq!(late.text().len(), 10_001);
    assert_eq!(collab.full_state_encodes() - before, 2);
}

async fn content_is_replaced_by_its_difference(b: Backend) {
    use quire_collab::content::{PRD_FRAGMENT, read_json, read_text, text_to_json, write_json};
    use quire_core::DocumentKind;
    use serde_json::json;
    use yrs::{XmlFragment, XmlOut};
    let t = b.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let mut editor = Client::connect(&collab, "doc_8", false).await;
    let para = |s: &str| json!({"type": "paragraph", "content": [{"type": "text", "text": s}]});
    let first = json!({"type": "doc", "content": [
        {"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "Checkout"}]},
        para("Problem: it is slow."),
        {"type": "paragraph", "content": [{"type": "text", "text": "Bold", "marks": [{"type": "bold"}]}, {"type": "text", "text": " claim"}]},
        para("Goals: halve it."),
    ]});
    collab.edit("doc_8", quire(), |d| write_json(d, DocumentKind::Prd, &first)).await.unwrap();
    editor.drain().await;
    // The editor's replica now holds exactly that, in the layout TipTap binds to.
    assert_eq!(read_json(editor.awareness.doc(), DocumentKind::Prd), first);
    let head_id = |d: &Doc| {
        let txn = d.transact();
        match txn.get_xml_fragment(PRD_FRAGMENT).unwrap().get(&txn, 0).unwrap() {
            XmlOut::Element(e) => yrs::branch::Branch::id(e.as_ref()),
            _ => panic!("a heading first"),
        }
    };
    let before = head_id(editor.awareness.doc());
    // Change one paragraph: the heading and the last paragraph are the same objects after.
    let mut second = first.clone();
    second["content"][1] = para("Problem: checkout takes 9 s.");
    collab.edit("doc_8", quire(), |d| write_json(d, DocumentKind::Prd, &second)).await.unwrap();
    editor.drain().await;
    assert_eq!(read_json(editor.awareness.doc(), DocumentKind::Prd), second);
    assert_eq!(head_id(editor.awareness.doc()), before, "an unchanged block is kept, not rewritten");
    let text = collab.read("doc_8", |d| read_text(d, DocumentKind::Prd)).await.unwrap();
    assert_eq!(text, "Checkout\n\nProblem: checkout takes 9 s.\n\nBold claim\n\nGoals: halve it.");
    // Writing the same content again changes nothing at all.
    let logged = t.store.load_doc("doc_8").await.unwrap().updates.len();
    collab.edit("doc_8", quire(), |d| write_json(d, DocumentKind::Prd, &second)).await.unwrap();
    assert_eq!(t.store.load_doc("doc_8").await.unwrap().updates.len(), logged);
    collab.edit("doc_8", quire(), |d| write_json(d, DocumentKind::Prd, &text_to_json("One\n\nTwo"))).await.unwrap();
    assert_eq!(collab.read("doc_8", |d| read_text(d, DocumentKind::Prd)).await.unwrap(), "One\n\nTwo");
    assert!(write_json(&Doc::new(), DocumentKind::Prd, &json!({"type": "paragraph"})).is_err());

    // Board configurations are flat KEY: value objects in a map: keys change one by one.
    let config = json!({"BOARD": "orangepi5", "BRANCH": "current", "FIXED_IMAGE_SIZE": 7000});
    collab.edit("doc_9", quire(), |d| write_json(d, DocumentKind::BoardConfig, &config)).await.unwrap();
    assert_eq!(collab.read("doc_9", |d| read_json(d, DocumentKind::BoardConfig)).await.unwrap(), config);
    let changed = json!({"BOARD": "orangepi5", "BRANCH": "edge"});
    collab.edit("doc_9", quire(), |d| write_json(d, DocumentKind::BoardConfig, &changed)).await.unwrap();
    assert_eq!(collab.read("doc_9", |d| read_json(d, DocumentKind::BoardConfig)).await.unwrap(), changed);
    assert!(write_json(&Doc::new(), DocumentKind::BoardConfig, &json!([1])).is_err());
    assert!(write_json(&Doc::new(), DocumentKind::BoardConfig, &json!({"KERNEL": {"BRANCH": "edge"}})).is_err());
}

/// Ten clients move their cursors within one batch window: every other client gets one
/// message holding each client's latest state, not ten.
async fn awareness_changes_in_one_window_go_out_as_one_message(b: Backend) {
    let t = b.open(Default::default()).await;
    let config = CollabConfig { awareness_batch: Duration::from_millis(200), ..CollabConfig::default() };
    let collab = Collab::new(t.store.clone(), config);
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(Client::connect(&collab, "doc_1", false).await);
    }
    let mut watcher = Client::connect(&collab, "doc_1", false).await;
    for (i, c) in clients.iter_mut().enumerate() {
        for cursor in 0..3 {
            c.awareness.set_local_state_raw(format!(r#"{{"user":"u{i}","cursor":{cursor}}}"#));
            c.send(Message::Awareness(c.awareness.update().unwrap())).await;
        }
    }
    let mut frames = Vec::new();
    while let Ok(Ok(frame)) = tokio::time::timeout(Duration::from_millis(400), watcher.rx.recv()).await {
        frames.push(frame);
    }
    assert_eq!(frames.len(), 1, "thirty changes in one window, one message");
    let states = watcher.receive(&frames[0].bytes).await;
    assert_eq!(states.len(), 10);
    for i in 0..10 {
        assert!(states.contains(&format!(r#"{{"user":"u{i}","cursor":2}}"#)), "{states:?}");
    }
    // With the window at zero, each change goes out at once, to the others only.
    let collab =
        Collab::new(t.store.clone(), CollabConfig { awareness_batch: Duration::ZERO, ..CollabConfig::default() });
    let mut a = Client::connect(&collab, "doc_2", false).await;
    let mut b2 = Client::connect(&collab, "doc_2", false).await;
    a.awareness.set_local_state_raw(r#"{"user":"a"}"#);
    a.send(Message::Awareness(a.awareness.update().unwrap())).await;
    a.awareness.set_local_state_raw(r#"{"user":"a2"}"#);
    a.send(Message::Awareness(a.awareness.update().unwrap())).await;
    assert_eq!(b2.drain().await, vec![r#"{"user":"a"}"#.to_string(), r#"{"user":"a2"}"#.to_string()]);
}

async fn the_observer_hears_of_each_stored_change_and_who_made_it(b: Backend) {
    #[derive(Default)]
    struct Heard(std::sync::Mutex<Vec<(String, String)>>);
    impl quire_collab::ChangeObserver for Heard {
        fn changed(&self, document_id: &str, by: &quire_core::PresenceUser, here: bool) {
            assert!(here, "no relay here: every change is this process's");
            self.0.lock().unwrap().push((document_id.to_string(), by.id.clone()));
        }
    }
    let t = b.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let heard = Arc::new(Heard::default());
    let observer: Arc<dyn quire_collab::ChangeObserver> = heard.clone();
    collab.set_observer(&observer);
    let mut ada = Client::connect_as(&collab, "doc_o", false, "usr_ada").await;
    let mut viewer = Client::connect_as(&collab, "doc_o", true, "usr_view").await;
    ada.type_text("Hi").await;
    viewer.type_text("nope").await; // refused: nothing stored, nothing heard
    let bob = quire_core::PresenceUser { id: "usr_bob".into(), name: "Bob".into() };
    let content = serde_json::json!({"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Set"}]}]});
    collab
        .edit("doc_o", bob, |d| quire_collab::content::write_json(d, quire_core::DocumentKind::Prd, &content))
        .await
        .unwrap();
    let heard = heard.0.lock().unwrap().clone();
    assert!(heard.iter().all(|(d, _)| d == "doc_o"));
    let who: std::collections::BTreeSet<&str> = heard.iter().map(|(_, u)| u.as_str()).collect();
    assert_eq!(who, ["usr_ada", "usr_bob"].into_iter().collect(), "{heard:?}");
    assert_eq!(heard.last().unwrap().1, "usr_bob");
}

async fn relayed_updates_reach_the_other_process_with_who_made_them(b: Backend) {
    /// Hands what one process publishes to the other, as Redis would.
    struct Link(std::sync::OnceLock<Arc<Collab>>);
    impl quire_collab::Relay for Link {
        fn publish(
            &self,
            document_id: &str,
            kind: quire_collab::RemoteKind,
            by: Option<&quire_core::PresenceUser>,
            payload: &[u8],
        ) {
            let (other, doc, by, payload) =
                (self.0.get().unwrap().clone(), document_id.to_string(), by.cloned(), payload.to_vec());
            tokio::spawn(async move { other.apply_remote(&doc, kind, by.as_ref(), &payload).await });
        }
    }
    #[derive(Default)]
    struct Heard(std::sync::Mutex<Vec<(String, String, bool)>>);
    impl quire_collab::ChangeObserver for Heard {
        fn changed(&self, document_id: &str, by: &quire_core::PresenceUser, here: bool) {
            self.0.lock().unwrap().push((document_id.to_string(), by.id.clone(), here));
        }
    }
    let t = b.open(Default::default()).await;
    let (one, two) =
        (Collab::new(t.store.clone(), CollabConfig::default()), Collab::new(t.store.clone(), CollabConfig::default()));
    let link = Arc::new(Link(Default::default()));
    link.0.set(two.clone()).ok().unwrap();
    one.set_relay(link);
    let heard = Arc::new(Heard::default());
    let observer: Arc<dyn quire_collab::ChangeObserver> = heard.clone();
    two.set_observer(&observer);
    // The document is not even open on the second process: it still hears who changed it.
    let mut ada = Client::connect_as(&one, "doc_r", false, "usr_ada").await;
    ada.type_text("Hi").await;
    let mut heard_now = Vec::new();
    for _ in 0..200 {
        heard_now = heard.0.lock().unwrap().clone();
        if !heard_now.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(heard_now, vec![("doc_r".to_string(), "usr_ada".to_string(), false)]);
    // Presence travels without an author and is not a change.
    ada.awareness.set_local_state_raw(r#"{"user":"ada"}"#);
    ada.send(Message::Awareness(ada.awareness.update().unwrap())).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(heard.0.lock().unwrap().len(), 1);
}

/// Found by fuzzing: yrs takes an author's change ahead of the author's earlier ones and
/// marks the hole; filling the hole past its end made it subtract past zero (an abort). A
/// socket's changes are cut to what continues the room's state before they are stored.
async fn changes_are_taken_in_their_authors_order(b: Backend) {
    let t = b.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let mut editor = Client::connect(&collab, "doc_order", false).await;
    // The author's replica: three changes; the room is sent the third first.
    let author = Doc::with_client_id(77);
    let body = author.get_or_insert_text("body");
    let mut svs = Vec::new();
    for (at, word) in [(0, "one "), (4, "two "), (0, "three ")] {
        svs.push(author.transact().state_vector());
        body.insert(&mut author.transact_mut(), at, word);
    }
    let third = author.transact().encode_state_as_update_v1(&svs[2]);
    let first = author.transact().encode_state_as_update_v1(&svs[0]);
    let first_only = {
        let d = Doc::with_client_id(77);
        d.get_or_insert_text("body").insert(&mut d.transact_mut(), 0, "one ");
        d.transact().encode_state_as_update_v1(&Default::default())
    };
    // A merged update with a hole where "two " is: only what comes before the hole is taken.
    let merged = yrs::merge_updates_v1([first_only.as_slice(), third.as_slice()]).unwrap();
    assert!(editor.send(Message::Sync(SyncMessage::Update(third))).await.is_empty());
    assert!(editor.send(Message::Sync(SyncMessage::Update(merged))).await.is_empty());
    let read = |collab: Arc<Collab>| async move {
        collab.read("doc_order", |doc| doc.get_or_insert_text("body").get_string(&doc.transact())).await.unwrap()
    };
    assert_eq!(read(collab.clone()).await, "one ");
    let stored = t.store.load_doc("doc_order").await.unwrap().updates;
    assert_eq!(stored.len(), 1, "the change ahead of its author's earlier ones is not stored");
    // The author's whole run, in order, is taken, and the room reads as the author does.
    editor.send(Message::Sync(SyncMessage::Update(first))).await;
    assert_eq!(read(collab.clone()).await, body.get_string(&author.transact()));
    let again = Collab::new(t.store.clone(), CollabConfig::default());
    assert_eq!(read(again).await, "three one two ");
}

/// Version history observes the engine and holds it: the engine must not hold its observer
/// back, or neither (nor the store's connections) is ever freed once the server is dropped.
#[tokio::test]
async fn an_observer_holding_the_engine_does_not_keep_it_alive() {
    struct Holder(#[allow(dead_code)] Arc<Collab>);
    impl quire_collab::ChangeObserver for Holder {
        fn changed(&self, _: &str, _: &quire_core::PresenceUser, _: bool) {}
    }
    let t = Backend::Sqlite.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let observer: Arc<dyn quire_collab::ChangeObserver> = Arc::new(Holder(collab.clone()));
    collab.set_observer(&observer);
    let (engine, store) = (Arc::downgrade(&collab), Arc::downgrade(&t.store));
    drop((collab, observer));
    assert!(engine.upgrade().is_none(), "the engine outlived its owners");
    drop(t);
    assert!(store.upgrade().is_none(), "the store outlived its owners");
}

/// A change that builds on another author's change the room has not seen waits (yrs keeps
/// it pending); it is not part of the document, so sync replies and snapshots leave it out.
async fn changes_waiting_for_a_dependency_stay_out_of_the_document(b: Backend) {
    let t = b.open(Default::default()).await;
    let collab = Collab::new(t.store.clone(), CollabConfig::default());
    let mut editor = Client::connect(&collab, "doc_wait", false).await;
    // Author 1 writes "base"; author 2 appends to it. The room is sent author 2's change only.
    let one = Doc::with_client_id(1);
    one.get_or_insert_text("body").insert(&mut one.transact_mut(), 0, "base");
    let two = Doc::with_client_id(2);
    let base = one.transact().encode_state_as_update_v1(&Default::default());
    two.transact_mut().apply_update(Update::decode_v1(&base).unwrap()).unwrap();
    let sv = two.transact().state_vector();
    two.get_or_insert_text("body").insert(&mut two.transact_mut(), 4, " and more");
    let dependent = two.transact().encode_state_as_update_v1(&sv);
    editor.send(Message::Sync(SyncMessage::Update(dependent))).await;
    let late = Client::connect(&collab, "doc_wait", false).await;
    assert_eq!(late.text(), "", "what waits is not sent as the document");
    // Once the dependency arrives, both are in.
    editor.send(Message::Sync(SyncMessage::Update(base))).await;
    let later = Client::connect(&collab, "doc_wait", false).await;
    assert_eq!(later.text(), "base and more");
}
