//! Compaction on one process never drops what another process stored: two processes share
//! PostgreSQL (no relay between them, so each room misses the other's updates), both write
//! and compact often, and the stored document holds every edit.

use std::sync::Arc;

use quire_collab::{Collab, CollabConfig};
use quire_core::{NewDocument, NewWorkspace, PresenceUser, Principal};
use quire_store::StoreOptions;
use quire_store::testing::Backend;
use yrs::{GetString, Text, Transact};

async fn type_at_end(collab: &Arc<Collab>, doc: &str, who: &str, text: String) {
    let writer = PresenceUser { id: who.into(), name: who.into() };
    collab
        .edit(doc, writer, move |d| {
            let body = d.get_or_insert_text("body");
            let mut txn = d.transact_mut();
            let len = body.len(&txn);
            body.insert(&mut txn, len, &text);
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacting_on_one_process_loses_nothing_another_wrote() {
    let t = Backend::Postgres.open(StoreOptions::default()).await;
    let other = quire_store::connect(&t.url, StoreOptions::default()).await.unwrap();
    let ws = t.store.create_workspace(&Principal::System, NewWorkspace { name: "Two".into(), ..Default::default() });
    let ws = ws.await.unwrap();
    let new = NewDocument { kind: quire_core::DocumentKind::Prd, title: "Shared".into(), metadata: None };
    let doc = t.store.create_document(&Principal::System, &ws.id, new).await.unwrap().id;
    let config = CollabConfig { snapshot_every: 3, idle_timeout: std::time::Duration::ZERO, ..Default::default() };
    let a = Collab::new(t.store.clone(), config.clone());
    let b = Collab::new(other, config);

    let rounds = 30;
    for i in 0..rounds {
        tokio::join!(type_at_end(&a, &doc, "ada", format!("<a{i}>")), type_at_end(&b, &doc, "bo", format!("<b{i}>")));
    }
    // Both fold what they hold now (every room is idle), as when rooms leave memory.
    a.evict_idle().await;
    b.evict_idle().await;

    let stored = t.store.load_doc(&doc).await.unwrap();
    assert!(stored.snapshot.is_some(), "compaction ran");
    let fresh = Collab::new(t.store.clone(), CollabConfig::default());
    let text = fresh.read(&doc, |d| d.get_or_insert_text("body").get_string(&d.transact())).await.unwrap();
    let missing: Vec<String> = (0..rounds)
        .flat_map(|i| [format!("<a{i}>"), format!("<b{i}>")])
        .filter(|piece| !text.contains(piece.as_str()))
        .collect();
    assert!(missing.is_empty(), "lost {} edits: {missing:?}", missing.len());
}
