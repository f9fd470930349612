//! One conformance suite, run against SQLite and PostgreSQL alike. Each test gets its own
//! database (a temporary SQLite file, or a PostgreSQL schema), so they run in parallel.

use std::collections::HashSet;

use quire_core::{
    AuditEntry, AuditQuery, DocumentKind, DocumentPatch, DocumentQuery, Error, EventFilter, Limits, NewDocument,
    NewUser, NewWorkspace, Principal, Role, User, WorkspacePatch, WorkspaceQuery,
};
use quire_store::testing::{Backend, TestStore};
use quire_store::{NewApiKey, NewSession, Rotation, StoreOptions};
use serde_json::json;

quire_store::for_each_backend!(
    workspace_lifecycle,
    workspace_slugs,
    document_lifecycle,
    metadata_is_merge_patched,
    pagination_visits_every_row_once_in_order,
    filters_by_kind_and_title,
    deleted_workspace_hides_its_documents,
    count_limits_hold,
    every_change_writes_one_event_in_order,
    concurrent_updates_all_land,
    failed_writes_leave_no_event,
    migrations_are_idempotent,
    a_tail_follows_the_outbox_live,
    a_tail_moves_past_what_it_filters_out,
    consumer_offsets_only_move_forward,
    users_and_the_first_admin,
    membership_scopes_every_read_and_write,
    shares_grant_one_document,
    api_keys_act_in_their_workspace,
    refresh_tokens_rotate_and_replays_revoke,
    invitations_admit_the_invited,
    settings_are_initialised_once,
    preferences_are_each_persons_own_and_bounded,
    the_audit_trail_pages_filters_and_expires,
    the_update_log_appends_and_compacts,
    ai_interactions_page_and_stay_in_their_workspace,
    blobs_are_kept_once_per_workspace_and_bounded,
    assets_are_recorded_per_workspace_within_its_quota,
    unreferenced_assets_are_marked_then_dropped_and_shared_objects_stay_held,
    prompt_templates_are_versioned_per_workspace,
    old_ai_interactions_are_purged,
    document_versions_are_numbered_named_archived_and_replayed,
    build_logs_are_kept_in_chunks_and_read_from_any_line,
);

/// Quire itself: may do anything, so these tests exercise storage, not access rules.
const ME: Principal = Principal::System;

async fn open(b: Backend) -> TestStore {
    b.open(StoreOptions::default()).await
}

fn ws(name: &str) -> NewWorkspace {
    NewWorkspace { name: name.into(), slug: None, description: None }
}

fn doc(kind: DocumentKind, title: &str) -> NewDocument {
    NewDocument { kind, title: title.into(), metadata: None }
}

async fn workspace_lifecycle(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let created = s
        .create_workspace(
            &ME,
            NewWorkspace { name: " Product Team ".into(), slug: None, description: Some("PRDs".into()) },
        )
        .await
        .unwrap();
    assert_eq!((created.name.as_str(), created.slug.as_str(), created.revision), ("Product Team", "product-team", 1));
    assert!(created.id.starts_with("ws_"));
    assert_eq!(s.get_workspace(&ME, "product-team", false).await.unwrap(), created);
    assert_eq!(s.get_workspace(&ME, &created.id, false).await.unwrap(), created);

    let patch = WorkspacePatch { description: Some("Specs".into()), ..Default::default() };
    let updated = s.update_workspace(&ME, &created.id, patch.clone(), Some(1)).await.unwrap();
    assert_eq!((updated.description.as_str(), updated.revision), ("Specs", 2));
    assert!(updated.updated_at >= created.updated_at);
    // The same patch again changes nothing and makes no revision.
    assert_eq!(s.update_workspace(&ME, &created.id, patch, None).await.unwrap().revision, 2);
    // A stale revision is refused and says what is current.
    let stale = s
        .update_workspace(&ME, &created.id, WorkspacePatch { name: Some("X".into()), ..Default::default() }, Some(1))
        .await;
    assert_eq!(stale.unwrap_err(), Error::PreconditionFailed { expected: 1, current: 2 });
    assert_eq!(
        s.delete_workspace(&ME, &created.id, Some(1)).await.unwrap_err(),
        Error::PreconditionFailed { expected: 1, current: 2 }
    );

    let deleted = s.delete_workspace(&ME, "product-team", Some(2)).await.unwrap();
    assert!(deleted.deleted_at.is_some());
    assert!(matches!(s.get_workspace(&ME, &created.id, false).await, Err(Error::NotFound { .. })));
    assert!(s.get_workspace(&ME, &created.id, true).await.unwrap().deleted_at.is_some());
    assert!(matches!(s.delete_workspace(&ME, &created.id, None).await, Err(Error::NotFound { .. })));
    let live = s.list_workspaces(&ME, &wq(None, false)).await.unwrap();
    assert!(live.items.is_empty());
    let trash = s.list_workspaces(&ME, &wq(None, true)).await.unwrap();
    assert_eq!(trash.items.len(), 1);

    let restored = s.restore_workspace(&ME, &created.id).await.unwrap();
    assert!(restored.deleted_at.is_none());
    assert_eq!(restored.revision, 4);
    // Restoring what is live returns it unchanged.
    assert_eq!(s.restore_workspace(&ME, &created.id).await.unwrap().revision, 4);
    assert!(matches!(s.restore_workspace(&ME, "nope").await, Err(Error::NotFound { .. })));
}

fn wq(q: Option<&str>, deleted: bool) -> WorkspaceQuery {
    WorkspaceQuery::new(q.map(Into::into), None, None, None, deleted, &Limits::default()).unwrap()
}

async fn workspace_slugs(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let a = s.create_workspace(&ME, ws("Design")).await.unwrap();
    let b2 = s.create_workspace(&ME, ws("Design")).await.unwrap();
    assert_eq!(a.slug, "design");
    assert!(b2.slug.starts_with("design-") && b2.slug.len() == "design-".len() + 6, "{}", b2.slug);
    let taken = s
        .create_workspace(&ME, NewWorkspace { name: "Other".into(), slug: Some("design".into()), description: None })
        .await;
    assert!(matches!(taken, Err(Error::Conflict(m)) if m.contains("'design' is taken")));
    let renamed = s
        .update_workspace(&ME, &b2.id, WorkspacePatch { slug: Some("design".into()), ..Default::default() }, None)
        .await;
    assert!(matches!(renamed, Err(Error::Conflict(_))), "{renamed:?}");
    let ok = s
        .update_workspace(&ME, &b2.id, WorkspacePatch { slug: Some("design-2".into()), ..Default::default() }, None)
        .await
        .unwrap();
    assert_eq!(s.get_workspace(&ME, "design-2", false).await.unwrap().id, ok.id);
}

async fn document_lifecycle(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Boards")).await.unwrap();
    let d = s
        .create_document(
            &ME,
            &w.slug,
            NewDocument {
                kind: DocumentKind::BoardConfig,
                title: "Orange Pi 5".into(),
                metadata: Some(json!({"board":"orangepi5"})),
            },
        )
        .await
        .unwrap();
    assert!(d.id.starts_with("doc_"));
    assert_eq!((d.workspace_id.as_str(), d.kind, d.revision), (w.id.as_str(), DocumentKind::BoardConfig, 1));
    assert_eq!(d.metadata, json!({"board":"orangepi5"}));
    assert_eq!(s.get_workspace(&ME, &w.id, false).await.unwrap().document_count, 1);
    assert_eq!(s.get_document(&ME, &d.id, false).await.unwrap(), d);

    let u = s
        .update_document(&ME, &d.id, DocumentPatch { title: Some("Orange Pi 5 Plus".into()), metadata: None }, Some(1))
        .await
        .unwrap();
    assert_eq!((u.title.as_str(), u.revision), ("Orange Pi 5 Plus", 2));
    let stale = s.update_document(&ME, &d.id, DocumentPatch { title: Some("x".into()), metadata: None }, Some(1)).await;
    assert_eq!(stale.unwrap_err(), Error::PreconditionFailed { expected: 1, current: 2 });
    assert!(matches!(
        s.update_document(&ME, "doc_missing", DocumentPatch::default(), None).await,
        Err(Error::NotFound { .. })
    ));

    let del = s.delete_document(&ME, &d.id, Some(2)).await.unwrap();
    assert!(del.deleted_at.is_some());
    assert!(matches!(s.get_document(&ME, &d.id, false).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        s.update_document(&ME, &d.id, DocumentPatch { title: Some("y".into()), metadata: None }, None).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(s.get_document(&ME, &d.id, true).await.unwrap().revision, 3);
    let restored = s.restore_document(&ME, &d.id).await.unwrap();
    assert_eq!((restored.deleted_at, restored.revision), (None, 4));
    assert_eq!(s.restore_document(&ME, &d.id).await.unwrap().revision, 4);
}

async fn metadata_is_merge_patched(b: Backend) {
    let t = b
        .open(StoreOptions { limits: Limits { max_metadata_bytes: 64, ..Limits::default() }, ..Default::default() })
        .await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("M")).await.unwrap();
    let d = s
        .create_document(
            &ME,
            &w.id,
            NewDocument {
                kind: DocumentKind::Prd,
                title: "T".into(),
                metadata: Some(json!({"a":1,"b":{"c":2,"d":3}})),
            },
        )
        .await
        .unwrap();
    let u = s
        .update_document(
            &ME,
            &d.id,
            DocumentPatch { title: None, metadata: Some(json!({"a":null,"b":{"c":5},"e":"x"})) },
            None,
        )
        .await
        .unwrap();
    assert_eq!(u.metadata, json!({"b":{"c":5,"d":3},"e":"x"}));
    let too_big = s
        .update_document(&ME, &d.id, DocumentPatch { title: None, metadata: Some(json!({"big":"x".repeat(80)})) }, None)
        .await;
    assert!(matches!(too_big, Err(Error::Invalid { field, .. }) if field == "metadata"));
    assert_eq!(s.get_document(&ME, &d.id, false).await.unwrap(), u, "a refused patch changes nothing");
}

async fn pagination_visits_every_row_once_in_order(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Pages")).await.unwrap();
    // Duplicate titles make the id tie-breaker matter.
    let titles = ["delta", "alpha", "charlie", "alpha", "bravo", "echo", "charlie"];
    let mut created = Vec::new();
    for title in titles {
        created.push(s.create_document(&ME, &w.id, doc(DocumentKind::Prd, title)).await.unwrap());
    }
    for sort in ["title", "-title", "created_at", "-created_at", "updated_at", "-updated_at"] {
        let mut want = created.clone();
        want.sort_by(|a, b| {
            let ord = match sort.trim_start_matches('-') {
                "title" => a.title.cmp(&b.title),
                "created_at" => a.created_at.cmp(&b.created_at),
                _ => a.updated_at.cmp(&b.updated_at),
            }
            .then(a.id.cmp(&b.id));
            if sort.starts_with('-') { ord.reverse() } else { ord }
        });
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let q = DocumentQuery::new(None, None, Some(sort), Some(3), cursor.as_deref(), false, &Limits::default())
                .unwrap();
            let page = s.list_documents(&ME, &w.slug, &q).await.unwrap();
            pages += 1;
            got.extend(page.items.into_iter().map(|d| d.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 3, "sort {sort}");
        assert_eq!(got, want.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), "sort {sort}");
    }
    // A page size that divides the count exactly ends without an empty page.
    let q = DocumentQuery::new(None, None, None, Some(7), None, false, &Limits::default()).unwrap();
    let page = s.list_documents(&ME, &w.id, &q).await.unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (7, None));
    // Workspaces page the same way.
    for i in 0..4 {
        s.create_workspace(&ME, ws(&format!("Extra {i}"))).await.unwrap();
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q =
            WorkspaceQuery::new(None, Some("-name"), Some(2), cursor.as_deref(), false, &Limits::default()).unwrap();
        let page = s.list_workspaces(&ME, &q).await.unwrap();
        names.extend(page.items.into_iter().map(|w| w.name));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(names, ["Pages", "Extra 3", "Extra 2", "Extra 1", "Extra 0"]);
}

async fn filters_by_kind_and_title(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("F")).await.unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "Checkout Redesign")).await.unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "100% uptime plan")).await.unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::Moodboard, "Checkout moodboard")).await.unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::BoardConfig, "Rock 5B")).await.unwrap();
    let titles = |kind: Option<&str>, q: Option<&str>| {
        let query =
            DocumentQuery::new(kind, q.map(Into::into), Some("title"), None, None, false, &Limits::default()).unwrap();
        let s = s.clone();
        let w = w.id.clone();
        async move {
            s.list_documents(&ME, &w, &query).await.unwrap().items.into_iter().map(|d| d.title).collect::<Vec<_>>()
        }
    };
    assert_eq!(titles(Some("prd"), None).await, ["100% uptime plan", "Checkout Redesign"]);
    assert_eq!(titles(None, Some("CHECKOUT")).await, ["Checkout Redesign", "Checkout moodboard"]);
    assert_eq!(titles(Some("moodboard"), Some("checkout")).await, ["Checkout moodboard"]);
    // LIKE wildcards in the search text are literal.
    assert_eq!(titles(None, Some("0%")).await, ["100% uptime plan"]);
    assert!(titles(None, Some("_")).await.is_empty());
    assert!(titles(Some("board-config"), Some("pi")).await.is_empty());
    let found = s.list_workspaces(&ME, &wq(Some("f"), false)).await.unwrap();
    assert_eq!(found.items.len(), 1);
}

async fn deleted_workspace_hides_its_documents(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Gone")).await.unwrap();
    let d = s.create_document(&ME, &w.id, doc(DocumentKind::Moodboard, "Loft")).await.unwrap();
    s.delete_workspace(&ME, &w.id, None).await.unwrap();
    assert!(matches!(s.get_document(&ME, &d.id, false).await, Err(Error::NotFound { .. })));
    assert!(matches!(s.get_document(&ME, &d.id, true).await, Err(Error::NotFound { .. })));
    assert!(matches!(s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "x")).await, Err(Error::NotFound { .. })));
    let q = DocumentQuery::new(None, None, None, None, None, false, &Limits::default()).unwrap();
    assert!(matches!(s.list_documents(&ME, &w.id, &q).await, Err(Error::NotFound { .. })));
    assert!(matches!(s.delete_document(&ME, &d.id, None).await, Err(Error::NotFound { .. })));
    s.restore_workspace(&ME, &w.id).await.unwrap();
    assert_eq!(s.get_document(&ME, &d.id, false).await.unwrap().id, d.id);
}

async fn count_limits_hold(b: Backend) {
    let limits = Limits { max_workspaces: 2, max_documents_per_workspace: 2, ..Limits::default() };
    let t = b.open(StoreOptions { limits, ..Default::default() }).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("One")).await.unwrap();
    let w2 = s.create_workspace(&ME, ws("Two")).await.unwrap();
    assert!(
        matches!(s.create_workspace(&ME, ws("Three")).await, Err(Error::LimitExceeded(m)) if m.contains("max_workspaces"))
    );
    let first = s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "a")).await.unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "b")).await.unwrap();
    // Deleted documents still count until purged.
    s.delete_document(&ME, &first.id, None).await.unwrap();
    let over = s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "c")).await;
    assert!(matches!(over, Err(Error::LimitExceeded(m)) if m.contains("max_documents_per_workspace")));
    assert_eq!(s.get_workspace(&ME, &w.id, false).await.unwrap().document_count, 2);
    // The limit is per workspace.
    s.create_document(&ME, &w2.id, doc(DocumentKind::Prd, "c")).await.unwrap();
}

async fn every_change_writes_one_event_in_order(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let mut signal = s.event_signal();
    let start = s.last_event_id().await.unwrap();
    let w = s.create_workspace(&ME, ws("Events")).await.unwrap();
    assert!(signal.has_changed().unwrap(), "a commit ticks the signal");
    signal.mark_unchanged();
    let other = s.create_workspace(&ME, ws("Other")).await.unwrap();
    let p = s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "Spec")).await.unwrap();
    let m = s.create_document(&ME, &other.id, doc(DocumentKind::Moodboard, "Mood")).await.unwrap();
    s.update_document(&ME, &p.id, DocumentPatch { title: Some("Spec 2".into()), metadata: None }, None).await.unwrap();
    s.delete_document(&ME, &p.id, None).await.unwrap();
    s.restore_document(&ME, &p.id).await.unwrap();
    s.update_workspace(&ME, &w.id, WorkspacePatch { name: Some("Events!".into()), ..Default::default() }, None)
        .await
        .unwrap();
    s.delete_workspace(&ME, &other.id, None).await.unwrap();

    let all = s.events_after(&ME, start, &EventFilter::default(), 100).await.unwrap();
    let names: Vec<_> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "workspace.created",
            "workspace.created",
            "prd.created",
            "moodboard.created",
            "prd.updated",
            "prd.deleted",
            "prd.restored",
            "workspace.updated",
            "workspace.deleted"
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert_eq!(s.last_event_id().await.unwrap(), all.last().unwrap().id);
    assert_eq!(all[2].document_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(all[2].workspace_id.as_deref(), Some(w.id.as_str()));
    assert_eq!(all[2].actor, "system");
    assert_eq!(all[2].data["document"]["title"], "Spec");
    assert_eq!(all[4].data["changes"], json!(["title"]));
    assert_eq!(all[3].data["document"]["id"], json!(m.id));

    // Resuming after an id returns exactly what followed it.
    let tail = s.events_after(&ME, all[5].id, &EventFilter::default(), 100).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.id).collect::<Vec<_>>(), all[6..].iter().map(|e| e.id).collect::<Vec<_>>());
    let limited = s.events_after(&ME, start, &EventFilter::default(), 2).await.unwrap();
    assert_eq!(limited.len(), 2);

    let by_ws = EventFilter { workspace_id: Some(other.id.clone()), names: vec![] };
    let names: Vec<_> = s.events_after(&ME, start, &by_ws, 100).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["workspace.created", "moodboard.created", "workspace.deleted"]);
    let by_name = EventFilter { workspace_id: None, names: vec!["prd.*".into(), "workspace.deleted".into()] };
    let names: Vec<_> = s.events_after(&ME, start, &by_name, 100).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["prd.created", "prd.updated", "prd.deleted", "prd.restored", "workspace.deleted"]);
}

async fn concurrent_updates_all_land(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Race")).await.unwrap();
    let d = s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "Shared")).await.unwrap();
    let writers = 12;
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let s = s.clone();
            let id = d.id.clone();
            tokio::spawn(async move {
                let patch = DocumentPatch { title: None, metadata: Some(json!({ format!("k{i}"): i })) };
                s.update_document(&ME, &id, patch, None).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let end = s.get_document(&ME, &d.id, false).await.unwrap();
    assert_eq!(end.revision, 1 + writers);
    let keys: HashSet<_> = end.metadata.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), writers as usize, "no merge was lost: {keys:?}");
    // Concurrent creations keep the document count exact.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let ws = w.id.clone();
            tokio::spawn(async move { s.create_document(&ME, &ws, doc(DocumentKind::Prd, &format!("d{i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(s.get_workspace(&ME, &w.id, false).await.unwrap().document_count, 9);
}

async fn failed_writes_leave_no_event(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s
        .create_workspace(&ME, NewWorkspace { name: "A".into(), slug: Some("taken".into()), description: None })
        .await
        .unwrap();
    let before = s.last_event_id().await.unwrap();
    assert!(
        s.create_workspace(&ME, NewWorkspace { name: "B".into(), slug: Some("taken".into()), description: None })
            .await
            .is_err()
    );
    assert!(s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "  ")).await.is_err());
    assert!(
        s.update_workspace(&ME, &w.id, WorkspacePatch { name: Some("x".into()), ..Default::default() }, Some(9))
            .await
            .is_err()
    );
    assert_eq!(s.last_event_id().await.unwrap(), before);
    assert_eq!(s.list_workspaces(&ME, &wq(None, false)).await.unwrap().items.len(), 1);
}

async fn migrations_are_idempotent(b: Backend) {
    let t = open(b).await;
    t.store.migrate().await.unwrap();
    t.store.ping().await.unwrap();
    // A second process opening the same database sees the same data.
    let w = t.store.create_workspace(&ME, ws("Shared")).await.unwrap();
    let again = quire_store::connect(&t.url, StoreOptions::default()).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.get_workspace(&ME, &w.id, false).await.unwrap(), w);
    assert_eq!(again.backend(), t.store.backend());
}

async fn a_tail_follows_the_outbox_live(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let w = s.create_workspace(&ME, ws("Tail")).await.unwrap();
    let start = s.last_event_id().await.unwrap();
    // Polling every minute: only the commit signal can deliver within the timeout below.
    let poll = std::time::Duration::from_secs(60);
    let filter = EventFilter { workspace_id: None, names: vec!["prd.*".into()] };
    let mut tail = quire_store::EventTail::new(s.clone(), ME, start, filter, poll);
    let reader = tokio::spawn(async move {
        let mut names = Vec::new();
        for _ in 0..3 {
            let event = tokio::time::timeout(std::time::Duration::from_secs(10), tail.next())
                .await
                .expect("woken by the commit");
            names.push((event.id, event.name));
        }
        (names, tail.position())
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let d = s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "One")).await.unwrap();
    s.create_document(&ME, &w.id, doc(DocumentKind::Moodboard, "Skipped by the filter")).await.unwrap();
    s.update_document(&ME, &d.id, DocumentPatch { title: Some("Two".into()), metadata: None }, None).await.unwrap();
    s.delete_document(&ME, &d.id, None).await.unwrap();
    let (events, position) = reader.await.unwrap();
    let names: Vec<_> = events.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["prd.created", "prd.updated", "prd.deleted"]);
    assert_eq!(position, events[2].0);
}

/// Rows a tail's filter leaves out are read once: the tail moves past them, instead of
/// reading all of them again on every commit until an event for it comes.
async fn a_tail_moves_past_what_it_filters_out(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    let mine = s.create_workspace(&ME, ws("Mine")).await.unwrap();
    let busy = s.create_workspace(&ME, ws("Busy")).await.unwrap();
    let start = s.last_event_id().await.unwrap();
    let filter = EventFilter { workspace_id: Some(mine.id.clone()), names: Vec::new() };
    let mut tail = quire_store::EventTail::new(s.clone(), ME, start, filter, std::time::Duration::from_secs(60));
    for i in 0..20 {
        s.create_document(&ME, &busy.id, doc(DocumentKind::Prd, &format!("Elsewhere {i}"))).await.unwrap();
    }
    let high = s.last_event_id().await.unwrap();
    assert!(high > start);
    // Nothing for this tail: it waits (and is dropped), having read past the other workspace.
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), tail.next()).await;
    assert!(waited.is_err(), "no event of 'Mine' was written");
    assert!(tail.position() >= high, "the tail stayed at {} below {high}", tail.position());
    // An event for it still comes, and position follows it.
    let d = s.create_document(&ME, &mine.id, doc(DocumentKind::Prd, "Here")).await.unwrap();
    let e = tokio::time::timeout(std::time::Duration::from_secs(10), tail.next()).await.expect("delivered");
    assert_eq!((e.name.as_str(), e.document_id.as_deref()), ("prd.created", Some(d.id.as_str())));
    assert_eq!(tail.position(), e.id);
}

async fn consumer_offsets_only_move_forward(b: Backend) {
    let t = open(b).await;
    let s = &t.store;
    assert_eq!(s.consumer_offset("indexer").await.unwrap(), 0);
    s.save_consumer_offset("indexer", 7).await.unwrap();
    s.save_consumer_offset("notifier", 3).await.unwrap();
    s.save_consumer_offset("indexer", 5).await.unwrap();
    assert_eq!(s.consumer_offset("indexer").await.unwrap(), 7);
    s.save_consumer_offset("indexer", 9).await.unwrap();
    assert_eq!(s.consumer_offset("indexer").await.unwrap(), 9);
    assert_eq!(s.consumer_offset("notifier").await.unwrap(), 3);
}

async fn user(s: &dyn quire_store::Store, email: &str) -> (User, Principal) {
    let new = NewUser {
        email: email.into(),
        name: email.split('@').next().unwrap().into(),
        password_hash: None,
        admin: false,
    };
    let (u, _) = s.create_user(new).await.unwrap();
    let p = Principal::User { id: u.id.clone(), admin: u.admin, session: None };
    (u, p)
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

fn is_forbidden<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Forbidden(_)))
}

async fn users_and_the_first_admin(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (first, admin) = user(s, "Root@Example.com").await;
    assert!(first.admin && admin.is_superuser());
    assert_eq!(first.email, "root@example.com");
    let (second, plain) = user(s, "ada@example.com").await;
    assert!(!second.admin);
    let dup = s
        .create_user(NewUser { email: "ADA@example.com".into(), name: "x".into(), password_hash: None, admin: false })
        .await;
    assert!(matches!(dup, Err(Error::Conflict(m)) if m.contains("exists")));
    assert!(s.user_by_email("ada@EXAMPLE.com").await.unwrap().is_some());
    assert!(s.user_by_email("nobody@example.com").await.unwrap().is_none());
    assert_eq!(s.list_users(&admin).await.unwrap().len(), 2);
    assert!(is_forbidden(s.list_users(&plain).await));
    s.set_password(&second.id, "hash").await.unwrap();
    assert_eq!(s.user_by_email("ada@example.com").await.unwrap().unwrap().password_hash.as_deref(), Some("hash"));
}

async fn membership_scopes_every_read_and_write(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (_, _root) = user(s, "root@example.com").await;
    let (_, owner) = user(s, "owner@example.com").await;
    let (bob, bob_p) = user(s, "bob@example.com").await;
    let w = s.create_workspace(&owner, ws("Private")).await.unwrap();
    let d = s.create_document(&owner, &w.id, doc(DocumentKind::Prd, "Secret")).await.unwrap();
    assert_eq!(d.owner_id.as_deref(), owner.user_id());
    let members = s.list_members(&owner, &w.id).await.unwrap();
    assert_eq!((members.len(), members[0].role), (1, Role::Owner), "the creator owns it");

    // Outsiders cannot tell the workspace exists.
    assert!(is_not_found(s.get_workspace(&bob_p, &w.id, false).await));
    assert!(is_not_found(s.get_document(&bob_p, &d.id, false).await));
    assert!(s.list_workspaces(&bob_p, &wq(None, false)).await.unwrap().items.is_empty());
    assert!(is_not_found(s.update_document(&bob_p, &d.id, DocumentPatch::default(), None).await));
    assert!(s.events_after(&bob_p, 0, &EventFilter::default(), 100).await.unwrap().is_empty());
    assert!(!s.events_after(&owner, 0, &EventFilter::default(), 100).await.unwrap().is_empty());

    // A viewer reads; an editor writes documents; an admin changes the workspace; only an owner deletes it.
    s.set_member(&owner, &w.id, &bob.id, Role::Viewer).await.unwrap();
    assert_eq!(s.list_workspaces(&bob_p, &wq(None, false)).await.unwrap().items.len(), 1);
    assert_eq!(s.get_document(&bob_p, &d.id, false).await.unwrap().id, d.id);
    assert!(is_forbidden(s.create_document(&bob_p, &w.id, doc(DocumentKind::Prd, "x")).await));
    assert!(is_forbidden(s.set_member(&bob_p, &w.id, &bob.id, Role::Owner).await));
    s.set_member(&owner, &w.id, &bob.id, Role::Editor).await.unwrap();
    s.create_document(&bob_p, &w.id, doc(DocumentKind::Prd, "Bob's")).await.unwrap();
    s.update_document(&bob_p, &d.id, DocumentPatch { title: Some("Edited".into()), metadata: None }, None)
        .await
        .unwrap();
    assert!(is_forbidden(
        s.update_workspace(&bob_p, &w.id, WorkspacePatch { name: Some("X".into()), ..Default::default() }, None).await
    ));
    s.set_member(&owner, &w.id, &bob.id, Role::Admin).await.unwrap();
    s.update_workspace(&bob_p, &w.id, WorkspacePatch { name: Some("Renamed".into()), ..Default::default() }, None)
        .await
        .unwrap();
    assert!(is_forbidden(s.delete_workspace(&bob_p, &w.id, None).await));
    // An admin cannot make owners, nor demote the owner.
    assert!(is_forbidden(s.set_member(&bob_p, &w.id, &bob.id, Role::Owner).await));
    assert!(is_forbidden(s.remove_member(&bob_p, &w.id, owner.user_id().unwrap()).await));
    // The last owner can neither leave nor be demoted.
    assert!(matches!(s.remove_member(&owner, &w.id, owner.user_id().unwrap()).await, Err(Error::Conflict(_))));
    assert!(matches!(
        s.set_member(&owner, &w.id, owner.user_id().unwrap(), Role::Admin).await,
        Err(Error::Conflict(_))
    ));
    // Anyone may leave; then they are outside again.
    s.remove_member(&bob_p, &w.id, &bob.id).await.unwrap();
    assert!(is_not_found(s.get_document(&bob_p, &d.id, false).await));
    assert!(is_not_found(s.set_member(&owner, &w.id, "usr_nobody", Role::Viewer).await));
    // Member changes are events in the workspace (sockets of removed members close on them).
    let names: Vec<_> = s
        .events_after(
            &owner,
            0,
            &EventFilter { workspace_id: Some(w.id.clone()), names: vec!["workspace.member.*".into()] },
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("workspace.member.removed"));
}

async fn shares_grant_one_document(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (_, _root) = user(s, "root@example.com").await;
    let (_, owner) = user(s, "owner@example.com").await;
    let (guest, guest_p) = user(s, "guest@example.com").await;
    let w = s.create_workspace(&owner, ws("Team")).await.unwrap();
    let shared = s.create_document(&owner, &w.id, doc(DocumentKind::Moodboard, "Shared")).await.unwrap();
    let other = s.create_document(&owner, &w.id, doc(DocumentKind::Moodboard, "Other")).await.unwrap();
    let share = s.put_share(&owner, &shared.id, "GUEST@example.com", Role::Viewer).await.unwrap();
    assert_eq!((share.user_id.as_str(), share.role), (guest.id.as_str(), Role::Viewer));
    assert_eq!(s.get_document(&guest_p, &shared.id, false).await.unwrap().id, shared.id);
    assert!(is_not_found(s.get_document(&guest_p, &other.id, false).await));
    assert!(is_not_found(
        s.list_documents(
            &guest_p,
            &w.id,
            &DocumentQuery::new(None, None, None, None, None, false, &Limits::default()).unwrap()
        )
        .await
    ));
    assert!(is_forbidden(
        s.update_document(&guest_p, &shared.id, DocumentPatch { title: Some("x".into()), metadata: None }, None).await
    ));
    assert!(is_forbidden(s.list_shares(&guest_p, &shared.id).await));
    s.put_share(&owner, &shared.id, "guest@example.com", Role::Editor).await.unwrap();
    s.update_document(
        &guest_p,
        &shared.id,
        DocumentPatch { title: Some("Edited by guest".into()), metadata: None },
        None,
    )
    .await
    .unwrap();
    assert!(matches!(
        s.put_share(&owner, &shared.id, "guest@example.com", Role::Admin).await,
        Err(Error::Invalid { .. })
    ));
    assert!(is_not_found(s.put_share(&owner, &shared.id, "stranger@example.com", Role::Viewer).await));
    // The guest sees events of the shared document only.
    let events = s.events_after(&guest_p, 0, &EventFilter::default(), 100).await.unwrap();
    assert!(!events.is_empty() && events.iter().all(|e| e.document_id.as_deref() == Some(shared.id.as_str())));
    assert_eq!(s.list_shares(&owner, &shared.id).await.unwrap().len(), 1);
    s.remove_share(&owner, &shared.id, &guest.id).await.unwrap();
    assert!(is_not_found(s.get_document(&guest_p, &shared.id, false).await));
}

async fn api_keys_act_in_their_workspace(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (_, _root) = user(s, "root@example.com").await;
    let (_, owner) = user(s, "owner@example.com").await;
    let (_, viewer) = user(s, "viewer@example.com").await;
    let w = s.create_workspace(&owner, ws("Api")).await.unwrap();
    let elsewhere = s.create_workspace(&owner, ws("Elsewhere")).await.unwrap();
    s.set_member(&owner, &w.id, viewer.user_id().unwrap(), Role::Viewer).await.unwrap();
    let new_key = |role| NewApiKey {
        name: "CI".into(),
        role,
        prefix: format!("qk_{}", &quire_core::new_id("x")[20..]),
        key_hash: "h".into(),
    };
    assert!(is_forbidden(s.create_api_key(&viewer, &w.id, new_key(Role::Viewer)).await));
    assert!(matches!(s.create_api_key(&owner, &w.id, new_key(Role::Owner)).await, Err(Error::Invalid { .. })));
    let key = s.create_api_key(&owner, &w.id, new_key(Role::Editor)).await.unwrap();
    assert_eq!((key.role, key.created_by.as_deref()), (Role::Editor, owner.user_id()));
    let stored = s.api_key_by_prefix(&key.prefix).await.unwrap().unwrap();
    assert_eq!(stored.key_hash, "h");
    let as_key = Principal::ApiKey {
        id: key.id.clone(),
        workspace_id: w.id.clone(),
        role: key.role,
        created_by: key.created_by.clone(),
    };
    let d = s.create_document(&as_key, &w.id, doc(DocumentKind::Prd, "By key")).await.unwrap();
    assert_eq!(d.owner_id.as_deref(), owner.user_id(), "the key's creator owns what it makes");
    assert!(is_not_found(s.get_workspace(&as_key, &elsewhere.id, false).await));
    assert_eq!(s.list_workspaces(&as_key, &wq(None, false)).await.unwrap().items.len(), 1);
    assert!(is_forbidden(s.create_workspace(&as_key, ws("New")).await));
    s.touch_api_key(&key.id, 1_700_000_000_000).await.unwrap();
    assert!(s.list_api_keys(&owner, &w.id).await.unwrap()[0].last_used_at.is_some());
    let revoked = s.revoke_api_key(&owner, &w.id, &key.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(s.api_key_by_prefix(&key.prefix).await.unwrap().is_none());
    assert!(is_not_found(s.revoke_api_key(&owner, &w.id, &key.id).await));
}

async fn refresh_tokens_rotate_and_replays_revoke(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (u, p) = user(s, "ada@example.com").await;
    let far = quire_core::now_ms() + 86_400_000;
    let session = NewSession {
        id: quire_core::new_id("ses"),
        user_id: u.id.clone(),
        user_agent: Some("test".into()),
        ip: None,
        expires_at: far,
        refresh_hash: "r1".into(),
    };
    s.create_session(session.clone(), far).await.unwrap();
    assert!(s.session_is_live(&session.id).await.unwrap());
    let rotated = s.rotate_refresh_token("r1", "r2", far).await.unwrap();
    assert_eq!(rotated, Rotation::Rotated { session_id: session.id.clone(), user: u.clone() });
    assert_eq!(s.rotate_refresh_token("nope", "x", far).await.unwrap(), Rotation::Invalid);
    // Replaying the used token revokes the whole session: the fresh token dies too.
    let since = quire_core::now_ms() - 1;
    assert_eq!(
        s.rotate_refresh_token("r1", "r3", far).await.unwrap(),
        Rotation::Reused { session_id: session.id.clone() }
    );
    assert!(!s.session_is_live(&session.id).await.unwrap());
    assert_eq!(s.rotate_refresh_token("r2", "r4", far).await.unwrap(), Rotation::Invalid);
    assert_eq!(s.revoked_sessions_since(since).await.unwrap(), vec![session.id.clone()]);
    let revoked = s
        .events_after(&ME, 0, &EventFilter { workspace_id: None, names: vec!["session.revoked".into()] }, 10)
        .await
        .unwrap();
    assert_eq!(revoked[0].data["sessions"], json!([session.id]));
    // Logging out ends one session; revoking a user ends them all; others' sessions are not ours to end.
    let s2 = NewSession { id: quire_core::new_id("ses"), refresh_hash: "q1".into(), ..session.clone() };
    let s3 = NewSession { id: quire_core::new_id("ses"), refresh_hash: "q2".into(), ..session.clone() };
    s.create_session(s2.clone(), far).await.unwrap();
    s.create_session(s3.clone(), far).await.unwrap();
    let (_, other) = user(s, "eve@example.com").await;
    assert!(is_not_found(s.revoke_session(&other, &s2.id).await));
    s.revoke_session(&p, &s2.id).await.unwrap();
    assert!(!s.session_is_live(&s2.id).await.unwrap() && s.session_is_live(&s3.id).await.unwrap());
    assert_eq!(s.revoke_user_sessions(&ME, &u.id).await.unwrap(), vec![s3.id.clone()]);
    assert!(!s.session_is_live(&s3.id).await.unwrap());
}

async fn invitations_admit_the_invited(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (_, _root) = user(s, "root@example.com").await;
    let (_, owner) = user(s, "owner@example.com").await;
    let (ada, ada_p) = user(s, "ada@example.com").await;
    let (_, eve) = user(s, "eve@example.com").await;
    let w = s.create_workspace(&owner, ws("Invites")).await.unwrap();
    let far = quire_core::now_ms() + 86_400_000;
    let inv =
        s.create_invitation(&owner, &w.id, Some("Ada@example.com".into()), Role::Editor, "tok1", far).await.unwrap();
    assert_eq!(inv.email.as_deref(), Some("ada@example.com"));
    assert!(s.invitation_is_open("tok1").await.unwrap());
    assert!(is_forbidden(s.accept_invitation(&eve, "tok1").await), "for another address");
    let member = s.accept_invitation(&ada_p, "tok1").await.unwrap();
    assert_eq!((member.user_id.as_str(), member.role), (ada.id.as_str(), Role::Editor));
    assert!(!s.invitation_is_open("tok1").await.unwrap());
    assert!(is_not_found(s.accept_invitation(&ada_p, "tok1").await), "used once");
    // An open invitation never lowers a role already held.
    s.create_invitation(&owner, &w.id, None, Role::Viewer, "tok2", far).await.unwrap();
    assert_eq!(s.accept_invitation(&ada_p, "tok2").await.unwrap().role, Role::Editor);
    s.create_invitation(&owner, &w.id, None, Role::Viewer, "old", quire_core::now_ms() - 1).await.unwrap();
    assert!(is_not_found(s.accept_invitation(&eve, "old").await), "expired");
    assert!(
        is_forbidden(s.create_invitation(&ada_p, &w.id, None, Role::Viewer, "tok3", far).await),
        "editors do not invite"
    );
    assert_eq!(s.list_invitations(&owner, &w.id).await.unwrap().len(), 3);
    let open = s.create_invitation(&owner, &w.id, None, Role::Viewer, "tok4", far).await.unwrap();
    s.revoke_invitation(&owner, &w.id, &open.id).await.unwrap();
    assert!(!s.invitation_is_open("tok4").await.unwrap());
    // Signing up with an invitation: checked before the account exists, in one transaction.
    let newcomer = |email: &str| NewUser { email: email.into(), name: "N".into(), password_hash: None, admin: false };
    s.create_invitation(&owner, &w.id, Some("bo@example.com".into()), Role::Editor, "tok5", far).await.unwrap();
    assert!(is_forbidden(s.create_invited_user(newcomer("mallory@example.com"), "tok5").await));
    assert!(s.user_by_email("mallory@example.com").await.unwrap().is_none(), "a refused invitation leaves no account");
    assert!(is_not_found(s.create_invited_user(newcomer("mallory@example.com"), "nope").await));
    assert!(s.user_by_email("mallory@example.com").await.unwrap().is_none());
    assert!(s.invitation_is_open("tok5").await.unwrap(), "still open for its address");
    let (bo, first) = s.create_invited_user(newcomer("Bo@example.com"), "tok5").await.unwrap();
    assert!(!first);
    let members = s.list_members(&owner, &w.id).await.unwrap();
    assert!(members.iter().any(|m| m.user_id == bo.id && m.role == Role::Editor), "{members:?}");
    assert!(!s.invitation_is_open("tok5").await.unwrap(), "used");
}

async fn settings_are_initialised_once(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    assert_eq!(s.setting("jwt").await.unwrap(), None);
    assert_eq!(s.init_setting("jwt", "first").await.unwrap(), "first");
    assert_eq!(s.init_setting("jwt", "second").await.unwrap(), "first");
    assert_eq!(s.setting("jwt").await.unwrap().as_deref(), Some("first"));
    s.put_setting("ai.default", "x").await.unwrap();
    assert!(s.delete_setting("ai.default").await.unwrap());
    assert!(!s.delete_setting("ai.default").await.unwrap(), "already gone");
    assert_eq!(s.setting("ai.default").await.unwrap(), None);
    assert_eq!(s.setting("jwt").await.unwrap().as_deref(), Some("first"), "only that one");
}

async fn preferences_are_each_persons_own_and_bounded(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (ada, _) = user(s, "ada@example.com").await;
    let (bo, _) = user(s, "bo@example.com").await;
    assert_eq!(s.preference(&ada.id, "layout").await.unwrap(), None);
    s.put_preference(&ada.id, "layout", "{\"a\":1}", 2).await.unwrap();
    s.put_preference(&ada.id, "layout", "{\"a\":2}", 2).await.unwrap();
    assert_eq!(s.preference(&ada.id, "layout").await.unwrap().as_deref(), Some("{\"a\":2}"));
    assert_eq!(s.preference(&bo.id, "layout").await.unwrap(), None, "Bo's are his own");
    s.put_preference(&ada.id, "theme", "\"dark\"", 2).await.unwrap();
    // A third key is past the cap; changing one she has is not.
    let err = s.put_preference(&ada.id, "zoom", "1", 2).await.unwrap_err();
    assert!(matches!(err, quire_core::Error::LimitExceeded(_)), "{err}");
    s.put_preference(&ada.id, "theme", "\"light\"", 2).await.unwrap();
    s.put_preference(&bo.id, "zoom", "1", 2).await.unwrap();
    assert!(s.delete_preference(&ada.id, "theme").await.unwrap());
    assert!(!s.delete_preference(&ada.id, "theme").await.unwrap());
    s.put_preference(&ada.id, "zoom", "1", 2).await.unwrap();
}

async fn the_audit_trail_pages_filters_and_expires(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let entry = |at_ms: i64, actor: &str, action: &str, status: u16| AuditEntry {
        id: 0,
        at: quire_core::timestamp_from_ms(at_ms),
        actor: actor.into(),
        action: action.into(),
        resource: format!("/api/v1/x/{at_ms}"),
        status,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
        request_id: Some("req".into()),
        summary: json!({"fields": ["title"]}),
        duration_ms: 3,
    };
    // Two months apart, so PostgreSQL puts them in two partitions.
    let old = 1_700_000_000_000i64; // 2023-11
    let new = 1_710_000_000_000i64; // 2024-03
    let mut entries = Vec::new();
    for i in 0..5 {
        entries.push(entry(old + i, "usr_a", "POST /api/v1/workspaces", 201));
        entries.push(entry(new + i, if i % 2 == 0 { "usr_a" } else { "usr_b" }, "DELETE /api/v1/documents/{id}", 403));
    }
    s.append_audit(&entries).await.unwrap();
    let (_, _root) = user(s, "root@example.com").await;
    let (_, plain) = user(s, "plain@example.com").await;
    let q = |actor: Option<&str>, action: Option<&str>, limit: u32, cursor: Option<&str>| {
        AuditQuery::new(
            actor.map(Into::into),
            action.map(Into::into),
            None,
            None,
            None,
            Some(limit),
            cursor,
            1000,
            &Limits::default(),
        )
        .unwrap()
    };
    assert!(matches!(s.list_audit(&plain, &q(None, None, 10, None)).await, Err(Error::Forbidden(_))));
    // Newest first, across pages, each row once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.list_audit(&ME, &q(None, None, 4, cursor.as_deref())).await.unwrap();
        seen.extend(page.items.iter().map(|e| (e.at, e.id)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "strictly newest first");
    let first = s.list_audit(&ME, &q(None, None, 1, None)).await.unwrap().items.remove(0);
    assert_eq!((first.status, first.summary.clone(), first.duration_ms), (403, json!({"fields": ["title"]}), 3));
    assert_eq!(s.list_audit(&ME, &q(Some("usr_b"), None, 50, None)).await.unwrap().items.len(), 2);
    assert_eq!(s.list_audit(&ME, &q(None, Some("DELETE"), 50, None)).await.unwrap().items.len(), 5);
    let window = AuditQuery::new(
        None,
        None,
        None,
        Some(quire_core::timestamp_from_ms(new)),
        Some(quire_core::timestamp_from_ms(new + 2)),
        Some(50),
        None,
        1000,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(s.list_audit(&ME, &window).await.unwrap().items.len(), 2);
    // Retention removes what is older than the cut and keeps the rest.
    assert_eq!(s.purge_audit(new).await.unwrap(), 5);
    let left = s.list_audit(&ME, &q(None, None, 50, None)).await.unwrap().items;
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|e| e.at >= quire_core::timestamp_from_ms(new)));
}

async fn the_update_log_appends_and_compacts(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    assert_eq!(s.load_doc("doc_a").await.unwrap(), quire_store::StoredDoc::default());
    for (i, bytes) in [b"one".as_slice(), b"two", b"three"].into_iter().enumerate() {
        assert_eq!(s.append_doc_update("doc_a", bytes).await.unwrap(), i as i64 + 1);
    }
    assert_eq!(s.append_doc_update("doc_b", b"other").await.unwrap(), 1, "numbered per document");
    let loaded = s.load_doc("doc_a").await.unwrap();
    assert_eq!(loaded.updates, vec![(1, b"one".to_vec()), (2, b"two".to_vec()), (3, b"three".to_vec())]);
    s.save_doc_snapshot("doc_a", b"one+two", 2).await.unwrap();
    let loaded = s.load_doc("doc_a").await.unwrap();
    assert_eq!((loaded.snapshot.as_deref(), loaded.through_seq), (Some(b"one+two".as_slice()), 2));
    assert_eq!(loaded.updates, vec![(3, b"three".to_vec())]);
    // A stale snapshot never replaces a newer one.
    s.save_doc_snapshot("doc_a", b"all", 3).await.unwrap();
    s.save_doc_snapshot("doc_a", b"old", 1).await.unwrap();
    let loaded = s.load_doc("doc_a").await.unwrap();
    assert_eq!((loaded.snapshot.as_deref(), loaded.updates.len()), (Some(b"all".as_slice()), 0));
    // Numbering continues after the snapshot even with no update left in the log.
    assert_eq!(s.append_doc_update("doc_a", b"four").await.unwrap(), 4);
}

fn interaction(ws: &str, status: &str, prompt: String) -> quire_core::Interaction {
    quire_core::Interaction {
        id: quire_core::new_id("ai"),
        workspace_id: ws.into(),
        actor: "usr_1".into(),
        context_id: None,
        kind: "text".into(),
        template: Some("prd.draft".into()),
        template_version: Some(1),
        provider: "quire-builtin".into(),
        model: "quire-builtin".into(),
        parameters: json!({"temperature": 0.2}),
        prompt,
        tokens_in: Some(12),
        tokens_out: Some(40),
        latency_ms: 3,
        first_chunk_ms: Some(1),
        status: status.into(),
        error: None,
        created_at: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
    }
}

async fn ai_interactions_page_and_stay_in_their_workspace(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (_, owner) = user(s, "owner@example.com").await;
    let (_, bob) = user(s, "bob@example.com").await;
    let w = s.create_workspace(&owner, ws("Studio")).await.unwrap();
    let other = s.create_workspace(&owner, ws("Elsewhere")).await.unwrap();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(interaction(&w.id, if i == 2 { "failed" } else { "ok" }, format!("prompt {i}")));
    }
    s.record_interactions(&made).await.unwrap();
    s.record_interactions(&[]).await.unwrap();
    s.record_interactions(&[interaction(&other.id, "ok", "x".into())]).await.unwrap();
    // A prompt past the limit is cut on a character boundary.
    let mut long = interaction(&w.id, "ok", format!("a{}", "é".repeat(quire_core::MAX_LOGGED_PROMPT)));
    s.record_interactions(std::slice::from_ref(&long)).await.unwrap();
    long.prompt.truncate(quire_core::MAX_LOGGED_PROMPT - 1);

    let q = |status: Option<&str>, limit: u32, cursor: Option<String>| {
        quire_core::InteractionQuery::new(
            w.slug.clone(),
            status.map(String::from),
            None,
            None,
            Some(limit),
            cursor,
            &Limits::default(),
        )
        .unwrap()
    };
    let first = s.list_interactions(&owner, &q(None, 4, None)).await.unwrap();
    let second = s.list_interactions(&owner, &q(None, 4, first.next_cursor.clone())).await.unwrap();
    let listed: Vec<&quire_core::Interaction> = first.items.iter().chain(&second.items).collect();
    // Ids sort by time (entries of one millisecond in any order): newest first, each once.
    let mut expected: Vec<&quire_core::Interaction> = made.iter().chain([&long]).collect();
    expected.sort_by(|a, b| b.id.cmp(&a.id));
    assert_eq!((first.items.len(), second.next_cursor.clone()), (4, None));
    assert_eq!(listed, expected, "every entry once, stored as given, this workspace's only");
    assert_eq!(
        listed.iter().find(|i| i.id == long.id).unwrap().prompt.len(),
        quire_core::MAX_LOGGED_PROMPT - 1,
        "cut on a character boundary"
    );
    let failed = s.list_interactions(&owner, &q(Some("failed"), 10, None)).await.unwrap();
    assert_eq!(failed.items.iter().map(|i| &i.id).collect::<Vec<_>>(), vec![&made[2].id]);
    assert!(is_not_found(s.list_interactions(&bob, &q(None, 10, None)).await), "outsiders see nothing");
    assert!(
        quire_core::InteractionQuery::new(w.id.clone(), Some("meh".into()), None, None, None, None, &Limits::default())
            .is_err()
    );
}

async fn blobs_are_kept_once_per_workspace_and_bounded(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let w = s.create_workspace(&ME, ws("Studio")).await.unwrap();
    let other = s.create_workspace(&ME, ws("Elsewhere")).await.unwrap();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let blob = quire_core::Blob {
        workspace_id: w.id.clone(),
        sha256: "ab".repeat(32),
        media_type: "image/png".into(),
        bytes: bytes.clone(),
    };
    s.put_blob(&blob).await.unwrap();
    s.put_blob(&blob).await.expect("the same content again is no error");
    let back = s.get_blob(&w.id, &blob.sha256).await.unwrap();
    assert_eq!(back, blob, "every byte back, binary included");
    assert_eq!(back.reference().url, format!("/api/v1/workspaces/{}/blobs/{}", w.id, blob.sha256));
    assert!(matches!(s.get_blob(&other.id, &blob.sha256).await, Err(Error::NotFound { .. })), "not another's");
    assert!(matches!(s.get_blob(&w.id, &"cd".repeat(32)).await, Err(Error::NotFound { .. })));
    let big = quire_core::Blob { bytes: vec![0; quire_core::MAX_BLOB_BYTES + 1], ..blob.clone() };
    assert!(matches!(s.put_blob(&big).await, Err(Error::LimitExceeded(_))));
}

async fn assets_are_recorded_per_workspace_within_its_quota(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let w = s.create_workspace(&ME, ws("Studio")).await.unwrap();
    let other = s.create_workspace(&ME, ws("Elsewhere")).await.unwrap();
    let new = |ws: &str, sha: &str, size: i64| quire_core::NewAsset {
        workspace_id: ws.into(),
        sha256: sha.repeat(32),
        media_type: "image/jpeg".into(),
        size,
        width: 40,
        height: 30,
        name: "kitchen.jpg".into(),
        origin: "upload".into(),
        phash: (sha == "ab").then(|| "0123456789abcdef".into()),
        created_by: "usr_1".into(),
    };
    let (a, fresh) = s.record_asset(&new(&w.id, "ab", 600), 1_000).await.unwrap();
    assert!(fresh);
    assert_eq!(a.phash.as_deref(), Some("0123456789abcdef"));
    assert_eq!((a.size, a.width, a.name.as_str(), a.thumbnails.len()), (600, 40, "kitchen.jpg", 0));
    let (again, fresh) = s.record_asset(&new(&w.id, "ab", 600), 1_000).await.unwrap();
    assert!(!fresh, "the same content again is the same asset");
    assert_eq!(again, a);
    // 600 + 500 > 1,000: refused, and nothing recorded.
    let full = s.record_asset(&new(&w.id, "cd", 500), 1_000).await.unwrap_err();
    assert!(matches!(&full, Error::LimitExceeded(m) if m.contains("600 of its 1000 bytes")), "{full:?}");
    assert!(matches!(s.get_asset(&w.id, &"cd".repeat(32)).await, Err(Error::NotFound { .. })));
    // Another workspace has its own quota, and does not see this one's assets.
    s.record_asset(&new(&other.id, "ab", 600), 1_000).await.unwrap();
    assert!(matches!(s.get_asset(&other.id, &"ef".repeat(32)).await, Err(Error::NotFound { .. })));
    // Thumbnails count against the quota.
    let thumbs = vec![quire_core::Thumbnail {
        variant: "small".into(),
        sha256: "99".repeat(32),
        width: 32,
        height: 24,
        size: 100,
    }];
    s.set_asset_thumbnails(&w.id, &a.sha256, &thumbs).await.unwrap();
    assert_eq!(s.get_asset(&w.id, &a.sha256).await.unwrap().thumbnails, thumbs);
    assert_eq!(s.asset_usage(&w.id).await.unwrap(), 700);
    assert!(s.record_asset(&new(&w.id, "cd", 301), 1_000).await.is_err());
    s.record_asset(&new(&w.id, "cd", 300), 1_000).await.unwrap();
    assert!(matches!(s.set_asset_thumbnails(&w.id, &"00".repeat(32), &thumbs).await, Err(Error::NotFound { .. })));
    // Newest first, in pages.
    for sha in ["e1", "e2", "e3"] {
        s.record_asset(&new(&w.id, sha, 1), 2_000).await.unwrap();
    }
    let first = s.list_assets(&w.id, None, 3).await.unwrap();
    assert_eq!(first.len(), 3);
    let last = first.last().unwrap();
    let rest =
        s.list_assets(&w.id, Some((quire_core::ms_of(&last.created_at), last.sha256.clone())), 10).await.unwrap();
    let mut seen: Vec<_> = first.iter().chain(&rest).map(|a| a.sha256[..2].to_string()).collect();
    assert_eq!(seen.len(), 5, "every asset once: {seen:?}");
    seen.sort();
    assert_eq!(seen, ["ab", "cd", "e1", "e2", "e3"]);
    // Perceptual hashes: recorded with the asset, or later for one kept without.
    let hashes = s.asset_phashes(&w.id).await.unwrap();
    assert_eq!(hashes.len(), 5);
    assert_eq!(hashes[&"ab".repeat(32)].as_deref(), Some("0123456789abcdef"));
    assert_eq!(hashes[&"cd".repeat(32)], None);
    s.set_asset_phash(&w.id, &"cd".repeat(32), "fedcba9876543210").await.unwrap();
    assert_eq!(s.get_asset(&w.id, &"cd".repeat(32)).await.unwrap().phash.as_deref(), Some("fedcba9876543210"));
    assert_eq!(s.asset_phashes(&other.id).await.unwrap().len(), 1, "only the workspace's own");
    // Blobs from before the asset store are handed over, then forgotten.
    let blob = quire_core::Blob {
        workspace_id: w.id.clone(),
        sha256: "77".repeat(32),
        media_type: "image/png".into(),
        bytes: vec![1, 2, 3],
    };
    s.put_blob(&blob).await.unwrap();
    let moving = s.blobs_to_move(10).await.unwrap();
    assert_eq!(moving.into_iter().map(|(b, _)| b).collect::<Vec<_>>(), std::slice::from_ref(&blob));
    s.forget_blob(&w.id, &blob.sha256).await.unwrap();
    assert!(s.blobs_to_move(10).await.unwrap().is_empty());
}

async fn unreferenced_assets_are_marked_then_dropped_and_shared_objects_stay_held(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let w = s.create_workspace(&ME, ws("Studio")).await.unwrap();
    let other = s.create_workspace(&ME, ws("Elsewhere")).await.unwrap();
    let new = |ws: &str, sha: &str| quire_core::NewAsset {
        workspace_id: ws.into(),
        sha256: sha.repeat(32),
        media_type: "image/png".into(),
        size: 100,
        width: 4,
        height: 4,
        name: String::new(),
        origin: "generated".into(),
        phash: None,
        created_by: "usr_1".into(),
    };
    let (ab, cd) = ("ab".repeat(32), "cd".repeat(32));
    s.record_asset(&new(&w.id, "ab"), 10_000).await.unwrap();
    s.record_asset(&new(&w.id, "cd"), 10_000).await.unwrap();
    s.record_asset(&new(&other.id, "ab"), 10_000).await.unwrap();
    let thumbs =
        vec![quire_core::Thumbnail { variant: "small".into(), sha256: "99".repeat(32), width: 2, height: 2, size: 10 }];
    s.set_asset_thumbnails(&w.id, &ab, &thumbs).await.unwrap();
    let mut holders = s.asset_workspaces().await.unwrap();
    holders.sort();
    let mut expected = vec![w.id.clone(), other.id.clone()];
    expected.sort();
    assert_eq!(holders, expected);

    // Only assets kept before the cut are candidates; none is marked at first.
    let later = quire_core::now_ms() + 60_000;
    assert!(s.assets_kept_before(&w.id, 0).await.unwrap().is_empty(), "kept too recently");
    let mut candidates = s.assets_kept_before(&w.id, later).await.unwrap();
    candidates.sort();
    assert_eq!(candidates, vec![(ab.clone(), None), (cd.clone(), None)]);
    // Marked once (a later mark keeps the first), cleared when named again.
    s.set_assets_unreferenced(&w.id, &[ab.clone(), cd.clone()], Some(100)).await.unwrap();
    s.set_assets_unreferenced(&w.id, std::slice::from_ref(&ab), Some(200)).await.unwrap();
    s.set_assets_unreferenced(&w.id, std::slice::from_ref(&cd), None).await.unwrap();
    let mut candidates = s.assets_kept_before(&w.id, later).await.unwrap();
    candidates.sort();
    assert_eq!(candidates, vec![(ab.clone(), Some(100)), (cd.clone(), None)]);
    assert_eq!(s.assets_kept_before(&other.id, later).await.unwrap(), vec![(ab.clone(), None)], "its own marks");

    // Dropped only when marked early enough.
    assert_eq!(s.drop_asset(&w.id, &cd, later).await.unwrap(), None, "named: not dropped");
    assert_eq!(s.drop_asset(&w.id, &ab, 99).await.unwrap(), None, "unnamed since 100, not 99");
    let dropped = s.drop_asset(&w.id, &ab, 100).await.unwrap().expect("dropped");
    assert_eq!((dropped.sha256.as_str(), dropped.thumbnails.clone()), (ab.as_str(), thumbs.clone()));
    assert!(matches!(s.get_asset(&w.id, &ab).await, Err(Error::NotFound { .. })));
    assert_eq!(s.asset_usage(&w.id).await.unwrap(), 100, "the quota freed");
    // The object is still another workspace's; its thumbnail was only this one's.
    assert!(s.object_held(&ab).await.unwrap());
    assert!(!s.object_held(&"99".repeat(32)).await.unwrap());
    assert!(s.object_held(&cd).await.unwrap());
    s.set_asset_thumbnails(&other.id, &ab, &thumbs).await.unwrap();
    assert!(s.object_held(&"99".repeat(32)).await.unwrap(), "a thumbnail another asset names");
    assert!(!s.object_held(&"ee".repeat(32)).await.unwrap());
}

async fn prompt_templates_are_versioned_per_workspace(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let (_, owner) = user(s, "owner@example.com").await;
    let (bob_id, bob) = user(s, "bob@example.com").await;
    let w = s.create_workspace(&owner, ws("Studio")).await.unwrap();
    let other = s.create_workspace(&owner, ws("Elsewhere")).await.unwrap();
    let v1 = s.create_prompt(&owner, &w.slug, "acme.brief", &json!({"prompt": "one"})).await.unwrap();
    let v2 = s.create_prompt(&owner, &w.id, "acme.brief", &json!({"prompt": "two"})).await.unwrap();
    s.create_prompt(&owner, &w.id, "acme.alt", &json!({"prompt": "alt"})).await.unwrap();
    s.create_prompt(&owner, &other.id, "acme.brief", &json!({"prompt": "theirs"})).await.unwrap();
    assert_eq!((v1.version, v2.version, v2.workspace_id.as_str()), (1, 2, w.id.as_str()));
    assert_eq!(v2.body, json!({"prompt": "two"}));
    let listed: Vec<(String, i32)> =
        s.list_prompts(&owner, &w.id).await.unwrap().into_iter().map(|p| (p.name, p.version)).collect();
    assert_eq!(listed, [("acme.alt".into(), 1), ("acme.brief".into(), 1), ("acme.brief".into(), 2)]);
    let latest = s.find_prompt(&w.id, "acme.brief", None).await.unwrap().unwrap();
    assert_eq!((latest.version, &latest.body), (2, &json!({"prompt": "two"})));
    let first = s.find_prompt(&w.id, "acme.brief", Some(1)).await.unwrap().unwrap();
    assert_eq!(first.body, json!({"prompt": "one"}));
    assert!(s.find_prompt(&w.id, "acme.brief", Some(3)).await.unwrap().is_none());
    assert!(s.find_prompt(&w.id, "nope", None).await.unwrap().is_none());
    // Outsiders see nothing; viewers read but do not write.
    assert!(matches!(s.list_prompts(&bob, &w.id).await, Err(Error::NotFound { .. })));
    s.set_member(&owner, &w.id, &bob_id.id, quire_core::Role::Viewer).await.unwrap();
    assert_eq!(s.list_prompts(&bob, &w.id).await.unwrap().len(), 3);
    assert!(matches!(s.create_prompt(&bob, &w.id, "x", &json!({})).await, Err(Error::Forbidden(_))));
}

async fn old_ai_interactions_are_purged(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let w = s.create_workspace(&ME, ws("Studio")).await.unwrap();
    let now = quire_core::now_ms();
    let at = |ms: i64, i: usize| {
        let mut e = interaction(&w.id, "ok", format!("p{i}"));
        // An id made at `ms` (its ULID's time), as a call then would have had.
        e.id = format!("{}{:02}", &quire_core::first_id_at("ai", ms)[..27], i);
        e
    };
    let old: Vec<_> = (0..3).map(|i| at(now - 100 * 86_400_000, i)).collect();
    let recent: Vec<_> = (0..2).map(|i| at(now - 1_000, i)).collect();
    s.record_interactions(&old).await.unwrap();
    s.record_interactions(&recent).await.unwrap();
    assert_eq!(s.purge_interactions(now - 90 * 86_400_000).await.unwrap(), 3);
    assert_eq!(s.purge_interactions(now - 90 * 86_400_000).await.unwrap(), 0);
    let q =
        quire_core::InteractionQuery::new(w.id.clone(), None, None, None, Some(10), None, &Default::default()).unwrap();
    let left: Vec<String> = s.list_interactions(&ME, &q).await.unwrap().items.into_iter().map(|e| e.id).collect();
    let mut kept: Vec<String> = recent.iter().map(|e| e.id.clone()).collect();
    kept.reverse();
    assert_eq!(left, kept, "only the recent ones stay");
}

async fn document_versions_are_numbered_named_archived_and_replayed(b: Backend) {
    let t = open(b).await;
    let s = &*t.store;
    let w = s.create_workspace(&ME, ws("Studio")).await.unwrap();
    let d = s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "Checkout")).await.unwrap();
    let other = s.create_document(&ME, &w.id, doc(DocumentKind::Prd, "Search")).await.unwrap();
    assert_eq!(s.latest_version(&d.id).await.unwrap(), None);
    let last_event = s.last_event_id().await.unwrap();
    let new = |doc: &str, version: &str, content: String| quire_core::NewVersion {
        document_id: doc.into(),
        workspace_id: w.id.clone(),
        version: version.into(),
        bump: "minor".into(),
        message: format!("version {version}"),
        authors: json!([{"id": "usr_1", "name": "Ada", "email": "ada@example.com"}]),
        format: "md".into(),
        content,
    };
    let mut made = Vec::new();
    for i in 0..5 {
        let v =
            s.add_version(&new(&d.id, &format!("1.{i}.0"), format!("# Checkout\n{}\n", "x".repeat(i)))).await.unwrap();
        made.push(v);
    }
    s.add_version(&new(&other.id, "1.0.0", "# Search\n".into())).await.unwrap();
    assert_eq!(made.iter().map(|v| v.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert!(matches!(s.add_version(&new(&d.id, "1.0.0", "dup".into())).await, Err(Error::Conflict(_))));
    // A version is announced when its commit is noted, with the commit; once.
    let versions_created = || async {
        s.events_after(
            &ME,
            last_event,
            &quire_core::EventFilter { workspace_id: None, names: vec!["prd.version.created".into()] },
            100,
        )
        .await
        .unwrap()
    };
    assert!(versions_created().await.is_empty(), "not committed yet");
    s.set_version_commit(&d.id, 1, "c0ffee").await.unwrap();
    s.set_version_commit(&d.id, 1, "c0ffee").await.unwrap();
    let events = versions_created().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].data["version"], "1.0.0");
    assert_eq!(events[0].data["commit"], "c0ffee");
    assert_eq!(events[0].data["id"], format!("{}@1.0.0", d.id));
    assert_eq!(events[0].document_id.as_deref(), Some(d.id.as_str()));

    let (latest, content) = s.latest_version(&d.id).await.unwrap().unwrap();
    assert_eq!((latest.version.as_str(), content.as_str()), ("1.4.0", "# Checkout\nxxxx\n"));
    let page = s.list_versions(&d.id, None, 2).await.unwrap();
    assert_eq!(page.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["1.4.0", "1.3.0"]);
    let next = s.list_versions(&d.id, Some(page[1].seq), 10).await.unwrap();
    assert_eq!(next.iter().map(|v| v.seq).collect::<Vec<_>>(), [3, 2, 1]);
    assert_eq!(next[0].authors[0]["name"], "Ada");

    s.set_version_commit(&d.id, 2, "abc123").await.unwrap();
    let named = s.name_version(&d.id, "1.1.0", Some("Sent to legal")).await.unwrap();
    assert_eq!((named.name.as_deref(), named.commit.as_deref()), (Some("Sent to legal"), Some("abc123")));
    assert!(matches!(s.name_version(&d.id, "9.9.9", None).await, Err(Error::NotFound { .. })));

    // Past the limit, older contents are packed and still read back whole.
    assert_eq!(s.archive_versions(&d.id, 2).await.unwrap(), 3);
    assert_eq!(s.archive_versions(&d.id, 2).await.unwrap(), 0, "already packed");
    let (old, text) = s.get_version(&d.id, "1.1.0").await.unwrap().unwrap();
    assert_eq!((old.archived, text.as_str(), old.name.as_deref()), (true, "# Checkout\nx\n", Some("Sent to legal")));
    let (recent, _) = s.get_version(&d.id, "1.4.0").await.unwrap().unwrap();
    assert!(!recent.archived);
    assert_eq!(s.list_versions(&d.id, None, 10).await.unwrap().iter().filter(|v| v.archived).count(), 3);
    assert_eq!(s.get_version(&d.id, "7.0.0").await.unwrap(), None);

    // Replayed in the order they were made, in pages; the uncommitted ones found.
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = s.versions_in_order(&w.id, after.clone(), 4).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some((quire_core::ms_of(&last.created_at), last.document_id.clone(), last.seq));
        all.extend(page);
    }
    assert_eq!(all.len(), 6);
    assert_eq!(
        all.iter().filter(|(v, _)| v.document_id == d.id).map(|(v, _)| v.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(all[1].1, "# Checkout\nx\n", "archived contents come back whole");
    assert_eq!(s.uncommitted_versions(&w.id, 100).await.unwrap().len(), 4, "all but the two committed");
    assert_eq!(s.versioned_workspaces().await.unwrap(), vec![w.id.clone()]);
}

async fn build_logs_are_kept_in_chunks_and_read_from_any_line(b: Backend) {
    use quire_store::LogChunk;
    let t = open(b).await;
    let s = &t.store;
    assert_eq!(s.build_log_end("ctx_1").await.unwrap(), 0);
    let chunk = |first: i64, n: i32| LogChunk { first_line: first, line_count: n, body: format!("[{first}+{n}]") };
    for c in [chunk(1, 3), chunk(4, 2), chunk(6, 4)] {
        s.append_build_log("ctx_1", &c).await.unwrap();
    }
    // Writing a chunk again (a retried flush) changes nothing.
    s.append_build_log("ctx_1", &LogChunk { body: "other".into(), ..chunk(4, 2) }).await.unwrap();
    s.append_build_log("ctx_2", &chunk(1, 1)).await.unwrap();
    assert_eq!(s.build_log_end("ctx_1").await.unwrap(), 9);
    let firsts = |v: Vec<LogChunk>| v.into_iter().map(|c| c.first_line).collect::<Vec<_>>();
    assert_eq!(firsts(s.build_log("ctx_1", 0, 100).await.unwrap()), [1, 4, 6]);
    // A reader who saw line 3 gets the chunks from line 4; who saw line 4, the chunk holding 5.
    assert_eq!(firsts(s.build_log("ctx_1", 3, 100).await.unwrap()), [4, 6]);
    assert_eq!(firsts(s.build_log("ctx_1", 4, 100).await.unwrap()), [4, 6]);
    assert_eq!(firsts(s.build_log("ctx_1", 5, 100).await.unwrap()), [6]);
    assert_eq!(firsts(s.build_log("ctx_1", 9, 100).await.unwrap()), Vec::<i64>::new());
    assert_eq!(firsts(s.build_log("ctx_1", 0, 2).await.unwrap()), [1, 4]);
    assert_eq!(s.build_log("ctx_1", 3, 1).await.unwrap()[0].body, "[4+2]");
}
